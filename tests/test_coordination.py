"""The coordination network: exact edges on a hand-made world, the tiny simulated world against a
brute-force definition, the exports read back by networkx, and every refused input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import networkx as nx
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.coordination import CoordinationParams, coordination_network, parse_window, write_coordination
from pipeline.coordination import network as network_module
from pipeline.errors import ZombieScanError
from pipeline.ingest import ingest

T0 = datetime(2026, 5, 1, tzinfo=UTC)

# (account, target, seconds after T0). Within 60 s: a-b on p1 (10 s, a first), p2 (30 s, b first)
# and p3 (0 s, together); a-c on p2 (20 s) and p3 (40 s), a first; b-c on p2 (50 s) and p3 (40 s),
# b first; c-d on p1 (30 s) and p3 (60 s), c first. e engages p1 and p2 hours later: no edge.
HAND = [
    ("a", "p1", 0), ("b", "p1", 10), ("c", "p1", 100), ("d", "p1", 130), ("e", "p1", 5000),
    ("b", "p2", 1000), ("a", "p2", 1030), ("c", "p2", 1050), ("e", "p2", 5000),
    ("a", "p3", 2000), ("b", "p3", 2000), ("c", "p3", 2040), ("d", "p3", 2100),
]  # fmt: skip


def _warehouse(folder: Path, rows: list[tuple[str, str, int]], *, untimed: bool = False, farm: tuple[str, ...] = ()) -> Path:
    """A Parquet-folder warehouse holding `rows` as likes (all at T0 when `untimed`)."""
    folder.mkdir(parents=True)
    actors = sorted({r[0] for r in rows})
    pl.DataFrame({"account_id": actors, "created_at": [T0 - timedelta(days=30)] * len(actors)}).write_parquet(folder / "accounts.parquet")
    pl.DataFrame(
        {
            "actor_id": [r[0] for r in rows],
            "target_id": [r[1] for r in rows],
            "target_type": ["post"] * len(rows),
            "kind": ["like"] * len(rows),
            "ts": [T0 if untimed else T0 + timedelta(seconds=r[2]) for r in rows],
        }
    ).write_parquet(folder / "engagements.parquet")
    if farm:
        pl.DataFrame({"account_id": actors, "is_zombie": [False] * len(actors), "is_like_farm": [a in farm for a in actors]}).write_parquet(
            folder / "labels.parquet"
        )
    return folder


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    return _warehouse(tmp_path / "hand", HAND, farm=("a", "b"))


def _edges(result: network_module.CoordinationResult) -> dict[tuple[str, str], dict[str, object]]:
    return {(r["source"], r["target"]): r for r in result.edges.iter_rows(named=True)}


def test_hand_made_edges_gaps_and_leaders(hand: Path) -> None:
    result = coordination_network(hand, CoordinationParams(windows_s=(60,), min_repeats=2))
    edges = _edges(result)
    assert sorted(edges) == [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]
    expected = {  # shared, min gap, median gap, share of targets the source led (a tie counts half), first, last
        ("a", "b"): (3, 0, 10.0, 0.5, 0, 2000),
        ("a", "c"): (2, 20, 30.0, 1.0, 1030, 2040),
        ("b", "c"): (2, 40, 45.0, 1.0, 1000, 2040),
        ("c", "d"): (2, 30, 45.0, 1.0, 100, 2100),
    }
    for pair, (shared, gap, median, led, first, last) in expected.items():
        e = edges[pair]
        assert (e["shared_targets"], e["min_gap_s"], e["median_gap_s"], e["led_by_source_share"]) == (shared, gap, median, led)
        assert (e["first_ts"], e["last_ts"]) == (T0 + timedelta(seconds=first), T0 + timedelta(seconds=last))
        assert (e["window_s"], e["windows"]) == (60, [60])
    assert edges[("a", "b")]["targets"] == ["p1", "p2", "p3"]
    nodes = {r["account_id"]: r for r in result.nodes.iter_rows(named=True)}
    assert sorted(nodes) == ["a", "b", "c", "d"]
    assert [nodes[a]["degree"] for a in "abcd"] == [2, 2, 3, 1]
    assert nodes["c"]["engagements"] == 3
    group = result.groups.row(0, named=True)
    assert (group["members"], group["n_edges"], group["density"], group["n_targets"]) == (["a", "b", "c", "d"], 4, 4 / 6, 3)
    assert group["like_farm_share"] == 0.5
    flags = result.engagements.filter(~pl.col("coordinated"))
    assert flags["actor_id"].to_list() == ["e", "e"]  # every engagement but e's is one side of a kept edge's co-engagement
    assert result.report["labels"] == {"like_farm_accounts_engaged": 2, "like_farm_accounts_in_network": 2, "recall": 1.0}


def test_repeated_engagements_are_flagged_one_by_one(tmp_path: Path) -> None:
    """An account that engaged one target several times: only the engagements within the window
    of a partner's are coordinated (the others are tested against the partner's, not taken whole)."""
    rows = [*HAND, ("a", "p1", 4000), ("a", "p1", 9000), ("b", "p1", 4030)]
    result = coordination_network(_warehouse(tmp_path / "rep", rows), CoordinationParams(windows_s=(60,), min_repeats=2))
    rows_out = result.engagements.iter_rows(named=True)
    flags = {(r["actor_id"], r["target_id"], int((r["ts"] - T0).total_seconds())): r["coordinated"] for r in rows_out}
    assert [k for k, v in flags.items() if not v] == [("a", "p1", 9000), ("e", "p1", 5000), ("e", "p2", 5000)]
    assert flags[("a", "p1", 0)] and flags[("a", "p1", 4000)] and flags[("b", "p1", 4030)]


def test_lockstep_groups_computed_reused_or_left_out(tiny_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = CoordinationParams(windows_s=(3_600,), min_repeats=3)
    computed = coordination_network(tiny_db, params)
    assert main(["features", "--db", str(tiny_db), "--out", str(tmp_path / "features")]) == 0
    capsys.readouterr()
    reused = coordination_network(tiny_db, params, lockstep_groups=tmp_path / "features")
    assert reused.nodes.equals(computed.nodes) and reused.edges.equals(computed.edges)
    assert reused.report["lockstep"] == {**computed.report["lockstep"], "source": "featurize"}
    assert reused.nodes["lockstep_group"].drop_nulls().len() > 0
    left_out = coordination_network(tiny_db, params, lockstep_groups="none")
    assert "lockstep_group" not in left_out.nodes.columns and left_out.edges.equals(computed.edges)
    assert left_out.report["lockstep"] == {"source": "none", "groups": None, "skipped_cells": None}
    with pytest.raises(ZombieScanError, match=r"--lockstep-groups .*: cannot read .* as Parquet"):
        coordination_network(tiny_db, params, lockstep_groups=tmp_path)
    # the Spark engine writes lockstep_groups.parquet as a folder of parts: read as well
    parts = tmp_path / "spark" / "lockstep_groups.parquet"
    parts.mkdir(parents=True)
    pl.read_parquet(tmp_path / "features" / "lockstep_groups.parquet").write_parquet(parts / "part-00000.parquet")
    for given in (tmp_path / "spark", parts):
        assert coordination_network(tiny_db, params, lockstep_groups=given).nodes.equals(computed.nodes)


def test_the_project_params_file_is_read_as_the_stage_reads_it(hand: Path, tmp_path: Path) -> None:
    """--params params.yaml: the stage's own keys (out, report, formats) are not settings of a run."""
    out = tmp_path / "out"
    assert main(["coordination", "--db", str(hand), "--out", str(out), "--params", "params.yaml", "--min-repeats", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["windows_s"] == [60, 3600] and report["formats"] == ["graphml", "gexf", "csv"]


def test_min_repeats_and_edge_percentile(hand: Path) -> None:
    assert sorted(_edges(coordination_network(hand, CoordinationParams(windows_s=(60,), min_repeats=3)))) == [("a", "b")]
    # shares 3, 2, 2, 2: the 80th percentile (R type 7) is 2 + 0.4 x (3 - 2) = 2.4, so only a-b stays
    result = coordination_network(hand, CoordinationParams(windows_s=(60,), min_repeats=1, edge_percentile=80))
    assert sorted(_edges(result)) == [("a", "b")]
    assert result.report["per_window"][0]["percentile_threshold"] == pytest.approx(2.4)


def test_several_windows_mark_the_fastest(hand: Path) -> None:
    edges = _edges(coordination_network(hand, CoordinationParams(windows_s=(10, 60), min_repeats=2)))
    ab = edges[("a", "b")]  # within 10 s on p1 and p3 only: its 10 s attributes
    assert (ab["window_s"], ab["windows"], ab["shared_targets"]) == (10, [10, 60], 2)
    assert (ab["median_gap_s"], ab["led_by_source_share"]) == (5.0, 0.75)
    assert {pair: e["window_s"] for pair, e in edges.items() if pair != ("a", "b")} == {("a", "c"): 60, ("b", "c"): 60, ("c", "d"): 60}


@pytest.mark.parametrize(("quantile", "window"), [(0.1, 20), (0.25, 40)])
def test_auto_window_is_the_quantile_of_the_fastest_gaps(hand: Path, quantile: float, window: int) -> None:
    # The 22 fastest gaps per account pair and target (e's included), sorted:
    # 0 10 20 30 30 40 40 50 60 90 100 100 100 120 130 3950 3970 4000 4870 4900 4990 5000
    result = coordination_network(hand, CoordinationParams(windows_s=(), auto_window=True, auto_quantile=quantile, min_repeats=2))
    assert result.report["auto_window"] == {"quantile": quantile, "max_window_s": 86_400, "co_engagements": 22, "window_s": window}
    assert result.report["windows_s"] == [window]


def test_the_hub_cap_skips_and_counts_a_crowded_target(tmp_path: Path) -> None:
    hub = [(a, "hub", 3000 + i) for i, a in enumerate("abcde")]  # five likes in one minute
    db = _warehouse(tmp_path / "hub", HAND + hub)
    capped = coordination_network(db, CoordinationParams(windows_s=(60,), min_repeats=2, max_cell_actors=4))
    assert capped.report["hub_cap"] == {"max_cell_actors": 4, "capped_targets": 1, "capped_cells": 1, "capped_engagements": 5}
    assert _edges(capped)[("a", "b")]["shared_targets"] == 3
    full = coordination_network(db, CoordinationParams(windows_s=(60,), min_repeats=2))
    assert full.report["hub_cap"]["capped_targets"] == 0
    assert _edges(full)[("a", "b")]["shared_targets"] == 4


def test_untimed_warehouse_gives_the_untimed_network_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _warehouse(tmp_path / "untimed", HAND, untimed=True)
    assert main(["coordination", "--db", str(db), "--out", str(tmp_path / "out"), "--min-repeats", "2"]) == 0
    captured = capsys.readouterr()
    assert "untimed co-engagement network" in captured.err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["timed"] is False and "untimed" in report["note"]
    edges = pl.read_csv(tmp_path / "out" / "edges.csv")
    # a, b, c share p1, p2, p3; d shares p1 and p3 with each of them; e shares p1 and p2 with a, b, c
    assert edges.height == 9 and edges["min_gap_s"].null_count() == 9
    nx.read_gexf(tmp_path / "out" / "network.gexf")  # static: no time intervals


def test_exports_read_back_by_networkx(hand: Path, tmp_path: Path) -> None:
    result = coordination_network(hand, CoordinationParams(windows_s=(60,), min_repeats=2))
    write_coordination(tmp_path / "net", result)
    assert sorted(p.name for p in (tmp_path / "net").iterdir()) == [
        "edges.csv", "engagements.parquet", "groups.parquet", "network.gexf", "network.graphml", "nodes.csv", "report.json",
    ]  # fmt: skip
    graphml = nx.read_graphml(tmp_path / "net" / "network.graphml")
    gexf = nx.read_gexf(tmp_path / "net" / "network.gexf")
    assert gexf.graph["mode"] == "dynamic"
    for graph in (graphml, gexf):
        assert sorted(graph.nodes) == ["a", "b", "c", "d"] and graph.number_of_edges() == 4
        e = graph.edges["a", "b"]
        assert (e["shared_targets"], e["targets"], e["min_gap_s"], e["median_gap_s"]) == (3, "p1;p2;p3", 0, 10.0)
        assert (e["led_by_source_share"], e["window_s"], e["windows"]) == (0.5, 60, "60")
        assert (e["first_ts"], e["last_ts"]) == ("2026-05-01T00:00:00Z", "2026-05-01T00:33:20Z")
        node = graph.nodes["c"]
        assert (node["engagements"], node["degree"], node["coordination_group"]) == (3, 3, 0)
    edge = gexf.edges["c", "d"]
    assert (edge["start"], edge["end"]) == ("2026-05-01T00:01:40Z", "2026-05-01T00:35:00Z")
    assert (gexf.nodes["d"]["start"], gexf.nodes["d"]["end"]) == ("2026-05-01T00:02:10Z", "2026-05-01T00:35:00Z")
    nodes = pl.read_csv(tmp_path / "net" / "nodes.csv")
    assert nodes.columns[:3] == ["account_id", "engagements", "degree"]


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Path:
    db = tmp_path_factory.mktemp("coordination") / "wh"
    ingest(tiny_dir, db)
    return db


def _brute_force(tiny_tables: dict[str, pl.DataFrame], window: int, min_repeats: int) -> pl.DataFrame:
    """The edge definition written plainly: every pair of likes of one target within the window."""
    likes = (
        tiny_tables["engagements"]
        .filter(pl.col("kind") == "like")
        .select("actor_id", "target_id", pl.col("ts").dt.epoch("s").alias("t"))
        .unique()
    )
    pairs = likes.join(likes, on="target_id", suffix="_y").filter(
        (pl.col("actor_id") < pl.col("actor_id_y")) & ((pl.col("t") - pl.col("t_y")).abs() <= window)
    )
    per_target = pairs.group_by("actor_id", "actor_id_y", "target_id").agg(gap=(pl.col("t") - pl.col("t_y")).abs().min())
    return (
        per_target.group_by(pl.col("actor_id").alias("source"), pl.col("actor_id_y").alias("target"))
        .agg(shared_targets=pl.len(), min_gap_s=pl.col("gap").min())
        .filter(pl.col("shared_targets") >= min_repeats)
        .sort("source", "target")
    )


def test_tiny_world_matches_the_plain_definition_sliced_or_not(
    tiny_db: Path, tiny_tables: dict[str, pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    params = CoordinationParams(windows_s=(3_600,), min_repeats=3)
    whole = coordination_network(tiny_db, params)
    expected = _brute_force(tiny_tables, 3_600, 3)
    assert expected.height > 100
    assert whole.edges.select("source", "target", "shared_targets", "min_gap_s").equals(expected.cast({"shared_targets": pl.Int64}))
    monkeypatch.setattr(network_module, "PAIR_ROWS_PER_SLICE", 500)  # many slices of targets
    sliced = coordination_network(tiny_db, params)
    assert sliced.edges.equals(whole.edges) and sliced.engagements.equals(whole.engagements)
    # directional: like-farm accounts are far more common in the network than among all likers
    labels = tiny_tables["labels"].select("account_id", "is_like_farm")
    likers = tiny_tables["engagements"].filter(pl.col("kind") == "like").select(pl.col("actor_id").alias("account_id")).unique()
    base = likers.join(labels, on="account_id")["is_like_farm"].mean()
    in_network = whole.nodes.join(labels, on="account_id")["is_like_farm"].mean()
    assert in_network > 3 * base
    assert whole.nodes["lockstep_group"].drop_nulls().len() > 0


def test_same_input_same_bytes(tiny_db: Path, tmp_path: Path) -> None:
    for name in ("one", "two"):
        args = ["coordination", "--db", str(tiny_db), "--out", str(tmp_path / name), "--window", "60s,1h", "--window", "auto"]
        assert main(args) == 0
    for file in ("report.json", "edges.csv", "nodes.csv", "network.graphml", "network.gexf"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes(), file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "0"], "--window '0': a window must be longer than 0 seconds"),
        (["--window", "-5m"], "--window '-5m': a window must be longer than 0 seconds"),
        (["--window", "soon"], "--window 'soon': expected a window such as 60s"),
        (["--kinds", "like,poke"], "--kinds poke: unknown kind; expected some of like, follow"),
        (["--min-repeats", "0"], "--min-repeats 0: expected a whole number >= 1"),
        (["--edge-percentile", "100"], "--edge-percentile 100: expected a number in [0, 100)"),
        (["--format", "pajek"], "--format 'pajek': unknown format"),
        (["--max-edges", "2", "--min-repeats", "2", "--window", "60s"], "would have 4 edges, above --max-edges 2"),
        (["--max-pair-rows", "5", "--min-repeats", "2", "--window", "60s"], "would test 11 pairs of engagements"),
        (["--lockstep-groups", "nowhere"], "--lockstep-groups nowhere: no nowhere; give compute, none, or a folder"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    hand: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["coordination", "--db", str(hand), "--out", str(out), *args]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert message in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["hand"]


def test_an_existing_output_is_kept_without_overwrite(hand: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["coordination", "--db", str(hand), "--out", str(out), "--window", "60s", "--min-repeats", "3"]) == 0
    before = (out / "edges.csv").read_bytes()
    assert main(["coordination", "--db", str(hand), "--out", str(out), "--window", "60s", "--min-repeats", "2"]) == 1
    assert "exists; give --overwrite to replace it" in capsys.readouterr().err
    assert (out / "edges.csv").read_bytes() == before
    assert main(["coordination", "--db", str(hand), "--out", str(out), "--window", "60s", "--min-repeats", "2", "--overwrite"]) == 0
    assert pl.read_csv(out / "edges.csv").height == 4
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["coordination", "--db", str(hand), "--out", str(other), "--overwrite"]) == 1
    assert "did not write; refusing to replace it" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("text", "seconds"), [("60s", 60), ("15m", 900), ("1h", 3600), ("3d", 259_200), ("3600", 3600), (" 2H ", 7200)])
def test_parse_window(text: str, seconds: int) -> None:
    assert parse_window(text) == seconds


def test_scores_join_the_nodes_and_the_stage_links_them(hand: Path, tmp_path: Path, tiny_run: dict[str, object]) -> None:
    """--scores puts each node's p_zombie / p_like_farm on it; the stage scores the run's features itself."""
    scores = tmp_path / "scores.parquet"
    pl.DataFrame(
        {"account_id": ["a", "b", "c", "d", "e"], "p_zombie": [0.1, 0.2, 0.3, 0.4, 0.5], "p_like_farm": [0.9, 0.8, 0.7, 0.6, 0.5]}
    ).write_parquet(scores)
    result = coordination_network(hand, CoordinationParams(windows_s=(60,), min_repeats=2), scores)
    nodes = {r["account_id"]: r for r in result.nodes.iter_rows(named=True)}
    assert {a: (nodes[a]["p_zombie"], nodes[a]["p_like_farm"]) for a in nodes} == {
        a: p for a, p in {"a": (0.1, 0.9), "b": (0.2, 0.8), "c": (0.3, 0.7), "d": (0.4, 0.6)}.items() if a in nodes
    }
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ZombieScanError, match="--scores"):
        coordination_network(hand, CoordinationParams(windows_s=(60,)), tmp_path / "bad.parquet")
    root = Path(str(tiny_run["root"]))
    graph = nx.read_graphml(root / "coordination" / "network.graphml")
    assert graph.number_of_nodes() > 0
    assert all("p_like_farm" in d and "p_zombie" in d for _, d in graph.nodes(data=True))
    assert json.loads((root / "coordination.json").read_text())["edges"] == graph.number_of_edges()


def test_slices_shrink_with_the_memory_limit() -> None:
    """A smaller --memory-limit gives smaller slices of the pair steps (so DuckDB can hold each), never more than the default's."""
    from pipeline.features.query import feature_connection

    rows = {}
    for limit in ("5GB", "300MB", "1MB"):
        con = feature_connection(limit)
        rows[limit] = network_module._rows_per_slice(con)
        con.close()
    assert rows["5GB"] == network_module.PAIR_ROWS_PER_SLICE and rows["1MB"] == 100_000
    assert 1_000_000 < rows["300MB"] < 2_000_000  # ~286 MiB / 190 bytes
