"""The task models `zombiescan score` loads: from a model folder (the full models, or the profile-only
models for accounts without engagements), or from the MLflow registry."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline import tasks
from pipeline.errors import ZombieScanError
from pipeline.models.train import FULL, TaskModel, beyond_profile, model_folder, untrained_reason


def load_models(model_dir: Path, feature_set: str = FULL) -> tuple[dict[str, TaskModel], dict[str, str]]:
    """The task models of a feature set in `model_dir` (full: `<task>/`, profile: `<task>-profile/`; model.txt +
    model.json), and a version string for each: the folder and the MD5 of its model.txt.

    A task whose model.json says it was not trained (the data had no labels for it) is left out;
    no trained model at all is an error. So is a trained task without its profile model (a model
    folder from before the train stage wrote them).
    """
    models, versions, skipped = {}, {}, []
    for task in tasks.names():
        folder = model_folder(model_dir, task, feature_set)
        reason = untrained_reason(folder) or (untrained_reason(model_folder(model_dir, task)) if feature_set != FULL else None)
        if reason is not None:
            skipped.append(f"{task}: {reason}")
            continue
        if feature_set != FULL and not (folder / "model.json").is_file():
            raise ZombieScanError(
                f"{folder}: missing (a model folder from before the {feature_set}-only models); "
                "run `dvc repro` to train them, or give --engagements"
            )
        model = TaskModel.load(folder)
        if model.info.get("feature_set", FULL) != feature_set:
            raise ZombieScanError(
                f"{folder / 'model.json'}: feature_set is {model.info.get('feature_set', FULL)!r}, expected {feature_set!r} "
                "for this folder; train the models again with `dvc repro`"
            )
        models[task] = model
        # the model file's MD5 (model.json records it too): the same text model, the same version
        digest = hashlib.md5((folder / "model.txt").read_bytes(), usedforsecurity=False).hexdigest()
        versions[task] = f"{folder}#{digest[:12]}"
    if not models:
        raise ZombieScanError(f"{model_dir}: no trained {'' if feature_set == FULL else feature_set + ' '}model ({'; '.join(skipped)})")
    return models, versions


def check_profile_only(models: dict[str, TaskModel], versions: dict[str, str]) -> None:
    """Without engagements only the profile features can be computed: every model must read nothing else."""
    for task, model in models.items():
        beyond = beyond_profile(model.features)
        if beyond:
            raise ZombieScanError(
                f"{versions.get(task, task)}: the {task} model reads {len(beyond)} feature(s) beyond the profile "
                f"({', '.join(beyond[:2])}, ...); give --engagements, or use --model-dir (its <task>-profile/ models)"
            )


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
