"""`zombiescan report`: one self-contained HTML page summarising a pipeline run for a reader.

The world or dataset, each model's metrics with intervals, the ablation table, the top lockstep
groups and the pages that bought likes, the real-data benchmark and the model cards. The page is
the template pipeline/templates/summary.html (words and layout); this module gathers what it
shows. Figures are PNGs embedded in the page (no files beside it), drawn by `pipeline.figures`
from `pipeline.explore` tables: the notebooks show the same numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, Template
from markupsafe import Markup

from pipeline import explore, figures, tasks
from pipeline.errors import ZombieScanError
from pipeline.features import families
from pipeline.models.train import TaskModel
from pipeline.params import section

log = logging.getLogger(__name__)


def _png(fig: Any) -> str:
    """A figure as a PNG data URI: the page holds its images, nothing is fetched."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    figures.close(fig)
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


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
    """The HTML page for the run that `params` describes, from pipeline/templates/summary.html;
    its relative paths are read from `base` (the params file's folder; default: the current
    folder, where `dvc repro` runs)."""
    from pipeline.scoring import load_models

    base = (base or Path.cwd()).resolve()
    run = explore.RunPaths.from_dict(params, base).check()
    data = params.get("data") or {}
    source = (
        f"dataset spec {data['spec']}"
        if data.get("spec")
        else f"simulated world ({section(params, 'simulate').get('preset', 'default')} preset)"
    )
    loaded, _ = load_models(run.models)
    models = _models(params, run, loaded)
    beyond = _transfer(run), _robustness(run)
    groups = _groups(run)
    pages = _pages(run, groups, loaded)
    coordination = _coordination(run, base)
    benchmark = _benchmark(run)
    cards = [Markup(_markdown(p.read_text(), shift=2)) for t in models if (p := run.models / t["name"] / "MODEL_CARD.md").is_file()]
    sections = [
        ("data", "The data"),
        *((t["name"], t["title"]) for t in models),
        *([("beyond", "Beyond this world: transfer and robustness")] if any(beyond) else []),
        ("farms", "Lockstep groups and pages that bought likes"),
        *([("benchmark", "Real data")] if benchmark is not None else []),
        *([("cards", "Model cards")] if cards else []),
    ]
    return _template().render(
        source=source,
        # relative to the run's folder: the page (a tracked output) must not depend on where the repo is cloned
        warehouse=str(run.db.relative_to(base)) if run.db.is_relative_to(base) else str(run.db),
        sections=sections,
        data=_data(run.db),
        models=models,
        transfer=beyond[0],
        robustness=beyond[1],
        groups=groups,
        pages=pages,
        coordination=coordination,
        benchmark=benchmark,
        cards=cards,
        ablation_steps=_ablation_steps(),
        seller=(tasks.like_seller() or tasks.BUILT_IN[-1]).positive.replace(" ", "-"),  # "like-farm label"
    )


def _ablation_steps() -> str:
    """How the ablations add the families, in words: "profile, +beh behaviour, +graph, +lock lockstep"."""
    own, relational = families.ablated()
    added = [*own[1:], *relational]
    return ", ".join([own[0].name, *(f"+{f.name}" + (f" {f.title}" if f.title != f.name else "") for f in added)])


def _template() -> Template:
    """pipeline/templates/summary.html, with the `table` filter (a polars frame as an HTML table)."""
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["table"] = lambda frame, headers=None: Markup(table_html(frame, headers))
    return env.from_string(files("pipeline.templates").joinpath("summary.html").read_text(encoding="utf-8"))


def _data(db: Path) -> dict[str, Any]:
    activity = explore.account_activity(db)
    pngs = [_png(figures.age_histogram(activity)), _png(figures.activity_ccdf(activity))]
    hours = explore.hour_of_day(db)
    if hours.height:
        pngs.append(_png(figures.hour_heatmap(hours)))
    return {"overview": explore.overview(db), "figures": pngs}


def _models(params: dict[str, Any], run: explore.RunPaths, loaded: dict[str, TaskModel]) -> list[dict[str, Any]]:
    """One entry per task the run trains: its metrics, bars, curves, ablations and guard."""
    out = []
    for task in tasks.configured(params):
        entry: dict[str, Any] = {"name": task.name, "title": task.title, "trained": task.name in loaded}
        if task.name not in loaded:
            entry["reason"] = _untrained(run.models, task.name)
            out.append(entry)
            continue
        m = explore.load_metrics(run.metrics, task.name)
        model = loaded[task.name]
        pred_path = run.predictions / f"{task.name}.parquet"
        ablation = explore.ablation_table(m)
        entry.update(
            split=str(m.get("split")),
            threshold=model.threshold,
            threshold_note=model.threshold_note,
            metrics=explore.metrics_table(m),
            bars=[{"name": name.replace("_", " "), **bar} for name, bar in m.get("quality_bars", {}).items()],
            curves=_png(figures.model_curves(pl.read_parquet(pred_path), task.label, task.name, model.threshold))
            if pred_path.is_file()
            else None,
            ablation=ablation,
            ablation_figure=_png(
                figures.bar_table(
                    ablation,
                    "variant",
                    "average_precision",
                    f"{task.name}: average precision by variant",
                    "average precision",
                    err="average_precision_std",
                )
            ),
            guard={
                "flagged": m["guard"].get("flagged") or [],
                "trees": explore.guard_table(m),
                "presence": explore.presence_table(m),
            }
            if m.get("guard")
            else None,
        )
        out.append(entry)
    return out


def _transfer(run: explore.RunPaths) -> dict[str, Any] | None:
    try:
        transfer = explore.load_json(run.transfer, "transfer")
    except ZombieScanError as exc:
        log.info("report: no transfer section (%s)", exc)
        return None
    if not transfer.get("applicable"):
        return None
    return {"seeds": [str(s) for s in transfer["train_seeds"]], "table": explore.transfer_table(transfer)}


def _robustness(run: explore.RunPaths) -> dict[str, Any] | None:
    try:
        robust = explore.load_json(run.robustness, "robustness")
    except ZombieScanError as exc:
        log.info("report: no robustness section (%s)", exc)
        return None
    if not robust.get("applicable"):
        return None
    families = explore.adaptive_family_table(robust)
    return {
        "accounts": robust["world"]["accounts"],
        "curves": _png(figures.robustness_curves(robust["curves"])),
        "families": families if families.height else None,
        "best_family": str(robust["adaptive_families"]["best_family"]) if families.height else None,
    }


def _groups(run: explore.RunPaths) -> dict[str, Any] | None:
    groups = pl.read_parquet(run.groups) if run.groups.is_file() else pl.DataFrame()
    if not groups.height:
        return None
    top = explore.top_groups(groups, run.db, top=10)
    largest = top["group_id"][0]
    members = groups.filter(pl.col("group_id") == largest)["members"][0].to_list()
    likes = explore.group_likes(run.db, members)
    return {
        "frame": groups,
        "count": groups.height,
        "top": top,
        "largest": _png(figures.group_matrix(likes, f"Lockstep group {largest}: accounts × targets they liked")),
    }


def _pages(run: explore.RunPaths, groups: dict[str, Any] | None, models: dict[str, TaskModel]) -> pl.DataFrame | None:
    """The pages that bought likes, by the like-selling task's model (None without one)."""
    from pipeline.scoring import score_features, suspected_pages, with_lockstep_groups

    seller = tasks.like_seller()
    if seller is None or seller.name not in models:
        return None
    features = pl.read_parquet(run.features)
    frame = groups["frame"] if groups is not None else pl.DataFrame()
    scores = with_lockstep_groups(score_features(features, {seller.name: models[seller.name]}, explain="none"), frame)
    pages = suspected_pages(run.db, scores, task=seller.name).head(15)
    columns = ("target_id", "target_type", "farm_likes", "all_likes", "farm_share", "suspected_bought_likes", "lockstep_groups")
    return pages.select(*columns, "first_farm_like", "last_farm_like")


def _benchmark(run: explore.RunPaths) -> pl.DataFrame | None:
    try:
        return explore.benchmark_table(run.benchmark)
    except ZombieScanError as exc:
        log.info("report: no benchmark section (%s)", exc)
        return None


def _untrained(models_dir: Path, task: str) -> str:
    from pipeline.models.train import untrained_reason

    return untrained_reason(models_dir / task) or "no model"


def _coordination(run: explore.RunPaths, base: Path) -> dict[str, Any] | None:
    """The coordination network's counts and its files (paths relative to the run's folder), if the run made it."""
    report = run.coordination / "report.json"
    if not report.is_file():
        return None
    info = json.loads(report.read_text())
    folder = run.coordination.relative_to(base) if run.coordination.is_relative_to(base) else run.coordination
    names = ("network.gexf", "network.graphml", "nodes.csv", "edges.csv", "groups.parquet", "engagements.parquet")
    return {
        "edges": info.get("edges", 0),
        "nodes": info.get("nodes", 0),
        "groups": info.get("groups", 0),
        "windows": ", ".join(f"{w:,} s" for w in info.get("windows_s", [])),
        "min_repeats": info.get("min_repeats"),
        "capped": (info.get("hub_cap") or {}).get("capped_targets", 0),
        "files": [(name, str(folder / name)) for name in names if (run.coordination / name).is_file()],
    }


def report_inputs(params: dict[str, Any], base: Path | None = None) -> list[Path]:
    """Every file and folder the page is built from (no output of `zombiescan report` may be one)."""
    run = explore.RunPaths.from_dict(params, base or Path.cwd())
    names = [t.name for t in tasks.configured(params)]
    per_task = [run.models / t / n for t in names for n in ("model.txt", "model.json", "MODEL_CARD.md")]
    per_task += [run.metrics / f"{t}.json" for t in names] + [run.predictions / f"{t}.parquet" for t in names]
    return [
        run.db,
        run.features,
        run.groups,
        *per_task,
        run.benchmark / "benchmark-details.json",
        run.transfer,
        run.robustness,
        run.coordination,
    ]


def write_summary(params: dict[str, Any], out: Path, base: Path | None = None) -> Path:
    """Build the page and write it atomically to `out`."""
    from pipeline.io import atomic_path

    page = build_summary(params, base)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote %s (%d kB)", out, len(page) // 1024)
    return out
