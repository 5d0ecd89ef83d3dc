"""Simulated worlds as labelled feature tables, and models measured across them.

The instrument behind the `transfer` stage (train on worlds of other seeds, test on this one)
and the `robustness` stage (detection as farms get stealthier): each world goes through exactly
the pipeline's path — simulate, ingest (every contract check), features — in a scratch folder,
and comes back as one frame of features, labels, segment and group-kept folds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.features.build import featurize_warehouse
from pipeline.features.lockstep import LockstepParams
from pipeline.ingest import ingest
from pipeline.io import scratch_dir
from pipeline.models.split import SplitParams, make_split, roles
from pipeline.models.train import TaskModel, TaskParams, feature_columns, fit_task, to_matrix
from pipeline.simulate import SimConfig, WorldStyle, simulate, write_contract

log = logging.getLogger(__name__)


@dataclass
class World:
    """A simulated world's labelled accounts: features, labels, segment, group and fold."""

    seed: int
    data: pl.DataFrame


def world_data(
    preset: str, cfg: SimConfig, style: WorldStyle, *, lockstep: LockstepParams, split: SplitParams, scratch: Path | None = None
) -> World:
    """Simulate `cfg` with `style`, ingest and featurize it as the pipeline does; split its labelled accounts."""
    with scratch_dir("zombiescan-world-", scratch) as root:
        tables = simulate(cfg, style)
        write_contract(tables, root / "sim", cfg, preset, style)
        ingest(root / "sim", root / "w.duckdb")
        featurize_warehouse(root / "w.duckdb", root / "features", lockstep_params=lockstep)
        features = pl.read_parquet(root / "features" / "features.parquet")
    folds = make_split(tables["labels"], tables["accounts"], split)
    data = folds.join(features, on="account_id", how="inner", maintain_order="left").sort("account_id")
    return World(cfg.seed, data)


def pooled(worlds: list[World]) -> pl.DataFrame:
    """Worlds stacked into one frame; account ids and groups are prefixed by the world's seed so they never collide."""
    frames = [
        w.data.with_columns(
            pl.format("{}:{}", pl.lit(w.seed), pl.col("account_id")).alias("account_id"),
            pl.format("{}:{}", pl.lit(w.seed), pl.col("group")).alias("group"),
        )
        for w in worlds
    ]
    return pl.concat(frames, how="diagonal_relaxed")


def fit_across(task: str, p: TaskParams, train: pl.DataFrame, *, valid_fold: int = 0) -> TaskModel:
    """The shipped model's recipe on pooled worlds: fold `valid_fold` (whole groups) stops and calibrates, the rest trains."""
    valid = train.filter(pl.col("fold") == valid_fold)
    return fit_task(task, p, train.filter(pl.col("fold") != valid_fold), valid, features=feature_columns(train))


def average_precision_by_fold(model: TaskModel, data: pl.DataFrame, label: str) -> list[float]:
    """The model's average precision on each fold of `data`, on its calibrated probabilities as the
    evaluate stage measures (isotonic calibration ties scores); a fold with one class is skipped."""
    out = []
    for fold in sorted(data["fold"].unique().to_list()):
        rows = data.filter(pl.col("fold") == fold)
        y = rows[label].cast(pl.Int8).to_numpy()
        if len(np.unique(y)) == 2:
            out.append(float(average_precision_score(y, model.calibration.apply(model.raw_scores(to_matrix(rows, model.features))))))
    return out


def cross_validated(
    task: str, p: TaskParams, data: pl.DataFrame, *, families: tuple[str, ...] | None = None, segment: str | None = None
) -> dict[str, Any]:
    """In-world AP and ROC-AUC: for each test fold, train on the others (the next fold stops and
    calibrates), score the test fold. With `segment`, also the AP of that segment's positives
    against all negatives, out of fold (e.g. adaptive_farm)."""
    data = data.filter(pl.col(p.label).is_not_null())
    features = feature_columns(data, families)
    aps, aucs = [], []
    oof = np.full(data.height, np.nan)
    for fold in sorted(data["fold"].unique().to_list()):
        role = roles(data, fold)
        train, valid, test = (data.filter(pl.Series(role == r)) for r in ("train", "valid", "test"))
        if any(frame[p.label].n_unique() < 2 for frame in (train, valid)):
            log.warning("%s: fold %d skipped: its training or validation rows hold one class (too few groups in a small world)", task, fold)
            continue
        model = fit_task(task, p, train, valid, features=features)
        scores = model.raw_scores(to_matrix(test, features))
        oof[role == "test"] = scores
        y = test[p.label].cast(pl.Int8).to_numpy()
        if len(np.unique(y)) == 2:
            aps.append(float(average_precision_score(y, scores)))
            aucs.append(float(roc_auc_score(y, scores)))
    out: dict[str, Any] = {
        "average_precision": _mean_std(aps),
        "roc_auc": _mean_std(aucs),
        "positives": int(data[p.label].sum()),
        "accounts": data.height,
    }
    if segment is not None and "segment" in data.columns:
        y = data[p.label].cast(pl.Int8).to_numpy()
        has = data["segment"].fill_null("").str.contains(segment).to_numpy() & (y == 1)
        keep = has | (y == 0)
        if has.any():
            out["segment"] = {
                "name": segment,
                "positives": int(has.sum()),
                "average_precision": float(average_precision_score(has[keep].astype(int), oof[keep])),
            }
    return out


def _mean_std(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(a.mean()) if len(a) else float("nan"),
        "std": float(a.std(ddof=1)) if len(a) > 1 else float("nan"),
        "n_folds": len(a),
    }


def single_threaded(p: TaskParams) -> TaskParams:
    """Small worlds train as fast on one thread, and one thread cannot stall when other jobs share the cores."""
    return replace(p, lightgbm={**p.lightgbm, "num_threads": 1})
