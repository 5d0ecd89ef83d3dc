"""Honest evaluation of one task: the model, its ablations and baselines, on the same test folds.

Every variant goes through the same steps for each test fold: fit on the training folds, calibrate
and choose the threshold on the validation fold, measure on the test fold. Nothing is fitted on
test rows. Metrics are reported as mean and standard deviation over the test folds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.features.families import ablations, prefixes
from pipeline.models.split import evaluation_folds, roles
from pipeline.models.train import Calibration, TaskModel, TaskParams, choose_threshold, feature_columns, fit_task, to_matrix

log = logging.getLogger(__name__)

METRICS = ("roc_auc", "average_precision", "f1", "precision", "recall", "accuracy", "recall_at_1pct_fpr", "brier")


@dataclass(frozen=True)
class Variant:
    """One row of the comparison table."""

    name: str
    kind: str  # lightgbm | logreg | score (an unsupervised feature used as the score)
    families: tuple[str, ...] = ()
    column: str = ""
    what: str = ""


def comparison_variants() -> tuple[Variant, ...]:
    """The comparison table's rows: the full model, the ablations (generated from the family list,
    pipeline.features.families.ablations), then the baselines."""
    return (
        Variant("full", "lightgbm", prefixes(), what="LightGBM, all families (the shipped model)"),
        *(Variant(name, "lightgbm", families, what=what) for name, families, what in ablations()),
        *BASELINES,
    )


BASELINES = (
    Variant("logreg_profile", "logreg", ("profile_",), what="baseline: logistic regression on profile features"),
    Variant("dense_block_score", "score", column="lock_dense_block_score", what="baseline: unsupervised FRAUDAR-style score alone"),
    Variant("lockstep_share", "score", column="lock_share", what="baseline: unsupervised lockstep share alone"),
)


def recall_at_fpr(y: np.ndarray, p: np.ndarray, fpr: float = 0.01) -> float:
    """Largest true-positive rate reachable with a false-positive rate of at most `fpr`."""
    f, t, _ = roc_curve(y, p, drop_intermediate=False)  # the dropped points can be the best one under fpr
    return float(t[f <= fpr].max()) if (f <= fpr).any() else 0.0


def metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Test metrics of calibrated probabilities `p` at `threshold`."""
    flagged = p >= threshold
    tp = float((flagged & (y == 1)).sum())
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / y.sum() if y.sum() else 0.0
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, p)) if both else float("nan"),
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "precision": precision,
        "recall": recall,
        "accuracy": float((flagged == (y == 1)).mean()) if len(y) else float("nan"),
        "recall_at_1pct_fpr": recall_at_fpr(y, p) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
    }


@dataclass
class FoldResult:
    variant: str
    fold: int
    metrics: dict[str, float]
    threshold: float


def _fit_variant(variant: Variant, task: str, p: TaskParams, train: pl.DataFrame, valid: pl.DataFrame) -> Any:
    """A fitted scorer: frame -> raw scores."""
    if variant.kind == "lightgbm":
        model = fit_task(task, p, train, valid, features=feature_columns(train, variant.families))
        return lambda frame: model.raw_scores(to_matrix(frame, model.features))
    if variant.kind == "logreg":
        columns = feature_columns(train, variant.families)
        lr = make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(class_weight="balanced", max_iter=2000),
        )
        lr.fit(to_matrix(train, columns).astype(np.float64), train[p.label].cast(pl.Int8).to_numpy())
        return lambda frame: lr.decision_function(to_matrix(frame, columns).astype(np.float64))
    return lambda frame: frame[variant.column].cast(pl.Float64).fill_null(0.0).to_numpy()


def evaluate_task(
    task: str,
    p: TaskParams,
    data: pl.DataFrame,
    method: str,
    *,
    shipped: TaskModel | None = None,
    variants: tuple[Variant, ...] | None = None,
) -> tuple[list[FoldResult], pl.DataFrame]:
    """Results per variant and test fold (or seed, for the cohort split), and the `full` variant's test predictions.

    The predictions cover every test fold (out of fold: each account scored by the model that did
    not train on it, at that model's threshold); rows of fold 0 are the shipped model's.

    `data` is features joined with the split (account_id, label columns, segment, fold). The
    `full` variant on fold 0 is `shipped` when given (the model the train stage saved, trained on
    the same folds), so the predictions below are the saved model's.
    """
    data = data.filter(pl.col(p.label).is_not_null())
    results: list[FoldResult] = []
    out_of_fold: list[pl.DataFrame] = []
    chosen = variants if variants is not None else comparison_variants()
    # A cohort split has one test fold: the spread then comes from 3 training seeds instead.
    runs = [(0, p.seed + i) for i in range(3)] if method == "cohort" else [(f, p.seed) for f in evaluation_folds(data, method)]
    for run, (fold, seed) in enumerate(runs):
        role = roles(data, fold)
        train, valid, test = (data.filter(pl.Series(role == r)) for r in ("train", "valid", "test"))
        y_va, y_te = (f[p.label].cast(pl.Int8).to_numpy() for f in (valid, test))
        for variant in chosen:
            if variant.kind == "score" and variant.column not in data.columns:
                continue
            if variant.name == "full" and run == 0 and shipped is not None:
                scorer = lambda frame: shipped.raw_scores(to_matrix(frame, shipped.features))  # noqa: E731
            else:
                scorer = _fit_variant(variant, task, replace(p, seed=seed), train, valid)
            raw_va, raw_te = scorer(valid), scorer(test)
            calibration = Calibration.fit(p.calibration, raw_va, y_va)
            threshold, _ = choose_threshold(calibration.apply(raw_va), y_va, p.threshold_rule, p.threshold_precision)
            p_test = calibration.apply(raw_te)
            results.append(FoldResult(variant.name, fold, metrics(y_te, p_test, threshold), threshold))
            if variant.name == "full" and (run == 0 or method != "cohort"):
                keep = [c for c in ("account_id", p.label, "segment") if c in test.columns]
                out_of_fold.append(
                    test.select(keep).with_columns(
                        fold=pl.lit(fold, pl.Int64),
                        p=pl.Series(p_test),
                        raw_score=pl.Series(raw_te),
                        flagged=pl.Series(p_test >= threshold),
                    )
                )
        log.info("%s: test fold %d, seed %d done", task, fold, seed)
    return results, pl.concat(out_of_fold) if out_of_fold else pl.DataFrame()


def fold_statistics(values: list[float] | np.ndarray) -> dict[str, float]:
    """{mean, std, n_folds, n_nan} of one metric over test folds.

    `n_folds` counts every fold; `n_nan` the folds where the metric is undefined (ROC-AUC of a test
    fold with one class), so such a fold is reported, never dropped in silence. `mean` and `std`
    are over the other folds; `std` is the sample standard deviation (ddof 1): the folds are a
    sample of the splits one could have drawn. With fewer than two defined folds `std` is NaN (one
    fold says nothing about the spread; 0 would claim there is none), and with none `mean` is NaN.
    Both to SIGNIFICANT_DIGITS.
    """
    x = np.asarray(values, dtype=np.float64)
    finite = x[~np.isnan(x)]
    mean = float(finite.mean()) if len(finite) else float("nan")
    std = float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")
    return {"mean": _significant(mean), "std": _significant(std), "n_folds": len(x), "n_nan": len(x) - len(finite)}


# Fold means and stds are kept to this many digits: the logistic-regression baselines fit through
# BLAS, whose kernels differ by CPU (AVX2, AVX-512), and their Brier score moved in the 16th digit
# between two machines, so `dvc repro` rewrote metrics/*.json with nothing changed.
SIGNIFICANT_DIGITS = 10


def _significant(x: float) -> float:
    """`x` rounded to SIGNIFICANT_DIGITS (NaN and infinities unchanged)."""
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def summarise(results: list[FoldResult]) -> dict[str, dict[str, dict[str, float]]]:
    """variant -> metric -> {mean, std, n_folds, n_nan} (see `fold_statistics`)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in dict.fromkeys(r.variant for r in results):
        rows = [r for r in results if r.variant == name]
        out[name] = {m: fold_statistics([r.metrics[m] for r in rows]) for m in METRICS}
    return out


def segment_metrics(predictions: pl.DataFrame, label: str) -> dict[str, dict[str, float]]:
    """For each segment of the positives (e.g. aged_zombie, stealthy_farm): recall at the threshold, and
    ROC-AUC / average precision of that segment's positives against all negatives."""
    if "segment" not in predictions.columns or predictions.is_empty():
        return {}
    y = predictions[label].cast(pl.Int8).to_numpy()
    negatives = y == 0
    tokens = predictions["segment"].fill_null("").str.split("+")
    out = {}
    for token in sorted({t for ts in tokens.to_list() for t in ts if t and t != "genuine"}):
        has = tokens.list.contains(token).to_numpy() & (y == 1)
        if not has.any():
            continue
        keep = has | negatives
        yy, pp = y[keep], predictions["p"].to_numpy()[keep]
        out[token] = {
            "positives": int(has.sum()),
            "recall": float(predictions["flagged"].to_numpy()[has].mean()),
            "roc_auc": float(roc_auc_score(yy, pp)),
            "average_precision": float(average_precision_score(yy, pp)),
        }
    return out


def bootstrap_intervals(y: np.ndarray, p: np.ndarray, threshold: float, n: int, seed: int) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals of the test metrics of the shipped model."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) < 2:
            continue
        for k, v in metrics(y[idx], p[idx], threshold).items():
            draws.setdefault(k, []).append(v)
    return {k: [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))] for k, v in draws.items()}


def comparison_markdown(
    task: str, summary: dict[str, dict[str, dict[str, float]]], segments: dict[str, dict[str, float]], guard: dict[str, Any] | None = None
) -> str:
    """The side-by-side table a reader looks at first."""
    what = {v.name: v.what for v in comparison_variants()}
    n = next(iter(summary.values()))["roc_auc"]["n_folds"] if summary else 0
    lines = [
        f"# {task}: model, ablations and baselines",
        "",
        f"Test metrics, mean ± std over {n} test fold(s) (or training seeds, for the cohort split); calibration and "
        "thresholds chosen on each run's validation fold.",
        "",
        "| variant | what | " + " | ".join(METRICS) + " |",
        "|---|---|" + "---:|" * len(METRICS),
    ]
    for name, ms in summary.items():
        cells = " | ".join(f"{ms[m]['mean']:.3f} ± {ms[m]['std']:.3f}" for m in METRICS)
        lines.append(f"| {name} | {what.get(name, '')} | {cells} |")
    if segments:
        lines += [
            "",
            "Subgroups of the positives (the full model, out of fold over all test folds; each against all negatives):",
            "",
            "| segment | positives | recall at threshold | ROC-AUC | average precision |",
            "|---|---:|---:|---:|---:|",
        ]
        for seg, s in segments.items():
            lines.append(f"| {seg} | {s['positives']} | {s['recall']:.3f} | {s['roc_auc']:.3f} | {s['average_precision']:.3f} |")
    if guard:
        lines += guard_markdown(guard)
    return "\n".join(lines) + "\n"


def guard_markdown(guard: dict[str, Any]) -> list[str]:
    """The giveaway guard's section of the comparison report (pipeline.models.guard)."""
    limits = guard["limits"]["max_tree_auc"]
    lines = [
        "",
        "## Giveaway guard",
        "",
        "Can a shallow rule or a one-sided trait tell the classes apart? Decision trees over all features, out of fold:",
        "",
        "| tree depth | ROC-AUC | limit |",
        "|---:|---:|---:|",
    ]
    for depth, tree in guard["trees"].items():
        lines.append(f"| {depth} | {tree['roc_auc']:.3f} | {limits.get(depth, '')} |")
    shares = sorted(guard["presence"].items(), key=lambda kv: -abs(kv[1]["positives"] - kv[1]["negatives"]))[:8]
    lines += [
        "",
        "Features whose presence (non-zero share) differs most between the classes; flagged when absent in one "
        f"class and common in the other: {', '.join(guard['flagged']) or 'none'}.",
        "",
        "| feature | positives non-zero | negatives non-zero |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {v['positives']:.3f} | {v['negatives']:.3f} |" for name, v in shares]
    if guard["violations"]:
        lines += ["", "**Violations:**", ""] + [f"- {v.splitlines()[0]}" for v in guard["violations"]]
    return lines


def single_feature_aucs(data: pl.DataFrame, label: str, top: int = 5) -> list[dict[str, Any]]:
    """The columns that alone separate the classes best (ROC-AUC, either direction): a task that one
    column solves (AUC > 0.99) says the simulator is too easy, not that the model is good."""
    data = data.filter(pl.col(label).is_not_null())
    y = data[label].cast(pl.Int8).to_numpy()
    if len(np.unique(y)) < 2:
        return []
    out: list[dict[str, Any]] = []
    for column in feature_columns(data):
        x = data[column].cast(pl.Float64).fill_nan(None).fill_null(strategy="min").fill_null(0.0).to_numpy()
        auc = float(roc_auc_score(y, x))
        out.append({"feature": column, "roc_auc": max(auc, 1.0 - auc)})
    return sorted(out, key=lambda r: -r["roc_auc"])[:top]
