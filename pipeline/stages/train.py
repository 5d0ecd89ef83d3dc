"""Stage train@<task>: features + split -> models/<task>/model.txt and model.json, tracked in MLflow.

The shipped model trains on the folds other than test fold 0 and its validation fold, stops
early, and is calibrated and thresholded on that validation fold (docs/models.md).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import tasks
from pipeline.datasets.spec import find_spec, load_spec
from pipeline.errors import ZombieScanError
from pipeline.features.lockstep import LockstepParams
from pipeline.io import scratch_dir
from pipeline.models.split import roles
from pipeline.models.tracking import data_hash, dvc_lock_hashes, mlflow_run
from pipeline.models.train import TaskModel, TaskParams, fit_task, write_untrained
from pipeline.params import section
from pipeline.simulate import describe, from_params
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def simulated_tasks(params: dict[str, Any]) -> list[str]:
    """The tasks this run trains whose labels the simulator draws (the transfer and robustness stages' subjects)."""
    return [t.name for t in tasks.configured(params) if t.simulated]


def task_params(params: dict[str, Any], task: str) -> TaskParams:
    """train.<task>, with the dataset spec's `train` overrides when the pipeline runs on one (data.spec)."""
    values = dict(section(params, "train")[task])
    spec_path = (params.get("data") or {}).get("spec")
    if spec_path:
        spec = load_spec(find_spec(spec_path))
        if spec.task == task:
            values.update(spec.train)
    return TaskParams.from_params(task, values)


def training_source(params: dict[str, Any]) -> dict[str, Any]:
    """What the model learned from, for model.json (`trained_on`): a simulated world (preset, seed,
    full config and the style drawn for it) or a dataset spec. `zombiescan score` and the model card
    say plainly when it is a simulated world."""
    spec_path = (params.get("data") or {}).get("spec")
    if spec_path:
        spec = load_spec(find_spec(spec_path))
        return {"kind": "dataset", "spec": str(spec_path), "name": spec.name, "task": spec.task}
    return describe(*from_params(section(params, "simulate")))


def load_data(params: dict[str, Any], label: str | None = None) -> tuple[pl.DataFrame, Path, Path]:
    """Labelled accounts with their features and fold (only those whose `label` is known); and the two files they came from."""
    features_path = Path(section(params, "featurize")["out"]) / "features.parquet"
    split_path = Path(section(params, "split")["out"])
    for path, how in ((features_path, "dvc repro featurize"), (split_path, "dvc repro split")):
        if not path.is_file():
            raise ZombieScanError(f"{path}: missing; run `{how}` first")
    features = pl.read_parquet(features_path)
    split = pl.read_parquet(split_path)
    if label is not None and label not in split.columns:
        raise ZombieScanError(f"{split_path}: no label column {label!r}; columns are {', '.join(split.columns)}")
    data = split.join(features, on="account_id", how="inner").sort("account_id")
    if label is not None:
        data = data.filter(pl.col(label).is_not_null())
    if data.is_empty():
        raise ZombieScanError(f"{split_path} and {features_path}: no labelled account has features")
    return data, features_path, split_path


def model_dir(params: dict[str, Any], task: str) -> Path:
    return Path(section(params, "train")["models"]) / task


def untrainable(params: dict[str, Any], label: str) -> str | None:
    """Why the data cannot train this task (no known labels, or one class only); None if it can.

    A real dataset labels one task (docs/datasets.md): the other task is then skipped, not failed,
    so `dvc repro` runs through on it.
    """
    split_path = Path(section(params, "split")["out"])
    if not split_path.is_file():
        return None  # load_data names the missing file
    known = pl.read_parquet(split_path, columns=[label])[label].drop_nulls()
    if known.is_empty():
        return f"the data has no {label} labels"
    if known.n_unique() < 2:
        return f"every known {label} label is {known[0]}; nothing to learn"
    return None


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


def model_importance(model: TaskModel) -> pl.DataFrame:
    """Gain importance per feature, largest first."""
    booster = model.booster
    assert booster is not None
    return pl.DataFrame(
        {"feature": booster.feature_name(), "gain": booster.feature_importance("gain"), "splits": booster.feature_importance("split")}
    ).sort("gain", descending=True)


def main(argv: list[str] | None = None) -> int:
    return stage_main("train", run, argv, tasks=tasks.names())


if __name__ == "__main__":
    raise SystemExit(main())
