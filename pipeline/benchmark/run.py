"""Run the benchmark over dataset specs and write benchmark.json, benchmark-details.json and benchmark.md.

Each dataset goes through the same code as the simulator's pipeline: spec -> contract tables ->
ingest (every contract check) -> features -> the P3 LightGBM model, evaluated by
`pipeline.benchmark.protocol`. Nothing here is specific to one dataset.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from pipeline.benchmark.protocol import Protocol, Variant, evaluate_dataset
from pipeline.datasets.adapt import load_dataset, write_warehouse
from pipeline.datasets.spec import METRICS, DatasetSpec
from pipeline.errors import ZombieScanError
from pipeline.features.build import warehouse_features
from pipeline.io import atomic_path
from pipeline.models.evaluate import summarise
from pipeline.models.train import TaskParams

log = logging.getLogger(__name__)

FAMILY_ORDER = ("profile_", "raw_", "beh_", "graph_", "lock_")
SCORE_COLUMNS = {"lock_dense_block_score": "dense-block score (unsupervised, FRAUDAR-style)", "lock_share": "lockstep share (unsupervised)"}
METRIC_NAMES = {"f1": "F1", "accuracy": "accuracy", "roc_auc": "ROC-AUC", "average_precision": "average precision"}


def task_params(spec: DatasetSpec, train: dict[str, Any]) -> TaskParams:
    """The project's settings for the dataset's task (params.yaml train.<task>), with the spec's overrides."""
    values = {**train.get(spec.task, {}), **spec.train}
    values.pop("quality_bars", None)
    try:
        return TaskParams.from_params(spec.task, values)
    except ZombieScanError as exc:
        raise ZombieScanError(f"{spec.path}: train: {exc}") from None


def variants_for(features: pl.DataFrame) -> list[Variant]:
    """The full model first, then each family alone and each family left out, then unsupervised scores."""
    present = [f for f in FAMILY_ORDER if any(c.startswith(f) for c in features.columns)]
    out = [Variant("full", tuple(present))]
    if len(present) > 1:
        for family in present:
            out.append(Variant(f"{family.rstrip('_')} only", (family,)))
        if len(present) > 2:
            for family in present:
                out.append(Variant(f"without {family.rstrip('_')}", tuple(f for f in present if f != family)))
    out += [Variant(column, column=column) for column in SCORE_COLUMNS if column in features.columns]
    return out


def benchmark_dataset(
    spec: DatasetSpec, root: Path, protocol: Protocol, train: dict[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the report says about one dataset (see `write_outputs` for the shape)."""
    start = time.perf_counter()
    dataset = load_dataset(spec, root, now=now)
    with tempfile.TemporaryDirectory(prefix="zombiescan-bench-") as scratch:
        db = Path(scratch) / f"{spec.name}.duckdb"
        write_warehouse(dataset, db, now=now)
        features, _, feature_report = warehouse_features(db)
    p = task_params(spec, train)
    data = dataset.labels.select("account_id", p.label).join(features, on="account_id", how="inner")
    variants = variants_for(features)
    results = evaluate_dataset(spec.task, p, data, protocol, variants, dataset.splits)
    summary = summarise(results)
    full = {m: summary["full"][m] for m in METRICS}
    primary = next(iter(spec.goals), "f1")
    ablations = {k: v for k, v in summary.items() if k != "full" and k not in SCORE_COLUMNS}
    best = max(ablations, key=lambda k: ablations[k][primary]["mean"]) if ablations else None
    labelled = data.filter(pl.col(p.label).is_not_null())
    y = labelled[p.label].cast(pl.Int8).to_numpy()
    whole = {
        column: float(roc_auc_score(y, labelled[column].cast(pl.Float64).fill_null(0.0).to_numpy()))
        for column in SCORE_COLUMNS
        if column in labelled.columns
    }
    families = {f.rstrip("_"): sum(c.startswith(f) for c in features.columns) for f in FAMILY_ORDER}
    if dataset.splits is not None:
        shipped = dataset.splits["split"].n_unique()
        protocol_text = f"the first {min(shipped, protocol.fixed_splits or shipped)} of {shipped} shipped splits (train / valid / test)"
    else:
        protocol_text = (
            f"stratified {protocol.folds}-fold CV x {protocol.seeds} seed(s), "
            f"{protocol.inner_folds}-fold cross-fitting inside each training part"
        )
    return {
        "notes": spec.notes.strip(),
        "info": dataset.info(),
        "features": {k: v for k, v in families.items() if v},
        "feature_seconds": feature_report.seconds,
        "protocol": protocol_text,
        "metrics": full,
        "variants": summary,
        "best_ablation": best,
        "primary_metric": primary,
        "unsupervised_roc_auc_all_accounts": whole,
        "published": [pub.__dict__ for pub in spec.published],
        "goals": {
            m: {
                "goal": g,
                "measured": full[m]["mean"],
                "n_nan": full[m]["n_nan"],
                "met": bool(full[m]["mean"] >= g and not full[m]["n_nan"]),  # a NaN fold: not met
            }
            for m, g in spec.goals.items()
        },
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_benchmark(
    specs: list[DatasetSpec], root: Path, protocol: Protocol, train: dict[str, Any], out: Path, *, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Benchmark every spec, then write the outputs into `out` (each file atomically)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ZombieScanError(f"benchmark: dataset names must be unique, got {', '.join(names)}")
    details = {}
    for spec in specs:
        log.info("%s: benchmarking", spec.name)
        details[spec.name] = benchmark_dataset(spec, root, protocol, train, now=now)
        log.info("%s: done in %.0f s", spec.name, details[spec.name]["seconds"])
    write_outputs(details, out, protocol)
    return details


def write_outputs(details: dict[str, dict[str, Any]], out: Path, protocol: Protocol) -> None:
    """benchmark.json (dataset -> metric -> {mean, std, n_folds}), benchmark-details.json, benchmark.md."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {name: d["metrics"] for name, d in details.items()}
    for name, text in (
        ("benchmark.json", json.dumps(summary, indent=2, sort_keys=True) + "\n"),
        ("benchmark-details.json", json.dumps(details, indent=2, sort_keys=True, default=str) + "\n"),
        ("benchmark.md", markdown(details, protocol)),
    ):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)


def _cell(m: dict[str, Any] | None) -> str:
    if not m or m["mean"] != m["mean"]:  # NaN
        return ""
    return f"{m['mean']:.3f} ± {m['std']:.3f}" if m.get("n_folds", 1) > 1 else f"{m['mean']:.3f}"


def markdown(details: dict[str, dict[str, Any]], protocol: Protocol) -> str:
    """The report a reader compares with the literature: our numbers beside the published ones."""
    lines = [
        "# Benchmark on real data",
        "",
        "ZombieScan's pipeline (contract -> features -> LightGBM, the code the simulator's pipeline runs) on each "
        "dataset in `datasets/`, beside published results on the same data. Mean ± std over the test folds; "
        "thresholds and calibration fitted on training data only. Regenerate with `dvc repro benchmark` "
        "(or `zombiescan benchmark --out reports`).",
        "",
        "| dataset | goal | measured | met |",
        "|---|---|---:|:---:|",
    ]
    for name, d in details.items():
        for metric, g in d["goals"].items():
            lines.append(f"| {name} | {METRIC_NAMES[metric]} ≥ {g['goal']:.3f} | {g['measured']:.3f} | {'yes' if g['met'] else '**no**'} |")
    for name, d in details.items():
        info = d["info"]
        feats = ", ".join(f"{k} {v}" for k, v in d["features"].items())
        lines += [
            "",
            f"## {name}",
            "",
            f"{info['accounts']:,} accounts ({info['positives']:,} positive, {info['negatives']:,} negative), "
            f"{info['engagements']:,} engagements{' (untimed)' if info['engagements'] and not info['timed'] else ''}; "
            f"task {info['task']}; features used: {feats}. Protocol: {d['protocol']}. {d['seconds']:.0f} s.",
            *(["", " ".join(d["notes"].split())] if d.get("notes") else []),
            "",
            "| method | F1 | accuracy | ROC-AUC | average precision | note |",
            "|---|---:|---:|---:|---:|---|",
        ]
        v = d["variants"]

        def row(label: str, ms: dict[str, Any], note: str = "") -> str:
            return f"| {label} | " + " | ".join(_cell(ms.get(m)) for m in METRICS) + f" | {note} |"

        lines.append(row("**ZombieScan (LightGBM, all features)**", v["full"], f"{v['full']['f1']['n_folds']} test folds"))
        if d["best_ablation"]:
            b = d["best_ablation"]
            lines.append(
                row(f"ZombieScan, best ablation: {b}", v[b], f"best by {METRIC_NAMES[d['primary_metric']]}; {v[b]['f1']['n_folds']} folds")
            )
        for column, label in SCORE_COLUMNS.items():
            if column in v:
                whole = d["unsupervised_roc_auc_all_accounts"].get(column)
                lines.append(row(f"ZombieScan {label}", v[column], f"ROC-AUC on all accounts, no CV: {whole:.3f}"))
        published: dict[tuple[str, str], dict[str, float]] = {}
        for pub in d["published"]:
            published.setdefault((pub["method"], pub["note"]), {})[pub["metric"]] = pub["value"]
        for (method, note), ms in published.items():
            lines.append(f"| {method} (published) | " + " | ".join(f"{ms[m]:.3f}" if m in ms else "" for m in METRICS) + f" | {note} |")
        others = [k for k in v if k not in ("full", d["best_ablation"], *SCORE_COLUMNS)]
        if others:
            lines += [
                "",
                "<details><summary>All ablations</summary>",
                "",
                "| variant | " + " | ".join(METRIC_NAMES[m] for m in METRICS) + " |",
            ]
            lines.append("|---|" + "---:|" * len(METRICS))
            lines += [f"| {k} | " + " | ".join(_cell(v[k].get(m)) for m in METRICS) + " |" for k in others]
            lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def fast_protocol(protocol: Protocol) -> Protocol:
    """The CI subset: one seed, fewer inner folds and rounds, three shipped splits."""
    return replace(protocol, seeds=1, inner_folds=2, max_rounds=300, fixed_splits=3, ablation_seeds=1)


# How far below its goal the fast subset may fall before CI fails: a few points, less for
# ROC-AUC, which moves less between protocols.
FLOOR_MARGINS = {"f1": 0.03, "accuracy": 0.03, "average_precision": 0.03, "roc_auc": 0.01}


def missed_floors(details: dict[str, dict[str, Any]], margins: dict[str, float] = FLOOR_MARGINS) -> list[str]:
    """Goals missed by more than their margin (the fast subset's regression check in CI).

    A goal's metric that is NaN fails as well, on every fold or on one: a test fold it is
    undefined on (one class only) means the check did not measure what it claims to.
    """
    out = []
    for name, d in details.items():
        for metric, g in d["goals"].items():
            n_nan, goal = g.get("n_nan", 0), g["goal"]
            if np.isnan(g["measured"]):
                out.append(f"{name}: {metric} is NaN on every fold ({n_nan} NaN folds): nothing was measured (goal {goal:.3f})")
            elif n_nan:
                out.append(f"{name}: {metric} NaN on {n_nan} fold(s): a test fold the metric is undefined on (goal {goal:.3f})")
            elif g["measured"] < goal - margins[metric]:
                out.append(f"{name}: {metric} {g['measured']:.3f} < floor {goal - margins[metric]:.3f} (goal {goal:.3f})")
    return out


def protocol_from_params(values: dict[str, Any]) -> Protocol:
    """The protocol from params.yaml's benchmark section (its other keys: datasets, root, out, fast)."""
    known = set(Protocol.__dataclass_fields__)
    settings = {k: v for k, v in values.items() if k in known}
    unknown = sorted(set(values) - known - {"datasets", "out", "fast", "root"})
    if unknown:
        raise ZombieScanError(
            f"benchmark: unknown setting(s) {', '.join(unknown)}: expected some of datasets, root, out, fast, {', '.join(sorted(known))}"
        )
    for key, value in settings.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ZombieScanError(f"benchmark.{key} = {value!r}: expected a positive integer")
    protocol = Protocol(**settings)
    if protocol.folds < 2 or protocol.inner_folds < 2:
        raise ZombieScanError("benchmark: folds and inner_folds must be at least 2")
    return fast_protocol(protocol) if values.get("fast") else protocol
