"""What a run's models train and are evaluated on: the task settings, the labelled features with
their folds, the model folders, and where the data came from (read from params.yaml's paths).

The train, evaluate, transfer and robustness stages read their inputs through these, so every
stage sees the same rows in the same order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from pipeline import tasks
from pipeline.datasets.spec import find_spec, load_spec
from pipeline.errors import ZombieScanError
from pipeline.models.train import FULL, TaskParams, model_folder
from pipeline.params import section
from pipeline.simulate import describe, from_params


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


def model_dir(params: dict[str, Any], task: str, feature_set: str = FULL) -> Path:
    """models/<task>/ (the full model) or models/<task>-profile/ (`feature_set` profile)."""
    return model_folder(Path(section(params, "train")["models"]), task, feature_set)


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
