"""Stage train@<task>: features + split -> models/<task>/model.txt and model.json, tracked in MLflow.

The shipped model trains on the folds other than test fold 0 and its validation fold, stops
early, and is calibrated and thresholded on that validation fold (docs/models.md).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import polars as pl

from pipeline import tasks
from pipeline.features.lockstep import LockstepParams
from pipeline.io import scratch_dir
from pipeline.models.inputs import load_data, model_dir, task_params, training_source, untrainable
from pipeline.models.split import roles
from pipeline.models.tracking import data_hash, dvc_lock_hashes, mlflow_run
from pipeline.models.train import fit_task, model_importance, write_untrained
from pipeline.params import section
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def run(params: dict[str, Any], task: str) -> None:
    p = task_params(params, task)
    reason = untrainable(params, p.label)
    if reason is not None:
        write_untrained(model_dir(params, task), task, reason)
        log.warning("%s: not trained: %s", task, reason)
        return
    data, features_path, split_path = load_data(params, p.label)
    role = roles(data, 0)
    train, valid = data.filter(pl.Series(role == "train")), data.filter(pl.Series(role == "valid"))
    fingerprint = data_hash(features_path, split_path)
    model = fit_task(task, p, train, valid)
    model.info.update({"data_hash": fingerprint, "split": dict(section(params, "split")), "label": p.label})
    model.info["trained_on"] = training_source(params)
    # the settings the lock_ features were computed with: scoring recomputes them the same way
    model.info["lockstep"] = asdict(LockstepParams.from_dict((params.get("featurize") or {}).get("lockstep")))
    folder = model_dir(params, task)
    model.save(folder)
    log.info("%s: saved %s (%d trees, %d features)", task, folder, model.booster.num_trees(), len(model.features))  # type: ignore[union-attr]

    tags = {"stage": "train", "task": task, "data_hash": fingerprint, **dvc_lock_hashes(features_path.parent, split_path)}
    with mlflow_run(f"train-{task}", tags) as tracker:
        tracker.log_params({"task": task, **p.__dict__, "split": dict(section(params, "split"))})
        tracker.log_metrics({"best_iteration": model.info["best_iteration"], "threshold": model.threshold})
        importance = model_importance(model)
        tracker.log_artifact(folder / "model.json")
        with scratch_dir("zombiescan-train-") as tmp:
            importance.write_csv(tmp / f"{task}-importance.csv")
            tracker.log_artifact(tmp / f"{task}-importance.csv", "importance")
        tracker.log_model(model.booster, train.select(model.features).head(5).cast(pl.Float64).to_pandas())


def main(argv: list[str] | None = None) -> int:
    return stage_main("train", run, argv, tasks=tasks.names())


if __name__ == "__main__":
    raise SystemExit(main())
