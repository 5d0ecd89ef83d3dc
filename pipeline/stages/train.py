"""Stage train@<task>: features + split -> models/<task>/ and models/<task>-profile/ (model.txt, model.json), tracked in MLflow.

The shipped model trains on the folds other than test fold 0 and its validation fold, stops
early, and is calibrated and thresholded on that validation fold (docs/models.md). Beside it, the
same training on the profile features alone: what `zombiescan score` uses for accounts that come
without engagements.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import tasks
from pipeline.features.lockstep import LockstepParams
from pipeline.io import scratch_dir
from pipeline.models.inputs import load_data, model_dir, task_params, training_source, untrainable
from pipeline.models.split import roles
from pipeline.models.tracking import data_hash, dvc_lock_hashes, mlflow_run
from pipeline.models.train import (
    FEATURE_SETS,
    FULL,
    TaskModel,
    TaskParams,
    feature_columns,
    feature_set_prefixes,
    fit_task,
    model_importance,
    write_untrained,
)
from pipeline.params import section
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def run(params: dict[str, Any], task: str) -> None:
    p = task_params(params, task)
    reason = untrainable(params, p.label)
    if reason is not None:
        for feature_set in FEATURE_SETS:
            write_untrained(model_dir(params, task, feature_set), task, reason, feature_set)
        log.warning("%s: not trained: %s", task, reason)
        return
    data, features_path, split_path = load_data(params, p.label)
    role = roles(data, 0)
    train, valid = data.filter(pl.Series(role == "train")), data.filter(pl.Series(role == "valid"))
    fingerprint = data_hash(features_path, split_path)
    info = {
        "data_hash": fingerprint,
        "split": dict(section(params, "split")),
        "label": p.label,
        "trained_on": training_source(params),
        # the settings the lock_ features were computed with: scoring recomputes them the same way
        "lockstep": asdict(LockstepParams.from_dict((params.get("featurize") or {}).get("lockstep"))),
    }
    tags = {"stage": "train", "task": task, "data_hash": fingerprint, **dvc_lock_hashes(features_path.parent, split_path)}
    for feature_set in FEATURE_SETS:
        folder = model_dir(params, task, feature_set)
        features = feature_columns(train, feature_set_prefixes(feature_set))
        if not features and feature_set != FULL:  # a dataset without profile columns: nothing to learn from them
            why = f"the features hold no column of the {feature_set} feature set ({', '.join(feature_set_prefixes(feature_set))})"
            write_untrained(folder, task, why, feature_set)
            log.warning("%s: %s model not trained: %s", task, feature_set, why)
            continue
        model = fit_task(task, p, train, valid, features=features)
        model.info.update({**info, "feature_set": feature_set})
        model.save(folder)
        log.info("%s: saved %s (%d trees, %d features)", task, folder, model.booster.num_trees(), len(model.features))  # type: ignore[union-attr]
        track(model, folder, p, params, {**tags, "feature_set": feature_set}, train)


def track(model: TaskModel, folder: Path, p: TaskParams, params: dict[str, Any], tags: dict[str, str], train: pl.DataFrame) -> None:
    """One MLflow run per saved model: `train-<task>` (full), `train-<task>-profile`."""
    with mlflow_run(f"train-{folder.name}", tags) as tracker:
        tracker.log_params({"task": model.task, "feature_set": tags["feature_set"], **p.__dict__, "split": dict(section(params, "split"))})
        tracker.log_metrics({"best_iteration": model.info["best_iteration"], "threshold": model.threshold})
        importance = model_importance(model)
        tracker.log_artifact(folder / "model.json")
        with scratch_dir("zombiescan-train-") as tmp:
            importance.write_csv(tmp / f"{folder.name}-importance.csv")
            tracker.log_artifact(tmp / f"{folder.name}-importance.csv", "importance")
        tracker.log_model(model.booster, train.select(model.features).head(5).cast(pl.Float64).to_pandas())


def main(argv: list[str] | None = None) -> int:
    return stage_main("train", run, argv, tasks=tasks.names())


if __name__ == "__main__":
    raise SystemExit(main())
