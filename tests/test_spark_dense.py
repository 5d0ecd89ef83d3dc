"""The dense-block score on Spark equals the numpy engine's exactly: same passes, same scores, same flags.

Needs the `spark` extra (pyspark) and Java 17+, as tests/test_spark.py.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.features.lockstep import dense_block_scores_sql
from pipeline.features.query import feature_connection
from tests.test_features import _planted_block

if os.environ.get("ZOMBIESCAN_REQUIRE_SPARK") != "1":
    pytest.importorskip("pyspark", reason="the Spark engine needs the 'spark' extra (pip install -e '.[spark]')")


World = Callable[[dict[str, pl.DataFrame]], pl.DataFrame]  # engagements, given the tiny world's tables


def _ties(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Many equal degrees: two identical 6 x 6 blocks, a 12 x 3 block, a 40-link chain, a star;
    unit weights, null weights in the star (they count 1) and follows (left out)."""
    rows: list[tuple[str, str, str, int | None]] = []
    rows += [(f"{b}a{i}", f"{b}t{j}", "like", 1) for b in ("x", "y") for i in range(6) for j in range(6)]
    rows += [(f"za{i}", f"zt{j}", "like", 1) for i in range(12) for j in range(3)]
    rows += [(f"ca{i}", f"ct{i + d}", "like", 1) for i in range(40) for d in (0, 1)]
    rows += [(f"sa{i}", "hub", "like", None) for i in range(8)]
    rows += [(f"xa{i}", f"yt{i}", "follow", 5) for i in range(6)]
    return pl.DataFrame(rows, schema={"actor_id": pl.String, "target_id": pl.String, "kind": pl.String, "weight": pl.Int64}, orient="row")


def _planted(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return _planted_block().with_columns(kind=pl.lit("like"), weight=pl.lit(1, pl.Int64))


def _tiny_likes(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    likes = tables["engagements"].filter(pl.col("kind").cast(pl.String) == "like")
    return likes.select("actor_id", "target_id", kind=pl.lit("like"), weight=pl.lit(2, pl.Int64))


@pytest.mark.parametrize("world", [_ties, _planted, _tiny_likes], ids=["ties", "planted block", "tiny world likes"])
def test_dense_block_scores_equal_on_spark_and_numpy(
    spark: Any, tiny_tables: dict[str, pl.DataFrame], world: World, caplog: pytest.LogCaptureFixture
) -> None:
    from pipeline.spark.dense import dense_block_scores

    engagements = world(tiny_tables)
    caplog.set_level(logging.DEBUG, logger="pipeline")
    con = feature_connection()
    con.register("engagements", engagements)
    on_numpy = dense_block_scores_sql(con, "engagements", kinds=["like"]).sort("account_id")
    kept_before = _kept(spark)
    result = dense_block_scores(spark, spark.createDataFrame(engagements.to_arrow()), kinds=["like"])
    assert _kept(spark) <= kept_before + 1  # the result; every pass's tables were dropped
    on_spark = pl.from_arrow(result.toArrow())
    assert isinstance(on_spark, pl.DataFrame)
    # exactly: a node one quantum off would be peeled a pass later, at a level 10% away
    assert_frame_equal(on_spark.sort("account_id"), on_numpy, check_exact=True)
    passes = re.findall(r"peeled in (\d+) passes", caplog.text)
    assert len(passes) == 2 and passes[0] == passes[1], passes


def _kept(spark: Any) -> int:
    """How many RDDs keep data on the session's executors (cached or local checkpoints)."""
    return sum(1 for info in spark.sparkContext._jsc.sc().getRDDStorageInfo() if info.numCachedPartitions())


def test_no_engagements_of_the_kinds_give_no_rows(spark: Any) -> None:
    from pipeline.spark.dense import dense_block_scores

    on_spark = dense_block_scores(spark, spark.createDataFrame(_ties({}).to_arrow()), kinds=["share"])
    assert on_spark.count() == 0
    assert on_spark.columns == ["account_id", "lock_dense_block_score", "lock_in_densest_block"]
