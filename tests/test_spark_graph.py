"""The Spark engine's graph_ features equal the DuckDB engine's (pipeline/spark/graph.py).

- On the tiny world, with the profile_ and beh_ columns as the base: every column to 1e-9
  relative, nulls in the same places (PageRank to the bound its stopping rule allows).
- On a hand-made follow graph: degrees, reciprocity, core numbers and clustering, exact, on both
  engines; a k-core that needs more passes than `max_iter` is refused, not returned unsettled.
- Co-engager means of values near zero, weighted: DuckDB's decimal arithmetic kept on Spark (its
  own decimal division would round them to 6 places); DOUBLE columns, as DuckDB's.

Needs the `spark` extra (pyspark) and Java 17+; skipped without it, except in CI
(ZOMBIESCAN_REQUIRE_SPARK=1), where a missing pyspark fails.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from pipeline.features.graph import COENGAGER_COLUMNS, NEIGHBOUR_COLUMNS
from pipeline.features.graph import graph_features as duckdb_graph_features
from tests.spark_compare import assert_same_features

if os.environ.get("ZOMBIESCAN_REQUIRE_SPARK") != "1":
    pytest.importorskip("pyspark", reason="the Spark engine needs the 'spark' extra (pip install -e '.[spark]')")

WEIGHTED = ("beh_n_actions", "beh_burstiness")  # as a dataset's run weights them


def _on_spark(spark: Any, accounts: pl.DataFrame, engagements: pl.DataFrame, base: pl.DataFrame | None, **settings: Any) -> pl.DataFrame:
    """Spark's graph_ features over the frames, shown to the session as the stage shows its tables."""
    from pipeline.spark.graph import graph_features

    if "weight" not in engagements.columns:
        engagements = engagements.with_columns(weight=pl.lit(1, pl.Int64))
    spark.createDataFrame(accounts.to_arrow()).createOrReplaceTempView("accounts")
    spark.createDataFrame(engagements.to_arrow()).createOrReplaceTempView("engagements")
    on_spark = base if base is None else spark.createDataFrame(base.to_arrow())
    out = pl.from_arrow(graph_features(spark, on_spark, **settings).toArrow())
    assert isinstance(out, pl.DataFrame)
    return out


def test_graph_features_equal_on_spark_and_duckdb(spark: Any, tiny_tables: dict[str, pl.DataFrame]) -> None:
    from pipeline.features.behaviour import behavioural_features
    from pipeline.features.profile import _with_optional_columns, profile_features

    accounts = _with_optional_columns(tiny_tables["accounts"])
    engagements = tiny_tables["engagements"].with_columns(weight=pl.lit(1, pl.Int64))
    reference = engagements["ts"].max()
    assert isinstance(reference, datetime)
    base = profile_features(accounts, reference_time=reference).join(
        behavioural_features(accounts, engagements, reference_time=reference, targets=tiny_tables["targets"]), on="account_id", how="left"
    )
    settings: dict[str, Any] = dict(neighbour_columns=NEIGHBOUR_COLUMNS, coengager_columns=COENGAGER_COLUMNS, coengager_weighted=WEIGHTED)
    duck = duckdb_graph_features(accounts, engagements, base, **settings)
    on_spark = _on_spark(spark, accounts, engagements, base, **settings)
    assert on_spark.schema == duck.schema
    # PageRank stops at the first pass that moves the ranks by less than tol = 1e-12 in all: if
    # the engines' last bits put that pass one apart, a rank moves by less than tol, which is
    # at most tol / ((1 - damping) / n) of the smallest rank. They agree to about 1e-14.
    pagerank_bound = 1e-12 / (0.15 / accounts.height)
    assert_same_features(duck, on_spark, tolerances={"graph_pagerank": pagerank_bound})


# a-b-c-d a 4-clique, a-e-f a triangle, g follows f, h only a self loop; duplicates, a follow
# of an unknown account, a like of an account and a follow of a post are not follow edges
FOLLOWS = [
    ("a", "b"), ("b", "a"), ("a", "c"), ("a", "d"), ("b", "c"), ("d", "b"), ("c", "d"), ("d", "c"),
    ("e", "a"), ("e", "a"), ("f", "a"), ("e", "f"), ("f", "e"), ("g", "f"), ("h", "h"), ("a", "zz"), ("zz", "b"),
]  # fmt: skip
HAND_ACCOUNTS = pl.DataFrame({"account_id": list("abcdefgh")})
HAND_ENGAGEMENTS = pl.DataFrame(
    {
        "actor_id": [s for s, _ in FOLLOWS] + ["g", "h"],
        "target_id": [d for _, d in FOLLOWS] + ["a", "p1"],
        "kind": ["follow"] * len(FOLLOWS) + ["like", "follow"],
        "target_type": ["account"] * len(FOLLOWS) + ["account", "post"],
        "weight": [1] * (len(FOLLOWS) + 2),
    }
)


@pytest.fixture(scope="module")
def hand_made(spark: Any) -> dict[str, pl.DataFrame]:
    """The hand-made graph's features on both engines (no base: the structural columns only)."""
    return {
        "duckdb": duckdb_graph_features(HAND_ACCOUNTS, HAND_ENGAGEMENTS, None),
        "spark": _on_spark(spark, HAND_ACCOUNTS, HAND_ENGAGEMENTS, None),
    }


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
@pytest.mark.parametrize(
    ("account", "in_degree", "out_degree", "reciprocity", "core", "clustering"),
    [
        ("a", 3, 3, 1 / 3, 3, 4 / 5 / 4 * 2),  # neighbours b c d e f: 4 of their 10 pairs follow
        ("b", 2, 2, 1 / 2, 3, 1.0),
        ("c", 3, 1, 1.0, 3, 1.0),
        ("d", 2, 2, 1 / 2, 3, 1.0),
        ("e", 1, 2, 1 / 2, 2, 1.0),
        ("f", 2, 2, 1 / 2, 2, 1 / 3 / 2 * 2),  # a, e, g: only a-e
        ("g", 0, 1, 0.0, 1, 0.0),
        ("h", 0, 0, None, 0, 0.0),  # no follows: reciprocity unknown
    ],
)
def test_structure_of_a_hand_made_graph(
    hand_made: dict[str, pl.DataFrame],
    engine: str,
    account: str,
    in_degree: int,
    out_degree: int,
    reciprocity: float | None,
    core: int,
    clustering: float,
) -> None:
    row = hand_made[engine].filter(pl.col("account_id") == account).fill_nan(None).row(0, named=True)
    assert (row["graph_in_degree"], row["graph_out_degree"]) == (in_degree, out_degree)
    assert row["graph_reciprocity"] == reciprocity
    assert row["graph_core"] == core
    assert row["graph_clustering"] == clustering


def test_hand_made_graph_equal_on_both_engines(hand_made: dict[str, pl.DataFrame]) -> None:
    assert_same_features(hand_made["duckdb"], hand_made["spark"])


def test_a_k_core_past_max_iter_is_refused(spark: Any) -> None:
    from pipeline.errors import ZombieScanError

    with pytest.raises(ZombieScanError, match="max_iter=1"):
        _on_spark(spark, HAND_ACCOUNTS, HAND_ENGAGEMENTS, None, max_iter=1)  # a's degree 5 needs two passes down to 3


def test_co_engager_means_near_zero_keep_duckdbs_arithmetic(spark: Any) -> None:
    """Values of a few 1e-8, weighted: Spark's own decimal division rounds to 6 places here (and its
    decimal average to 16), where DuckDB's is a DOUBLE from the exact sum; and DOUBLE columns out."""
    accounts = pl.DataFrame({"account_id": ["a", "b", "c", "d"], "created_at": [datetime(2026, 1, 1, tzinfo=UTC)] * 4})
    engagements = pl.DataFrame(
        {
            "actor_id": ["a", "b", "c", "a", "c", "d", "d"],
            "target_id": ["p1", "p1", "p1", "p2", "p2", "p2", "p3"],
            "kind": "like",
            "target_type": "post",
            "weight": [1, 3, 2, 5, 1, 2, 7],
        }
    )
    base = pl.DataFrame({"account_id": ["a", "b", "c", "d"], "v": [1e-8, 2.5e-8, 4e-8, 3.7e-9]})
    settings: dict[str, Any] = {"neighbour_columns": ("v",), "coengager_columns": ("v",), "coengager_weighted": ("v",)}
    duck = duckdb_graph_features(accounts, engagements, base, **settings)
    on_spark = _on_spark(spark, accounts, engagements, base, **settings)
    wmean = duck["graph_coengager_v_wmean"].to_numpy()
    assert 0 < wmean.min() < wmean.max() < 1e-7  # the case is live
    assert on_spark.schema == duck.schema
    assert_same_features(duck, on_spark)
