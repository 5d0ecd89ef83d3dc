"""The benchmark's evaluation protocol: repeated stratified K-fold (or the dataset's own splits), no leakage.

For each outer training part, everything that is fitted is fitted on it alone:

- K-fold data: an inner stratified K-fold over the training part ("cross-fitting"). Each inner
  model is the P3 model (`fit_task`: LightGBM, early stopping on its inner validation fold); the
  calibration and the threshold are fitted on the inner out-of-fold scores, so they see every
  training row exactly once and no test row. The test score is the mean of the inner models'
  raw scores. On small datasets this uses all training rows for training and for the threshold,
  instead of sacrificing a fixed validation fold.
- Fixed splits (data that ships them): train on `train`, stop early, calibrate and choose the
  threshold on `valid`, measure on `test`, exactly as the published methods did. A split without
  a `valid` part (train and test files, Kaggle style): the cross-fitting above on `train`, measured
  on `test`.
- Group-aware K-fold (`groups`): the same, with StratifiedGroupKFold outside and inside, so an
  account's group (`pipeline.benchmark.groups`) is never on both sides of any split.

Every shuffle (outer folds, inner folds, LightGBM's seed) starts at `Protocol.seed_offset`, so
another offset gives folds and models nobody has looked at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

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


def _kfold(n_splits: int, seed: int, y: np.ndarray, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold, or stratified group K-fold when `groups` is given (a group never on both sides)."""
    x = np.zeros(len(y))
    if groups is None:
        return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x, y))
    return list(StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x, y, groups))


def outer_runs(
    y: np.ndarray, protocol: Protocol, seeds: int | None = None, groups: np.ndarray | None = None
) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(seed, fold, train rows, test rows) of the repeated stratified (group) K-fold."""
    runs = []
    for seed in range(protocol.seeds if seeds is None else seeds):
        try:
            for fold, (train, test) in enumerate(_kfold(protocol.folds, protocol.seed_offset + seed, y, groups)):
                runs.append((seed, fold, train, test))
        except ValueError as exc:
            kind = "stratified group" if groups is not None else "stratified"
            raise ZombieScanError(f"benchmark: cannot make {protocol.folds} {kind} folds ({exc})") from None
    return runs


def _raw(model: TaskModel, frame: pl.DataFrame) -> np.ndarray:
    return model.raw_scores(to_matrix(frame, model.features))


def crossfit(
    task: str,
    p: TaskParams,
    train: pl.DataFrame,
    test: pl.DataFrame,
    features: list[str],
    *,
    inner_folds: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Calibrated test probabilities and the threshold, everything fitted on `train` only (module docstring).

    `groups` (one per training row): the inner folds keep groups whole too, so the threshold is
    chosen on scores of groups the scoring models did not see, as the test rows will be.
    """
    y = train[p.label].cast(pl.Int8).to_numpy()
    oof = np.zeros(train.height)
    test_raw = np.zeros(test.height)
    for inner_train, inner_valid in _kfold(inner_folds, seed, y, groups):
        fit_rows, stop_rows = train[inner_train], train[inner_valid]
        model = fit_task(task, p, fit_rows, stop_rows, features=features)
        oof[inner_valid] = _raw(model, stop_rows)
        test_raw += _raw(model, test) / inner_folds
    calibration = Calibration.fit(p.calibration, oof, y)
    threshold, _ = choose_threshold(calibration.apply(oof), y, p.threshold_rule, p.threshold_precision)
    return calibration.apply(test_raw), threshold


def score_variant(p: TaskParams, train: pl.DataFrame, test: pl.DataFrame, column: str) -> tuple[np.ndarray, float]:
    """An unsupervised column as the score: calibration and threshold fitted on the training part.

    An account the score says nothing about (null: e.g. REV2's fairness of an account that rated
    no one) gets the training part's mean score, which is what REV2's own cold-start prior gives
    it; a fill of 0 would rank every such account as the least suspicious."""
    y = train[p.label].cast(pl.Int8).to_numpy()
    x_tr, x_te = (unsupervised_score(f[column], train[column]) for f in (train, test))
    calibration = Calibration.fit("isotonic", x_tr, y)
    threshold, _ = choose_threshold(calibration.apply(x_tr), y, p.threshold_rule, p.threshold_precision)
    return calibration.apply(x_te), threshold


def unsupervised_score(values: pl.Series, reference: pl.Series) -> np.ndarray:
    """`values` as floats, nulls and NaNs filled with the mean of `reference`'s known values (0 if none is known)."""
    known = reference.cast(pl.Float64).fill_nan(None).drop_nulls()
    fill = float(known.mean()) if known.len() else 0.0  # type: ignore[arg-type]
    return values.cast(pl.Float64).fill_nan(None).fill_null(fill).to_numpy()


def evaluate_dataset(
    task: str,
    p: TaskParams,
    data: pl.DataFrame,
    protocol: Protocol,
    variants: list[Variant],
    splits: pl.DataFrame | None = None,
    groups: pl.DataFrame | None = None,
) -> list[FoldResult]:
    """Test metrics per variant and run. `data`: account_id, the label column, the features.

    With `splits` (account_id, split, role) the shipped splits are used (without a `valid` part:
    cross-fitting inside `train`, one run per split); with `groups`
    (account_id, group) the repeated stratified group K-fold; else the repeated stratified K-fold.
    The first variant is the full model; the others (ablations, unsupervised scores) run on the
    first `protocol.ablation_seeds` seeds' folds.
    """
    if splits is not None and groups is not None:
        raise ZombieScanError("benchmark: shipped splits and groups exclude each other; give one")
    data = data.filter(pl.col(p.label).is_not_null())
    group_of: np.ndarray | None = None
    if groups is not None:
        joined = data.select("account_id").join(groups, on="account_id", how="left", maintain_order="left")["group"]
        if joined.null_count():
            raise ZombieScanError(f"benchmark: {joined.null_count()} labelled account(s) have no group")
        group_of = joined.to_numpy()
    y = data[p.label].cast(pl.Int8).to_numpy()
    if len(np.unique(y)) < 2:
        raise ZombieScanError(f"benchmark: {p.label} has only one class in this data; nothing to evaluate")
    # One thread: two OpenMP threads stall when other processes share the cores (seen: a fit on
    # 24k honeypot rows in 0.4-0.5 s with one thread, 3.5-9.7 s with two on a busy 2-core
    # machine), and with deterministic=True the models are the same either way.
    p = replace(p, lightgbm={"num_threads": 1, **p.lightgbm})
    if protocol.max_rounds:
        p = replace(p, num_boost_round=min(p.num_boost_round, protocol.max_rounds))
    results: list[FoldResult] = []
    if splits is not None:
        n_splits = splits["split"].n_unique()
        for k in range(min(n_splits, protocol.fixed_splits or n_splits)):
            split_k = splits.filter(pl.col("split") == k)
            roles = data.select("account_id").join(split_k, on="account_id", how="left", maintain_order="left")["role"]
            train, valid, test = (data.filter(roles == r) for r in ("train", "valid", "test"))
            for role, part in (("train", train), ("test", test)):
                if part.height == 0:
                    raise ZombieScanError(f"benchmark: shipped split {k} has no labelled account in its {role} part")
            y_te = test[p.label].cast(pl.Int8).to_numpy()
            shuffle = protocol.seed_offset + k
            for variant in variants:  # one model per split and variant: ablations run on every split
                if variant.column:
                    prob, threshold = score_variant(p, train.vstack(valid), test, variant.column)
                elif valid.height == 0:  # train and test only: cross-fitting inside train, as for K-fold data
                    prob, threshold = crossfit(
                        task,
                        replace(p, seed=p.seed + shuffle),
                        train,
                        test,
                        variant.columns(data),
                        inner_folds=protocol.inner_folds,
                        seed=shuffle,
                    )
                else:
                    model = fit_task(task, replace(p, seed=p.seed + k), train, valid, features=variant.columns(data))
                    prob, threshold = model.calibration.apply(_raw(model, test)), model.threshold
                results.append(FoldResult(variant.name, k, metrics(y_te, prob, threshold), threshold))
            log.info("%s: split %d done", task, k)
        return results
    for seed, fold, train_rows, test_rows in outer_runs(y, protocol, groups=group_of):
        train, test = data[train_rows], data[test_rows]
        y_te = y[test_rows]
        shuffle = protocol.seed_offset + seed
        for i, variant in enumerate(variants):
            if i > 0 and seed >= protocol.ablation_seeds:
                continue
            if variant.column:
                prob, threshold = score_variant(p, train, test, variant.column)
            else:
                prob, threshold = crossfit(
                    task,
                    replace(p, seed=p.seed + shuffle),
                    train,
                    test,
                    variant.columns(data),
                    inner_folds=protocol.inner_folds,
                    seed=shuffle,
                    groups=None if group_of is None else group_of[train_rows],
                )
            results.append(FoldResult(variant.name, seed * protocol.folds + fold, metrics(y_te, prob, threshold), threshold))
        log.info("%s: seed %d fold %d done", task, seed, fold)
    return results
