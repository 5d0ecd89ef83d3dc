"""rate_ features on Spark, equal to pipeline/features/rating.py (the DuckDB/numpy engine).

- The statistics: `rating.sql`, the DuckDB engine's own file, transpiled (pipeline/spark/sql.py).
- REV2 (`_rev2`): the passes of `pipeline.features.rating.rev2`, term for term, as DataFrame jobs.
  Raters and targets are numbered with `monotonically_increasing_id` (frozen by a cut at once);
  a pass is one aggregation of the ratings by target (goodness), one join of the ratings with
  the new goodness and the old fairness (reliability), one aggregation by rater (fairness) and
  one aggregation of scalars for the driver (the largest change, the sums behind the means).
  The sums are integers of 2**-36 (`REV2_SCALE`) and every other step the same IEEE operation
  in the same order as numpy's, with the means and priors computed in the driver's Python as the
  local engine does: the two engines give the same values and stop after the same pass. Each
  pass's frames are cut from their lineage (pipeline/spark/checkpoint.py) and the last pass's
  released, so neither the plans nor the kept data grow with the passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline.features.rating import REV2_COLUMNS, REV2_SCALE, Rev2Params, check_size, fixed_mean
from pipeline.spark.checkpoint import cut, release

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

RESULT_SCHEMA = ", ".join(f"{c} double" for c in REV2_COLUMNS)


@dataclass(frozen=True)
class Rev2Run:
    passes: int
    converged: bool


def rating_features(spark: SparkSession, reference_time: datetime, params: Rev2Params = Rev2Params()) -> tuple[DataFrame, Rev2Run]:  # noqa: B008
    """One row per account of the `accounts` view, the columns of `pipeline.features.rating.rating_features`
    (computed and kept before it is returned), and how REV2's iteration ended.

    The session shows the temp views `accounts` (account_id, created_at) and `engagements`
    (actor_id, target_id, target_type, ts, value).
    """
    from pyspark.sql import functions as F

    from pipeline.spark.sql import run_feature_sql

    stats = run_feature_sql(spark, "rating.sql", {"ref": reference_time})
    rev, run = _rev2(spark, reference_time, params)
    # the SQL's order of columns, REV2's after them
    out = cut(stats.join(rev, "account_id", "left").select(*stats.columns, *(F.col(c) for c in REV2_COLUMNS)))
    release(rev)
    return out, run


def _double(value: float) -> str:
    """A DOUBLE literal of Spark SQL that reads back as exactly `value`."""
    return f"{float(value)!r}D"


def _summed(nodes: DataFrame, terms: DataFrame, key: str) -> DataFrame:
    """`nodes` (key and its columns) with q: the exact sum of the `terms` (key, q: BIGINT) of each.

    A union and one aggregation, not a join: the planner estimates a join's size as the product
    of its inputs' estimates, and carried through the cuts pass after pass (a cut frame keeps the
    estimate of its plan) those products grow to millions of digits: the planner then runs out
    of memory (seen on the six-account test network, within tens of passes). A union adds the
    estimates instead."""
    from pyspark.sql import functions as F

    columns = [c for c in nodes.columns if c != key]
    blank = [F.lit(None).cast(nodes.schema[c].dataType).alias(c) for c in columns]
    rows = nodes.select(key, *columns, F.lit(0).cast("bigint").alias("q")).unionByName(terms.select(key, *blank, "q"))
    return rows.groupBy(key).agg(*(F.max(c).alias(c) for c in columns), F.sum("q").alias("q"))


def _attached(rows: DataFrame, values: DataFrame, key: str) -> DataFrame:
    """`rows` with the columns of `values` (key and one value per key) attached by key: a union
    and a window over the key, not a join, for the reason `_summed` gives."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    added = [c for c in values.columns if c != key]
    own = [c for c in rows.columns if c != key]
    marked = rows.select(key, *own, *(F.lit(None).cast(values.schema[c].dataType).alias(c) for c in added), F.lit(True).alias("is_row"))
    others = values.select(key, *(F.lit(None).cast(rows.schema[c].dataType).alias(c) for c in own), *added, F.lit(False).alias("is_row"))
    by_key = Window.partitionBy(key)
    both = marked.unionByName(others)
    return both.select(key, *own, *(F.max(c).over(by_key).alias(c) for c in added), "is_row").where("is_row").drop("is_row")


def _rev2(spark: SparkSession, reference_time: datetime, p: Rev2Params) -> tuple[DataFrame, Rev2Run]:
    """account_id + REV2_COLUMNS for every account that gave or received a rating (kept), and the run."""
    from pyspark.sql import functions as F

    from pipeline.spark.graph import _passes

    ref = f"TIMESTAMP '{reference_time.isoformat()}'"
    ratings = spark.sql(
        "SELECT actor_id, CAST(target_type AS STRING) AS target_type, target_id, CAST(value AS DOUBLE) AS value "
        f"FROM engagements WHERE value IS NOT NULL AND ts <= {ref}"
    )
    top = ratings.agg(F.min("value").alias("lo"), F.max("value").alias("hi"), F.count(F.lit(1)).alias("n")).first()
    assert top is not None  # a global aggregate has one row
    if top["n"] == 0:
        return spark.createDataFrame([], f"account_id string, {RESULT_SCHEMA}"), Rev2Run(0, True)
    check_size(int(top["n"]))
    lo, hi = float(top["lo"]), float(top["hi"])
    # pipeline.features.rating.rev2_scores, term for term
    score = "CAST(0.0 AS DOUBLE)" if hi == lo else f"{_double(2.0)} * (value - {_double(lo)}) / {_double(hi - lo)} - {_double(1.0)}"
    scale = _double(REV2_SCALE)

    raters = cut(ratings.select("actor_id").distinct().withColumn("u", F.monotonically_increasing_id()))
    targets = cut(ratings.select("target_type", "target_id").distinct().withColumn("p", F.monotonically_increasing_id()))
    n_raters, n_targets = raters.count(), targets.count()
    with _passes(spark, int(top["n"])) as partitions:
        edges = ratings.join(raters, "actor_id").join(targets, ["target_type", "target_id"])
        edges = cut(edges.selectExpr("u", "p", f"{score} AS s", "CAST(1.0 AS DOUBLE) AS r").repartition(partitions, "p"))
        fair = cut(edges.groupBy("u").agg(F.count(F.lit(1)).alias("n")).selectExpr("u", "n", "CAST(1.0 AS DOUBLE) AS f"))
        good = cut(edges.groupBy("p").agg(F.count(F.lit(1)).alias("n")).selectExpr("p", "n", "CAST(1.0 AS DOUBLE) AS g"))
        mu_f = mu_g = 1.0
        passes, converged = 0, False
        while passes < p.max_iter:
            passes += 1
            last = (edges, fair, good)
            goodness = f"({_double(p.beta1 * mu_g)} + CAST(q AS DOUBLE) / {scale}) / ({_double(p.beta1)} + CAST(n AS DOUBLE))"
            good = cut(
                _summed(
                    good.selectExpr("p", "n", "g AS old"), edges.selectExpr("p", f"CAST(rint(r * s * {scale}) AS BIGINT) AS q"), "p"
                ).selectExpr("p", "n", f"least(greatest({goodness}, -1.0D), 1.0D) AS g", "old"),
                eager=False,
            )
            agreement = f"({_double(p.gamma1)} * f + {_double(p.gamma2)} * (1.0D - abs(s - g) / 2.0D)) / {_double(p.gamma1 + p.gamma2)}"
            attached = _attached(_attached(edges.select("u", "p", "s", "r"), good.select("p", "g"), "p"), fair.select("u", "f"), "u")
            edges = cut(attached.selectExpr("u", "p", "s", f"least(greatest({agreement}, 0.0D), 1.0D) AS r", "r AS old"), eager=False)
            fairness = f"({_double(p.alpha1 * mu_f)} + CAST(q AS DOUBLE) / {scale}) / ({_double(p.alpha1)} + CAST(n AS DOUBLE))"
            fair = cut(
                _summed(
                    fair.selectExpr("u", "n", "f AS old"), edges.selectExpr("u", f"CAST(rint(r * {scale}) AS BIGINT) AS q"), "u"
                ).selectExpr("u", "n", f"least(greatest({fairness}, 0.0D), 1.0D) AS f", "q AS sf", "old"),
                eager=False,
            )
            stats = (
                good.selectExpr("abs(g - old) AS d", f"CAST(rint(g * {scale}) AS BIGINT) AS qg", "CAST(0 AS BIGINT) AS qf")
                .unionByName(edges.selectExpr("abs(r - old) AS d", "CAST(0 AS BIGINT) AS qg", "CAST(0 AS BIGINT) AS qf"))
                .unionByName(fair.selectExpr("abs(f - old) AS d", "CAST(0 AS BIGINT) AS qg", f"CAST(rint(f * {scale}) AS BIGINT) AS qf"))
                .agg(F.max("d").alias("change"), F.sum("qg").alias("qg"), F.sum("qf").alias("qf"))
                .first()
            )
            assert stats is not None
            for frame in last:
                release(frame)
            mu_g, mu_f = fixed_mean(int(stats["qg"]), n_targets), fixed_mean(int(stats["qf"]), n_raters)
            if stats["change"] < p.tol:
                converged = True
                break
        received = _summed(good.select("p", "n", "g"), edges.selectExpr("p", f"CAST(rint(r * {scale}) AS BIGINT) AS q"), "p")
        given = fair.join(raters, "u").selectExpr(
            "actor_id AS account_id",
            "f AS rate_fairness",
            f"CAST(sf AS DOUBLE) / {scale} / CAST(n AS DOUBLE) AS rate_given_reliability",
            "1.0D - f AS rate_rev2_score",
        )
        rated = received.join(targets.where(F.col("target_type") == "account"), "p").selectExpr(
            "target_id AS account_id", "g AS rate_goodness", f"CAST(q AS DOUBLE) / {scale} / CAST(n AS DOUBLE) AS rate_received_reliability"
        )
        out = cut(given.join(rated, "account_id", "full").select("account_id", *REV2_COLUMNS))
    for frame in (edges, fair, good, raters, targets):
        release(frame)
    log.info(
        "rev2 (spark): %d ratings, %d raters, %d targets; %d passes, %s",
        *(top["n"], n_raters, n_targets, passes, "converged" if converged else "NOT converged"),
    )
    if not converged:
        log.warning("rev2: no fixed point within max_iter=%d passes (tol %g): the last pass's values are used", p.max_iter, p.tol)
    return out, Rev2Run(passes, converged)
