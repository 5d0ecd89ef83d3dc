"""Leakage-free splits of the labelled accounts into folds (docs/models.md#splits).

Three methods, chosen in params (`split.method`):

- `group`: stratified group K-fold. Accounts linked by a farm (`farm_id`) or a zombie creation
  batch (`batch_id`) form one group, and a group never straddles folds: a model is never tested
  on the farm mates or batch mates of accounts it was trained on.
- `cohort`: by creation cohort. Groups whose first account was created at or after the cut-off
  are the test fold (0); the earlier ones are split into the other folds by group. It is *not* an
  out-of-time split: the features of every account still describe all engagements up to the
  reference time, so a test account's features see the same period as the training accounts'.
- `kfold`: stratified K-fold, no groups (small real datasets without farm or batch ids).

The output has one row per labelled account: account_id, group, fold, and the label columns, so
training reads features and this table and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from pipeline import tasks
from pipeline.errors import ZombieScanError
from pipeline.params import parse_utc_time

METHODS = ("group", "cohort", "kfold")


@dataclass(frozen=True)
class SplitParams:
    method: str = "group"
    folds: int = 5
    seed: int = 42
    cohort_cutoff: datetime | None = None  # method cohort; None = the 80th percentile of creation times


def split_params(values: dict[str, Any]) -> SplitParams:
    if "time_cutoff" in values:
        raise ZombieScanError("split.time_cutoff: renamed split.cohort_cutoff (the split is by creation cohort, not out of time)")
    known = set(SplitParams.__dataclass_fields__) | {"out"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ZombieScanError(f"split: unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known))}")
    return SplitParams(
        method=str(values.get("method", "group")),
        folds=int(values.get("folds", 5)),
        seed=int(values.get("seed", 42)),
        cohort_cutoff=parse_utc_time(values.get("cohort_cutoff"), "split.cohort_cutoff"),
    )


def groups_of(labels: pl.DataFrame) -> pl.Series:
    """Group id per account: accounts sharing a farm or a creation batch, transitively, are one group."""
    n = labels.height
    links = [c for c in ("farm_id", "batch_id") if c in labels.columns]
    rows, cols = [np.arange(n)], [np.arange(n)]
    offset = n
    for column in links:
        codes = labels[column].cast(pl.Categorical).to_physical().to_numpy()
        known = ~labels[column].is_null().to_numpy()
        rows.append(np.flatnonzero(known))
        cols.append(offset + codes[known].astype(np.int64))
        offset += int(codes[known].max()) + 1 if known.any() else 0
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(offset, offset))
    _, component = connected_components(graph, directed=False)
    # name each group after its smallest account id, so group names do not depend on row order
    frame = pl.DataFrame({"account_id": labels["account_id"], "c": component[:n]})
    return frame.with_columns(group=pl.col("account_id").min().over("c"))["group"]


def make_split(labels: pl.DataFrame, accounts: pl.DataFrame, params: SplitParams) -> pl.DataFrame:
    """Assign every labelled account to a fold 0..folds-1; see the module docstring for the methods."""
    if params.method == "time":
        raise ZombieScanError(
            "split.method: 'time' is now 'cohort' (and split.time_cutoff is split.cohort_cutoff): it splits accounts by "
            "creation time, but every account's features see all engagements up to the reference time, so it is not out of time"
        )
    if params.method not in METHODS:
        raise ZombieScanError(f"split.method: {params.method!r} is not one of {', '.join(METHODS)}")
    if params.folds < 3:
        raise ZombieScanError(f"split.folds: expected at least 3 (test, validation and training folds), got {params.folds}")
    label_columns = tasks.label_columns()
    missing = [c for c in ("account_id", *(t.label for t in tasks.BUILT_IN)) if c not in labels.columns]
    if missing:
        raise ZombieScanError(f"labels: missing column(s) {', '.join(missing)}")
    # a registered task's label the data does not carry is unknown for every account
    labels = labels.with_columns(pl.lit(None, pl.Boolean).alias(c) for c in label_columns if c not in labels.columns)
    labels = labels.sort("account_id")
    if labels.is_empty():
        raise ZombieScanError("labels: no labelled accounts to split")
    group = groups_of(labels) if params.method != "kfold" else labels["account_id"]
    # stratify on every task's label at once (one bit each, the first task's the highest: 2^tasks
    # classes); unknown labels count as negative here
    strata = np.zeros(labels.height, dtype=np.int64)
    for column in label_columns:
        strata = strata * 2 + labels[column].fill_null(False).cast(pl.Int64).to_numpy()
    fold = np.full(labels.height, -1, dtype=np.int64)
    if params.method == "cohort":
        created = labels.select("account_id").join(
            accounts.select("account_id", "created_at"), on="account_id", how="left", maintain_order="left"
        )["created_at"]
        if created.null_count():
            raise ZombieScanError("split: some labelled accounts have no creation time in accounts; method cohort needs it")
        cutoff = params.cohort_cutoff or created.quantile(0.8, "nearest")
        first = pl.DataFrame({"group": group, "created_at": created}).with_columns(first=pl.col("created_at").min().over("group"))
        test = (first["first"] >= cutoff).to_numpy()
        if test.all() or not test.any():
            raise ZombieScanError(f"split.cohort_cutoff: {cutoff} leaves {'no' if not test.any() else 'only'} accounts for testing")
        fold[test] = 0
        rest = np.flatnonzero(~test)
        fold[rest] = 1 + _group_folds(group.to_numpy()[rest], strata[rest], params.folds - 1, params.seed)
    elif params.method == "group":
        fold = _group_folds(group.to_numpy(), strata, params.folds, params.seed)
    else:
        folds = StratifiedKFold(n_splits=params.folds, shuffle=True, random_state=params.seed)
        try:
            for k, (_, test_idx) in enumerate(folds.split(np.zeros(labels.height), strata)):
                fold[test_idx] = k
        except ValueError as exc:
            raise ZombieScanError(f"split: cannot make {params.folds} stratified folds from {labels.height} accounts ({exc})") from None
    keep = [c for c in ("account_id", *label_columns, "segment") if c in labels.columns]
    return labels.select(keep).with_columns(group=group, fold=pl.Series(fold, dtype=pl.Int64))


def _group_folds(group: np.ndarray, strata: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold per row, whole groups per fold, class balance kept as well as groups allow."""
    out = np.full(len(group), -1, dtype=np.int64)
    if folds < 2:
        out[:] = 0
        return out
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    try:
        for k, (_, test_idx) in enumerate(splitter.split(np.zeros(len(group)), strata, group)):
            out[test_idx] = k
    except ValueError as exc:
        raise ZombieScanError(
            f"split: cannot make {folds} group folds from {len(np.unique(group))} groups ({exc}); use fewer folds or method kfold"
        ) from None
    return out


def evaluation_folds(split: pl.DataFrame, method: str) -> list[int]:
    """Folds evaluated as test sets: every fold, or only fold 0 (the youngest cohort) for the cohort split."""
    return [0] if method == "cohort" else sorted(split["fold"].unique().to_list())


def roles(split: pl.DataFrame, test_fold: int) -> np.ndarray:
    """'train', 'valid' or 'test' per row for one test fold; validation is the next fold after it (cyclically)."""
    others = [f for f in sorted(split["fold"].unique().to_list()) if f != test_fold]
    if not others:
        raise ZombieScanError("split: need at least two folds")
    valid = min((f for f in others if f > test_fold), default=others[0])
    fold = split["fold"].to_numpy()
    return np.where(fold == test_fold, "test", np.where(fold == valid, "valid", "train"))
