"""The dense-block score (lock_dense_block_score, lock_in_densest_block) on Spark.

The definition is `pipeline.features.lockstep.peel_dense_blocks`: the same integer edge values
(`DENSE_SCALE`, `fraudar_logs`), the same passes, the same level schedule (`PeelSchedule`, run
here on the driver), so the scores equal the numpy engine's exactly. What differs is only how a
pass runs: as DataFrame jobs, with the edges and degrees distributed. The driver receives per
pass only scalars (the remaining row degree sum, node counts, smallest and largest degree) and,
once, the distinct target degrees (at most ~sqrt(2 x edges) numbers) to take their logarithms.

A pass is two anti joins that drop the edges of the removed nodes (Spark's adaptive execution
broadcasts the removed nodes once they are few), two aggregations that sum the remaining nodes'
degrees again from the remaining edges, and one aggregation of scalars for the driver. The
passes get cheaper as the graph shrinks; each pass's tables are cut from their lineage and the
last pass's dropped, so neither the plans nor the kept data grow with the passes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.features.lockstep import DENSE_SCALE, PeelSchedule, fraudar_logs
from pipeline.spark.checkpoint import cut, release

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

RESULT_SCHEMA = "account_id string, lock_dense_block_score double, lock_in_densest_block boolean"


def dense_block_scores(
    spark: SparkSession, engagements: DataFrame, *, kinds: Sequence[str] | None = None, c: float = 5.0, epsilon: float = 0.1
) -> DataFrame:
    """`pipeline.features.lockstep.dense_block_scores` of `engagements` (contract columns
    actor_id, target_id, optionally kind and weight; only the engagements of `kinds`, when given).

    Returns one row per actor, in no particular order: account_id, lock_dense_block_score,
    lock_in_densest_block, computed and kept (a local checkpoint) before it is returned.
    """
    from pyspark.sql import functions as F

    if kinds is not None:
        engagements = engagements.filter(F.col("kind").cast("string").isin(list(kinds)))
    weight = F.coalesce(F.col("weight"), F.lit(1)) if "weight" in engagements.columns else F.lit(1)
    pairs = cut(engagements.groupBy("actor_id", "target_id").agg(F.sum(weight).cast("double").alias("w")))
    target_degree = pairs.groupBy("target_id").agg(F.count(F.lit(1)).alias("n"))
    degrees = sorted(row["n"] for row in target_degree.select("n").distinct().collect())
    if not degrees:
        release(pairs)
        return spark.createDataFrame([], RESULT_SCHEMA)
    logs = spark.createDataFrame(list(zip(degrees, fraudar_logs(degrees, c), strict=True)), "n long, log double")
    value = F.rint(F.col("w") / F.col("log") * F.lit(float(DENSE_SCALE))).cast("long")  # rint: half to even, as np.rint
    edges = _pass_cut(pairs.join(target_degree, "target_id").join(F.broadcast(logs), "n").select("actor_id", "target_id", value.alias("q")))
    rows, cols = _pass_cut(_degrees(None, edges, "actor_id")), _pass_cut(_degrees(None, edges, "target_id"))  # the remaining nodes
    first = _stats(rows, cols)
    release(pairs)

    schedule = PeelSchedule(first["min_deg"], first["max_deg"], epsilon)
    stats = first
    removed: list[DataFrame] = []  # (actor_id, score) of the rows each pass removed
    while stats["n_rows"]:
        last = (edges, rows, cols)
        threshold = F.lit(schedule.start_pass(stats["row_sum"], stats["n_rows"] + stats["n_cols"]))
        gone = F.col("deg") <= threshold
        score = F.lit(schedule.level / DENSE_SCALE).alias("lock_dense_block_score")
        removed.append(cut(rows.filter(gone).select("actor_id", score)))  # now: `rows` goes at the end of the pass
        # Anti joins and unions only: a join's size estimate is the product of its inputs', and
        # carried from cut to cut it would grow to millions of digits (the planner runs out of memory).
        gone_r, gone_c = rows.filter(gone).select("actor_id"), cols.filter(gone).select("target_id")
        edges = _pass_cut(edges.join(gone_r, "actor_id", "left_anti").join(gone_c, "target_id", "left_anti"))
        rows, cols = _pass_cut(_degrees(rows.filter(~gone), edges, "actor_id")), _pass_cut(_degrees(cols.filter(~gone), edges, "target_id"))
        stats = _stats(rows, cols)  # computes this pass's tables: the last pass's are no longer read
        for frame in last:
            release(frame)
        if stats["n_rows"]:
            schedule.end_pass(stats["min_deg"])
    for frame in (edges, rows, cols):
        release(frame)
    log.debug("dense blocks on Spark: %d rows, %d columns peeled in %d passes", first["n_rows"], first["n_cols"], schedule.passes)

    densest = (F.col("lock_dense_block_score") >= F.lit(schedule.best_level / DENSE_SCALE)).alias("lock_in_densest_block")
    scores = functools.reduce(lambda x, y: x.unionByName(y), removed)
    result = cut(scores.select(F.col("actor_id").alias("account_id"), "lock_dense_block_score", densest))
    for frame in removed:
        release(frame)
    return result


def _pass_cut(frame: DataFrame) -> DataFrame:
    """A pass's table, cut from its lineage (pipeline/spark/checkpoint.py) when the next job first
    computes it. Every pass, not every few: the edges, rows and columns of a pass are each made
    from all three of the last pass's, so without a cut the plan of pass k is a tree of ~3^k
    copies of the input (at the tiny world's 40 passes, no planner survives it)."""
    return cut(frame, eager=False)


def _degrees(nodes: DataFrame | None, edges: DataFrame, key: str) -> DataFrame:
    """The degree (sum of q) of each of `nodes` (key column `key`; None: every node of `edges`)
    over `edges`; a node without edges has degree 0. Integer sums: the same as numpy's, whatever
    the order Spark adds in."""
    from pyspark.sql import functions as F

    ends = edges.select(key, F.col("q").alias("deg"))
    if nodes is not None:
        ends = nodes.select(key, F.lit(0).cast("long").alias("deg")).unionByName(ends)
    return ends.groupBy(key).agg(F.sum("deg").alias("deg"))


def _stats(rows: DataFrame, cols: DataFrame) -> dict[str, Any]:
    """The driver's scalars of the remaining graph, from one aggregation: rows, their degree sum,
    columns, smallest and largest degree (None when no node remains)."""
    from pyspark.sql import functions as F

    nodes = rows.select(F.lit(1).alias("is_row"), "deg").unionByName(cols.select(F.lit(0).alias("is_row"), "deg"))
    one = nodes.agg(
        F.coalesce(F.sum("is_row"), F.lit(0)).alias("n_rows"),
        F.coalesce(F.sum(F.when(F.col("is_row") == 1, F.col("deg"))), F.lit(0)).alias("row_sum"),
        F.coalesce(F.sum(1 - F.col("is_row")), F.lit(0)).alias("n_cols"),
        F.min("deg").alias("min_deg"),
        F.max("deg").alias("max_deg"),
    ).first()
    assert one is not None  # a global aggregate has one row
    return one.asDict()
