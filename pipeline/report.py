"""`zombiescan report`: one self-contained HTML page summarising a pipeline run for a reader.

The world or dataset, both models' metrics with intervals, the ablation table, the top lockstep
groups and the pages that bought likes, the real-data benchmark and the model cards. Figures are
PNGs embedded in the page (no files beside it), drawn by `pipeline.figures` from
`pipeline.explore` tables: the notebooks show the same numbers.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import explore, figures, tasks
from pipeline.errors import ZombieScanError
from pipeline.params import section

log = logging.getLogger(__name__)


CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
img { max-width: 100%; margin: 0.5em 0; }
nav a { margin-right: 1em; }
.note { color: #555; font-size: 0.92em; }
.card { background: #fafafa; border: 1px solid #e4e4e4; padding: 0.2em 1.2em; margin: 1em 0; }
.missed { color: #b00; font-weight: bold; } .met { color: #070; }
"""


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    figures.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _cell(value: Any) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, float):
        text = "" if value != value else (f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}")
        return f'<td class="num">{text}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, datetime):
        return f"<td>{value:%Y-%m-%d %H:%M}</td>"
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:8]) + (f" … ({len(value)})" if len(value) > 8 else "")
        return f"<td>{html.escape(shown)}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def table_html(frame: pl.DataFrame, headers: dict[str, str] | None = None) -> str:
    """A polars frame as an HTML table; `headers` renames columns for the reader."""
    names = [(headers or {}).get(c, c.replace("_", " ")) for c in frame.columns]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in frame.iter_rows())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _markdown(text: str, shift: int = 0) -> str:
    """Markdown as HTML; `shift` demotes headings (a model card's h1 becomes an h3 inside the page)."""
    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark").enable("table").render(text)
    for level in range(6 - shift, 0, -1):
        page = page.replace(f"<h{level}>", f"<h{level + shift}>").replace(f"</h{level}>", f"</h{level + shift}>")
    return page


def build_summary(params: dict[str, Any], base: Path | None = None) -> str:
    """The HTML page for the run that `params` describes; its relative paths are read from `base`
    (the params file's folder; default: the current folder, where `dvc repro` runs)."""
    from pipeline.scoring import load_models, score_features, suspected_pages, with_lockstep_groups

    base = (base or Path.cwd()).resolve()
    run = explore.RunPaths.from_dict(params, base).check()
    db, models_dir, metrics_dir, predictions_dir = run.db, run.models, run.metrics, run.predictions
    # relative to the run's folder: the page (a tracked output) must not depend on where the repo is cloned
    shown_db = str(db.relative_to(base)) if db.is_relative_to(base) else str(db)
    data = params.get("data") or {}
    source = (
        f"dataset spec {data['spec']}"
        if data.get("spec")
        else f"simulated world ({section(params, 'simulate').get('preset', 'default')} preset)"
    )

    sections: list[tuple[str, str, str]] = []  # (anchor, title, body)

    # --- the data
    activity = explore.account_activity(db)
    body = table_html(explore.overview(db))
    body += _png(figures.age_histogram(activity)) + _png(figures.activity_ccdf(activity))
    hours = explore.hour_of_day(db)
    if hours.height:
        body += _png(figures.hour_heatmap(hours))
    sections.append(("data", "The data", body))

    # --- the models
    models, _ = load_models(models_dir)
    for task, title in ((t.name, t.title) for t in tasks.configured(params)):
        if task not in models:
            sections.append((task, title, f"<p>Not trained: {html.escape(_untrained(models_dir, task))}</p>"))
            continue
        m = explore.load_metrics(metrics_dir, task)
        model = models[task]
        body = (
            f"<p>Split: {html.escape(str(m.get('split')))}; the shipped model flags at "
            f"{model.threshold:.3f} ({html.escape(model.threshold_note)}).</p>"
        )
        body += "<h3>Metrics (mean ± std over the evaluation folds; 95% bootstrap interval on test fold 0)</h3>"
        body += table_html(explore.metrics_table(m), {"ci_low": "fold 0: 95% low", "ci_high": "fold 0: 95% high"})
        bars = m.get("quality_bars", {})
        if bars:
            body += "<p>" + "; ".join(_bar(name, bar) for name, bar in bars.items()) + "</p>"
        pred_path = predictions_dir / f"{task}.parquet"
        if pred_path.is_file():
            pred = pl.read_parquet(pred_path)
            body += _png(figures.model_curves(pred, tasks.get(task).label, task, models[task].threshold))
        body += (
            "<h3>Ablation: what each feature family adds (average precision)</h3><p class='note'>The same LightGBM "
            "on the families added one at a time (profile, +beh behaviour, +graph, +lock lockstep; full is the shipped "
            "model), then the baselines: logistic regression on the profile, and single scores used as they are.</p>"
        )
        ablation = explore.ablation_table(m)
        body += table_html(ablation)
        body += _png(
            figures.bar_table(
                ablation,
                "variant",
                "average_precision",
                f"{task}: average precision by variant",
                "average precision",
                err="average_precision_std",
            )
        )
        if m.get("guard"):
            body += (
                "<h3>Giveaway guard: can a shallow rule tell the classes apart?</h3><p class='note'>Decision trees of "
                "depth 1-3 over all features, out of fold; the stage fails on a simulated world when a tree passes its "
                "limit or a feature is absent in one class and common in the other (flagged: "
                f"{html.escape(', '.join(m['guard'].get('flagged') or []) or 'none')}).</p>"
            )
            body += table_html(explore.guard_table(m)) + table_html(explore.presence_table(m))
        sections.append((task, title, body))

    # --- beyond this world: transfer and robustness
    body = ""
    try:
        transfer = explore.load_json(run.transfer, "transfer")
        if transfer.get("applicable"):
            body += (
                f"<h3>Transfer</h3><p class='note'>The model's recipe trained on the worlds of seeds "
                f"{', '.join(map(str, transfer['train_seeds']))} (each its own platform style) and scored on this world's "
                "test folds, beside the in-world model on the same folds.</p>"
            )
            body += table_html(explore.transfer_table(transfer))
    except ZombieScanError as exc:
        log.info("report: no transfer section (%s)", exc)
    try:
        robust = explore.load_json(run.robustness, "robustness")
        if robust.get("applicable"):
            body += (
                "<h3>Robustness</h3><p class='note'>Average precision in worlds that change one knob of this one "
                f"({robust['world']['accounts'] or 'preset-size'} accounts each; details in reports/robustness/).</p>"
            )
            body += _png(figures.robustness_curves(robust["curves"]))
            families = explore.adaptive_family_table(robust)
            if families.height:
                best = robust["adaptive_families"]["best_family"]
                body += (
                    f"<p>Adaptive farms spread their likes past the published lockstep windows; alone, the "
                    f"<b>{html.escape(str(best))}</b> family catches them best:</p>"
                )
                body += table_html(families)
    except ZombieScanError as exc:
        log.info("report: no robustness section (%s)", exc)
    if body:
        sections.append(("beyond", "Beyond this world: transfer and robustness", body))

    # --- lockstep groups and pages
    groups = pl.read_parquet(run.groups) if run.groups.is_file() else pl.DataFrame()
    if groups.height:
        top = explore.top_groups(groups, db, top=10)
        body = (
            f"<p>{groups.height:,} lockstep groups found; the 10 largest. The farm share counts only members with a "
            "like-farm label; a group with a low share is one a reviewer should look at before acting.</p>"
        )
        body += table_html(
            top, {"n_targets": "targets", "first_ts": "first like", "last_ts": "last like", "mean_common": "mean shared targets"}
        )
        largest = top["group_id"][0]
        members = groups.filter(pl.col("group_id") == largest)["members"][0].to_list()
        likes = explore.group_likes(db, members)
        body += _png(figures.group_matrix(likes, f"Lockstep group {largest}: accounts × targets they liked"))
    else:
        body = "<p>No lockstep groups: the data has no engagement times, or no coordinated bursts.</p>"
    seller = tasks.like_seller()
    if seller is not None and seller.name in models:
        features = pl.read_parquet(run.features)
        scores = with_lockstep_groups(score_features(features, {seller.name: models[seller.name]}, explain="none"), groups)
        pages = suspected_pages(db, scores, task=seller.name).head(15)
        body += (
            "<h3>Pages that bought likes (suspected)</h3><p class='note'>Likes from accounts over the like-farm "
            "threshold, beyond what each target's popularity explains (the same table as "
            "<code>zombiescan score --pages-out</code>).</p>"
        )
        body += table_html(
            pages.select(
                "target_id",
                "target_type",
                "farm_likes",
                "all_likes",
                "farm_share",
                "suspected_bought_likes",
                "lockstep_groups",
                "first_farm_like",
                "last_farm_like",
            )
        )
    sections.append(("farms", "Lockstep groups and pages that bought likes", body))

    # --- the real-data benchmark
    try:
        bench = explore.benchmark_table(run.benchmark)
        body = (
            "<p>Our model on public labelled datasets (fresh folds: repeated stratified 5-fold × 3 seeds drawn after "
            "the design was frozen, or the shipped splits), beside the best published result for the metric. Most "
            "published results come from another protocol (another subset or split, or unsupervised on all users): "
            "<code>published_protocol</code> says how. Details, tuning folds and group-aware folds: "
            "<code>reports/benchmark.md</code>.</p>"
        )
        body += table_html(bench)
        sections.append(("benchmark", "Real data", body))
    except ZombieScanError as exc:
        log.info("report: no benchmark section (%s)", exc)

    # --- model cards
    cards = ""
    for task in (t.name for t in tasks.configured(params)):
        card = models_dir / task / "MODEL_CARD.md"
        if card.is_file():
            cards += f'<div class="card">{_markdown(card.read_text(), shift=2)}</div>'
    if cards:
        sections.append(("cards", "Model cards", cards))

    nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    content = "".join(f'<h2 id="{a}">{html.escape(t)}</h2>{b}' for a, t, b in sections)
    # No wall-clock time on the page: the same run must give the same bytes (dvc.lock records its hash).
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ZombieScan summary</title>"
        f"<style>{CSS}</style></head><body><h1>ZombieScan summary</h1>"
        f"<p class='meta'>{html.escape(source)} · warehouse {html.escape(shown_db)}</p>"
        f"<nav>{nav}</nav>{content}</body></html>\n"
    )


def _bar(name: str, bar: dict[str, Any]) -> str:
    status = '<span class="met">met</span>' if bar.get("met") else '<span class="missed">missed</span>'
    return f"{html.escape(name.replace('_', ' '))} {bar['value']:.3f} against a bar of {bar['bar']:.2f}: {status}"


def _untrained(models_dir: Path, task: str) -> str:
    from pipeline.models.train import untrained_reason

    return untrained_reason(models_dir / task) or "no model"


def report_inputs(params: dict[str, Any], base: Path | None = None) -> list[Path]:
    """Every file and folder the page is built from (no output of `zombiescan report` may be one)."""
    run = explore.RunPaths.from_dict(params, base or Path.cwd())
    names = [t.name for t in tasks.configured(params)]
    per_task = [run.models / t / n for t in names for n in ("model.txt", "model.json", "MODEL_CARD.md")]
    per_task += [run.metrics / f"{t}.json" for t in names] + [run.predictions / f"{t}.parquet" for t in names]
    return [run.db, run.features, run.groups, *per_task, run.benchmark / "benchmark-details.json", run.transfer, run.robustness]


def write_summary(params: dict[str, Any], out: Path, base: Path | None = None) -> Path:
    """Build the page and write it atomically to `out`."""
    from pipeline.io import atomic_path

    page = build_summary(params, base)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote %s (%d kB)", out, len(page) // 1024)
    return out
