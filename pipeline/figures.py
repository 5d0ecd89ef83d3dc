"""Matplotlib figures for the notebooks and `zombiescan report`, drawn from `pipeline.explore` tables.

Every function returns a `Figure` with a title and labelled axes; nothing is shown or saved here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from pipeline import tasks
from pipeline.explore import class_order

GENUINE, UNLABELLED = "#4C72B0", "#937860"
# accounts positive for several tasks ("zombie + like farm" first), in class_order
MIXED = ("#8172B3", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD", "#55A868")


def colours() -> dict[str, str]:
    """The colour of each class of explore.class_order(): each task's own colour (pipeline.tasks)."""
    order = class_order()
    single = {t.positive: t.colour for t in tasks.all_tasks()}
    mixed = [c for c in order if c not in single and c not in ("genuine", "unlabelled")]
    return {"genuine": GENUINE, **single, **{c: MIXED[i % len(MIXED)] for i, c in enumerate(mixed)}, "unlabelled": UNLABELLED}


def _classes(frame: pl.DataFrame) -> list[str]:
    present = set(frame["class"].unique().to_list())
    return [c for c in class_order() if c in present]


def age_histogram(activity: pl.DataFrame) -> Figure:
    """Account age at the last engagement, by class (density, so small classes are visible)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ages = activity["age_days"].drop_nulls()
    top = ages.max()
    bins = list(np.linspace(0, max(float(top) if isinstance(top, int | float) else 1.0, 1.0), 40))
    for c in _classes(activity):
        ax.hist(
            activity.filter(pl.col("class") == c)["age_days"].drop_nulls(),
            bins=bins,
            density=True,
            histtype="step",
            lw=2,
            label=c,
            color=colours()[c],
        )
    ax.set(title="Account age at the last engagement", xlabel="age (days)", ylabel="density")
    ax.legend()
    fig.tight_layout()
    return fig


def activity_ccdf(activity: pl.DataFrame, column: str = "n_actions") -> Figure:
    """Heavy tails on log-log axes: share of accounts with at least x actions, by class."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in _classes(activity):
        x = np.sort(activity.filter((pl.col("class") == c) & (pl.col(column) > 0))[column].to_numpy())
        if len(x):
            ax.loglog(x, 1 - np.arange(len(x)) / len(x), drawstyle="steps-post", label=c, color=colours()[c], lw=2)
    ax.set(
        title=f"Activity tail: share of accounts with at least x {column.removeprefix('n_')}",
        xlabel=f"{column.removeprefix('n_')} (log)",
        ylabel="share of accounts (log)",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def hour_heatmap(hours: pl.DataFrame) -> Figure:
    """Share of each class's actions by UTC hour of the day."""
    classes = _classes(hours)
    grid = np.zeros((len(classes), 24))
    for i, c in enumerate(classes):
        for hour, share in hours.filter(pl.col("class") == c).select("hour", "share").iter_rows():
            grid[i, hour] = share
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(classes) + 1.6))
    image = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set(
        title="When each class acts: share of its actions per hour of day (UTC)",
        xlabel="hour of day (UTC)",
        yticks=range(len(classes)),
        yticklabels=classes,
        xticks=range(0, 24, 2),
    )
    fig.colorbar(image, ax=ax, label="share of actions")
    fig.tight_layout()
    return fig


def feature_distributions(labelled: pl.DataFrame, features: list[str], task: str) -> Figure:
    """Histograms of each feature by class (positives vs the rest); symlog x for heavy-tailed ones."""
    n = len(features)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    y = labelled["label"].to_numpy().astype(bool)
    t = tasks.get(task)
    for ax, name in zip(axes.ravel(), features, strict=False):
        x = labelled[name].cast(pl.Float64).fill_nan(None).to_numpy()
        finite = x[np.isfinite(x)]
        heavy = len(finite) and finite.min() >= 0 and np.percentile(finite, 99) > 50 * max(np.median(finite), 1e-9)
        bins = np.histogram_bin_edges(finite, bins=30) if len(finite) else 10
        for mask, label, colour in (
            (~y, t.negative, GENUINE),
            (y, t.positive, t.colour),
        ):
            values = x[mask]
            ax.hist(values[np.isfinite(values)], bins=bins, density=True, alpha=0.55, label=label, color=colour)
        if heavy:
            ax.set_xscale("symlog")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("density", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle(f"{task}: the most telling features by class")
    fig.tight_layout()
    return fig


def correlations(labelled: pl.DataFrame, features: list[str]) -> Figure:
    """Spearman rank correlations between the given features."""
    ranks = labelled.select([pl.col(f).cast(pl.Float64).fill_nan(None).rank() for f in features]).fill_null(strategy="mean")
    matrix = np.corrcoef(ranks.to_numpy(), rowvar=False)
    fig, ax = plt.subplots(figsize=(0.55 * len(features) + 3, 0.55 * len(features) + 2))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set(xticks=range(len(features)), yticks=range(len(features)), title="Rank correlation between the telling features")
    ax.set_xticklabels(features, rotation=70, ha="right", fontsize=8)
    ax.set_yticklabels(features, fontsize=8)
    fig.colorbar(image, ax=ax, label="Spearman correlation")
    fig.tight_layout()
    return fig


def model_curves(predictions: pl.DataFrame, label: str, task: str, threshold: float) -> Figure:
    """ROC, precision-recall and calibration of the shipped model on its test fold."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y = predictions[label].to_numpy().astype(bool)
    p = predictions["p"].to_numpy()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 4))
    fpr, tpr, _ = roc_curve(y, p)
    floor = 1 / max(int((~y).sum()), 1)  # the smallest false positive rate this test fold can show
    a.plot(np.maximum(fpr, floor), tpr, lw=2)
    a.set(
        title=f"ROC (AUC {roc_auc_score(y, p):.3f})",
        xlabel="false positive rate (log scale)",
        ylabel="true positive rate",
        xscale="log",
        xlim=(floor, 1),
        ylim=(0, 1.02),
    )
    precision, recall, _ = precision_recall_curve(y, p)
    b.plot(recall, precision, lw=2)
    flagged = p >= threshold
    b.scatter(
        [(flagged & y).sum() / max(y.sum(), 1)],
        [(flagged & y).sum() / max(flagged.sum(), 1)],
        color="black",
        zorder=3,
        label=f"stored threshold {threshold:.2f}",
    )
    b.set(title=f"Precision-recall (AP {average_precision_score(y, p):.3f})", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    b.legend(loc="lower left")
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)  # sklearn's binning
    counts = counts[counts > 0]
    c.plot(predicted, observed, lw=1.5)
    c.scatter(predicted, observed, s=20 + 200 * np.sqrt(counts / counts.sum()), zorder=3, label="bins (area: accounts)")
    c.legend(loc="upper left", fontsize=8)
    c.plot([0, 1], [0, 1], ls=":", color="grey")
    c.set(title="Calibration", xlabel="predicted probability", ylabel="observed share of positives")
    fig.suptitle(f"{task}: the shipped model on its test fold ({len(y):,} accounts, {int(y.sum()):,} positives)")
    fig.tight_layout()
    return fig


def contribution_bars(contrib: pl.DataFrame, title: str, top: int = 10) -> Figure:
    """The largest LightGBM contributions (log-odds) for one account, with the feature values."""
    shown = contrib.head(top).reverse()
    fig, ax = plt.subplots(figsize=(8, 0.35 * shown.height + 1.4))
    colours = ["#C44E52" if v > 0 else "#4C72B0" for v in shown["contribution"]]
    labels = [f"{f} = {v:,.3g}" for f, v in zip(shown["feature"], shown["value"], strict=True)]
    ax.barh(labels, shown["contribution"], color=colours)
    ax.axvline(0, color="black", lw=0.8)
    ax.set(title=title, xlabel="contribution to the score (log-odds; red pushes towards a flag)")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig


def group_matrix(likes: pl.DataFrame, title: str, max_targets: int = 2_000) -> Figure:
    """Account-by-target matrix of a group's likes: a solid block is accounts liking the same targets.

    At most `max_targets` columns (the most liked), so a large farm does not need a huge dense grid.
    """
    accounts = likes["actor_id"].unique().sort().to_list()
    counts = likes.group_by("target_id").len().sort(["len", "target_id"], descending=[True, False])
    targets = counts["target_id"].head(max_targets).to_list()
    a_ix = {a: i for i, a in enumerate(accounts)}
    t_ix = {t: i for i, t in enumerate(targets)}
    grid = np.zeros((len(accounts), len(targets)), dtype=np.uint8)
    for actor, target in likes.filter(pl.col("target_id").is_in(targets)).select("actor_id", "target_id").iter_rows():
        grid[a_ix[actor], t_ix[target]] = 1
    order = np.lexsort(-grid[:, ::-1].T.astype(np.int8)) if len(targets) else np.arange(len(accounts))
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.imshow(grid[order], aspect="auto", cmap="Greys", interpolation="nearest")
    shown = f"{len(targets):,} most liked of {counts.height:,}" if counts.height > len(targets) else f"{len(targets):,}, most liked first"
    ax.set(title=title, xlabel=f"targets ({shown})", ylabel=f"accounts ({len(accounts):,})")
    fig.tight_layout()
    return fig


def like_raster(likes: pl.DataFrame, title: str, focus: list[str] | None = None, hours: float | None = 3.0, colours: int = 8) -> Figure:
    """When each account liked (one row per account, ordered by its first like in view).

    With `hours`, only the busiest window of that length (most likes of the `focus` targets) is
    drawn: over months every row is solid, over hours lockstep shows as bands of many accounts
    liking one target within minutes. The `colours` most liked targets in view get a colour each;
    other likes of `focus` targets are dark red, the rest grey.
    """
    shown = likes
    if hours is not None and likes.height:
        hits = likes.filter(pl.col("target_id").is_in(focus)) if focus else likes
        hits = hits if hits.height else likes
        times = hits["ts"].sort()
        ts = times.to_numpy()
        counts = np.searchsorted(ts, ts + np.timedelta64(int(hours * 3600), "s")) - np.arange(len(ts))
        start = times[int(np.argmax(counts))]  # a time zone aware datetime, comparable with the column
        shown = likes.filter((pl.col("ts") >= start) & (pl.col("ts") < start + timedelta(hours=hours)))
        title = f"{title} (busiest {hours:g} h)"
    order = shown.group_by("actor_id").agg(pl.col("ts").min()).sort("ts", "actor_id")["actor_id"].to_list()
    a_ix = {a: i for i, a in enumerate(order)}
    fig, ax = plt.subplots(figsize=(10, 4.8))
    in_focus = shown["target_id"].is_in(focus or [])
    top = shown.filter(in_focus).group_by("target_id").len().sort(["len", "target_id"], descending=[True, False]).head(colours)
    palette = plt.get_cmap("tab10")
    rest = shown.filter(~pl.col("target_id").is_in(top["target_id"].to_list()))
    for part, colour, label in (
        (rest.filter(~pl.col("target_id").is_in(focus or [])), "#bbbbbb", "other likes"),
        (rest.filter(pl.col("target_id").is_in(focus or [])), "#7a1f1f", "other shared targets"),
    ):
        if part.height:
            ax.scatter(part["ts"].to_numpy(), [a_ix[a] for a in part["actor_id"]], s=5, color=colour, label=label)
    for i, (target, n) in enumerate(top.iter_rows()):
        part = shown.filter(pl.col("target_id") == target)
        ax.scatter(part["ts"].to_numpy(), [a_ix[a] for a in part["actor_id"]], s=9, color=palette(i % 10), label=f"target {target} ({n})")
    ax.set(title=title, xlabel="time (UTC)", ylabel=f"account (one row each, {len(order)}; by first like)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def bipartite(likes: pl.DataFrame, title: str, max_accounts: int = 40, max_targets: int = 25) -> Figure:
    """The group's most active accounts (left) and the targets they liked most (right), drawn with networkx."""
    import networkx as nx

    top = likes.group_by("target_id").len().sort(["len", "target_id"], descending=[True, False]).head(max_targets)["target_id"].to_list()
    picked = likes.filter(pl.col("target_id").is_in(top))
    busiest = picked.group_by("actor_id").len().sort(["len", "actor_id"], descending=[True, False]).head(max_accounts)["actor_id"]
    edges = picked.filter(pl.col("actor_id").is_in(busiest.to_list())).select("actor_id", "target_id").unique()
    graph = nx.Graph()
    accounts = sorted(set(edges["actor_id"].to_list()))
    graph.add_nodes_from(f"a:{a}" for a in accounts)
    graph.add_nodes_from(f"t:{t}" for t in top)
    graph.add_edges_from((f"a:{a}", f"t:{t}") for a, t in edges.iter_rows())
    pos = nx.bipartite_layout(graph, [f"a:{a}" for a in accounts])
    fig, ax = plt.subplots(figsize=(8, 7))
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.25, width=0.5)
    nodes = {"node_size": 30, "ax": ax}
    nx.draw_networkx_nodes(graph, pos, nodelist=[f"a:{a}" for a in accounts], node_color=_seller_colour(), label="accounts", **nodes)
    nx.draw_networkx_nodes(graph, pos, nodelist=[f"t:{t}" for t in top], node_color=GENUINE, node_shape="s", label="targets", **nodes)
    total_accounts, total_targets = likes["actor_id"].n_unique(), likes["target_id"].n_unique()
    ax.set_title(f"{title}\n({len(accounts)} of {total_accounts} accounts, {len(top)} of {total_targets:,} targets: the most active)")
    ax.legend(loc="lower center", ncols=2, fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    return fig


def bar_table(frame: pl.DataFrame, label: str, value: str, title: str, xlabel: str, err: str | None = None) -> Figure:
    """A horizontal bar per row (e.g. the ablation table), with optional error bars."""
    shown = frame.reverse()
    fig, ax = plt.subplots(figsize=(7, 0.4 * shown.height + 1.3))
    ax.barh(shown[label].cast(pl.String).to_list(), shown[value].to_numpy(), xerr=shown[err].to_numpy() if err else None, color="#4C72B0")
    ax.set(title=title, xlabel=xlabel)
    low = float(np.nanmin(shown[value].to_numpy()))
    ax.set_xlim(max(0.0, low - 0.1), 1.0) if 0 <= low <= 1 else None
    fig.tight_layout()
    return fig


def close(fig: Any) -> None:
    plt.close(fig)


def benchmark_bars(bench: pl.DataFrame) -> Figure:
    """Our score (with its std over folds) beside the best published one, per dataset and metric."""
    rows = bench.filter(pl.col("best_published").is_not_null())
    labels = [f"{d}\n{m}" for d, m in zip(rows["dataset"], rows["metric"], strict=True)]
    x = np.arange(rows.height)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * rows.height + 2), 4.2))
    ax.bar(x - 0.2, rows["ours_mean"].to_numpy(), 0.4, yerr=rows["ours_std"].to_numpy(), label="ZombieScan (mean ± std)", color="#4C72B0")
    ax.bar(x + 0.2, rows["best_published"].to_numpy(), 0.4, label="best published (protocol may differ)", color="#999999")
    ax.set_xticks(x, labels, fontsize=8)
    both = np.r_[rows["ours_mean"].to_numpy(), rows["best_published"].to_numpy()]
    low = float(both.min()) if len(both) else 0.0
    ax.set(title="Real datasets: our score beside the best published", ylabel="score", ylim=(max(0.0, low - 0.1), 1.0))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def robustness_curves(curves: dict[str, list[dict[str, Any]]]) -> Figure:
    """Average precision per task as each knob moves (the robustness stage's sweep): one panel per knob."""
    knobs = list(curves)
    fig, axes = plt.subplots(1, max(len(knobs), 1), figsize=(3.2 * max(len(knobs), 1), 3.4), sharey=True, squeeze=False)
    for ax, knob in zip(axes[0], knobs, strict=False):
        points = curves[knob]
        x = [pt["value"] for pt in points]
        for task, colour in ((t.name, t.colour) for t in tasks.all_tasks() if points and t.name in points[0]):
            y = [pt[task]["average_precision"]["mean"] for pt in points]
            err = [pt[task]["average_precision"]["std"] for pt in points]
            ax.errorbar(x, y, yerr=np.nan_to_num(err), marker="o", capsize=3, color=colour, label=task)
        ax.set(title=knob, xlabel="knob value", ylim=(0, 1.02))
    axes[0][0].set_ylabel("average precision (in-world)")
    axes[0][0].legend(loc="lower left")
    fig.suptitle("Detection as the world changes one knob at a time")
    fig.tight_layout()
    return fig


def _seller_colour() -> str:
    seller = tasks.like_seller()
    return seller.colour if seller is not None else MIXED[0]
