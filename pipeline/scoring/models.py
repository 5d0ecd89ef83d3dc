"""The task models `zombiescan score` loads: from a model folder, or from the MLflow registry."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline import tasks
from pipeline.errors import ZombieScanError
from pipeline.models.train import TaskModel, untrained_reason


def load_models(model_dir: Path) -> tuple[dict[str, TaskModel], dict[str, str]]:
    """The task models in `model_dir/<task>/` (model.txt + model.json), and a version string for each.

    A task whose model.json says it was not trained (the data had no labels for it) is left out;
    no trained model at all is an error.
    """
    models, versions, skipped = {}, {}, []
    for task in tasks.names():
        folder = model_dir / task
        reason = untrained_reason(folder)
        if reason is not None:
            skipped.append(f"{task}: {reason}")
            continue
        models[task] = TaskModel.load(folder)
        # the model file's MD5 (model.json records it too): the same text model, the same version
        digest = hashlib.md5((folder / "model.txt").read_bytes(), usedforsecurity=False).hexdigest()
        versions[task] = f"{folder}#{digest[:12]}"
    if not models:
        raise ZombieScanError(f"{model_dir}: no trained model ({'; '.join(skipped)})")
    return models, versions


def load_registered(uris: list[str], scratch: Path) -> tuple[dict[str, TaskModel], dict[str, str]]:
    """Task models from the MLflow model registry, e.g. `models:/zombiescan-zombie@champion`.

    The evaluate stage logs each model with its model.txt and model.json as extra files, so the
    registered version carries the calibration, threshold and feature list; the task comes from
    model.json. The tracking store is `MLFLOW_TRACKING_URI` (default `sqlite:///mlflow.db`).
    The version string names the registered model and its version number.
    """
    import os

    from pipeline.models.tracking import tracking_uri

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars on stderr
    import mlflow
    from mlflow.exceptions import MlflowException

    if not uris:
        raise ZombieScanError("--model-uri: no URI given (models:/NAME@ALIAS, comma-separated)")
    for uri in uris:  # before touching the store: a typo must not create an empty one
        name, sep, _ = uri.removeprefix("models:/").partition("@")
        if not uri.startswith("models:/") or not name or (not sep and "/" not in name):
            raise ZombieScanError(f"--model-uri: {uri!r} is not a registry URI (models:/NAME@ALIAS or models:/NAME/VERSION)")
    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    models: dict[str, TaskModel] = {}
    versions: dict[str, str] = {}
    for i, uri in enumerate(uris):
        name, sep, ref = uri.removeprefix("models:/").partition("@")  # checked above
        try:
            if sep:
                number = client.get_model_version_by_alias(name, ref).version
            else:
                name, number = name.split("/", 1)
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{number}", dst_path=str(scratch / str(i))))
        except MlflowException as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ZombieScanError(f"--model-uri {uri}: cannot load it from {tracking_uri()} ({first})") from None
        if not (local / "extra_files" / "model.json").is_file():
            raise ZombieScanError(
                f"--model-uri {uri}: version {number} was registered without model.json (threshold, calibration, features); "
                "run `dvc repro` to register a version that has it, or score with --model-dir"
            )
        model = TaskModel.load(local / "extra_files")
        if model.task in models:
            raise ZombieScanError(f"--model-uri: two models for the task {model.task} ({versions[model.task]} and {uri})")
        models[model.task] = model
        versions[model.task] = f"models:/{name}/{number}"
    return models, versions
