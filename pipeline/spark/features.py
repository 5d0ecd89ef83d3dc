"""Every feature family on Spark: the same columns, in the same order, as the DuckDB engine.

Each `Family` (pipeline/features/families.py) names its Spark computation in `Family.spark`
("module:function"); the families' order, dependencies and prefixes are the one list both engines
read, so a family without a Spark computation is an error here and a failing test
(tests/test_spark_engine.py), never a column that silently exists on one engine only.

- profile_, beh_: the families' SQL files, transpiled by sqlglot (pipeline/spark/sql.py);
- rate_: its SQL file, transpiled, and REV2 as DataFrame iterations (pipeline/spark/rating.py);
- graph_: DataFrame iterations (pipeline/spark/graph.py);
- lock_: the bucketed self-join and the parallel dense-block peel (pipeline/spark/lockstep.py, dense.py).

Spark has no GraphFrames here (it ships only as a Maven jar, and nothing may be downloaded at run
time): PageRank, k-core, components, the peel and REV2 are DataFrame iterations with a bound on passes.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from pipeline.errors import ZombieScanError
from pipeline.features import families
from pipeline.features.behaviour import YOUNG_HOURS
from pipeline.features.build import FeatureReport
from pipeline.features.family import Family
from pipeline.features.lockstep import LockstepParams, empty_groups
from pipeline.spark.session import SparkSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


@dataclass
class SparkContext:
    """What a family's Spark computation reads: a session that shows `accounts`, `engagements` and
    `targets` as temp views cut at the reference time, the settings, and the families before it."""

    spark: SparkSession
    reference_time: datetime
    settings: LockstepParams
    progress: Callable[[str, int, int], None] | None = None
    computed: dict[str, DataFrame] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def accounts(self) -> DataFrame:
        return self.computed["profile_"].select("account_id")

    def so_far(self) -> DataFrame:
        return _joined(list(self.computed.values()))

    def timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one step; a DataFrame result is cached and counted, so the seconds are its own
        (Spark is lazy: without it, each step's work would show in the next one's)."""
        from pyspark.sql import DataFrame

        if self.progress is not None:
            self.progress(f"features: {name}", len(self.seconds), 0)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        if isinstance(result, DataFrame):
            result = result.cache()
            result.count()
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("%s (spark): %.1f s", name, self.seconds[name])
        return result


def spark_compute(family: Family) -> Callable[[SparkContext], DataFrame]:
    """The family's Spark computation, imported on first use (pyspark is an optional extra)."""
    if family.spark is None:
        raise ZombieScanError(f"the {family.title} family ({family.prefix}) has no Spark computation; run it with --engine duckdb")
    module, name = family.spark.split(":")
    fn: Callable[[SparkContext], DataFrame] = getattr(importlib.import_module(module), name)
    return fn


def spark_features(
    spark: SparkSession,
    *,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams = LockstepParams(),  # noqa: B008 (frozen dataclass)
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[DataFrame, pl.DataFrame, FeatureReport]:
    """Features (one row per account created by the reference time) and lockstep groups, from the
    temp views `accounts_in`, `engagements_in` and `targets_in` (checked contract tables).

    Engagements after `reference_time` (default: the last one) are cut before anything is computed.
    The features come back as a cached DataFrame (the caller writes or scores it).
    """
    if reference_time is None:
        reference_time = spark.sql("SELECT max(ts) AS t FROM engagements_in").first()["t"]  # type: ignore[index]
    if reference_time is None:
        raise ZombieScanError("features: there are no engagements to compute features from")
    if reference_time.tzinfo is None:  # Spark hands back session-zone (UTC) times without a zone
        from datetime import UTC

        reference_time = reference_time.replace(tzinfo=UTC)
    ref = f"TIMESTAMP '{reference_time.isoformat()}'"
    spark.sql(f"CREATE OR REPLACE TEMP VIEW accounts AS SELECT * FROM accounts_in WHERE created_at IS NULL OR created_at <= {ref}")
    spark.sql(
        "CREATE OR REPLACE TEMP VIEW engagements AS SELECT actor_id, target_id, target_type, kind, ts, "
        f"coalesce(weight, 1) AS weight, value FROM engagements_in WHERE ts <= {ref}"
    )
    spark.sql("CREATE OR REPLACE TEMP VIEW targets AS SELECT target_id, created_at FROM targets_in")
    ctx = SparkContext(spark, reference_time, lockstep_params, progress=progress)
    values = spark.sql("SELECT 1 FROM engagements WHERE value IS NOT NULL LIMIT 1").count() > 0
    wanted = families.supported(engagements=True, values=values, raw=False)  # raw_: a dataset's own columns (DuckDB engine)
    frames = families.in_order(ctx.computed, wanted, lambda family: spark_compute(family)(ctx).cache())
    features = _joined(frames).cache()
    n_accounts = features.count()
    groups = ctx.outputs.get("groups", empty_groups())
    report = FeatureReport(
        reference_time=reference_time.isoformat(),
        accounts=n_accounts,
        features=len(features.columns) - 1,
        lockstep_groups=groups.height,
        lockstep_accounts=groups["members"].explode().n_unique() if groups.height else 0,
        lockstep_skipped_cells=ctx.outputs.get("skipped_cells", 0),
        timed=ctx.outputs.get("timed", False),
        seconds=ctx.seconds,
    )
    return features, groups, report


def featurize_warehouse_spark(
    db: Path,
    out: Path,
    *,
    settings: SparkSettings | None = None,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams = LockstepParams(),  # noqa: B008
) -> FeatureReport:
    """The featurize stage with `featurize.engine: spark`: the warehouse's features computed on Spark,
    written exactly as the DuckDB engine writes them (one sorted features.parquet), so every later
    stage reads the same files whichever engine made them. The features are collected to this
    machine for that: the stage is for the research pipeline's worlds; platform-size data goes
    through `zombiescan features --engine spark`, which writes a partitioned dataset instead."""
    from pipeline.features.build import write_features
    from pipeline.spark.read import read_inputs, register_inputs, warehouse_inputs
    from pipeline.spark.session import spark_session

    if (db / "raw_features.parquet").exists():
        raise ZombieScanError(
            f"{db}: a dataset warehouse (raw_ columns from its spec); the Spark engine computes the contract's families only: "
            "use featurize.engine: duckdb for datasets"
        )
    settings = settings or SparkSettings()
    with spark_session(settings.master, settings.conf) as spark:
        register_inputs(spark, read_inputs(spark, warehouse_inputs(db)))
        features, groups, report = spark_features(spark, reference_time=reference_time, lockstep_params=lockstep_params)
        frame = pl.from_arrow(features.orderBy("account_id").toArrow())
        assert isinstance(frame, pl.DataFrame)
    write_features(out, frame, groups, report)
    return report


def _joined(frames: list[DataFrame]) -> DataFrame:
    """Frames keyed by account_id, left-joined onto the first (the profile family's rows), columns in order."""
    out = frames[0]
    for frame in frames[1:]:
        out = out.join(frame, on="account_id", how="left")
    return out


# The Spark computations of the families whose definition is a SQL file (one file, two engines).
def profile(ctx: SparkContext) -> DataFrame:
    from pipeline.spark.sql import run_feature_sql

    return ctx.timed("profile", run_feature_sql, ctx.spark, "profile.sql", {"ref": ctx.reference_time})


def behaviour(ctx: SparkContext) -> DataFrame:
    from pipeline.spark.sql import run_feature_sql

    return ctx.timed("behaviour", run_feature_sql, ctx.spark, "behaviour.sql", {"ref": ctx.reference_time, "young_hours": YOUNG_HOURS})


def rating(ctx: SparkContext) -> DataFrame:
    """The statistics of `rating.sql` (transpiled) with REV2's columns (pipeline/spark/rating.py) joined on."""
    from pipeline.spark.rating import rating_features

    features, run = ctx.timed("rating", rating_features, ctx.spark, ctx.reference_time)
    ctx.outputs["rev2"] = {"passes": run.passes, "converged": run.converged}
    return features


def graph(ctx: SparkContext) -> DataFrame:
    """The graph family over the families before it, with the simulator's neighbour and co-engager
    columns (the dataset-only extras need a dataset's raw_ columns: DuckDB engine)."""
    from pipeline.features.graph import COENGAGER_COLUMNS, NEIGHBOUR_COLUMNS
    from pipeline.spark.graph import graph_features

    return ctx.timed(
        "graph",
        graph_features,
        ctx.spark,
        ctx.so_far(),
        neighbour_columns=NEIGHBOUR_COLUMNS,
        coengager_columns=COENGAGER_COLUMNS,
    )


def lockstep(ctx: SparkContext) -> DataFrame:
    """Lockstep groups (bucketed self-join) and the dense-block score (parallel peel), joined onto
    the accounts with the same fills as the DuckDB engine; the groups go to `ctx.outputs`."""
    from pyspark.sql import functions as F

    from pipeline.spark.dense import dense_block_scores
    from pipeline.spark.lockstep import lockstep as spark_lockstep

    params = ctx.settings
    lock = ctx.timed("lockstep", spark_lockstep, ctx.spark, params)
    dense = ctx.timed("dense_block", dense_block_scores, ctx.spark, ctx.spark.table("engagements"), kinds=params.kinds)
    ctx.outputs.update(groups=lock.groups, timed=lock.timed, skipped_cells=lock.skipped_cells)
    return (
        ctx.accounts()
        .join(lock.features, "account_id", "left")
        .join(dense, "account_id", "left")
        .select(
            "account_id",
            *[F.coalesce(F.col(c), F.lit(0)).cast("bigint").alias(c) for c in ("lock_group_size", "lock_partners")],
            *[
                F.coalesce(F.col(c), F.lit(0.0)).cast("double").alias(c)
                for c in ("lock_max_jaccard", "lock_mean_jaccard", "lock_share", "lock_dense_block_score")
            ],
            F.coalesce(F.col("lock_in_densest_block").cast("tinyint"), F.lit(0).cast("tinyint")).alias("lock_in_densest_block"),
        )
    )
