"""Feature families on hand-made inputs with exact values, directional cases, and the lockstep detector."""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.errors import ZombieScanError
from pipeline.features import lockstep as lockstep_module
from pipeline.features.behaviour import behavioural_features
from pipeline.features.build import build_features, featurize_warehouse
from pipeline.features.graph import follow_graph_networkx, graph_features
from pipeline.features.lockstep import LockstepParams, dense_block_scores, dense_block_scores_sql, lockstep, peel_dense_blocks
from pipeline.features.profile import profile_features
from pipeline.features.query import feature_connection
from pipeline.ingest import ingest
from pipeline.simulate import make_config, simulate, write_contract

REF = datetime(2026, 6, 1, tzinfo=UTC)
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def accounts(**columns: list[object]) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"account_id": [f"a{i}" for i in range(n)], "created_at": [REF - timedelta(days=100)] * n}
    return pl.DataFrame({**base, **columns})


def events(rows: list[tuple[str, str, str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"actor_id": pl.String, "target_id": pl.String, "kind": pl.String, "ts": pl.Datetime("us", "UTC")}, orient="row"
    ).with_columns(target_type=pl.lit("page"))


@pytest.mark.parametrize(
    ("username", "display_name", "column", "expected"),
    [
        ("maria", "Maria", "profile_username_len", 5),
        ("ab12", None, "profile_username_digit_share", 0.5),
        ("aabb", None, "profile_username_entropy", 1.0),
        ("abcd", None, "profile_username_entropy", 2.0),
        ("ééü€😀", None, "profile_username_len", 5),  # characters are code points, not bytes
        ("ééü€😀", None, "profile_username_entropy", -(0.4 * math.log2(0.4) + 3 * 0.2 * math.log2(0.2))),
        ("jess48213", None, "profile_username_trailing_digits", 5),
        ("j4ss", None, "profile_username_trailing_digits", 0),
        ("maria_k", "Maria K", "profile_name_similarity", 1.0),
        ("abcd", "abxy", "profile_name_similarity", 0.5),
    ],
)
def test_profile_username_features(username: str, display_name: str | None, column: str, expected: float) -> None:
    f = profile_features(accounts(username=[username], display_name=[display_name]), reference_time=REF)
    assert f[column][0] == pytest.approx(expected)


def test_profile_counts_and_flags() -> None:
    a = accounts(
        has_profile_photo=[False, True],
        bio=[None, "runner"],
        url=[None, "https://x.example"],
        followers_count=[0, 99],
        following_count=[999, 9],
        posts_count=[10, None],
        is_verified=[None, True],
    )
    f = profile_features(a, reference_time=REF).sort("account_id")
    assert f["profile_age_days"].to_list() == [100.0, 100.0]
    assert f["profile_default_photo"].to_list() == [1, 0]
    assert f["profile_bio_len"].to_list() == [0, 6]
    assert f["profile_has_url"].to_list() == [0, 1]
    assert f["profile_follow_ratio_log"].to_list() == pytest.approx([math.log(1000), math.log(10) - math.log(100)])
    assert f["profile_posts_per_day"].to_list() == [0.1, None]
    assert f["profile_verified"].to_list() == [None, 1]


def test_accounts_created_after_the_reference_time_are_left_out() -> None:
    a = accounts(username=["old", "new"]).with_columns(created_at=pl.Series([REF - timedelta(days=1), REF + timedelta(days=1)]))
    assert profile_features(a, reference_time=REF)["account_id"].to_list() == ["a0"]


def test_behaviour_exact_values() -> None:
    a = accounts(username=["x"])
    rows = [
        ("a0", "p1", "like", T0),
        ("a0", "p2", "like", T0 + timedelta(seconds=10)),
        ("a0", "p3", "like", T0 + timedelta(seconds=30)),
        ("a0", "u9", "follow", T0 + timedelta(days=1)),
        ("a0", "p4", "like", REF + timedelta(days=1)),  # after the reference time: ignored
    ]
    f = behavioural_features(a, events(rows), reference_time=REF).row(0, named=True)
    assert f["beh_n_actions"] == 4
    assert f["beh_n_like"] == 3
    assert f["beh_n_follow"] == 1
    assert f["beh_distinct_targets"] == 4
    assert f["beh_like_share"] == 0.75
    assert f["beh_gap_median_s"] == 20.0  # gaps 10, 20, 86370
    assert f["beh_active_days"] == 2
    assert f["beh_busiest_minute_share"] == 0.75
    assert f["beh_first_action_delay_days"] == pytest.approx(69.0)  # created 2026-02-21, first action 2026-05-01
    assert f["beh_likes_per_active_day"] == 1.5
    mean, std = np.mean([10, 20, 86370]), np.std([10, 20, 86370])
    assert f["beh_burstiness"] == pytest.approx((std - mean) / (std + mean))


def test_weight_counts_as_that_many_actions() -> None:
    e = events([("a0", "p1", "like", T0)]).with_columns(weight=pl.lit(7, pl.Int64))
    assert behavioural_features(accounts(username=["x"]), e, reference_time=REF)["beh_n_like"][0] == 7


def test_500_likes_in_a_minute_look_burstier_than_5_in_a_day() -> None:
    a = accounts(username=["farm", "person"])
    farm = [("a0", f"p{i}", "like", T0 + timedelta(milliseconds=120 * i)) for i in range(500)]
    person = [("a1", f"p{i}", "like", T0 + timedelta(hours=5 * i)) for i in range(5)]
    f = behavioural_features(a, events(farm + person), reference_time=REF).sort("account_id")
    farm_row, person_row = f.row(0, named=True), f.row(1, named=True)
    assert farm_row["beh_busiest_minute_share"] > person_row["beh_busiest_minute_share"]
    assert farm_row["beh_gap_median_s"] < person_row["beh_gap_median_s"]
    assert farm_row["beh_hour_entropy"] < person_row["beh_hour_entropy"]


def test_profile_and_behaviour_do_not_depend_on_other_accounts(tiny_tables: dict[str, pl.DataFrame]) -> None:
    """Batch scoring computes them on a slice of accounts: the values must match the whole world's."""
    acc, eng = tiny_tables["accounts"], tiny_tables["engagements"]
    ref = eng["ts"].max()
    subset = acc.sample(200, seed=1)
    sub_eng = eng.join(subset.select(pl.col("account_id").alias("actor_id")), on="actor_id", how="semi")
    for fn, args in ((profile_features, ()), (behavioural_features, (None,))):
        whole = fn(acc, *((eng,) if args else ()), reference_time=ref)
        part = fn(subset, *((sub_eng,) if args else ()), reference_time=ref)
        expected = whole.join(subset.select("account_id"), on="account_id", how="semi").sort("account_id")
        # equal up to float summation order (DuckDB aggregates in parallel)
        assert_frame_equal(part, expected, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def _planted_world() -> pl.DataFrame:
    """200 genuine accounts liking pages at random; 10 farm accounts liking 5 small pages within minutes, 5 times."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        for _ in range(20):
            rows.append((f"g{i}", f"page{rng.integers(0, 50)}", "like", T0 + timedelta(seconds=int(rng.integers(0, 30 * 86_400)))))
    # a popular page liked by everyone, at random times
    rows += [(f"g{i}", "mega", "like", T0 + timedelta(seconds=int(rng.integers(0, 30 * 86_400)))) for i in range(200)]
    for c in range(5):
        start = T0 + timedelta(days=3 * c + 1)
        rows += [(f"f{m}", f"shop{c}", "like", start + timedelta(seconds=int(rng.integers(0, 600)))) for m in range(10)]
    return events(rows)


def test_lockstep_recovers_a_planted_group_and_ignores_a_popular_page() -> None:
    result = lockstep(_planted_world(), LockstepParams(windows_s=(3600,)))
    assert result.timed
    assert result.groups.height == 1
    assert sorted(result.groups["members"][0]) == [f"f{m}" for m in range(10)]
    assert sorted(result.groups["targets"][0]) == [f"shop{c}" for c in range(5)]
    f = result.features.filter(pl.col("account_id").is_in(["f0", "g0"])).sort("account_id")
    assert f["lock_group_size"].to_list() == [10, 0]
    assert f["lock_partners"].to_list() == [9, 0]
    assert f["lock_max_jaccard"].to_list() == [1.0, 0.0]
    assert f["lock_share"].to_list() == [1.0, 0.0]


def test_lockstep_without_timestamps_degrades_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    untimed = _planted_world().with_columns(ts=pl.lit(T0, pl.Datetime("us", "UTC")))
    result = lockstep(untimed)
    assert not result.timed
    assert result.groups.is_empty()
    assert "no time information" in caplog.text


def test_dense_block_score_finds_a_planted_block_without_time() -> None:
    scores = dense_block_scores(_planted_block())
    top = scores.sort("lock_dense_block_score", descending=True)["account_id"].head(10)
    assert set(top) == {f"f{m}" for m in range(10)}
    assert scores.filter(pl.col("lock_in_densest_block"))["account_id"].sort().to_list() == [f"f{m}" for m in range(10)]


def _planted_block() -> pl.DataFrame:
    """200 accounts liking 5 random pages of 500 and one hub; 10 farm accounts liking the same 15 shops."""
    rng = np.random.default_rng(1)
    rows = [(f"g{i}", f"page{rng.integers(0, 500)}") for i in range(200) for _ in range(5)]
    rows += [(f"g{i}", "mega") for i in range(200)]  # camouflage-proof: a hub counts for little
    rows += [(f"f{m}", f"shop{c}") for m in range(10) for c in range(15)]
    return pl.DataFrame(rows, schema=["actor_id", "target_id"], orient="row")


def test_dense_block_score_uses_weights() -> None:
    e = pl.DataFrame({"actor_id": ["a", "b", "c"], "target_id": ["t1", "t1", "t2"], "weight": [50, 1, 1]})
    s = dict(dense_block_scores(e).select("account_id", "lock_dense_block_score").iter_rows())
    assert s["a"] > s["b"]


def _reference_peel(
    rows: np.ndarray, cols: np.ndarray, w: np.ndarray, n_r: int, n_c: int, epsilon: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """The parallel peel as defined, every degree recomputed from the remaining edges each pass:
    (score, in densest block, passes)."""
    q = np.rint(w / np.array([math.log(5.0 + d) for d in np.bincount(cols, minlength=n_c)])[cols] * 2**24).astype(np.int64)
    alive_r, alive_c, score = np.ones(n_r, bool), np.ones(n_c, bool), np.zeros(n_r)

    def degrees() -> tuple[np.ndarray, np.ndarray]:
        live = alive_r[rows] & alive_c[cols]
        deg_r, deg_c = np.zeros(n_r, np.int64), np.zeros(n_c, np.int64)
        np.add.at(deg_r, rows, q * live)
        np.add.at(deg_c, cols, q * live)
        return deg_r, deg_c

    deg_r, deg_c = degrees()
    level, best, best_level, passes = float(min(deg_r.min(), deg_c.min())), Fraction(-1), 0.0, 0
    while alive_r.any():
        density = Fraction(int(deg_r[alive_r].sum()), int(alive_r.sum() + alive_c.sum()))
        if density > best:
            best, best_level = density, level
        drop_r, drop_c = alive_r & (deg_r <= math.floor(level)), alive_c & (deg_c <= math.floor(level))
        score[drop_r], alive_r[drop_r], alive_c[drop_c] = level / 2**24, False, False
        passes += 1
        deg_r, deg_c = degrees()
        rest = np.r_[deg_r[alive_r], deg_c[alive_c]]
        level = max(level * (1 + epsilon), float(rest.min()), 1.0) if len(rest) else level
    return score, score >= best_level / 2**24, passes


Graph = tuple[np.ndarray, np.ndarray, np.ndarray, int, int]  # rows, cols, weights, n_rows, n_cols


def _random_graph(seed: int, max_weight: int) -> Graph:
    """300 accounts, 120 targets of Zipf-distributed popularity, ~2,000 edges."""
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.c_[rng.integers(0, 300, 3000), rng.zipf(1.6, 3000) % 120], axis=0)
    return pairs[:, 0], pairs[:, 1], rng.integers(1, max_weight + 1, len(pairs)).astype(float), 300, 120


def _chain(n: int) -> Graph:
    """A path r0 - c0 - r1 - c1 - ... - r(n-1) - c(n-1) of unit weights: all degrees tied but the ends'."""
    return np.r_[np.arange(n), np.arange(1, n)], np.r_[np.arange(n), np.arange(n - 1)], np.ones(2 * n - 1), n, n


def _logged_passes(caplog: pytest.LogCaptureFixture) -> int:
    return int(re.findall(r"peeled in (\d+) passes", caplog.text)[-1])


@pytest.mark.parametrize(
    ("graph", "epsilon"),
    [
        pytest.param(_random_graph(11, max_weight=3), 0.05, id="weights 1-3"),
        pytest.param(_random_graph(12, max_weight=1), 0.1, id="unit weights, many ties"),
        pytest.param(_chain(2000), 0.1, id="a chain"),
    ],
)
def test_incremental_peeling_matches_recomputing_every_degree(graph: Graph, epsilon: float, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pipeline.features.lockstep")
    score, densest = peel_dense_blocks(*graph, epsilon=epsilon)
    ref_score, ref_densest, passes = _reference_peel(*graph, epsilon)
    np.testing.assert_array_equal(score, ref_score)  # integer degrees: exactly, not to a tolerance
    np.testing.assert_array_equal(densest, ref_densest)
    assert _logged_passes(caplog) == passes


def test_a_chain_is_peeled_in_a_few_passes_not_one_per_link(caplog: pytest.LogCaptureFixture) -> None:
    # degrees from 1/ln 7 (the first row) to 1/ln 7 + 1/ln 6 (the last): 1 + ceil(log_1.1(max / min)) passes at most
    caplog.set_level(logging.DEBUG, logger="pipeline.features.lockstep")
    peel_dense_blocks(*_chain(2000), epsilon=0.1)
    assert _logged_passes(caplog) <= 1 + math.ceil(math.log(1 + math.log(7) / math.log(6)) / math.log(1.1))


@pytest.mark.parametrize("max_weight", [3, 1000], ids=["values in 4 bytes", "values in 8 bytes"])
def test_dense_block_score_from_duckdb_equals_the_peel_of_the_edge_list(max_weight: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # The scoring path streams the edges out of DuckDB into the layouts, a chunk at a time, and
    # takes each pass's removals off in parts; the edge-list peel builds its layouts at once.
    rows, cols, w, _, _ = _random_graph(13, max_weight)
    rows, cols = np.unique(rows, return_inverse=True)[1], np.unique(cols, return_inverse=True)[1]  # no isolated node
    n_rows, n_cols = int(rows.max()) + 1, int(cols.max()) + 1
    score, densest = peel_dense_blocks(rows, cols, w, n_rows, n_cols)
    monkeypatch.setattr(lockstep_module, "LAYOUT_CHUNK", 50)
    edges = pl.DataFrame({"actor_id": [f"a{r:04d}" for r in rows], "target_id": [f"t{c:04d}" for c in cols], "weight": w.astype(np.int64)})
    con = feature_connection()
    con.register("edges", edges)
    got = dense_block_scores_sql(con, "edges")
    assert got["account_id"].to_list() == [f"a{r:04d}" for r in range(n_rows)]
    np.testing.assert_array_equal(got["lock_dense_block_score"].to_numpy(), score)
    np.testing.assert_array_equal(got["lock_in_densest_block"].to_numpy(), densest)
    assert densest.any() and not densest.all()


def test_features_from_the_warehouse_equal_features_from_frames(tiny_dir, tiny_tables: dict[str, pl.DataFrame], tmp_path) -> None:  # type: ignore[no-untyped-def]
    ingest(tiny_dir, tmp_path / "w.duckdb")
    featurize_warehouse(tmp_path / "w.duckdb", tmp_path / "f")
    t = tiny_tables
    features, groups, _ = build_features(t["accounts"], t["engagements"], t["targets"])
    assert_frame_equal(pl.read_parquet(tmp_path / "f" / "features.parquet"), features, check_dtypes=False, rel_tol=1e-9)
    assert_frame_equal(pl.read_parquet(tmp_path / "f" / "lockstep_groups.parquet"), groups)


def test_graph_features_agree_with_networkx() -> None:
    a = pl.DataFrame({"account_id": [f"a{i}" for i in range(30)], "created_at": [REF] * 30})
    rng = np.random.default_rng(3)
    pairs = {(f"a{i}", f"a{j}") for i, j in rng.integers(0, 30, (120, 2)) if i != j}
    e = pl.DataFrame({"actor_id": [p[0] for p in pairs], "target_id": [p[1] for p in pairs], "kind": "follow", "target_type": "account"})
    ours = graph_features(a, e).sort("account_id")
    g = follow_graph_networkx(a, e)
    pr = nx.pagerank(g, alpha=0.85, tol=1e-12)
    core = nx.core_number(nx.Graph(g.to_undirected()))
    clust = nx.clustering(nx.Graph(g.to_undirected()))
    for row in ours.iter_rows(named=True):
        node = row["account_id"]
        assert row["graph_pagerank"] / 30 == pytest.approx(pr[node], abs=1e-6)
        assert row["graph_core"] == core[node]
        assert row["graph_clustering"] == pytest.approx(clust[node])
        assert row["graph_in_degree"] == g.in_degree(node)


def test_pagerank_product_is_scipys_to_the_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """PageRank's per-iteration product runs its rows over the cores: every row must still add as
    scipy's single-threaded CSR product does, so the same graph gives the same bytes."""
    import scipy.sparse as sp

    from pipeline.features import graph as graph_module

    rng = np.random.default_rng(11)
    n = 20_000
    src, dst = rng.integers(0, n, 200_000), rng.zipf(1.5, 200_000) % n  # skewed in-degrees: long rows
    share = 1.0 / np.maximum(np.bincount(src, minlength=n), 1.0)
    to = sp.csr_matrix((share[src], (dst, src)), shape=(n, n))
    x = rng.random(n) / n
    assert np.array_equal(graph_module._inflow(to.indptr, to.indices, to.data, x, np.empty(n)), to @ x)
    ranks = graph_module.pagerank(src, dst, n)

    # the whole power iteration with scipy's product in its place: the same bytes
    def scipys(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        out[:] = sp.csr_matrix((data, indices, indptr), shape=(n, n)) @ x
        return out

    monkeypatch.setattr(graph_module, "_inflow", scipys)
    assert np.array_equal(ranks, graph_module.pagerank(src, dst, n))
    assert ranks.sum() == pytest.approx(1.0)


def test_build_features_on_a_tiny_world(tiny_tables: dict[str, pl.DataFrame]) -> None:
    t = tiny_tables
    features, groups, report = build_features(t["accounts"], t["engagements"], t["targets"])
    assert features["account_id"].n_unique() == features.height == t["accounts"].height
    families = {c.split("_")[0] + "_" for c in features.columns if c != "account_id"}
    assert families == {"profile_", "beh_", "graph_", "lock_"}
    assert not {"is_zombie", "is_like_farm", "farm_id"} & set(features.columns)
    # plain numeric columns only (models and MLflow signatures take no decimals or strings)
    assert all(t.is_float() or t.is_integer() for c, t in features.schema.items() if c != "account_id")
    assert not {t for t in features.schema.values() if t in (pl.Int128, pl.UInt128)}
    assert report.lockstep_groups == groups.height > 0


def test_lockstep_groups_find_bursty_farms() -> None:
    """Farm members fill the groups far beyond their share of accounts (not all of them: live-event
    fans form genuine groups by design, docs/simulator.md). Only bursty farms here: stealthy and
    adaptive ones are built to slip past the windows (perf.quality measures each style)."""
    t = simulate(make_config("tiny", seed=3, stealth_share=0.0, heavy_share=0.0, adaptive_share=0.0))
    _, groups, _ = build_features(t["accounts"], t["engagements"], t["targets"])
    members = groups["members"].explode()
    farm = t["labels"].filter(pl.col("is_like_farm"))["account_id"]
    assert members.is_in(farm.implode()).mean() > 5 * t["labels"]["is_like_farm"].mean()


def test_two_feature_runs_give_identical_bytes(default_tables: dict[str, pl.DataFrame], tmp_path: Path) -> None:
    """Same warehouse, same settings: the same files, byte for byte (DuckDB's parallel float sums
    once changed graph means in the 8th digit, and PageRank's threads its last bits, run to run).
    The default world is big enough for DuckDB to aggregate in parallel; the tiny one is not."""
    write_contract(default_tables, tmp_path / "sim", make_config("default"), "default")
    ingest(tmp_path / "sim", tmp_path / "w.duckdb")
    outputs = []
    for run in ("a", "b"):
        featurize_warehouse(tmp_path / "w.duckdb", tmp_path / run)
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / run).iterdir())})
    assert list(outputs[0]) == ["features.parquet", "lockstep_groups.parquet", "report.json"]
    for name in outputs[0]:
        assert outputs[0][name] == outputs[1][name], f"{name} differs between two runs"


@pytest.mark.parametrize("seed", [0, 1])
def test_partner_pairs_equal_the_pair_self_join(seed: int) -> None:
    """`partner_pairs` counts without materialising the self-join; it must give exactly the pairs
    of the join's definition: two accounts in one burst cell, counted once per distinct target
    however many cells (grids, windows) of that target they share, kept from min_common targets.
    Crowded cells, accounts in several cells of one target and ids with gaps all occur."""
    rng = np.random.default_rng(seed)
    n = 4_000
    sync = pl.DataFrame(
        {
            "a": (rng.integers(0, 150, n) * 7).astype(np.int32),  # gaps in the numbering
            "g": rng.integers(0, 25, n).astype(np.int32),
            "cell": rng.integers(0, 8, n).astype(np.int64),
        }
    )
    con = feature_connection()
    con.register("sync", sync)
    ordered = con.execute("SELECT DISTINCT a, g, cell FROM sync ORDER BY g, cell, a").fetchnumpy()
    every_pair = con.sql(
        """
        SELECT x.a AS u, y.a AS v, count(DISTINCT x.g) AS common
        FROM sync x JOIN sync y ON x.g = y.g AND x.cell = y.cell AND x.a < y.a
        GROUP BY ALL ORDER BY u, v
        """
    ).pl()
    con.close()
    expected = every_pair.filter(pl.col("common") >= 4)
    assert 100 < expected.height < every_pair.height  # many partners, and pairs below min_common left out
    got = lockstep_module.partner_pairs(ordered, 4)
    assert_frame_equal(got.sort("u", "v"), expected)
    empty = lockstep_module.partner_pairs({k: v[:0] for k, v in ordered.items()}, 4)
    assert empty.is_empty() and empty.schema == expected.schema


@pytest.mark.parametrize("batch", [50, 1 << 22])
def test_burst_memberships_equal_the_sql_definition(batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """`burst_memberships` finds every grid's bursts in one pass over the sorted acts; it must
    give exactly the rows of the definition written as SQL (one group-by per grid, the rate test,
    the hub cap, the pruning), on times before 1970 (cells divide towards zero), crowded and
    quiet targets, bursts over the cap, and targets split across streamed batches (batch 50)."""
    monkeypatch.setattr(lockstep_module, "BURST_BATCH", batch)
    rng = np.random.default_rng(batch)
    rows = []
    for g in range(60):
        quiet = rng.integers(-40 * 86_400, 40 * 86_400, int(rng.integers(1, 40)))  # likes at random times
        days = rng.integers(-30, 30, int(rng.integers(0, 4)))
        bursts = [rng.integers(0, 1_800, int(rng.integers(3, 30))) + int(day) * 86_400 for day in days]
        for t in np.concatenate([quiet, *bursts]) if bursts else quiet:
            rows.append((int(rng.integers(0, 120)), g, int(t)))
    acts = pl.DataFrame(rows, schema={"a": pl.Int32, "g": pl.Int32, "t": pl.Int64}, orient="row").unique()
    params = LockstepParams(windows_s=(3_600, 86_400), min_cell_actors=3, max_cell_actors=12, min_span_s=86_400, min_common=2)
    con = feature_connection()
    con.register("acts_df", acts)
    con.execute("CREATE TEMP TABLE acts AS SELECT * FROM acts_df")
    got, skipped = lockstep_module.burst_memberships(con, params)
    grids = [(w, shift, 2 * k + s) for k, w in enumerate(params.windows_s) for s, shift in enumerate((0, w // 2))]
    cells = " UNION ALL ".join(
        f"""SELECT x.a, x.g, (x.t + {shift}) // {w} AS cell, {grid} AS grid, count(*) OVER (PARTITION BY x.g, (x.t + {shift}) // {w}) AS c,
                   r.n * {w} / greatest(r.span, {max(params.min_span_s, w)}) AS rate
            FROM acts x JOIN (SELECT g, count(*) AS n, greatest(max(t) - min(t), 1) AS span FROM acts GROUP BY g) r USING (g)"""
        for w, shift, grid in grids
    )
    bursts = f"SELECT * FROM ({cells}) WHERE c >= {params.min_cell_actors} AND c >= {params.burst_ratio} * (rate + 1)"
    expected = con.sql(
        f"""
        WITH kept AS (SELECT a, g, cell * 4 + grid AS cell FROM ({bursts}) WHERE c <= {params.max_cell_actors})
        SELECT * FROM kept WHERE a IN (SELECT a FROM kept GROUP BY a HAVING count(DISTINCT g) >= {params.min_common})
        """
    ).pl()
    n_skipped = con.sql(f"SELECT count(DISTINCT (g, cell, grid)) FROM ({bursts}) WHERE c > {params.max_cell_actors}").fetchall()[0][0]
    con.close()
    assert expected.height > 100 and n_skipped > 0 and (acts["t"] < 0).any()
    assert skipped == n_skipped
    assert_frame_equal(got.sort("a", "g", "cell"), expected.sort("a", "g", "cell"))


@pytest.mark.parametrize("batch", [7, 1 << 20])
def test_behaviour_clock_columns_equal_the_scripts_own_steps(batch: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """On DuckDB the gap and clock columns come from `clock_tables`, not from behaviour.sql's seven
    steps (which Spark runs): the same bytes, on times that make the SQL's arithmetic matter:
    fractional seconds, times before 1970 (negative minutes: DuckDB divides towards zero), many
    actions in one minute, accounts with one action, equally busy hours; and accounts that run
    across the batches DuckDB streams (batch 7)."""
    from pipeline.features import behaviour as module
    from pipeline.features.query import query

    monkeypatch.setattr(module, "CLOCK_BATCH", batch)
    rng = np.random.default_rng(batch)
    n = 4_000
    actor = (rng.pareto(1.2, n) * 3).astype(int) % 150  # a few busy accounts, many with one or two actions
    base = np.where(rng.random(n) < 0.15, -3 * 86_400, 1_780_000_000)  # some before 1970
    seconds = base + rng.integers(0, 5 * 86_400, n) + np.where(rng.random(n) < 0.5, rng.random(n).round(6), 0.0)
    seconds[::9] = seconds[::9] // 60 * 60 + 1.5  # pile-ups in one minute
    acc = accounts(account_id=[f"a{i}" for i in range(160)], created_at=[datetime(1969, 12, 1, tzinfo=UTC)] * 160)
    eng = pl.DataFrame(
        {
            "actor_id": [f"a{i}" for i in actor],
            "target_id": [f"t{i}" for i in rng.integers(0, 50, n)],
            "kind": rng.choice(["like", "follow", "post"], n).tolist(),
            "ts": (seconds * 1_000_000).astype(np.int64),
            "weight": np.ones(n, dtype=np.int64),
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    ref = eng["ts"].max()
    tables = {"accounts": acc, "engagements": eng, "targets": module.EMPTY_TARGETS}
    script = query("behaviour.sql", {"ref": ref, "young_hours": 24.0}, **tables)  # type: ignore[arg-type]
    ours = behavioural_features(acc, eng, reference_time=ref)  # type: ignore[arg-type]
    assert_frame_equal(ours, script, check_exact=True)
    for column in script.columns:
        if script[column].dtype == pl.Float64:  # to the bit: -0.0 is not 0.0
            np.testing.assert_array_equal(ours[column].to_numpy().view(np.int64), script[column].to_numpy().view(np.int64), column)
    assert script["beh_gap_median_s"].null_count() < script.height and (script["beh_n_actions"] == 1).any()


def test_a_replaced_step_must_be_in_the_script_and_a_failed_one_leaves_no_table(tiny_tables: dict[str, pl.DataFrame]) -> None:
    """query(replace=...): a name the script does not make is an error (the script and its DuckDB
    shortcut drifted apart), and tables made before a failure are dropped."""
    from pipeline.features.behaviour import EMPTY_TARGETS
    from pipeline.features.query import query

    con = feature_connection()
    con.register("accounts", tiny_tables["accounts"])
    con.register("engagements", tiny_tables["engagements"].with_columns(weight=pl.lit(1, pl.Int64)))
    con.register("targets", EMPTY_TARGETS)
    params = {"ref": tiny_tables["engagements"]["ts"].max(), "young_hours": 24.0}

    def failing(c: duckdb.DuckDBPyConnection) -> list[str]:
        c.execute("CREATE OR REPLACE TEMP TABLE beh_gaps AS SELECT 1 AS k")
        raise RuntimeError("interrupted")

    with pytest.raises(ValueError, match="no table beh_typo"):
        query("behaviour.sql", params, con=con, replace=(("beh_gaps", "beh_typo"), failing))
    with pytest.raises(RuntimeError, match="interrupted"):
        query("behaviour.sql", params, con=con, replace=(("beh_gaps",), failing))
    left = con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'beh_%'").fetchall()
    con.close()
    assert left == []


def test_lockstep_windows_must_be_positive_seconds() -> None:
    for windows in ([], [0], [3600, -1], [1.5]):
        with pytest.raises(ZombieScanError, match="windows_s"):
            LockstepParams.from_dict({"windows_s": windows})
    assert LockstepParams.from_dict({"windows_s": [60]}).windows_s == (60,)


def test_a_new_family_is_its_module_and_one_entry_in_the_list(
    tiny_tables: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/features.md#a-new-family: a Family and its place in FAMILIES; the builder, the model
    inputs, the ablations and the reasons of a score pick it up."""
    from pipeline.features import families
    from pipeline.features.family import Context, Family, share
    from pipeline.models.evaluate import comparison_variants
    from pipeline.models.train import feature_columns

    def compute(ctx: Context) -> pl.DataFrame:
        sql = (
            "SELECT a.account_id, coalesce(avg((e.kind = 'comment')::DOUBLE), 0) AS text_comment_share "
            "FROM accounts a LEFT JOIN engagements e ON e.actor_id = a.account_id GROUP BY 1"
        )
        return ctx.timed("text", lambda: ctx.con.sql(sql).pl())

    text = Family("text_", "text", compute, {"text_comment_share": lambda v: f"{share(v)} of its actions are comments"})
    before, _, _ = build_features(tiny_tables["accounts"], tiny_tables["engagements"], tiny_tables["targets"])
    monkeypatch.setattr(families, "FAMILIES", (*families.FAMILIES[:2], text, *families.FAMILIES[2:]))
    features, _, _ = build_features(tiny_tables["accounts"], tiny_tables["engagements"], tiny_tables["targets"])

    assert features.columns == [*before.columns[: before.columns.index("graph_in_degree")], "text_comment_share",
                                *before.columns[before.columns.index("graph_in_degree"):]]  # fmt: skip
    assert_frame_equal(features.drop("text_comment_share"), before)
    assert features["text_comment_share"].max() > 0  # type: ignore[operator]
    assert "text_comment_share" in feature_columns(features)
    names = [v.name for v in comparison_variants()]
    assert names[:5] == ["full", "profile", "profile+beh", "profile+beh+text", "profile+beh+text+graph"]
    assert families.describe("text_comment_share", 0.25) == "25% of its actions are comments"


def test_an_unknown_coengager_value_is_left_out_of_the_mean_not_counted_as_minus_1e18() -> None:
    """Three accounts like one target; the third's burstiness is unknown. Each account's co-engager
    mean is the mean of the two known values (a null once became -1e18 through greatest())."""
    accounts = pl.DataFrame({"account_id": ["a", "b", "c"]})
    engagements = pl.DataFrame(
        {"actor_id": ["a", "b", "c"], "target_id": ["t", "t", "t"], "kind": ["like"] * 3, "target_type": ["post"] * 3}
    )
    base = pl.DataFrame({"account_id": ["a", "b", "c"], "beh_burstiness": [0.5, 0.1, None], "profile_age_days": [10.0, 20.0, 30.0]})
    out = graph_features(accounts, engagements, base, neighbour_columns=())
    assert out["graph_coengager_beh_burstiness_mean"].to_list() == pytest.approx([0.3, 0.3, 0.3])
    assert out["graph_coengager_profile_age_days_mean"].to_list() == pytest.approx([20.0, 20.0, 20.0])
