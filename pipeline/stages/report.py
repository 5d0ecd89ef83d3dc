"""Stage report: the run's outputs -> report.out (reports/summary.html), one self-contained page.

It also prints the figures a researcher checks first (the headline AP per task, the giveaway
guard, transfer to other worlds and the robustness curves), so `dvc repro` shows them in the log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline import tasks
from pipeline.params import section
from pipeline.report import write_summary
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    write_summary(params, Path(section(params, "report")["out"]))
    for line in digest(params):
        log.info("%s", line)


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def digest(params: dict[str, Any]) -> list[str]:
    """One line per headline figure, from the metrics files the run wrote (missing ones are skipped)."""
    lines = []
    folder = Path(section(params, "evaluate")["metrics"])
    for task in (t.name for t in tasks.configured(params)):
        m = _read(folder / f"{task}.json")
        if m is None:
            continue
        ap = m["variants"]["full"]["average_precision"]
        lines.append(f"{task}: average precision {ap['mean']:.3f} ± {ap['std']:.3f} over {ap['n_folds']} {m['split']} folds")
        guard = m.get("guard") or {}
        if guard.get("trees"):
            trees = ", ".join(f"depth {d} {t['roc_auc']:.3f}" for d, t in sorted(guard["trees"].items()))
            limits = ", ".join(f"depth {d} <= {v}" for d, v in (guard.get("limits", {}).get("max_tree_auc") or {}).items())
            flagged = ", ".join(guard.get("flagged") or []) or "none"
            lines.append(f"{task}: giveaway guard: tree ROC-AUC {trees} (limit {limits or '-'}); one-sided features: {flagged}")
    transfer = _read(Path(params.get("transfer", {}).get("out", "metrics/transfer.json")))
    if transfer and transfer.get("applicable"):
        for task, t in transfer["tasks"].items():
            lines.append(
                f"{task}: transfer AP {t['transfer_average_precision']:.3f} (trained on seeds {transfer['train_seeds']}) "
                f"vs in-world {t['in_world_average_precision']:.3f}: gap {t['gap']:+.3f}, goal <= {t['max_gap']}"
            )
    robust = _read(Path(params.get("robustness", {}).get("out", "metrics/robustness.json")))
    if robust and robust.get("applicable"):
        for knob, points in robust["curves"].items():
            for task in (t for t in tasks.names() if points and t in points[0]):
                curve = " ".join(f"{p['value']:g}:{p[task]['average_precision']['mean']:.3f}" for p in points)
                lines.append(f"robustness {knob} -> {task} AP {curve}")
        fam = robust.get("adaptive_families") or {}
        if fam:
            aps = ", ".join(f"{f} {v['adaptive_farm_average_precision']:.3f}" for f, v in fam["families"].items())
            lines.append(f"adaptive farms: AP on them per feature family alone: {aps}; best {fam['best_family']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    return stage_main("report", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
