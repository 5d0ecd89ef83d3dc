"""MODEL_CARD.md for a trained task, from its model.json and the evaluation (Mitchell et al., 2019)."""

from __future__ import annotations

from typing import Any

from pipeline import tasks
from pipeline.features.families import present
from pipeline.models.train import PROFILE, TaskModel


def model_card(
    model: TaskModel,
    summary: dict[str, Any],
    intervals: dict[str, Any],
    segments: dict[str, Any],
    bars: dict[str, Any],
    variant: str = "full",
) -> str:
    """The card of `model`, whose test-fold metrics are `summary[variant]` (the profile model's: its ablation's)."""
    full = summary.get(variant, {})
    best_other = max(
        ((name, ms["average_precision"]["mean"]) for name, ms in summary.items() if name != variant),
        key=lambda kv: kv[1],
        default=("none", float("nan")),
    )
    profile_only = model.info.get("feature_set") == PROFILE
    families = present(model.features)
    names = [f.prefix for f in families]
    family_text = f"{', '.join(names[:-1])} and {names[-1]} families" if len(names) > 1 else f"{''.join(names)} family"
    lines = [
        f"# Model card: ZombieScan `{model.task}`" + (" (profile features only)" if profile_only else ""),
        "",
        "## Intended use",
        f"LightGBM binary classifier that {tasks.get(model.task).purpose}. It is a triage tool for an integrity "
        "team: a flag starts a human review; it is not an automated verdict on a person.",
        "",
        *(
            [
                "It reads the account's profile alone, no engagements: `zombiescan score` uses it for an accounts file "
                "given without `--engagements` (a bulk profile export). With engagements, the full model scores every "
                f"account. Its metrics are those of the `{variant}` ablation, the same training on the same folds.",
                "",
            ]
            if profile_only
            else []
        ),
        *source_warning(model),
        "## Data",
        f"- Trained on: {trained_on_text(model.info.get('trained_on'))}.",
        f"- Label `{model.info.get('label')}`; {model.info.get('train_rows')} training rows, {model.info.get('train_positives')} positive.",
        f"- Split: {model.info.get('split', {}).get('method')} ({model.info.get('split', {}).get('folds')} folds); farms and creation "
        "batches never straddle training and test (docs/models.md).",
        f"- Features: {len(model.features)} columns of the {family_text} (docs/features.md); data hash `{model.info.get('data_hash')}`.",
        "",
        "## Metrics (test folds)",
        "",
        "| metric | mean ± std over folds | 95% bootstrap interval (shipped model, fold 0) |",
        "|---|---:|---:|",
    ]
    for metric, value in full.items():
        ci = intervals.get(metric)
        ci_text = f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        lines.append(f"| {metric} | {value['mean']:.3f} ± {value['std']:.3f} | {ci_text} |")
    lines += [
        "",
        f"Best {'ablation or baseline' if variant == 'full' else 'other variant'} by average precision: `{best_other[0]}` "
        f"({best_other[1]:.3f}); see the comparison report.",
        "",
        "Quality bars: " + ", ".join(f"{k} ≥ {v['bar']} → {v['value']:.3f} ({'met' if v['met'] else 'NOT met'})" for k, v in bars.items()),
        "",
        "## Threshold",
        f"{model.threshold:.4f} on the calibrated probability ({model.calibration.method} calibration); rule: {model.threshold_note}.",
        "",
        "## Known failure modes",
    ]
    if segments:
        weakest = min(segments.items(), key=lambda kv: kv[1]["recall"])
        lines.append(
            f"- Recall is lowest on `{weakest[0]}` ({weakest[1]['recall']:.3f} at the threshold; "
            + ", ".join(f"{k} {v['recall']:.3f}" for k, v in segments.items())
            + ")."
        )
    lines += [
        "- A model is only as true as the data it learned from: on a simulated world, a simulated platform's habits "
        "(docs/simulator.md lists what the simulator models; reports/transfer.md measures how a model carries to other "
        "simulated styles).",
        *(
            ["- Graph and lockstep features depend on the engagement context given: scoring a small slice of a platform changes them."]
            if any(f.role == "relational" for f in families)
            else []
        ),
        "- New evasion styles (slower farms, aged accounts with real histories) drift away from what was trained on.",
        "",
        "## Ethical notes",
        "A false positive is a real person whose account is limited or removed. Review flags before acting, give an appeal route, "
        "prefer the precision-oriented threshold rule (`threshold_rule: precision`) for automated enforcement, and watch the "
        "false-positive rate per user group: new and low-activity users resemble fresh zombies on profile features.",
        "",
    ]
    return "\n".join(lines)


def trained_on_text(source: dict[str, Any] | None) -> str:
    """One line on what a model learned from (model.json `trained_on`)."""
    if not source:
        return "not recorded (a model from before model.json recorded its source)"
    if source.get("kind") == "dataset":
        return f"the dataset spec `{source.get('spec')}` ({source.get('name')})"
    return (
        f"a simulated world, not real accounts (preset `{source.get('preset')}`, seed {source.get('seed')}, "
        f"{source.get('accounts'):,} accounts; its knobs and drawn style are in model.json)"
    )


def simulated(model: TaskModel) -> bool:
    """True when the model learned from the simulator, or does not say what it learned from."""
    return (model.info.get("trained_on") or {}).get("kind") != "dataset"


def simulated_warning(task: str) -> str:
    """What `zombiescan score` and the model card say about a model trained on a simulated world."""
    return (
        f"the {task} model was trained on a simulated world, not on real accounts: its scores rank accounts by "
        "what the simulator's fakes do; retrain on your platform's own labelled accounts "
        "(docs/datasets.md#bring-your-own-data) before acting on a flag"
    )


def source_warning(model: TaskModel) -> list[str]:
    """The card's warning block for a model from a simulated world (empty for one trained on a dataset)."""
    if not simulated(model):
        return []
    return [f"> **Simulated data.** {simulated_warning(model.task).capitalize()}.", ""]
