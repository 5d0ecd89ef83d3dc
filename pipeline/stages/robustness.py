"""Stage robustness: detection as farms get stealthier -> robustness.out (JSON), robustness.reports/ (Markdown, plot CSVs).

For every knob in `robustness.sweep` and each of its values, a world of the pipeline's knobs with
that one knob changed is simulated, ingested and featurized as the pipeline does, and both tasks
are measured in that world (group-kept folds: train on the others, score the test fold). One
curve per knob and task. The adaptive-farm world with the most adaptive farms also gets one model
per feature family, to say which family still catches farms that spread their likes past the
published lockstep windows. Small worlds by default (minutes); docs/models.md#robustness says how
to run it at the `default` size.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import tasks
from pipeline.errors import ZombieScanError
from pipeline.features.families import present
from pipeline.features.lockstep import LockstepParams
from pipeline.io import atomic_path
from pipeline.models.inputs import simulated_tasks, task_params
from pipeline.models.split import SplitParams
from pipeline.params import section
from pipeline.simulate import KNOBS, from_params
from pipeline.stages.common import stage_main
from pipeline.worlds import cross_validated, single_threaded, world_data

log = logging.getLogger(__name__)

# Farm styles share the farms: sweeping one rescales the others so the shares still add up to 1.
FARM_STYLES = ("stealth_share", "heavy_share", "adaptive_share")
ADAPTIVE = "adaptive_share"


def knobs_with(base: dict[str, Any], knob: str, value: float) -> dict[str, Any]:
    """The base knobs with `knob` set to `value`; a farm-style share rescales the other styles (and
    bursty farms, the rest) so the mix of the other farms stays as it was."""
    knobs = {**base, knob: value}
    if knob in FARM_STYLES:
        others = [k for k in FARM_STYLES if k != knob]
        old = float(base.get(knob) or 0.0)
        room = (1.0 - value) / (1.0 - old) if old < 1.0 else 0.0
        for k in others:
            knobs[k] = float(base.get(k) or 0.0) * room
    return knobs


def run(params: dict[str, Any]) -> None:
    cfg = section(params, "robustness")
    out, reports = Path(cfg["out"]), Path(cfg["reports"])
    if (params.get("data") or {}).get("spec"):
        _write(out, reports, {"applicable": False, "reason": "the pipeline runs on a dataset (data.spec), not a simulated world"})
        return
    sim = dict(section(params, "simulate"))
    sweep = cfg["sweep"] or {}
    unknown = sorted(set(sweep) - set(KNOBS))
    if unknown:
        raise ZombieScanError(f"robustness.sweep: unknown knob(s) {', '.join(unknown)}: expected some of {', '.join(KNOBS)}")
    base = {**(sim.get("knobs") or {}), **(cfg.get("knobs") or {})}
    world = {"preset": cfg.get("preset") or sim.get("preset"), "accounts": cfg.get("accounts"), "seed": int(cfg.get("seed", 7))}
    lockstep = LockstepParams.from_dict((params.get("featurize") or {}).get("lockstep"))
    splits = SplitParams(folds=int(cfg.get("folds", 4)), seed=int(cfg.get("seed", 7)))
    task_settings = {task: single_threaded(task_params(params, task)) for task in simulated_tasks(params)}
    seller = tasks.like_seller()
    curves: dict[str, list[dict[str, Any]]] = {}
    families: dict[str, Any] = {}
    for knob, values in sweep.items():
        curves[knob] = []
        for value in values:
            knobs = knobs_with(base, knob, value)
            preset, world_cfg, style = from_params({**sim, **world, "knobs": knobs, "style": sim.get("style")})
            data = world_data(preset, world_cfg, style, lockstep=lockstep, split=splits).data
            point: dict[str, Any] = {"value": value}
            for task, p in task_settings.items():
                segment = "adaptive_farm" if seller is not None and task == seller.name and knob == ADAPTIVE else None
                point[task] = cross_validated(task, p, data, segment=segment)
            aps = ", ".join(f"{task} AP {point[task]['average_precision']['mean']:.3f}" for task in task_settings)
            log.info("robustness %s = %s: %s", knob, value, aps)
            curves[knob].append(point)
            if seller is not None and seller.name in task_settings and knob == ADAPTIVE and value == max(values) and value > 0:
                families = _families(seller.name, task_settings[seller.name], data, value)
    _write(out, reports, {"applicable": True, "world": world, "base_knobs": base, "curves": curves, "adaptive_families": families})


def _families(task: str, p: Any, data: pl.DataFrame, value: float) -> dict[str, Any]:
    """The like sellers' AP with each feature family alone, in the world with the most adaptive farms: who still catches them."""
    out: dict[str, Any] = {"adaptive_share": value, "families": {}}
    for family in present(data.columns):
        result = cross_validated(task, p, data, families=(family.prefix,), segment="adaptive_farm")
        out["families"][family.name] = {
            "average_precision": result["average_precision"]["mean"],
            "adaptive_farm_average_precision": result.get("segment", {}).get("average_precision", float("nan")),
        }
    best: tuple[str | None, Any] = max(out["families"].items(), key=lambda kv: kv[1]["adaptive_farm_average_precision"], default=(None, {}))
    out["best_family"] = best[0]
    log.info("robustness: adaptive farms (share %s) are caught best by the %s family alone", value, best[0])
    return out


def _write(out: Path, reports: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    (reports / "plots").mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    with atomic_path(reports / "robustness.md") as tmp:
        tmp.write_text(markdown(result))
    for knob, points in (result.get("curves") or {}).items():
        names = _tasks_in(points)
        frame = pl.DataFrame(
            {
                knob: [pt["value"] for pt in points],
                **{f"{task}_ap": [pt[task]["average_precision"]["mean"] for pt in points] for task in names},
                **{f"{task}_ap_std": [pt[task]["average_precision"]["std"] for pt in points] for task in names},
            }
        )
        with atomic_path(reports / "plots" / f"{knob}.csv") as tmp:
            frame.write_csv(tmp, float_precision=6)


def markdown(result: dict[str, Any]) -> str:
    """reports/robustness/robustness.md: one table per knob, and which family catches adaptive farms."""
    lines = ["# Robustness: detection as farms get stealthier", ""]
    if not result.get("applicable"):
        return "\n".join([*lines, f"Not applicable: {result.get('reason')}.", ""])
    w = result["world"]
    lines += [
        f"Worlds of the `{w['preset']}` preset at {w['accounts'] or 'its'} accounts, seed {w['seed']}, with the pipeline's knobs "
        "except the one swept; average precision in each world (mean ± std over its group-kept test folds).",
        "",
    ]
    for knob, points in result["curves"].items():
        names = _tasks_in(points)
        lines += [f"## {knob}", "", "| value | " + " | ".join(f"{t} AP" for t in names) + " |", "|---:|" + "---:|" * len(names)]
        for pt in points:
            cells = [f"{pt[t]['average_precision']['mean']:.3f} ± {pt[t]['average_precision']['std']:.3f}" for t in names]
            lines.append(f"| {pt['value']} | " + " | ".join(cells) + " |")
        lines.append("")
    fam = result.get("adaptive_families") or {}
    seller = tasks.like_seller()
    if fam.get("families") and seller is not None:
        lines += [
            f"## Who catches the adaptive farm (adaptive_share {fam['adaptive_share']})",
            "",
            f"{seller.name} models on one feature family each; AP over all farm members, and of the adaptive "
            "farms' members alone against all non-members.",
            "",
            f"| family | {seller.name} AP | adaptive-farm AP |",
            "|---|---:|---:|",
        ]
        for name, r in fam["families"].items():
            lines.append(f"| {name} | {r['average_precision']:.3f} | {r['adaptive_farm_average_precision']:.3f} |")
        lines += ["", f"Best alone on adaptive farms: **{fam['best_family']}**.", ""]
    return "\n".join(lines) + "\n"


def _tasks_in(points: list[dict[str, Any]]) -> list[str]:
    """The tasks a sweep point holds, in registry order."""
    return [t for t in tasks.names() if points and t in points[0]]


def main(argv: list[str] | None = None) -> int:
    return stage_main("robustness", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
