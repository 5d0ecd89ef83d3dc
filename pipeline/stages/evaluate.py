"""Stage evaluate@<task>: model, ablations and baselines on the same test folds; metrics, plots, model cards, registry.

The profile-only model (models/<task>-profile/) gets its card too: its metrics are those of the
ablation that trains on the same families, on the same folds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from pipeline import tasks
from pipeline.features.families import ablations
from pipeline.io import atomic_path
from pipeline.models.card import model_card
from pipeline.models.evaluate import (
    Variant,
    bootstrap_intervals,
    comparison_markdown,
    evaluate_task,
    metrics,
    segment_metrics,
    single_feature_aucs,
    summarise,
)
from pipeline.models.guard import GuardLimits, check, giveaway_guard
from pipeline.models.inputs import load_data, model_dir, task_params
from pipeline.models.split import roles
from pipeline.models.tracking import data_hash, dvc_lock_hashes, mlflow_run, register_and_promote, rows_hash
from pipeline.models.train import PROFILE, TaskModel, TaskParams, feature_set_prefixes, model_importance, untrained_reason
from pipeline.params import section
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)
PLOT_HEADERS = {
    "roc.csv": "fpr,tpr",
    "pr.csv": "recall,precision",
    "calibration.csv": "predicted,observed",
    "importance.csv": "feature,gain",
    "scores.csv": "score,negatives,positives",
}


def run(params: dict[str, Any], task: str) -> None:
    p = task_params(params, task)
    method = str(section(params, "split").get("method", "group"))
    cfg = section(params, "evaluate")
    folder = model_dir(params, task)
    profile_folder = model_dir(params, task, PROFILE)
    reason = untrained_reason(folder)
    if reason is not None:
        write_not_evaluated(task, reason, cfg, folder)
        _write(profile_folder / "MODEL_CARD.md", not_trained_card(task, PROFILE, reason))
        return
    data, features_path, split_path = load_data(params, p.label)
    shipped = TaskModel.load(folder)
    results, predictions = evaluate_task(task, p, data, method, shipped=shipped)
    summary = summarise(results)
    segments = segment_metrics(predictions, p.label)
    predictions = predictions.filter(pl.col("fold") == 0)  # the shipped model's test rows
    y, prob = predictions[p.label].cast(pl.Int8).to_numpy(), predictions["p"].to_numpy()
    intervals = bootstrap_intervals(y, prob, shipped.threshold, int(cfg.get("bootstrap", 200)), p.seed)
    bars = {
        m: {"bar": bar, "value": summary["full"][m]["mean"], "met": summary["full"][m]["mean"] >= bar} for m, bar in p.quality_bars.items()
    }
    single = single_feature_aucs(data, p.label)
    limits = GuardLimits.from_params(cfg.get("guard"), task)
    guard = giveaway_guard(data, p.label, limits, seed=p.seed)
    log.info(
        "%s: giveaway guard: shallow trees ROC-AUC %s; %d feature(s) absent in one class",
        task,
        ", ".join(f"depth {d} {t['roc_auc']:.3f}" for d, t in guard["trees"].items()),
        len(guard["flagged"]),
    )
    report = {
        "task": task,
        "split": method,
        "variants": summary,
        "segments": segments,
        "intervals": intervals,
        "quality_bars": bars,
        "best_single_features": single,
        "guard": guard,
    }

    reports = Path(cfg["reports"])
    plots = reports / "plots" / task
    _write(Path(cfg["metrics"]) / f"{task}.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    _write(reports / f"{task}-comparison.md", comparison_markdown(task, summary, segments, guard))
    _write(folder / "MODEL_CARD.md", model_card(shipped, summary, intervals, segments, bars))
    _write(profile_folder / "MODEL_CARD.md", profile_card(task, p, data, method, summary, profile_folder, int(cfg.get("bootstrap", 200))))
    write_plots(plots, y, prob, model_importance(shipped))
    pred_path = Path(cfg["predictions"]) / f"{task}.parquet"
    pred_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(pred_path) as tmp:
        predictions.write_parquet(tmp)
    for name, ms in summary.items():
        log.info(
            "%s %-18s AP %.3f ± %.3f  ROC-AUC %.3f",
            task,
            name,
            ms["average_precision"]["mean"],
            ms["average_precision"]["std"],
            ms["roc_auc"]["mean"],
        )

    # After the files are written (so the numbers that broke it can be read), before the model
    # is registered: a model measured on a world that gives the answer away is no champion.
    simulated = not (params.get("data") or {}).get("spec")
    if limits.enforce and simulated:
        check(task, guard, "the simulated world")
    elif guard["violations"]:
        why = "evaluate.guard.enforce is false" if simulated else "real data is what it is"
        log.warning("%s: giveaway guard violated (reported, not enforced: %s): %s", task, why, "; ".join(guard["violations"]))

    test_hash = data_hash(features_path, split_path)
    test = data.filter(pl.Series(roles(data, 0) == "test"))
    # The champion is chosen on validation rows, never on the test fold whose numbers are reported:
    # a choice made by looking at the test fold would make its numbers a best-of, not a measurement.
    valid = data.filter(pl.Series(roles(data, 0) == "valid"))
    y_valid = valid[p.label].cast(pl.Int8).to_numpy()
    mine = metrics(y_valid, shipped.predict(valid), shipped.threshold)[p.primary_metric]
    tags = {"stage": "evaluate", "task": task, "data_hash": test_hash, **dvc_lock_hashes(features_path.parent, split_path)}
    with mlflow_run(f"evaluate-{task}", tags) as tracker:
        tracker.log_params({"task": task, **p.__dict__, "split": dict(section(params, "split"))})
        tracker.log_metrics({"test": {name: {m: v["mean"] for m, v in ms.items()} for name, ms in summary.items()}, "segments": segments})
        for path in (reports / f"{task}-comparison.md", folder / "MODEL_CARD.md", Path(cfg["metrics"]) / f"{task}.json"):
            tracker.log_artifact(path)
        tracker.log_artifact(profile_folder / "MODEL_CARD.md", profile_folder.name)
        tracker.log_artifact(plots, "plots")
        example = test.select(shipped.features).head(5).cast(pl.Float64).to_pandas()
        # model.txt and model.json travel with the registered model: `zombiescan score --model-uri`
        # needs the calibration, threshold and feature list, not only the booster
        uri = tracker.log_model(shipped.booster, example, extra_files=[folder / "model.txt", folder / "model.json"])
        decision = register_and_promote(task, uri, mine, p.primary_metric, rows_hash(valid, p.label), tracker)
    log.info("%s", decision)


def profile_card(task: str, p: TaskParams, data: pl.DataFrame, method: str, summary: dict[str, Any], folder: Path, bootstrap: int) -> str:
    """MODEL_CARD.md of the profile-only model: the test-fold metrics of the ablation on the same families
    (evaluated here if no ablation reads exactly them), intervals and segments from its own predictions on test fold 0."""
    reason = untrained_reason(folder)
    if reason is not None:
        return not_trained_card(task, PROFILE, reason)
    model = TaskModel.load(folder)
    families = set(feature_set_prefixes(PROFILE))
    variant = next((name for name, prefixes, _ in ablations() if set(prefixes) == families and name in summary), None)
    if variant is None:
        variant = PROFILE
        results, _ = evaluate_task(task, p, data, method, variants=(Variant(variant, "lightgbm", feature_set_prefixes(PROFILE)),))
        summary = {**summary, **summarise(results)}
    test = data.filter(pl.Series(roles(data, 0) == "test"))  # `data` holds labelled rows only (load_data)
    prob = model.predict(test)
    y = test[p.label].cast(pl.Int8).to_numpy()
    keep = [c for c in ("account_id", p.label, "segment") if c in test.columns]
    predictions = test.select(keep).with_columns(p=pl.Series(prob), flagged=pl.Series(prob >= model.threshold))
    bars = {
        m: {"bar": bar, "value": summary[variant][m]["mean"], "met": summary[variant][m]["mean"] >= bar}
        for m, bar in p.quality_bars.items()
    }
    intervals = bootstrap_intervals(y, prob, model.threshold, bootstrap, p.seed)
    return model_card(model, summary, intervals, segment_metrics(predictions, p.label), bars, variant=variant)


def not_trained_card(task: str, feature_set: str, reason: str) -> str:
    return f"# Model card: {task} ({feature_set} features only)\n\nThe {task} {feature_set} model was not trained: {reason}.\n"


def write_not_evaluated(task: str, reason: str, cfg: dict[str, Any], folder: Path) -> None:
    """The stage's outputs for a task the data could not train: each says so (DVC needs them all)."""
    note = f"The {task} model was not trained: {reason}.\n"
    reports = Path(cfg["reports"])
    _write(Path(cfg["metrics"]) / f"{task}.json", json.dumps({"task": task, "trained": False, "reason": reason}, indent=2) + "\n")
    _write(reports / f"{task}-comparison.md", f"# {task}\n\n{note}")
    _write(folder / "MODEL_CARD.md", f"# Model card: {task}\n\n{note}")
    plots = reports / "plots" / task
    for name, header in PLOT_HEADERS.items():
        _write(plots / name, header + "\n")
    pred_path = Path(cfg["predictions"]) / f"{task}.parquet"
    pred_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(pred_path) as tmp:
        pl.DataFrame(schema={"account_id": pl.String, "p": pl.Float64, "flagged": pl.Boolean}).write_parquet(tmp)
    log.warning("%s: not evaluated: %s", task, reason)


def write_plots(folder: Path, y: np.ndarray, p: np.ndarray, importance: pl.DataFrame) -> None:
    """CSV files that `dvc plots show` renders (templates in dvc.yaml)."""
    folder.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
    _write_csv(folder / "roc.csv", pl.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]}))
    precision, recall, _ = precision_recall_curve(y, p)
    keep = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), 400)).astype(int))
    _write_csv(folder / "pr.csv", pl.DataFrame({"recall": recall[keep], "precision": precision[keep]}))
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    _write_csv(folder / "calibration.csv", pl.DataFrame({"predicted": predicted, "observed": observed}))
    _write_csv(folder / "importance.csv", importance.head(25).select("feature", "gain"))
    bins = np.linspace(0, 1, 21)
    neg, _ = np.histogram(p[y == 0], bins)
    pos, _ = np.histogram(p[y == 1], bins)
    _write_csv(
        folder / "scores.csv",
        pl.DataFrame({"score": bins[:-1] + 0.025, "negatives": neg / max(neg.sum(), 1), "positives": pos / max(pos.sum(), 1)}),
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _write_csv(path: Path, frame: pl.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.write_csv(tmp, float_precision=6)


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", run, argv, tasks=tasks.names())


if __name__ == "__main__":
    raise SystemExit(main())
