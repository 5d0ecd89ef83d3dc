"""Scores, decisions and reasons on Spark: the local engine's code, run on each batch of accounts.

The models travel to the executors as LightGBM's text format in a broadcast variable (a few MB,
sent once per executor, never a pickle of a booster); each Python worker parses them once. Each
batch of feature rows reaches Python as Arrow (`mapInArrow`: no pandas, no row objects) and goes
through `pipeline.scoring.score.score_chunk`, the function `zombiescan score` runs locally:
the same matrix, calibration, threshold and reasons, so both engines give the same numbers.
The pages-that-bought-likes report is the local engine's SQL (`PAGES_SQL`) through sqlglot.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from pipeline.errors import ZombieScanError
from pipeline.models.train import TaskModel, check_features
from pipeline.scoring.pages import PAGES_SQL, seller_task
from pipeline.scoring.score import EXPLAIN, REASON, score_chunk

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Each Python worker parses the broadcast models once: broadcast id -> models.
_PARSED: dict[str, dict[str, TaskModel]] = {}

# the reasons' type (pipeline.scoring.score.REASON) with Arrow's plain strings, as Spark reads them
_REASON_ARROW = pa.list_(pa.struct([(f.name, pa.string() if f.dtype == pl.String else pa.float64()) for f in REASON.fields]))


def _arrow_schema(tasks: list[str]) -> pa.Schema:
    fields = [pa.field("account_id", pa.string())]
    for task in tasks:
        fields += [
            pa.field(f"p_{task}", pa.float64()),
            pa.field(f"flagged_{task}", pa.bool_()),
            pa.field(f"{task}_reasons", _REASON_ARROW),
            pa.field(f"{task}_model_version", pa.string()),
        ]
    return pa.schema(fields)


def _spark_schema(tasks: list[str]) -> str:
    reason = "array<struct<feature:string,value:double,contribution:double,text:string>>"
    cols = ["account_id string"]
    for task in tasks:
        cols += [f"p_{task} double", f"flagged_{task} boolean", f"{task}_reasons {reason}", f"{task}_model_version string"]
    return ", ".join(cols)


def score_spark(
    spark: SparkSession,
    features: DataFrame,
    models: dict[str, TaskModel],
    *,
    explain: str = "flagged",
    versions: dict[str, str] | None = None,
    scored_at: datetime | None = None,
) -> DataFrame:
    """One row per row of `features`: p_<task>, flagged_<task>, <task>_reasons, <task>_model_version, scored_at."""
    from pyspark.sql import functions as F

    if explain not in EXPLAIN:
        raise ZombieScanError(f"explain: {explain!r} is not one of {', '.join(EXPLAIN)}")
    names = list(models)
    wanted: list[str] = list(dict.fromkeys(f for m in models.values() for f in m.features))
    sample = pl.from_arrow(features.select("account_id", *[c for c in wanted if c in features.columns]).limit(0).toArrow())
    assert isinstance(sample, pl.DataFrame)
    for task, model in models.items():
        check_features(sample, model.features, model.dtypes, task)  # on the driver, before any work is sent out
        if model.booster is None:
            raise ZombieScanError(f"{task}: the model has no booster")
    texts = {t: (m.booster.model_to_string(), replace(m, booster=None)) for t, m in models.items() if m.booster is not None}
    shipped = spark.sparkContext.broadcast(texts)
    key = uuid.uuid4().hex  # this job's models, apart from an earlier job's in a reused worker
    versions = dict(versions or {})
    schema = _arrow_schema(names)

    def score_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import lightgbm as lgb

        parsed = _PARSED.get(key)
        if parsed is None:
            parsed = {t: replace(m, booster=lgb.Booster(model_str=text)) for t, (text, m) in shipped.value.items()}
            _PARSED.clear()
            _PARSED[key] = parsed
        for batch in batches:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            out = score_chunk(frame, parsed, explain, versions)
            yield from out.to_arrow().cast(schema).to_batches()

    scored = features.select("account_id", *wanted).mapInArrow(score_batches, _spark_schema(names))
    when = scored_at or datetime.now(UTC)
    return scored.withColumn("scored_at", F.lit(when).cast("timestamp"))


def with_context(spark: SparkSession, scores: DataFrame, groups: pl.DataFrame) -> DataFrame:
    """`has_engagements` (the account acted by the reference time) and `lockstep_group`, as the local engine adds them."""
    from pyspark.sql import functions as F

    active = spark.sql("SELECT DISTINCT actor_id AS account_id, true AS has_engagements FROM engagements")
    members = (
        groups.select(pl.col("group_id").alias("lockstep_group"), pl.col("members").alias("account_id")).explode("account_id")
        if groups.height
        else pl.DataFrame(schema={"lockstep_group": pl.Int64, "account_id": pl.String})
    ).unique("account_id")
    member_frame = spark.createDataFrame(members.to_arrow(), "lockstep_group long, account_id string")
    return (
        scores.join(active, "account_id", "left")
        .withColumn("has_engagements", F.coalesce(F.col("has_engagements"), F.lit(False)))
        .join(F.broadcast(member_frame), "account_id", "left")
    )


def suspected_pages_spark(spark: SparkSession, scores: DataFrame, *, until: datetime | None = None, task: str | None = None) -> DataFrame:
    """`pipeline.scoring.pages.suspected_pages` on Spark: the same query over the `engagements` view."""
    from pipeline.spark.sql import transpile

    task = seller_task(task)
    scores.selectExpr("account_id", f"flagged_{task} AS farm", "lockstep_group").createOrReplaceTempView("scores_in")
    statements = transpile(PAGES_SQL, {"until": until})
    return spark.sql(statements[-1])


def scored_column_order(tasks: list[str]) -> list[str]:
    """The columns of a scores file, in the local engine's order."""
    cols = ["account_id"]
    for task in tasks:
        cols += [f"p_{task}", f"flagged_{task}", f"{task}_reasons", f"{task}_model_version"]
    return [*cols, "scored_at", "has_engagements", "lockstep_group"]
