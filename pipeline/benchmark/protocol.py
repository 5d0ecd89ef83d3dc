"""The benchmark's evaluation protocol: repeated stratified K-fold (or the dataset's own splits), no leakage.

For each outer training part, everything that is fitted is fitted on it alone:

- K-fold data: an inner stratified K-fold over the training part ("cross-fitting"). Each inner
  model is the P3 model (`fit_task`: LightGBM, early stopping on its inner validation fold); the
  calibration and the threshold are fitted on the inner out-of-fold scores, so they see every
  training row exactly once and no test row. The test score is the mean of the inner models'
  raw scores. On small datasets this uses all training rows for training and for the threshold,
  instead of sacrificing a fixed validation fold.
- Fixed splits (data that ships them): train on `train`, stop early, calibrate and choose the
  threshold on `valid`, measure on `test`, exactly as the published methods did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from sklearn.model_selection import StratifiedKFold

from pipeline.errors import ZombieScanError
from pipeline.models.evaluate import FoldResult, metrics
from pipeline.models.train import Calibration, TaskModel, TaskParams, choose_threshold, fit_task, to_matrix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    """How a dataset is evaluated (params.yaml: benchmark)."""

    seeds: int = 3  # repeats of the outer K-fold, each with its own shuffle
    folds: int = 5
    inner_folds: int = 4
    fixed_splits: int | None = None  # use only the first N shipped splits (None: all)
    max_rounds: int | None = None  # cap on boosting rounds (the fast subset)
    ablation_seeds: int = 1  # K-fold data: ablations run on the first seed's folds only (cost)
    seed_offset: int = 0  # shuffle seeds start here: another offset gives folds nobody has looked at


@dataclass(frozen=True)
class Variant:
    """A row of a dataset's table: LightGBM on some feature families, or one unsupervised column as the score."""

    name: str
    families: tuple[str, ...] = ()
    column: str = ""

    def columns(self, frame: pl.DataFrame) -> list[str]:
        if self.column:
            return [self.column]
        return [c for c in frame.columns if c.startswith(self.families)]


def outer_runs(y: np.ndarray, protocol: Protocol, seeds: int | None = None) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(seed, fold, train rows, test rows) of the repeated stratified K-fold."""
    runs = []
    for seed in range(protocol.seeds if seeds is None else seeds):
        splitter = StratifiedKFold(n_splits=protocol.folds, shuffle=True, random_state=protocol.seed_offset + seed)
        try:
            for fold, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
                runs.append((seed, fold, train, test))
        except ValueError as exc:
            raise ZombieScanError(f"benchmark: cannot make {protocol.folds} stratified folds ({exc})") from None
    return runs


def _raw(model: TaskModel, frame: pl.DataFrame) -> np.ndarray:
    return model.raw_scores(to_matrix(frame, model.features))


def crossfit(
    task: str, p: TaskParams, train: pl.DataFrame, test: pl.DataFrame, features: list[str], *, inner_folds: int, seed: int
) -> tuple[np.ndarray, float]:
    """Calibrated test probabilities and the threshold, everything fitted on `train` only (module docstring)."""
    y = train[p.label].cast(pl.Int8).to_numpy()
    oof = np.zeros(train.height)
    test_raw = np.zeros(test.height)
    splitter = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=seed)
    for inner_train, inner_valid in splitter.split(np.zeros(len(y)), y):
        fit_rows, stop_rows = train[inner_train], train[inner_valid]
        model = fit_task(task, p, fit_rows, stop_rows, features=features)
        oof[inner_valid] = _raw(model, stop_rows)
        test_raw += _raw(model, test) / inner_folds
    calibration = Calibration.fit(p.calibration, oof, y)
    threshold, _ = choose_threshold(calibration.apply(oof), y, p.threshold_rule, p.threshold_precision)
    return calibration.apply(test_raw), threshold


def score_variant(p: TaskParams, train: pl.DataFrame, test: pl.DataFrame, column: str) -> tuple[np.ndarray, float]:
    """An unsupervised column as the score: calibration and threshold fitted on the training part."""
    y = train[p.label].cast(pl.Int8).to_numpy()
    x_tr, x_te = (f[column].cast(pl.Float64).fill_nan(None).fill_null(0.0).to_numpy() for f in (train, test))
    calibration = Calibration.fit("isotonic", x_tr, y)
    threshold, _ = choose_threshold(calibration.apply(x_tr), y, p.threshold_rule, p.threshold_precision)
    return calibration.apply(x_te), threshold


def evaluate_dataset(
    task: str,
    p: TaskParams,
    data: pl.DataFrame,
    protocol: Protocol,
    variants: list[Variant],
    splits: pl.DataFrame | None = None,
) -> list[FoldResult]:
    """Test metrics per variant and run. `data`: account_id, the label column, the features.

    With `splits` (account_id, split, role) the shipped splits are used, else the repeated
    stratified K-fold. The first variant is the full model; the others (ablations, unsupervised
    scores) run on the first `protocol.ablation_seeds` seeds' folds.
    """
    data = data.filter(pl.col(p.label).is_not_null())
    y = data[p.label].cast(pl.Int8).to_numpy()
    if len(np.unique(y)) < 2:
        raise ZombieScanError(f"benchmark: {p.label} has only one class in this data; nothing to evaluate")
    # Below ~20k rows one thread is as fast as two, and it cannot stall the way OpenMP threads
    # do when other processes share the cores (seen: 0.1 s per boosting round on 1k rows).
    p = replace(p, lightgbm={"num_threads": 1 if data.height < 20_000 else 2, **p.lightgbm})
    if protocol.max_rounds:
        p = replace(p, num_boost_round=min(p.num_boost_round, protocol.max_rounds))
    results: list[FoldResult] = []
    if splits is not None:
        n_splits = splits["split"].n_unique()
        for k in range(min(n_splits, protocol.fixed_splits or n_splits)):
            split_k = splits.filter(pl.col("split") == k)
            roles = data.select("account_id").join(split_k, on="account_id", how="left", maintain_order="left")["role"]
            train, valid, test = (data.filter(roles == r) for r in ("train", "valid", "test"))
            y_te = test[p.label].cast(pl.Int8).to_numpy()
            for variant in variants:  # one model per split and variant: ablations run on every split
                if variant.column:
                    prob, threshold = score_variant(p, train.vstack(valid), test, variant.column)
                else:
                    model = fit_task(task, replace(p, seed=p.seed + k), train, valid, features=variant.columns(data))
                    prob, threshold = model.calibration.apply(_raw(model, test)), model.threshold
                results.append(FoldResult(variant.name, k, metrics(y_te, prob, threshold), threshold))
            log.info("%s: split %d done", task, k)
        return results
    for seed, fold, train_rows, test_rows in outer_runs(y, protocol):
        train, test = data[train_rows], data[test_rows]
        y_te = y[test_rows]
        for i, variant in enumerate(variants):
            if i > 0 and seed >= protocol.ablation_seeds:
                continue
            if variant.column:
                prob, threshold = score_variant(p, train, test, variant.column)
            else:
                prob, threshold = crossfit(
                    task, replace(p, seed=p.seed + seed), train, test, variant.columns(data), inner_folds=protocol.inner_folds, seed=seed
                )
            results.append(FoldResult(variant.name, seed * protocol.folds + fold, metrics(y_te, prob, threshold), threshold))
        log.info("%s: seed %d fold %d done", task, seed, fold)
    return results
