"""Stage transfer: a model trained on worlds of other seeds, tested on this world -> transfer.out (JSON) and transfer.report (Markdown).

Each seed draws its own platform style (docs/simulator.md#style), so a model that learned one
generator's habits rather than fakes loses here what it gained there. The worlds of
`transfer.train_seeds` have the pipeline's preset and knobs; the model is the shipped model's
recipe (train.<task>) fitted on all of them, stopped and calibrated on one fold of whole groups.
It is scored on each test fold of this world (`split.out`) and set beside the in-world figure:
the evaluate stage's `full` model on the same folds (metrics/<task>.json).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ZombieScanError
from pipeline.features.lockstep import LockstepParams
from pipeline.io import atomic_path
from pipeline.models.inputs import load_data, simulated_tasks, task_params
from pipeline.models.split import split_params
from pipeline.params import section
from pipeline.simulate import from_params
from pipeline.stages.common import stage_main
from pipeline.worlds import average_precision_by_fold, fit_across, pooled, world_data

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    cfg = section(params, "transfer")
    out, report = Path(cfg["out"]), Path(cfg["report"])
    if (params.get("data") or {}).get("spec"):
        _write(out, report, {"applicable": False, "reason": "the pipeline runs on a dataset (data.spec), not a simulated world"})
        log.info("transfer: not applicable on a dataset")
        return
    sim = section(params, "simulate")
    seeds = [int(s) for s in cfg["train_seeds"]]
    if not seeds:
        raise ZombieScanError(f"{getattr(params, 'source', 'params.yaml')}: transfer.train_seeds is empty: give at least one seed")
    if int(sim.get("seed") or 42) in seeds:
        raise ZombieScanError(f"transfer.train_seeds {seeds} holds simulate.seed {sim.get('seed')}: the test world must be another seed")
    lockstep = LockstepParams.from_dict((params.get("featurize") or {}).get("lockstep"))
    splits = split_params(dict(section(params, "split")))
    worlds = []
    for seed in seeds:
        preset, world_cfg, style = from_params(sim, seed=seed)
        log.info("transfer: world of seed %d (%s, %d accounts)", seed, preset, world_cfg.accounts)
        worlds.append(world_data(preset, world_cfg, style, lockstep=lockstep, split=splits))
    train = pooled(worlds)
    max_gap = float(cfg.get("max_gap", 0.03))
    results: dict[str, Any] = {}
    for task in simulated_tasks(params):
        p = task_params(params, task)
        metrics_path = Path(section(params, "evaluate")["metrics"]) / f"{task}.json"
        in_world = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        if in_world.get("trained") is False or p.label not in train.columns:
            results[task] = {"applicable": False, "reason": in_world.get("reason", f"no {p.label} labels")}
            continue
        if "variants" not in in_world:
            raise ZombieScanError(f"{metrics_path}: no evaluation to compare with; run `dvc repro evaluate@{task}` first")
        here, _, _ = load_data(params, p.label)
        model = fit_across(task, p, train.filter(train[p.label].is_not_null()))
        per_fold = average_precision_by_fold(model, here, p.label)
        transfer_ap = float(np.mean(per_fold))
        in_ap = float(in_world["variants"]["full"]["average_precision"]["mean"])
        gap = in_ap - transfer_ap
        results[task] = {
            "in_world_average_precision": in_ap,
            "transfer_average_precision": transfer_ap,
            "transfer_average_precision_std": float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else float("nan"),
            "gap": gap,
            "max_gap": max_gap,
            "met": bool(gap <= max_gap),
            "folds": len(per_fold),
            "train_accounts": int(train[p.label].is_not_null().sum()),
            "trees": int(model.booster.num_trees()) if model.booster is not None else 0,
        }
        log.info(
            "transfer %s: in-world AP %.3f, trained on seeds %s: %.3f (gap %.3f, goal <= %.2f)",
            task,
            in_ap,
            seeds,
            transfer_ap,
            gap,
            max_gap,
        )
    test_seed = int(sim.get("seed") or 42)
    _write(out, report, {"applicable": True, "train_seeds": seeds, "test_seed": test_seed, "tasks": results})


def _write(out: Path, report: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    report.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    with atomic_path(report) as tmp:
        tmp.write_text(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    """reports/transfer.md: the table a reader looks at."""
    lines = ["# Transfer: trained on other worlds, tested on this one", ""]
    if not result.get("applicable"):
        return "\n".join([*lines, f"Not applicable: {result.get('reason')}.", ""])
    lines += [
        f"The shipped model's recipe trained on the worlds of seeds {', '.join(map(str, result['train_seeds']))} (each with "
        f"its own platform style, the same preset and knobs) and scored on the test folds of the world of seed "
        f"{result['test_seed']}, beside the in-world model (the evaluate stage's `full` variant on the same folds).",
        "",
        "| task | in-world AP | transfer AP | gap | goal | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for task, r in result["tasks"].items():
        if r.get("applicable") is False:
            lines.append(f"| {task} | | | | | not applicable: {r['reason']} |")
            continue
        lines.append(
            f"| {task} | {r['in_world_average_precision']:.3f} | {r['transfer_average_precision']:.3f} ± "
            f"{r['transfer_average_precision_std']:.3f} | {r['gap']:+.3f} | ≤ {r['max_gap']:.2f} | {'yes' if r['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return stage_main("transfer", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
