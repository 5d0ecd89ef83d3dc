"""Run the benchmark over dataset specs and write benchmark.json, benchmark-details.json and benchmark.md.

Each dataset goes through the same code as the simulator's pipeline: spec -> contract tables ->
ingest (every contract check) -> features -> the P3 LightGBM model, evaluated by
`pipeline.benchmark.protocol`. Nothing here is specific to one dataset.

What is measured (`Plan`, params.yaml: benchmark):

- the headline, on **fresh folds**: shuffles drawn after the design (specs, train overrides,
  features) was frozen, on which no choice was ever made (`seed_offset`); data with shipped
  splits is measured on their test part (`protocol_texts`);
- the **tuning folds** (`tuning`): the folds the per-dataset settings were chosen on, full model
  only, shown beside the headline because they are optimistic by construction;
- **group-aware folds** (`groups`) for graph datasets: stratified group K-fold over co-engagement
  communities (`pipeline.benchmark.groups`) beside stratified K-fold on the same seeds.

The written files depend on the data, the specs and the params only: timings are logged, never
written, so a rerun with the same inputs rewrites them byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from pipeline.benchmark.groups import coengagement_groups
from pipeline.benchmark.protocol import Protocol, Variant, evaluate_dataset, outer_runs, unsupervised_score
from pipeline.datasets.adapt import Dataset, load_dataset, write_warehouse
from pipeline.datasets.spec import METRICS, DatasetSpec
from pipeline.errors import ZombieScanError
from pipeline.features import families as feature_families
from pipeline.features.build import warehouse_features
from pipeline.io import atomic_path, scratch_dir
from pipeline.models.evaluate import FoldResult, summarise
from pipeline.models.train import TaskParams

log = logging.getLogger(__name__)

SCORE_COLUMNS = {
    "lock_dense_block_score": "dense-block score (unsupervised, FRAUDAR-style)",
    "lock_share": "lockstep share (unsupervised)",
    "rate_rev2_score": "REV2-style unfairness of ratings given (unsupervised, 1 - fairness)",
}
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
    here = [f.prefix for f in feature_families.present(features.columns)]
    out = [Variant("full", tuple(here))]
    if len(here) > 1:
        for family in here:
            out.append(Variant(f"{family.rstrip('_')} only", (family,)))
        if len(here) > 2:
            for family in here:
                out.append(Variant(f"without {family.rstrip('_')}", tuple(f for f in here if f != family)))
    out += [Variant(column, column=column) for column in SCORE_COLUMNS if column in features.columns]
    return out


@dataclass(frozen=True)
class Plan:
    """What the benchmark measures (params.yaml: benchmark; module docstring)."""

    headline: Protocol  # fresh folds: a seed offset no choice was made on
    tuning: Protocol | None = None  # the folds the per-dataset settings were chosen on (full model only)
    grouped: Protocol | None = None  # group-aware K-fold beside stratified K-fold, for `group_datasets`
    group_datasets: tuple[str, ...] = ()


def _seeds(protocol: Protocol) -> str:
    first = protocol.seed_offset
    return f"shuffle seed {first}" if protocol.seeds == 1 else f"shuffle seeds {first}-{first + protocol.seeds - 1}"


def _kfold_text(protocol: Protocol, kind: str = "stratified") -> str:
    return (
        f"{kind} {protocol.folds}-fold CV x {protocol.seeds} seed(s) ({_seeds(protocol)}), "
        f"{protocol.inner_folds}-fold cross-fitting inside each training part"
    )


def protocol_texts(protocol: Protocol, splits: pl.DataFrame | None) -> tuple[str, str]:
    """What the headline of one dataset measured, and how far it is from unseen: the report's Protocol and Headline."""
    if splits is None:
        return _kfold_text(protocol), f"fresh folds ({_seeds(protocol)}), drawn after the design was frozen; no choice was made on them."
    shipped = splits["split"].n_unique()
    used = min(shipped, protocol.fixed_splits or shipped)
    if not (splits["role"] == "valid").any():
        return (
            f"the shipped train / test split: trained on `train` with {protocol.inner_folds}-fold cross-fitting inside it "
            "(early stopping, calibration and threshold on its out-of-fold scores), measured on `test`"
            + (f" (the first {used} of {shipped} shipped splits)" if shipped > 1 else ""),
            "measured on the shipped test part only. "
            + ("One test set: there is no spread over folds (the std is unknown) and the numbers are one sample's. " if used == 1 else "")
            + "The split came with the data, so unlike fresh folds it was not drawn after the design was frozen: the "
            "benchmark cannot tell whether a setting was chosen while its test numbers were in view (choose them by "
            "cross-validation inside `train`). There are no other tuning folds: the tuning row repeats these numbers.",
        )
    return (
        f"the first {used} of {shipped} shipped splits (train / valid / test)",
        "measured on the shipped test masks only. Its settings (the spec's `train:` overrides) were chosen on the "
        "shipped splits: fit on `train`, scored on the validation masks, never on the test masks; but the test-mask "
        "numbers of earlier runs were in the reports while the design was settled, so these folds are held out from "
        "every choice, not unseen. There are no other tuning folds: the tuning row repeats these numbers.",
    )


def _headline_summary(results_summary: dict[str, Any]) -> dict[str, Any]:
    return {m: results_summary["full"][m] for m in METRICS}


def benchmark_dataset(spec: DatasetSpec, root: Path, plan: Plan, train: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the report says about one dataset (see `write_outputs` for the shape).

    The returned dict also holds `seconds` (where the time went), which `write_outputs` leaves out.
    """
    protocol = plan.headline
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    dataset = load_dataset(spec, root, now=now)
    with scratch_dir("zombiescan-bench-") as scratch:
        db = Path(scratch) / f"{spec.name}.duckdb"
        write_warehouse(dataset, db, now=now)
        features, _, _ = warehouse_features(db)
    seconds["features"] = time.perf_counter() - start
    p = task_params(spec, train)
    # Rows in the features' order (by account_id): the order the folds are drawn over, stated rather
    # than left to the join (it is what the unordered join gave when the tuning folds were used).
    data = dataset.labels.select("account_id", p.label).join(features, on="account_id", how="inner", maintain_order="right")
    variants = variants_for(features)
    t = time.perf_counter()
    results = evaluate_dataset(spec.task, p, data, protocol, variants, dataset.splits)
    summary = summarise(results)
    seconds["headline"] = time.perf_counter() - t
    full = _headline_summary(summary)
    primary = next(iter(spec.goals), "f1")
    ablations = {k: v for k, v in summary.items() if k != "full" and k not in SCORE_COLUMNS}
    best = max(ablations, key=lambda k: ablations[k][primary]["mean"]) if ablations else None
    labelled = data.filter(pl.col(p.label).is_not_null())
    y = labelled[p.label].cast(pl.Int8).to_numpy()
    whole = {
        column: float(roc_auc_score(y, unsupervised_score(labelled[column], features[column])))
        for column in SCORE_COLUMNS
        if column in labelled.columns
    }
    families = {f.name: sum(c.startswith(f.prefix) for c in features.columns) for f in feature_families.FAMILIES}
    protocol_text, fresh_text = protocol_texts(protocol, dataset.splits)
    out: dict[str, Any] = {
        "notes": spec.notes.strip(),
        "info": dataset.info(),
        "features": {k: v for k, v in families.items() if v},
        "protocol": protocol_text,
        "headline": fresh_text,
        "metrics": full,
        "variants": summary,
        "best_ablation": best,
        "primary_metric": primary,
        "unsupervised_roc_auc_all_accounts": whole,
        "published": [pub.__dict__ for pub in spec.published],
    }
    tuning: dict[str, Any] = {"protocol": "", "metrics": None, "same_as_headline": False}
    if plan.tuning is not None and dataset.splits is None:
        t = time.perf_counter()
        tuned = summarise(evaluate_dataset(spec.task, p, data, plan.tuning, variants[:1]))
        seconds["tuning"] = time.perf_counter() - t
        tuning = {
            "protocol": _kfold_text(plan.tuning) + "; the full model only",
            "metrics": _headline_summary(tuned),
            "seeds": _seeds(plan.tuning),
            "same_as_headline": False,
        }
    elif plan.tuning is not None:
        tuning = {"protocol": "the same shipped splits as the headline (no other folds exist)", "metrics": full, "same_as_headline": True}
    out["tuning"] = tuning
    out["goals"] = {
        m: {
            "goal": g,
            "measured": full[m]["mean"],
            "std": full[m]["std"],
            "n_nan": full[m]["n_nan"],
            "met": bool(full[m]["mean"] >= g and not full[m]["n_nan"]),  # a NaN fold: not met
            "tuning_folds": tuning["metrics"][m]["mean"] if tuning["metrics"] else None,
        }
        for m, g in spec.goals.items()
    }
    if plan.grouped is not None and spec.name in plan.group_datasets and dataset.engagements is not None:
        headline_full = [r for r in results if r.variant == "full"] if dataset.splits is None else None
        out["group_aware"] = _group_aware(spec, p, data, dataset, plan, variants[0], headline_full, seconds)
    out["seconds"] = {k: round(v, 1) for k, v in seconds.items()} | {"total": round(time.perf_counter() - start, 1)}
    return out


def _group_aware(
    spec: DatasetSpec,
    p: TaskParams,
    data: pl.DataFrame,
    dataset: Dataset,
    plan: Plan,
    full: Variant,
    headline: list[FoldResult] | None,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """Stratified group K-fold over co-engagement communities beside stratified K-fold on the same seeds.

    `headline`: the full model's K-fold results, whose first seeds are the stratified runs when the
    grouped protocol draws the same folds (same offset, folds and inner folds: then the same models).
    """
    assert plan.grouped is not None and dataset.engagements is not None
    grouped, head = plan.grouped, plan.headline
    t = time.perf_counter()
    positives = dataset.labels[spec.label_column].fill_null(False).to_numpy()
    groups, stats = coengagement_groups(dataset.accounts["account_id"], dataset.engagements, positives=positives)
    seconds["groups"] = time.perf_counter() - t
    # What the first seed's group folds hold: a dense block kept whole makes them uneven.
    labelled = data.filter(pl.col(p.label).is_not_null()).select("account_id", p.label)
    labelled = labelled.join(groups, on="account_id", how="left", maintain_order="left")
    y = labelled[p.label].cast(pl.Int8).to_numpy()
    folds = outer_runs(y, grouped, seeds=1, groups=labelled["group"].to_numpy())
    stats["test_folds"] = [{"accounts": len(test), "positives": int(y[test].sum())} for *_, test in folds]
    t = time.perf_counter()
    reuse = (
        headline is not None
        and grouped.seeds <= head.seeds
        and (grouped.folds, grouped.inner_folds, grouped.seed_offset)
        == (
            head.folds,
            head.inner_folds,
            head.seed_offset,
        )
    )
    if reuse:
        assert headline is not None
        stratified = _headline_summary(summarise([r for r in headline if r.fold < grouped.seeds * grouped.folds]))
    else:
        stratified = _headline_summary(summarise(evaluate_dataset(spec.task, p, data, grouped, [full])))
    seconds["group_stratified"] = time.perf_counter() - t
    t = time.perf_counter()
    group = _headline_summary(summarise(evaluate_dataset(spec.task, p, data, grouped, [full], groups=groups)))
    seconds["group_aware"] = time.perf_counter() - t
    return {
        "groups": stats,
        "stratified_protocol": _kfold_text(grouped) + ("; the headline's first folds" if reuse else ""),
        "group_protocol": _kfold_text(grouped, "stratified group"),
        "stratified": stratified,
        "group": group,
    }


def run_benchmark(
    specs: list[DatasetSpec], root: Path, plan: Plan, train: dict[str, Any], out: Path, *, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Benchmark every spec, then write the outputs into `out` (each file atomically)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ZombieScanError(f"benchmark: dataset names must be unique, got {', '.join(names)}")
    details = {}
    for spec in specs:
        log.info("%s: benchmarking", spec.name)
        details[spec.name] = benchmark_dataset(spec, root, plan, train, now=now)
        log.info("%s: seconds %s", spec.name, details[spec.name]["seconds"])
    write_outputs(details, out, plan)
    return details


# Keys of a dataset's details that change from run to run (timings): logged, never written.
VOLATILE = ("seconds",)


def write_outputs(details: dict[str, dict[str, Any]], out: Path, plan: Plan) -> None:
    """benchmark.json (dataset -> metric -> {mean, std, n_folds, n_nan} of the headline), benchmark-details.json
    (everything but timings), benchmark.md."""
    out.mkdir(parents=True, exist_ok=True)
    stable = {name: {k: v for k, v in d.items() if k not in VOLATILE} for name, d in details.items()}
    summary = {name: d["metrics"] for name, d in stable.items()}
    texts = (
        ("benchmark.json", json.dumps(summary, indent=2, sort_keys=True) + "\n"),
        ("benchmark-details.json", json.dumps(stable, indent=2, sort_keys=True, default=str) + "\n"),
        ("benchmark.md", markdown(stable, plan)),
    )
    # all three are renamed into place together, after all are written: never a new .json beside an old .md
    with contextlib.ExitStack() as stack:
        for name, text in texts:
            stack.enter_context(atomic_path(out / name)).write_text(text)


def _cell(m: dict[str, Any] | None) -> str:
    """mean ± std; a NaN fold is shown, never hidden."""
    if not m:
        return ""
    n_nan, n = m.get("n_nan", 0), m.get("n_folds", 1)
    if n_nan == n:
        return f"NaN ({n} fold{'s' if n > 1 else ''})"
    text = f"{m['mean']:.3f} ± {m['std']:.3f}" if n - n_nan > 1 else f"{m['mean']:.3f}"
    return text + (f" ({n_nan} of {n} folds NaN)" if n_nan else "")


def _margin(g: dict[str, Any]) -> str:
    """How far the headline is from the goal, in fold standard deviations."""
    if g["measured"] != g["measured"] or not g.get("std") or g["std"] != g["std"]:
        return ""
    return f"{(g['measured'] - g['goal']) / g['std']:+.1f} std"


def markdown(details: dict[str, dict[str, Any]], plan: Plan) -> str:
    """The report a reader compares with the literature: our numbers beside the published ones."""
    head = plan.headline
    shipped = [name for name, d in details.items() if d["info"]["fixed_splits"]]
    lines = [
        "# Benchmark on real data",
        "",
        "ZombieScan's pipeline (contract -> features -> LightGBM, the code the simulator's pipeline runs) on each "
        "dataset in `datasets/`, beside published results on these datasets. Mean ± std (sample std, ddof 1) over the "
        "test folds; thresholds and calibration fitted on training data only; a fold where a metric is undefined is "
        "shown as NaN, never dropped. Regenerate with `dvc repro benchmark` (or `zombiescan benchmark --out reports`).",
        "",
        f"**Headline: fresh folds.** The design (specs, `train:` overrides, features) was frozen first; the folds were "
        f"then drawn with {_seeds(head)}, on which no choice has ever been made. "
        + (
            f"The **tuning folds** ({_seeds(plan.tuning)}, full model only) are folds every earlier report used and the "
            "per-dataset settings were chosen on: optimistic by construction, shown beside. "
            if plan.tuning is not None
            else ""
        )
        + (
            f"Data with shipped splits ({', '.join(shipped)}) is measured on the shipped test part only (see "
            f"{'its' if len(shipped) == 1 else 'each'} section). "
            if shipped
            else ""
        )
        + "Published results come from other protocols (another subset, another split, or unsupervised on all users): every "
        "published row says how its protocol differs.",
        "",
        "| dataset | goal | fresh folds (headline) | margin | met | tuning folds |",
        "|---|---|---:|---:|:---:|---:|",
    ]
    for name, d in details.items():
        for metric, g in d["goals"].items():
            tuned = _cell(d["tuning"]["metrics"][metric]) if d["tuning"]["metrics"] else ""
            tuned += " (the same splits)" if d["tuning"]["same_as_headline"] else ""
            lines.append(
                f"| {name} | {METRIC_NAMES[metric]} ≥ {g['goal']:.3f} | {_cell(d['metrics'][metric])} | {_margin(g)} | "
                f"{'yes' if g['met'] else '**no**'} | {tuned} |"
            )
    grouped = {name: d["group_aware"] for name, d in details.items() if "group_aware" in d}
    if grouped:
        first = next(iter(grouped.values()))
        lines += [
            "",
            "## Group-aware folds",
            "",
            "In stratified K-fold the members of one dense block land on both sides of a split, and a model can learn the "
            f"block instead of the behaviour. Group-aware: {first['group_protocol']}; groups are {first['groups']['how']}. "
            "Connected components cannot be the groups: the co-engagement graph of each dataset is one giant component. "
            "Beside it, stratified K-fold on the same shuffle seeds; both with the headline's settings, full model.",
            "",
        ]
        for name, g in grouped.items():
            s = g["groups"]
            largest = ", ".join(f"{x:,}" for x in s["largest"])
            lines.append(
                f"- {name}: {s['groups']:,} groups ({s['singletons']:,} of a single account), the largest {largest} of "
                f"{s['accounts']:,} accounts; {s['links_within_groups']:.0%} of the {s['links']:,} links lie within a group, "
                f"and {s['positive_links_within_groups']:.0%} of the {s['positive_links']:,} links between two positives; "
                f"{s['most_positives_in_one_group']:,} of the {s['positives']:,} positives are in one group. The first seed's "
                "test folds hold " + ", ".join(f"{f['positives']:,} of {f['accounts']:,}" for f in s["test_folds"]) + " positives."
            )
        lines += [
            "",
            "| dataset | protocol | " + " | ".join(METRIC_NAMES[m] for m in METRICS) + " |",
            "|---|---|" + "---:|" * len(METRICS),
        ]
        for name, g in grouped.items():
            lines.append(f"| {name} | stratified K-fold | " + " | ".join(_cell(g["stratified"][m]) for m in METRICS) + " |")
            lines.append(f"| {name} | **group-aware K-fold** | " + " | ".join(_cell(g["group"][m]) for m in METRICS) + " |")
    for name, d in details.items():
        info = d["info"]
        feats = ", ".join(f"{k} {v}" for k, v in d["features"].items())
        lines += [
            "",
            f"## {name}",
            "",
            f"{info['accounts']:,} accounts ({info['positives']:,} positive, {info['negatives']:,} negative), "
            f"{info['engagements']:,} engagements{' (untimed)' if info['engagements'] and not info['timed'] else ''}; "
            f"task {info['task']}; features used: {feats}. Protocol: {d['protocol']}. Headline: {d['headline']}",
            *(["", " ".join(d["notes"].split())] if d.get("notes") else []),
            "",
            "| method | F1 | accuracy | ROC-AUC | average precision | folds; for published rows, how the protocol differs |",
            "|---|---:|---:|---:|---:|---|",
        ]
        v = d["variants"]

        def row(label: str, ms: dict[str, Any], note: str = "") -> str:
            return f"| {label} | " + " | ".join(_cell(ms.get(m)) for m in METRICS) + f" | {note} |"

        n_full = v["full"]["f1"]["n_folds"]
        lines.append(
            row("**ZombieScan (LightGBM, all features): fresh folds**", v["full"], f"{n_full} test fold{'s' * (n_full != 1)} (headline)")
        )
        tuned = d["tuning"]["metrics"]
        if tuned is not None and d["tuning"]["same_as_headline"]:
            lines.append(row("ZombieScan, tuning folds", tuned, d["tuning"]["protocol"]))
        elif tuned is not None:
            note = f"{tuned['f1']['n_folds']} test folds, {d['tuning']['seeds']}, full model only: the folds the settings were chosen on"
            lines.append(row("ZombieScan, tuning folds", tuned, note))
        if "group_aware" in d:
            g = d["group_aware"]
            lines.append(row("ZombieScan, group-aware folds", g["group"], f"{g['group']['f1']['n_folds']} test folds; see above"))
        if d["best_ablation"]:
            b = d["best_ablation"]
            n_best = v[b]["f1"]["n_folds"]
            lines.append(
                row(
                    f"ZombieScan, best ablation: {b}",
                    v[b],
                    f"best by {METRIC_NAMES[d['primary_metric']]} on the folds it is shown on (optimistic); "
                    f"{n_best} fold{'s' * (n_best != 1)}",
                )
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
                "<details><summary>All ablations (fresh folds, first seed)</summary>",
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


def fast_plan(plan: Plan) -> Plan:
    """The CI subset: the headline only, on `fast_protocol`."""
    return Plan(headline=fast_protocol(plan.headline))


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


def plan_from_params(values: dict[str, Any]) -> Plan:
    """The plan from params.yaml's benchmark section (its other keys: datasets, root, out, fast).

    The protocol keys (`Protocol`'s fields) describe the headline; `tuning: {seed_offset, seeds}`
    and `groups: {datasets, seeds, seed_offset}` change only what they name (null: not run).
    """
    known = set(Protocol.__dataclass_fields__)
    others = {"datasets", "out", "fast", "root", "tuning", "groups"}
    unknown = sorted(set(values) - known - others)
    if unknown:
        raise ZombieScanError(f"benchmark: unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known | others))}")
    headline = _protocol({k: v for k, v in values.items() if k in known}, "benchmark", Protocol())
    if headline.folds < 2 or headline.inner_folds < 2:
        raise ZombieScanError("benchmark: folds and inner_folds must be at least 2")
    tuning = grouped = None
    if values.get("tuning") is not None:
        tuning = _protocol(_section(values, "tuning", {"seed_offset", "seeds"}), "benchmark.tuning", headline)
        tuning = replace(tuning, ablation_seeds=0)
    group_datasets: tuple[str, ...] = ()
    if values.get("groups") is not None:
        section = _section(values, "groups", {"datasets", "seeds", "seed_offset"})
        names = section.pop("datasets", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ZombieScanError(f"benchmark.groups.datasets = {names!r}: expected a list of dataset names")
        group_datasets = tuple(names)
        grouped = _protocol(section, "benchmark.groups", headline)
    plan = Plan(headline=headline, tuning=tuning, grouped=grouped, group_datasets=group_datasets)
    return fast_plan(plan) if values.get("fast") else plan


def _section(values: dict[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    section = values[key]
    if not isinstance(section, dict) or set(section) - allowed:
        raise ZombieScanError(f"benchmark.{key} = {section!r}: expected a mapping with some of {', '.join(sorted(allowed))}, or null")
    return dict(section)


def _protocol(settings: dict[str, Any], where: str, base: Protocol) -> Protocol:
    """`base` with `settings` checked: whole numbers, at least 1 (a seed offset: at least 0)."""
    for key, value in settings.items():
        least = 0 if key == "seed_offset" else 1
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ZombieScanError(f"{where}.{key} = {value!r}: expected an integer >= {least}")
    return replace(base, **{k: v for k, v in settings.items() if v is not None or k == "fixed_splits"})
