"""The Spark engine finds the same lockstep groups and lock_ features as the DuckDB engine (P10).

Needs the `spark` extra (pyspark) and Java 17+; skipped without it, except in CI
(ZOMBIESCAN_REQUIRE_SPARK=1), as tests/test_spark.py.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from pipeline.features.lockstep import LockstepParams, LockstepResult
from pipeline.features.lockstep import lockstep as duckdb_lockstep
from pipeline.simulate import make_config, simulate
from tests.spark_compare import assert_same_features

if os.environ.get("ZOMBIESCAN_REQUIRE_SPARK") != "1":
    pytest.importorskip("pyspark", reason="the Spark engine needs the 'spark' extra (pip install -e '.[spark]')")


def _both(spark: Any, engagements: pl.DataFrame, params: LockstepParams) -> tuple[LockstepResult, Any, pl.DataFrame]:
    """DuckDB's result, Spark's result and Spark's features as a polars frame, on the same engagements."""
    from pipeline.spark.lockstep import lockstep

    spark.createDataFrame(engagements.to_arrow()).createOrReplaceTempView("engagements")
    on_spark = lockstep(spark, params)
    features = pl.from_arrow(on_spark.features.toArrow())
    assert isinstance(features, pl.DataFrame)
    return duckdb_lockstep(engagements, params), on_spark, features


def _jaccard(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / len(set(a) | set(b))


def assert_same_groups(duck: pl.DataFrame, on_spark: pl.DataFrame) -> None:
    """As many groups; each DuckDB group's best match on Spark shares >= 99% of its members (Jaccard),
    and a match with the same members has the same targets, span and numbers, at the same rank."""
    assert on_spark.schema == duck.schema
    assert on_spark.height == duck.height
    for group in duck.iter_rows(named=True):
        match = max(on_spark.iter_rows(named=True), key=lambda other: _jaccard(group["members"], other["members"]))
        assert _jaccard(group["members"], match["members"]) >= 0.99, f"group {group['group_id']}: no match on Spark"
        if match["members"] == group["members"]:
            assert match["group_id"] == group["group_id"]
            for column in ("size", "targets", "first_ts", "last_ts"):
                assert match[column] == group[column], column
            for column in ("density", "mean_common", "score"):
                assert match[column] == pytest.approx(group[column], rel=1e-9, abs=0), column


def test_lockstep_groups_and_features_equal_on_spark_and_duckdb(spark: Any, tiny_tables: dict[str, pl.DataFrame]) -> None:
    duck, on_spark, features = _both(spark, tiny_tables["engagements"], LockstepParams())
    assert duck.groups.height >= 4  # the tiny world holds 4 groups (11, 38, 3 and 3 accounts)
    assert on_spark.timed and on_spark.skipped_cells == duck.skipped_cells == 0
    assert_same_groups(duck.groups, on_spark.groups)
    assert_same_features(duck.features, features)


def test_the_hub_cap_skips_the_same_cells_on_both_engines(spark: Any) -> None:
    # a larger world, where a cap of 15 acts a cell skips 53 bursts and leaves 6 groups (3 to 33 accounts)
    engagements = simulate(make_config("tiny", seed=3, accounts=3_000))["engagements"]
    duck, on_spark, features = _both(spark, engagements, LockstepParams(max_cell_actors=15))
    assert on_spark.skipped_cells == duck.skipped_cells > 0
    assert duck.groups.height >= 4
    assert_same_groups(duck.groups, on_spark.groups)
    assert_same_features(duck.features, features)


def test_untimed_engagements_give_no_groups_and_null_features(
    spark: Any, tiny_tables: dict[str, pl.DataFrame], caplog: pytest.LogCaptureFixture
) -> None:
    engagements = tiny_tables["engagements"].with_columns(pl.col("ts").min())  # every action at one instant
    with caplog.at_level(logging.WARNING, logger="pipeline.spark.lockstep"):
        duck, on_spark, features = _both(spark, engagements, LockstepParams())
    assert "no time information" in caplog.text
    assert not on_spark.timed and on_spark.skipped_cells == 0
    assert on_spark.groups.is_empty() and on_spark.groups.schema == duck.groups.schema
    assert features.height == duck.features.height > 0
    assert features.drop("account_id").null_count().row(0) == (features.height,) * 5
    assert_same_features(duck.features, features)


def test_components_match_scipy_on_long_chains(spark: Any) -> None:
    """Large-star/small-star needs several rounds on paths with shuffled ids, and ends in the same partition."""
    from pipeline.spark.lockstep import _components

    rng = random.Random(5)
    ids = rng.sample(range(10_000), 300)
    edges = [(ids[i], ids[i + 1]) for i in range(199)]  # a 200-node path
    edges += [(ids[i], ids[i + 1]) for i in range(200, 259)] + [(ids[200], ids[259])]  # a 60-node ring
    edges += [(ids[260 + i], ids[260 + j]) for i in range(40) for j in range(i + 1, 40) if rng.random() < 0.1]  # a sparse random graph
    pairs = spark.createDataFrame([(min(e), max(e), 3) for e in edges], "u BIGINT, v BIGINT, common BIGINT")
    components, rounds = _components(pairs)
    got = pl.from_arrow(components.toArrow())
    assert isinstance(got, pl.DataFrame)
    nodes = np.unique(np.array(edges))
    index = {node: i for i, node in enumerate(nodes)}
    graph = sp.coo_matrix(
        (np.ones(len(edges)), ([index[u] for u, _ in edges], [index[v] for _, v in edges])), shape=(len(nodes), len(nodes))
    )
    _, expected = connected_components(graph, directed=False)
    assert sorted(got["a"]) == nodes.tolist()
    label = dict(zip(got["a"], got["component"], strict=True))
    size = dict(zip(got["a"], got["size"], strict=True))
    counts = np.bincount(expected)
    for node in nodes:
        members = nodes[expected == expected[index[node]]]
        assert label[node] == members.min()  # every node labelled by its component's smallest id
        assert size[node] == counts[expected[index[node]]]
    assert rounds > 2
