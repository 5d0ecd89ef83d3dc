"""`zombiescan features` and `zombiescan score` with `--engine spark`.

The same steps as the DuckDB engine (pipeline/features/build.py, pipeline/scoring/job.py): check
the inputs against the contract, cut them at the reference time, compute every feature family,
score with the task models, write the outputs whole or not at all. Inputs are the contract
tables as Parquet (a file, a folder of parts or a glob, on any file system Spark reads); outputs
are Parquet datasets (one part per ~2M rows), written beside the destination and renamed into place.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline import tasks
from pipeline.errors import ZombieScanError
from pipeline.features.build import FeatureReport
from pipeline.features.lockstep import LockstepParams
from pipeline.models.card import simulated, simulated_warning
from pipeline.models.train import TaskModel
from pipeline.scoring.job import timed_steps
from pipeline.scoring.score import Progress, lockstep_settings
from pipeline.spark.checkpoint import cut
from pipeline.spark.read import Inputs, read_inputs, register_inputs
from pipeline.spark.session import SparkSettings, spark_session
from pipeline.spark.write import SparkFolder, spark_output, write_parquet

log = logging.getLogger(__name__)


def features_job(
    inputs: Inputs,
    out: str,
    *,
    settings: SparkSettings | None = None,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams = LockstepParams(),  # noqa: B008
    overwrite: bool = False,
    progress: Progress | None = None,
) -> FeatureReport:
    """Features of every account on Spark: `out/features.parquet` (a Parquet dataset, sorted by
    account_id), `out/lockstep_groups.parquet` and `out/report.json`, renamed into place together."""
    from pipeline.spark.features import spark_features

    settings = settings or SparkSettings()
    with spark_session(settings.master, settings.conf) as spark, spark_output(spark, out, overwrite=overwrite) as tmp:
        register_inputs(spark, read_inputs(spark, inputs))
        features, groups, report = spark_features(spark, reference_time=reference_time, lockstep_params=lockstep_params, progress=progress)
        if progress is not None:
            progress("writing", 0, 0)
        write_parquet(features, tmp.child("features.parquet"), rows=report.accounts)
        write_parquet(spark.createDataFrame(groups.to_arrow()), tmp.child("lockstep_groups.parquet"), rows=groups.height, sort=None)
        tmp.write_text("report.json", json.dumps(report.record(), indent=2, sort_keys=True) + "\n")
    return report


@dataclass(frozen=True)
class SparkScoreRequest:
    inputs: Inputs
    out: str
    reference_time: datetime | None = None
    explain: str = "flagged"
    pages_out: str | None = None
    overwrite: bool = False


def score_job(
    request: SparkScoreRequest,
    models: dict[str, TaskModel],
    versions: dict[str, str],
    settings: SparkSettings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score every account on Spark with `models` (loaded as the local engine loads them); write
    the scores (and the pages report) as Parquet datasets. Returns the JSON summary `zombiescan score` prints."""
    from pipeline.spark.features import spark_features
    from pipeline.spark.score import score_spark, scored_column_order, suspected_pages_spark, with_context

    start = time.perf_counter()
    r = request
    steps: dict[str, float] = {}
    step = timed_steps(progress or (lambda step, done, total: None), steps)
    if r.pages_out is not None and r.pages_out == r.out:
        raise ZombieScanError(f"--pages-out {r.pages_out}: the same path as --out; give it another name")
    seller = tasks.like_seller()
    if r.pages_out is not None and (seller is None or seller.name not in models):
        raise ZombieScanError(f"--pages-out: needs a {seller.name if seller else 'like-selling'} model, and none was loaded")
    with (
        spark_session(settings.master, settings.conf) as spark,
        spark_output(spark, r.out, overwrite=r.overwrite) as tmp,
        _maybe_output(spark, r.pages_out, r.overwrite) as pages_tmp,
    ):
        step("validating and loading the input", 0, 0)
        register_inputs(spark, read_inputs(spark, r.inputs))
        features, groups, report = spark_features(
            spark, reference_time=r.reference_time, lockstep_params=lockstep_settings(models), progress=step
        )
        step("scoring", 0, 0)
        scores = score_spark(spark, features, models, explain=r.explain, versions=versions)
        # Cut, not cached: a cached frame is found again only by matching plans, and the pages
        # query (SQL over a view of it) did not match, so it scored every account again.
        scores = cut(with_context(spark, scores, groups).select(scored_column_order(list(models))))
        n = scores.count()
        flagged = scores.selectExpr(*[f"count_if(flagged_{t}) AS {t}" for t in models], "count_if(NOT has_engagements) AS none").first()
        assert flagged is not None
        step("writing", 0, 0)
        write_parquet(scores, tmp.uri, rows=n)
        if pages_tmp is not None:
            step("pages", 0, 0)
            # computed once (the count and the write would each run the query, a join over every like)
            pages = cut(suspected_pages_spark(spark, scores, until=datetime.fromisoformat(report.reference_time)))
            write_parquet(pages, pages_tmp.uri, rows=pages.count(), sort=None)  # in the query's order
        unscored = spark.table("accounts_in").count() - n
        step("done", 0, 0)
    warnings = [simulated_warning(task) for task, model in models.items() if simulated(model)]
    return {
        "engine": "spark",
        "master": settings.master,
        "accounts": n,
        "created_after_reference_time": unscored,
        "flagged": {t: int(flagged[t]) for t in models},
        "no_engagements": int(flagged["none"]),
        "seconds": round(time.perf_counter() - start, 1),
        "steps": {name: round(v, 1) for name, v in steps.items()},
        "out": r.out,
        "warnings": warnings,
    }


@contextmanager
def _maybe_output(spark: Any, path: str | None, overwrite: bool) -> Iterator[SparkFolder | None]:
    if path is None:
        yield None
        return
    with spark_output(spark, path, overwrite=overwrite, option="--pages-out") as tmp:
        yield tmp
