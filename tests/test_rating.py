"""rate_ features (pipeline/features/rating.py, pipeline/spark/rating.py): ratings given and received, REV2.

- A hand-made rating network of six accounts with exact values, worked out in the comments.
- A four-node network whose REV2 fixed point is solved by hand, with and without the cold-start priors.
- The family exists only where engagements carry values: the simulator's worlds keep their features.
- The same input gives the same bytes; the Spark engine gives the same values (the REV2 sums are
  exact integers on both engines, so the same passes and, here, the same bits).

The Spark tests need the `spark` extra (pyspark) and Java 17+; the `spark` fixture skips them
without it, except in CI (ZOMBIESCAN_REQUIRE_SPARK=1), where a missing pyspark fails.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.features import families
from pipeline.features.build import build_features
from pipeline.features.rating import REV2_COLUMNS, Rev2Params, rating_features, rating_table, rev2
from tests.spark_compare import assert_same_features

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REF = T0 + timedelta(hours=16)

# rater, ratee, target_type, value, hours after T0. Values on a -10..10 scale (the data's own
# ends: -10 and 10 are "extreme"). e only receives, f only gives (and rates a post, p1).
RATINGS = [
    ("a", "b", "account", 10, 0),
    ("b", "a", "account", 8, 1),
    ("a", "c", "account", -5, 2),
    ("c", "a", "account", -10, 4),
    ("d", "a", "account", 10, 5),
    ("d", "b", "account", 5, 6),
    ("d", "e", "account", -10, 10),
    ("f", "e", "account", 10, 11),
    ("f", "b", "account", 10, 12),
    ("f", "c", "account", 4, 13),
    ("f", "p1", "post", 2, 14),
    ("b", "d", "account", -4, 16),
]
# not ratings: a like without a value; a rating after the reference time (16 h)
OTHER = [("a", "p1", "post", "like", None, 3), ("e", "a", "account", "rate", 10.0, 20)]
HAND_ACCOUNTS = pl.DataFrame({"account_id": list("abcdef"), "created_at": [T0 - timedelta(days=1)] * 6})
HAND_ENGAGEMENTS = pl.DataFrame(
    {
        "actor_id": [r[0] for r in RATINGS] + [o[0] for o in OTHER],
        "target_id": [r[1] for r in RATINGS] + [o[1] for o in OTHER],
        "target_type": [r[2] for r in RATINGS] + [o[2] for o in OTHER],
        "kind": ["rate"] * len(RATINGS) + [o[3] for o in OTHER],
        "ts": [T0 + timedelta(hours=r[4]) for r in RATINGS] + [T0 + timedelta(hours=o[5]) for o in OTHER],
        "value": [float(r[3]) for r in RATINGS] + [o[4] for o in OTHER],
    }
)
H = 1 / 24  # an hour in days

# Consensus (mean rating each target receives): a {8, -10, 10} 8/3; b {10, 5, 10} 25/3;
# c {-5, 4} -1/2; d {-4} -4; e {-10, 10} 0; p1 {2} 2.
# Given side: n, mean, std (population), negative share, extreme share, span days, burstiness.
GIVEN = {
    "a": (2, 2.5, 7.5, 1 / 2, 1 / 2, 2 * H, -1.0),  # 10, -5 at 0 h, 2 h; one gap: sigma 0, (0 - mu) / (0 + mu) = -1
    "b": (2, 2.0, 6.0, 1 / 2, 0.0, 15 * H, -1.0),  # 8, -4 at 1 h, 16 h
    "c": (1, -10.0, 0.0, 1.0, 1.0, 0.0, None),  # -10: no gap, no burstiness
    # 10, 5, -10 at 5, 6, 10 h: squares of (25/3, 10/3, -35/3) sum to 1950/9, / 3 = 650/9;
    # gaps 1 h, 4 h: mu 9000 s, sigma 5400 s, burstiness -3600 / 14400
    "d": (3, 5 / 3, 650**0.5 / 3, 1 / 3, 2 / 3, 5 * H, -0.25),
    "e": (0, None, None, None, None, None, None),
    # 10, 10, 4, 2 at 11..14 h: squares of (3.5, 3.5, -2.5, -4.5) sum to 51, / 4 = 12.75; equal gaps
    "f": (4, 6.5, 12.75**0.5, 0.0, 1 / 2, 3 * H, -1.0),
}
# Received side (ratings of the account as a target), the same columns.
RECEIVED = {
    # 8, -10, 10 at 1, 4, 5 h: squares of (16/3, -38/3, 22/3) sum to 2184/9, / 3 = 728/9;
    # gaps 3 h, 1 h: mu 7200 s, sigma 3600 s, burstiness -1/3
    "a": (3, 8 / 3, 728**0.5 / 3, 1 / 3, 2 / 3, 4 * H, -1 / 3),
    "b": (3, 25 / 3, 50**0.5 / 3, 0.0, 2 / 3, 12 * H, -1.0),  # 10, 5, 10 at 0, 6, 12 h: squares (5/3, -10/3, 5/3) -> 150/9 / 3
    "c": (2, -0.5, 4.5, 1 / 2, 0.0, 11 * H, -1.0),  # -5, 4 at 2, 13 h
    "d": (1, -4.0, 0.0, 1.0, 0.0, 0.0, None),
    "e": (2, 0.0, 10.0, 1 / 2, 1.0, 1 * H, -1.0),  # -10, 10 at 10, 11 h (a's 10 at 20 h is after the reference time)
    "f": (0, None, None, None, None, None, None),
}
# reciprocity (share of rated accounts that rated back), gap (mean |u->v - v->u| over reciprocal
# pairs), deviation and absolute deviation (mean of value - the target's consensus)
OTHERS = {
    "a": (1.0, 3.5, -17 / 12, 37 / 12),  # b and c rate a back: |10 - 8|, |-5 - -10|; 10 - 25/3 = 5/3, -5 - -1/2 = -9/2
    "b": (1.0, 5.5, 8 / 3, 8 / 3),  # a and d rate b back: |8 - 10|, |-4 - 5|; 8 - 8/3 = 16/3, -4 - -4 = 0
    "c": (1.0, 5.0, -38 / 3, 38 / 3),  # -10 - 8/3
    "d": (1 / 3, 9.0, -2.0, 62 / 9),  # of a, b, e only b rates d back: |5 - -4|; 10 - 8/3, 5 - 25/3, -10 - 0 = 22/3, -10/3, -10
    "e": (None, None, None, None),  # rated nothing
    "f": (0.0, None, 97 / 24, 97 / 24),  # e, b, c (p1 is a post) never rate f; 10 - 0, 10 - 25/3, 4 + 1/2, 2 - 2 sum to 97/6
}
SIDE = ("n", "mean", "std", "negative_share", "extreme_share", "span_days", "burstiness")


def _approx(expected: float | None) -> Any:
    return None if expected is None else pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.fixture(scope="module")
def hand_duckdb() -> pl.DataFrame:
    return rating_features(HAND_ACCOUNTS, HAND_ENGAGEMENTS, reference_time=REF)


@pytest.mark.parametrize("account", list("abcdef"))
def test_statistics_of_a_hand_made_rating_network(hand_duckdb: pl.DataFrame, account: str) -> None:
    row = hand_duckdb.filter(pl.col("account_id") == account).row(0, named=True)
    assert {c: row[f"rate_given_{c}"] for c in SIDE} == {c: _approx(v) for c, v in zip(SIDE, GIVEN[account], strict=True)}
    assert {c: row[f"rate_received_{c}"] for c in SIDE} == {c: _approx(v) for c, v in zip(SIDE, RECEIVED[account], strict=True)}
    others = ("rate_reciprocity", "rate_reciprocal_gap", "rate_deviation", "rate_abs_deviation")
    assert {c: row[c] for c in others} == {c: _approx(v) for c, v in zip(others, OTHERS[account], strict=True)}
    # REV2: a value for every rater and every rated account, null (unknown) for the others
    assert (row["rate_fairness"] is None) == (account == "e") == (row["rate_rev2_score"] is None)
    assert (row["rate_goodness"] is None) == (account == "f") == (row["rate_received_reliability"] is None)
    if row["rate_fairness"] is not None:
        assert row["rate_rev2_score"] == 1.0 - row["rate_fairness"]


# Four nodes: u1 and u2 rate p 10, u3 rates it -10 (scores 1, 1, -1). By symmetry F(u1) = F(u2) and
# R = (F + D) / 2 with D = 1 - |s - G| / 2, so D1 = (1 + G) / 2 and D3 = (1 - G) / 2.
# Without priors (alpha1 = beta1 = 0): F = R, so F = D; G = (2 F1 - F3) / 3 = 1/6 + G/2 gives
# G = 1/3, F1 = 2/3, F3 = 1/3.
# With one pseudo-rating each (the defaults): mu_g = G (one target), so G = sum(R s) / 3 again; F =
# (mu_f + R) / 2 and R = (F + D) / 2 give F = (2 mu_f + D) / 3, hence mu_f = mean D = 1/2 + G/6,
# R1 = 1/2 + 7G/18, R3 = 1/2 - 5G/18 and G = (2 R1 - R3) / 3 = 1/6 + 19G/54: G = 9/35,
# F1 = 20/35 = 4/7, F3 = 17/35, R1 = 3/5, R3 = 3/7.
@pytest.mark.parametrize(
    ("params", "fairness", "goodness", "reliability", "passes"),
    [
        (Rev2Params(), (4 / 7, 4 / 7, 17 / 35), 9 / 35, (3 / 5, 3 / 5, 3 / 7), 81),
        (Rev2Params(alpha1=0.0, beta1=0.0), (2 / 3, 2 / 3, 1 / 3), 1 / 3, (2 / 3, 2 / 3, 1 / 3), 33),
    ],
    ids=["defaults", "no-priors"],
)
def test_rev2_reaches_the_fixed_point_solved_by_hand(
    params: Rev2Params, fairness: tuple[float, ...], goodness: float, reliability: tuple[float, ...], passes: int
) -> None:
    result = rev2(np.array([0, 1, 2]), np.array([0, 0, 0]), np.array([10.0, 10.0, -10.0]), 3, 1, params)
    assert result.converged and result.passes == passes
    np.testing.assert_allclose(result.fairness, fairness, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.goodness, [goodness], rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.reliability, reliability, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.given_reliability, reliability, rtol=0, atol=1e-9)  # one rating each
    np.testing.assert_allclose(result.received_reliability, [sum(reliability) / 3], rtol=0, atol=1e-9)


def test_the_dissenting_rater_scores_as_more_suspicious() -> None:
    """Three accounts rate p; the one against the consensus gets the higher rev2 score, and p, the
    rated account, has a goodness but no fairness."""
    accounts = pl.DataFrame({"account_id": ["p", "u1", "u2", "u3"], "created_at": [T0] * 4})
    engagements = pl.DataFrame(
        {
            "actor_id": ["u1", "u2", "u3"],
            "target_id": ["p"] * 3,
            "target_type": ["account"] * 3,
            "kind": ["rate"] * 3,
            "ts": [T0 + timedelta(hours=h) for h in (1, 2, 3)],
            "value": [10.0, 10.0, -10.0],
        }
    )
    out = rating_features(accounts, engagements, reference_time=REF).sort("account_id")
    near = [pytest.approx(v, rel=0, abs=1e-9) for v in (3 / 7, 3 / 7, 18 / 35, 9 / 35)]  # the fixed point above
    assert out["rate_rev2_score"].to_list() == [None, *near[:3]]
    assert out["rate_goodness"].to_list() == [near[3], None, None, None]


def test_rev2_ignores_codes_without_ratings() -> None:
    """A rater or target code without ratings takes no part (null), and does not move the means."""
    dense = rev2(np.array([0, 1, 2]), np.array([0, 0, 0]), np.array([10.0, 10.0, -10.0]), 3, 1)
    gaps = rev2(np.array([0, 2, 3]), np.array([1, 1, 1]), np.array([10.0, 10.0, -10.0]), 4, 2)
    assert np.isnan(gaps.fairness[1]) and np.isnan(gaps.goodness[0])
    np.testing.assert_array_equal(gaps.fairness[[0, 2, 3]], dense.fairness)
    np.testing.assert_array_equal(gaps.goodness[[1]], dense.goodness)


def _with_values(tables: dict[str, pl.DataFrame], seed: int = 5) -> pl.DataFrame:
    """The world's engagements, its follows carrying a trust rating (-10..10) and its comments a
    star rating (1..5): ratings of accounts and of posts, on two scales."""
    e = tables["engagements"]
    rng = np.random.default_rng(seed)
    trust = pl.Series(rng.integers(-10, 11, e.height).astype(np.float64))
    stars = pl.Series(rng.integers(1, 6, e.height).astype(np.float64))
    return e.with_columns(
        value=pl.when(pl.col("kind") == "follow").then(trust).when(pl.col("kind") == "comment").then(stars).otherwise(None)
    )


def test_the_family_exists_only_where_engagements_carry_values(tiny_tables: dict[str, pl.DataFrame]) -> None:
    """The simulator's worlds have no values: no rate_ column, every feature as before (the shipped
    models and numbers stay). With values: the rate_ columns sit after beh_, nothing else moves."""
    t = tiny_tables
    without, _, _ = build_features(t["accounts"], t["engagements"], t["targets"])
    assert not [c for c in without.columns if c.startswith("rate_")]
    with_values, _, _ = build_features(t["accounts"], _with_values(t), t["targets"])
    rate = [c for c in with_values.columns if c.startswith("rate_")]
    assert rate == hand_columns()
    first = with_values.columns.index(rate[0])
    assert with_values.columns[first - 1].startswith("beh_") and with_values.columns[first + len(rate)].startswith("graph_")
    assert_frame_equal(with_values.drop(rate), without)
    assert with_values["rate_fairness"].null_count() < with_values.height
    # the ablations and the families of a world without values are those of before
    assert "rate_" not in [f.prefix for f in families.supported(engagements=True, values=False, raw=False)]
    assert not [name for name, _, _ in families.ablations() if "rate" in name]


def hand_columns() -> list[str]:
    return [c for c in rating_features(HAND_ACCOUNTS, HAND_ENGAGEMENTS, reference_time=REF).columns if c != "account_id"]


def test_rate_columns_have_wordings() -> None:
    for column in hand_columns():
        assert families.family_of(column) is not None and column in families.family_of(column).describe  # type: ignore[union-attr]
    assert families.describe("rate_reciprocity", 0.25) == "25% of the accounts it rated rated it back"


def _random_ratings(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """n ratings among n // 15 accounts: heavy-tailed targets, a fifth of them posts."""
    rng = np.random.default_rng(seed)
    k = n // 15

    def ids(prefix: pl.Expr, numbers: np.ndarray) -> pl.Expr:
        return pl.concat_str(prefix, pl.lit(pl.Series(numbers)).cast(pl.String).str.zfill(6))

    accounts = pl.select(account_id=ids(pl.lit("u"), np.arange(k)), created_at=pl.lit(T0))
    post = rng.random(n) < 0.2
    engagements = pl.select(
        actor_id=ids(pl.lit("u"), rng.integers(0, k, n)),
        target_id=ids(pl.when(pl.lit(pl.Series(post))).then(pl.lit("p")).otherwise(pl.lit("u")), rng.zipf(1.6, n) % k),
        target_type=pl.Series(np.where(post, "post", "account")),
        kind=pl.lit("rate"),
        ts=pl.lit(T0) + pl.duration(seconds=pl.Series(rng.integers(0, 86_400 * 30, n))),
        value=pl.Series(rng.normal(0.0, 3.0, n).round(3)),
    )
    return accounts, engagements


def test_the_same_ratings_give_the_same_bytes() -> None:
    """1.5M ratings: DuckDB aggregates them on several threads, in an order that varies from run to
    run (a plain avg() of these values per target differed in its last bits in each of 6 runs);
    the sorted-list means and the exact REV2 sums keep the bytes the same."""
    accounts, engagements = _random_ratings(1_500_000, seed=2)
    outputs = []
    for _ in range(2):
        buffer = io.BytesIO()
        rating_features(accounts, engagements, reference_time=T0 + timedelta(days=31)).write_parquet(buffer)
        outputs.append(buffer.getvalue())
    assert outputs[0] == outputs[1]


# --- Spark --------------------------------------------------------------------------------------


def _spark_rating(spark: Any, accounts: pl.DataFrame, engagements: pl.DataFrame, reference: datetime) -> tuple[pl.DataFrame, int]:
    """Spark's rate_ features over the frames, shown to the session as the stage shows its views."""
    from pipeline.spark.rating import rating_features as spark_rating_features

    created = pl.col("created_at")
    spark.createDataFrame(accounts.filter(created.is_null() | (created <= reference)).to_arrow()).createOrReplaceTempView("accounts")
    columns = ("actor_id", "target_id", "target_type", "kind", "ts", "value")
    spark.createDataFrame(engagements.select(columns).to_arrow()).createOrReplaceTempView("engagements")
    frame, run = spark_rating_features(spark, reference)
    assert run.converged
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out, run.passes


def _duckdb_rating(accounts: pl.DataFrame, engagements: pl.DataFrame, reference: datetime) -> tuple[pl.DataFrame, int]:
    from pipeline.features.query import feature_connection

    con = feature_connection()
    try:
        con.register("accounts", accounts.select("account_id", "created_at").filter(pl.col("created_at") <= reference))
        con.register("engagements", engagements.select("actor_id", "target_id", "target_type", "kind", "ts", "value"))
        out, result = rating_table(con, reference, Rev2Params())
    finally:
        con.close()
    assert result.converged
    return out, result.passes


@pytest.mark.parametrize("world", ["hand-made", "tiny-with-values"])
def test_rate_features_equal_on_spark_and_duckdb(spark: Any, tiny_tables: dict[str, pl.DataFrame], world: str) -> None:
    """Every column, type and null; the same REV2 passes. The sums are exact on both engines and
    every other step the same IEEE operation in the same order: the values are equal, bit for bit."""
    if world == "hand-made":
        accounts, engagements, reference = HAND_ACCOUNTS, HAND_ENGAGEMENTS, REF
    else:
        accounts, engagements = tiny_tables["accounts"], _with_values(tiny_tables)
        reference = engagements["ts"].max()
        assert isinstance(reference, datetime)
    duck, duck_passes = _duckdb_rating(accounts, engagements, reference)
    on_spark, spark_passes = _spark_rating(spark, accounts, engagements, reference)
    assert on_spark.schema == duck.schema
    assert_same_features(duck, on_spark, rtol=0)
    assert spark_passes == duck_passes
    assert on_spark.select(REV2_COLUMNS).null_count().row(0) != (on_spark.height,) * len(REV2_COLUMNS)


def test_spark_engine_computes_the_family_only_with_values(spark: Any, tmp_path: Path) -> None:
    """`zombiescan features --engine spark` on the hand-made network: the rate_ family with the
    others, equal to the DuckDB engine's; without values, no rate_ column on either engine."""
    from pipeline.spark.job import features_job
    from pipeline.spark.read import Inputs

    targets = pl.DataFrame(schema={"target_id": pl.String, "target_type": pl.String, "created_at": pl.Datetime("us", "UTC")})
    for name, engagements in (("values", HAND_ENGAGEMENTS), ("none", HAND_ENGAGEMENTS.drop("value"))):
        folder = tmp_path / name
        folder.mkdir()
        HAND_ACCOUNTS.write_parquet(folder / "accounts.parquet")
        engagements.write_parquet(folder / "engagements.parquet")
        targets.write_parquet(folder / "targets.parquet")
        inputs = Inputs(*(str(folder / f"{t}.parquet") for t in ("accounts", "engagements", "targets")))
        features_job(inputs, str(tmp_path / f"{name}-out"), reference_time=REF)
        on_spark = pl.read_parquet(sorted((tmp_path / f"{name}-out" / "features.parquet").glob("*.parquet")))
        duck, _, _ = build_features(HAND_ACCOUNTS, engagements, targets, reference_time=REF)
        assert on_spark.columns == duck.columns
        assert bool([c for c in duck.columns if c.startswith("rate_")]) == (name == "values")
        assert_same_features(duck, on_spark, tolerances={"graph_pagerank": 1e-4})
