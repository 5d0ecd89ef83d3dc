"""MLflow tracking and registry, never at the cost of the model on disk.

The tracking URI comes from `MLFLOW_TRACKING_URI`, default `sqlite:///mlflow.db` in the project
folder, so `mlflow ui --backend-store-uri sqlite:///mlflow.db` shows every run. Any tracking
failure (a read-only store, a locked database, a broken server) is logged as one clear warning
and the stage goes on: the model and reports are already written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import tasks

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT = "zombiescan"
CHAMPION = "champion"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists become their text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, int | float | str | bool) or value is None else str(value)
    return out


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def data_hash(*paths: Path) -> str:
    """MD5 over the files' names and bytes (folders sorted, recursively): same content, same hash.

    Not DVC's own hash format; `dvc_lock_hashes` records that one beside it.
    """
    digest = hashlib.md5(usedforsecurity=False)
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            digest.update(str(f.relative_to(root.parent) if root.is_dir() else f.name).encode())
            with f.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def dvc_lock_hashes(*paths: Path, lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """The MD5s dvc.lock records for these outputs ("dvc_md5.<path>"), as of the run's start.

    Under `dvc repro` the upstream stages have finished and their entries are current; run by
    hand, the lock may describe an older run, which is why `data_hash` is recorded too.
    """
    import yaml

    try:
        stages = yaml.safe_load(lock.read_text()).get("stages", {})
    except (OSError, yaml.YAMLError, AttributeError):
        return {}
    wanted = {str(p).rstrip("/") for p in paths}
    out = {}
    for stage in stages.values():
        for entry in stage.get("outs", []):
            if str(entry.get("path", "")).rstrip("/") in wanted and "md5" in entry:
                out[f"dvc_md5.{entry['path']}"] = str(entry["md5"])
    return out


class Tracker:
    """One MLflow run; every call is guarded, so a tracking failure never stops the stage."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.failed = False

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.failed:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self.failed = True
            message = f"MLflow tracking failed ({what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            message += f"the run is not recorded in {tracking_uri()}, the files on disk are complete"
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            return None

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        flat = flatten(params)
        for start in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
            self._guard("log params", mlflow.log_params, dict(list(flat.items())[start : start + 100]))

    def log_metrics(self, values: dict[str, Any]) -> None:
        import math

        import mlflow

        # MLflow metric names allow letters, digits and _ - . space : / only ("profile+beh" -> "profile_beh")
        clean = {
            re.sub(r"[^A-Za-z0-9_\-. :/]", "_", k): float(v)
            for k, v in flatten(values).items()
            if isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)
        }
        self._guard("log metrics", mlflow.log_metrics, clean)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        import mlflow

        if path.is_dir():
            self._guard("log artifacts", mlflow.log_artifacts, str(path), folder)
        elif path.is_file():
            self._guard("log artifact", mlflow.log_artifact, str(path), folder)

    def log_model(self, booster: Any, input_example: Any, extra_files: list[Path] | None = None) -> str | None:
        """The LightGBM model with its signature, an input example and `extra_files` (kept in the
        model's `extra_files/` folder, so a registry alias brings them along); returns its model URI."""
        import mlflow
        import mlflow.lightgbm
        from mlflow.models import infer_signature

        def log() -> str:
            signature = infer_signature(input_example, booster.predict(input_example.to_numpy()))
            files = [str(p) for p in extra_files or []] or None
            info = mlflow.lightgbm.log_model(booster, name="model", signature=signature, input_example=input_example, extra_files=files)
            return str(info.model_uri)

        return self._guard("log model", log)  # type: ignore[no-any-return,unused-ignore]


@contextmanager
def mlflow_run(run_name: str, tags: dict[str, str]) -> Iterator[Tracker]:
    """An MLflow run in experiment `zombiescan`, tagged with the git commit and `tags`."""
    tracker = Tracker()
    active = False
    try:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri())
        mlflow.set_experiment(EXPERIMENT)
        run = mlflow.start_run(run_name=run_name, tags={"git_commit": git_commit(), **tags})
        tracker.run_id = run.info.run_id
        active = True
    except Exception as exc:
        tracker._guard("start run", _raise, exc)
    try:
        yield tracker
    finally:
        if active:
            import mlflow

            tracker.failed = False  # ending the run is worth a try even after a failed call
            tracker._guard("end run", mlflow.end_run, "FINISHED")


def _raise(exc: Exception) -> None:
    raise exc


def rows_hash(frame: pl.DataFrame, label: str) -> str:
    """Which rows, with which labels, a model was compared on: models compare only on the same ones."""
    rows = frame.select("account_id", pl.col(label).cast(pl.Int8)).sort("account_id")
    return hashlib.md5(rows.write_csv().encode(), usedforsecurity=False).hexdigest()


def register_and_promote(task: str, model_uri: str | None, score: float, metric: str, rows: str, tracker: Tracker) -> str:
    """Register the model; move alias `champion` to it only if it beats the champion on `metric` on the same validation rows.

    Each version is tagged with its `metric` and `validation_rows` (a hash of the validation
    accounts and their labels: the rows the choice is made on, never the test rows whose numbers
    are reported). A champion measured on other rows cannot be compared: the alias then stays.
    Returns a one-line decision for the log.
    """
    if model_uri is None or tracker.failed:
        return "not registered (tracking unavailable)"

    def run() -> str:
        from mlflow import MlflowClient, register_model
        from mlflow.exceptions import MlflowException

        client = MlflowClient()
        name = tasks.get(task).registry_name
        version = register_model(model_uri, name)
        # repr: the exact float, so that the same model evaluated again ties with itself (a tag
        # rounded to 6 digits made a score just above the rounding "beat" its own champion)
        client.set_model_version_tag(name, version.version, metric, repr(float(score)))
        client.set_model_version_tag(name, version.version, "validation_rows", rows)
        try:
            current = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            current = None  # no champion yet
        if current is not None:
            if current.tags.get("validation_rows") != rows or metric not in current.tags:
                return f"{name} v{version.version}: champion v{current.version} was measured on other validation rows; alias kept"
            theirs = float(current.tags[metric])
            if score <= theirs:
                beaten = f"{metric} {score:.4f} does not beat champion v{current.version} ({theirs:.4f})"
                return f"{name} v{version.version}: {beaten}; alias kept"
        client.set_registered_model_alias(name, CHAMPION, version.version)
        return f"{name} v{version.version}: {metric} {score:.4f} -> alias {CHAMPION}"

    return str(tracker._guard("register model", run) or "not registered (tracking failed)")
