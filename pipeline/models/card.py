"""MODEL_CARD.md for a trained task, from its model.json and the evaluation (Mitchell et al., 2019)."""

from __future__ import annotations

from typing import Any

from pipeline.models.train import TaskModel

INTENDED = {
    "zombie": "ranks accounts by how likely they are fake profiles (zombies): created in bulk or bought, "
    "not run by the person they claim to be",
    "like_farm": "ranks accounts by how likely they sell likes in a like farm: coordinated bursts of likes on bought pages",
}


def model_card(model: TaskModel, summary: dict[str, Any], intervals: dict[str, Any], segments: dict[str, Any], bars: dict[str, Any]) -> str:
    full = summary.get("full", {})
    best_other = max(
        ((name, ms["average_precision"]["mean"]) for name, ms in summary.items() if name != "full"),
        key=lambda kv: kv[1],
        default=("none", float("nan")),
    )
    lines = [
        f"# Model card: ZombieScan `{model.task}`",
        "",
        "## Intended use",
        f"LightGBM binary classifier that {INTENDED.get(model.task, model.task)}. It is a triage tool for an integrity "
        "team: a flag starts a human review; it is not an automated verdict on a person.",
        "",
        "## Data",
        f"- Label `{model.info.get('label')}`; {model.info.get('train_rows')} training rows, {model.info.get('train_positives')} positive.",
        f"- Split: {model.info.get('split', {}).get('method')} ({model.info.get('split', {}).get('folds')} folds); farms and creation "
        "batches never straddle training and test (docs/models.md).",
        f"- Features: {len(model.features)} columns of the profile_, beh_, graph_ and lock_ families (docs/features.md); data hash "
        f"`{model.info.get('data_hash')}`.",
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
        f"Best ablation or baseline by average precision: `{best_other[0]}` ({best_other[1]:.3f}); see the comparison report.",
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
        "- Trained on simulated accounts unless stated otherwise: real platforms differ "
        "(docs/simulator.md lists what the simulator models).",
        "- Graph and lockstep features depend on the engagement context given: scoring a small slice of a platform changes them.",
        "- New evasion styles (slower farms, aged accounts with real histories) drift away from what was trained on.",
        "",
        "## Ethical notes",
        "A false positive is a real person whose account is limited or removed. Review flags before acting, give an appeal route, "
        "prefer the precision-oriented threshold rule (`threshold_rule: precision`) for automated enforcement, and watch the "
        "false-positive rate per user group: new and low-activity users resemble fresh zombies on profile features.",
        "",
    ]
    return "\n".join(lines)
