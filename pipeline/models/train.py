"""Train one task's LightGBM classifier: early stopping, calibration and threshold on validation data.

Every task (pipeline.tasks) goes through `fit_task`; tasks differ only in params (`train.<task>`
in params.yaml). Training takes frames and returns a `TaskModel`, so the evaluate stage, the
benchmark and notebooks fit exactly this way; `TaskModel.save`/`load` write and read a model's
folder (model.txt + model.json, checked by pipeline.models.files before LightGBM sees them).

Each task has two feature sets (`FEATURE_SETS`): `full` (every family, `models/<task>/`) and
`profile` (the families computed from the accounts table alone, `models/<task>-profile/`), which
`zombiescan score` uses for accounts that come without engagements.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve

from pipeline import tasks
from pipeline.errors import ZombieScanError
from pipeline.features.families import FAMILIES, prefixes
from pipeline.io import atomic_path
from pipeline.models.files import check_meta, read_meta, read_model_text

log = logging.getLogger(__name__)

MODEL_FORMAT = 1

FULL, PROFILE = "full", "profile"
FEATURE_SETS = (FULL, PROFILE)  # model.json `feature_set`; a model.json without one is a full model


def feature_set_prefixes(feature_set: str) -> tuple[str, ...]:
    """The families a feature set reads: `full` every family; `profile` the account's own families that
    need no engagements (pipeline.features.families: the profile_ family today)."""
    if feature_set == FULL:
        return prefixes()
    if feature_set == PROFILE:
        return tuple(f.prefix for f in FAMILIES if f.role == "own" and not f.engagements)
    raise ZombieScanError(f"feature set {feature_set!r}: expected one of {', '.join(FEATURE_SETS)}")


def model_folder(root: Path, task: str, feature_set: str = FULL) -> Path:
    """Where a task's model of a feature set lives: `root/<task>/`, `root/<task>-profile/`."""
    if feature_set not in FEATURE_SETS:
        raise ZombieScanError(f"feature set {feature_set!r}: expected one of {', '.join(FEATURE_SETS)}")
    return root / (task if feature_set == FULL else f"{task}-{feature_set}")


def beyond_profile(features: list[str]) -> list[str]:
    """The features among `features` outside the profile feature set (empty: the accounts table alone gives them all)."""
    return [c for c in features if not c.startswith(feature_set_prefixes(PROFILE))]


@dataclass(frozen=True)
class TaskParams:
    """Settings of one task (params.yaml: train.<task>); the label column is the task's (pipeline.tasks)."""

    label: str
    num_leaves: int = 31
    learning_rate: float = 0.05
    min_child_samples: int = 20
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    lightgbm: dict[str, Any] = field(default_factory=dict)  # any other LightGBM parameter
    num_boost_round: int = 2000
    early_stopping_rounds: int = 50
    class_weight: str = "balanced"  # balanced: scale_pos_weight = negatives / positives; none
    calibration: str = "isotonic"  # isotonic | platt | none
    threshold_rule: str = "max_f1"  # max_f1 | precision (reach threshold_precision, then max recall)
    threshold_precision: float = 0.99
    primary_metric: str = "average_precision"
    quality_bars: dict[str, float] = field(default_factory=dict)  # metric -> floor, reported as met or not
    seed: int = 42

    @classmethod
    def from_params(cls, task: str, values: dict[str, Any]) -> TaskParams:
        known = cls.__dataclass_fields__
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ZombieScanError(f"train.{task}: unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(known)}")
        label = tasks.get(task).label
        if values.get("label", label) != label:
            raise ZombieScanError(
                f"train.{task}.label: {values['label']!r}, but the task reads {label!r} (pipeline/tasks.py); leave the setting out"
            )
        p = cls(**{**values, "label": label})
        for name, value, allowed in (
            ("class_weight", p.class_weight, ("balanced", "none")),
            ("calibration", p.calibration, ("isotonic", "platt", "none")),
            ("threshold_rule", p.threshold_rule, ("max_f1", "precision")),
            ("primary_metric", p.primary_metric, ("average_precision", "roc_auc", "f1", "precision", "recall", "recall_at_1pct_fpr")),
        ):
            if value not in allowed:
                raise ZombieScanError(f"train.{task}.{name}: {value!r} is not one of {', '.join(allowed)}")
        return p


@dataclass
class Calibration:
    """Maps raw scores to probabilities; stored as plain numbers (JSON), never pickled."""

    method: str  # isotonic | platt | none (the logistic function of LightGBM's raw score)
    x: list[float] = field(default_factory=list)  # isotonic: knots
    y: list[float] = field(default_factory=list)
    a: float = 1.0  # platt: p = 1 / (1 + exp(-(a * score + b)))
    b: float = 0.0

    @classmethod
    def fit(cls, method: str, scores: np.ndarray, y: np.ndarray) -> Calibration:
        if method == "none" or len(np.unique(y)) < 2:
            return cls("none")
        if method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
            return cls("isotonic", x=iso.X_thresholds_.tolist(), y=iso.y_thresholds_.tolist())
        lr = LogisticRegression(C=1e6).fit(scores.reshape(-1, 1), y)
        return cls("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))

    def apply(self, scores: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(scores, self.x, self.y)
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.a * scores + self.b)))
        return 1.0 / (1.0 + np.exp(-np.asarray(scores, dtype=np.float64)))


def choose_threshold(p: np.ndarray, y: np.ndarray, rule: str, target_precision: float = 0.99) -> tuple[float, str]:
    """Operating threshold on validation probabilities, and a note saying how it was reached."""
    if y.sum() == 0:
        return 0.5, "no positives in validation data: 0.5"
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    if rule == "precision":
        ok = np.flatnonzero(precision >= target_precision)
        if len(ok):
            best = ok[np.argmax(recall[ok])]
            return float(thresholds[best]), f"lowest threshold with validation precision >= {target_precision}"
        note = f"validation precision never reaches {target_precision}; fell back to max F1"
    else:
        note = "max F1 on validation data"
    return float(thresholds[int(np.argmax(f1))]), note


def feature_columns(frame: pl.DataFrame, families: tuple[str, ...] | None = None) -> list[str]:
    """Model inputs: the columns of the given families (prefixes; default: every family), in the features table's order."""
    return [c for c in frame.columns if c.startswith(families if families is not None else prefixes())]


def to_matrix(frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    """Contiguous float32 matrix (nulls as NaN), LightGBM's native input."""
    return np.ascontiguousarray(frame.select(pl.col(features).cast(pl.Float32)).to_numpy(), dtype=np.float32)


@dataclass
class TaskModel:
    """A trained task: booster (or a baseline's scorer), calibration, threshold and what it was trained on."""

    task: str
    features: list[str]
    dtypes: list[str]
    booster: lgb.Booster | None
    calibration: Calibration
    threshold: float
    threshold_note: str
    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    def raw_scores(self, x: np.ndarray) -> np.ndarray:
        if self.booster is None:
            raise ZombieScanError(f"{self.task}: this model has no booster")
        return np.asarray(self.booster.predict(x, raw_score=True), dtype=np.float64)

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Calibrated probabilities for the rows of a features frame (columns checked by name and type)."""
        check_features(frame, self.features, self.dtypes, self.task)
        return self.calibration.apply(self.raw_scores(to_matrix(frame, self.features)))

    def meta_json(self) -> str:
        """model.json: features with dtypes (in order), calibration, threshold, params, provenance."""
        meta = {
            "format": MODEL_FORMAT,
            "task": self.task,
            "features": [{"name": n, "dtype": d} for n, d in zip(self.features, self.dtypes, strict=True)],
            "calibration": self.calibration.__dict__,
            "threshold": self.threshold,
            "threshold_note": self.threshold_note,
            "params": self.params,
            **self.info,
        }
        if self.booster is not None:
            meta["model_txt_md5"] = hashlib.md5(self.booster.model_to_string().encode(), usedforsecurity=False).hexdigest()
        return json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"

    def save(self, folder: Path) -> None:
        """model.txt (LightGBM text format) and model.json, each written atomically."""
        if self.booster is None:
            raise ZombieScanError(f"{self.task}: only LightGBM models are saved")
        folder.mkdir(parents=True, exist_ok=True)
        # model.json names the MD5 of model.txt, so a crash between the two writes is caught on load
        with atomic_path(folder / "model.txt") as tmp:
            tmp.write_text(self.booster.model_to_string())
        with atomic_path(folder / "model.json") as tmp:
            tmp.write_text(self.meta_json())

    @classmethod
    def load(cls, folder: Path) -> TaskModel:
        """Read a model folder; every file is checked before LightGBM parses it (models/files.py)."""
        meta_path, model_path = folder / "model.json", folder / "model.txt"
        for path in (meta_path, model_path):
            if not path.is_file():
                raise ZombieScanError(f"{path}: missing; train the model with `dvc repro` first")
        meta = read_meta(meta_path)
        if meta.get("trained") is False:
            raise ZombieScanError(f"{meta_path}: the {meta.get('task')} model was not trained: {meta.get('reason')}")
        if meta.get("format") != MODEL_FORMAT:
            raise ZombieScanError(f"{meta_path}: model format {meta.get('format')}, this code reads format {MODEL_FORMAT}")
        check_meta(meta, meta_path)
        text = read_model_text(model_path, [f["name"] for f in meta["features"]])
        if meta.get("model_txt_md5") != hashlib.md5(text.encode(), usedforsecurity=False).hexdigest():
            raise ZombieScanError(f"{model_path} and {meta_path} do not belong together (MD5 differs); train the model again")
        skip = {"format", "task", "features", "calibration", "threshold", "threshold_note", "params", "model_txt_md5"}
        info = {k: v for k, v in meta.items() if k not in skip}
        return cls(
            task=meta["task"],
            features=[f["name"] for f in meta["features"]],
            dtypes=[f["dtype"] for f in meta["features"]],
            booster=lgb.Booster(model_str=text),
            calibration=Calibration(**meta["calibration"]),
            threshold=float(meta["threshold"]),
            threshold_note=meta["threshold_note"],
            params=meta["params"],
            info=info,
        )


def write_untrained(folder: Path, task: str, reason: str, feature_set: str = FULL) -> None:
    """The model files of a task the data could not train: model.json says why, and loading it is a clear error."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": MODEL_FORMAT, "task": task, "feature_set": feature_set, "trained": False, "reason": reason}
    with atomic_path(folder / "model.txt") as tmp:
        tmp.write_text(f"# {task}: not trained: {reason}\n")
    with atomic_path(folder / "model.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


def untrained_reason(folder: Path) -> str | None:
    """The reason model.json gives for a model that was not trained; None for a trained one."""
    path = folder / "model.json"
    if not path.is_file():
        return None
    meta = read_meta(path)
    return str(meta.get("reason")) if meta.get("trained") is False else None


def check_features(frame: pl.DataFrame, features: list[str], dtypes: list[str], task: str) -> None:
    """The frame must carry the model's features, by name and type; anything else is a clear error."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ZombieScanError(
            f"{task} model: the features lack {len(missing)} column(s) the model was trained on: {', '.join(missing[:5])}"
        )
    wrong = [(f, d, str(frame.schema[f])) for f, d in zip(features, dtypes, strict=True) if str(frame.schema[f]) != d]
    if wrong:
        f, d, got = wrong[0]
        raise ZombieScanError(f"{task} model: feature {f} has type {got}, the model was trained on {d} ({len(wrong)} mismatched)")


def lightgbm_params(p: TaskParams, y_train: np.ndarray) -> dict[str, Any]:
    """LightGBM settings: reproducible (seed, deterministic, row-wise), imbalance handled as params say."""
    params: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "min_child_samples": p.min_child_samples,
        "feature_fraction": p.feature_fraction,
        "bagging_fraction": p.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": p.lambda_l2,
        "verbosity": -1,
        "num_threads": 2,
        **p.lightgbm,
        "seed": p.seed,
        "deterministic": True,
        "force_row_wise": True,
    }
    if p.class_weight == "balanced":
        positives = max(int(y_train.sum()), 1)
        params["scale_pos_weight"] = (len(y_train) - positives) / positives
    return params


def fit_task(
    task: str,
    p: TaskParams,
    train: pl.DataFrame,
    valid: pl.DataFrame,
    *,
    features: list[str] | None = None,
) -> TaskModel:
    """Train on `train`, stop early, calibrate and pick the threshold on `valid` (rows with a known label only)."""
    train, valid = (f.filter(pl.col(p.label).is_not_null()) for f in (train, valid))
    if features is None:
        features = feature_columns(train)
    if not features:
        raise ZombieScanError(f"{task}: no feature columns to train on")
    y_tr, y_va = (f[p.label].cast(pl.Int8).to_numpy() for f in (train, valid))
    if y_tr.sum() == 0 or y_tr.sum() == len(y_tr):
        raise ZombieScanError(f"{task}: the training rows hold only one class of {p.label}; nothing to learn")
    params = lightgbm_params(p, y_tr)
    x_tr, x_va = to_matrix(train, features), to_matrix(valid, features)
    dtrain = lgb.Dataset(x_tr, y_tr, feature_name=features, free_raw_data=True)
    dvalid = lgb.Dataset(x_va, y_va, reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=p.num_boost_round,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)],
    )
    booster.free_dataset()
    raw_va = np.asarray(booster.predict(x_va, raw_score=True, num_iteration=booster.best_iteration), dtype=np.float64)
    # Keep only the trees early stopping chose, so model.txt predicts exactly what was validated.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    calibration = Calibration.fit(p.calibration, raw_va, y_va)
    threshold, note = choose_threshold(calibration.apply(raw_va), y_va, p.threshold_rule, p.threshold_precision)
    log.info("%s: %d trees, threshold %.3f (%s)", task, booster.num_trees(), threshold, note)
    return TaskModel(
        task=task,
        features=features,
        dtypes=[str(train.schema[f]) for f in features],
        booster=booster,
        calibration=calibration,
        threshold=threshold,
        threshold_note=note,
        params={**params, "num_boost_round": p.num_boost_round, "early_stopping_rounds": p.early_stopping_rounds},
        info={"best_iteration": int(booster.num_trees()), "train_rows": len(y_tr), "train_positives": int(y_tr.sum())},
    )


def model_importance(model: TaskModel) -> pl.DataFrame:
    """Gain importance per feature, largest first."""
    booster = model.booster
    assert booster is not None
    return pl.DataFrame(
        {"feature": booster.feature_name(), "gain": booster.feature_importance("gain"), "splits": booster.feature_importance("split")}
    ).sort("gain", descending=True)
