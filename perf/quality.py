"""Quality of the lockstep detector on a simulated world, per farm style; and of the dense-block score on Weibo-S.

    python -m perf.quality --sim data/raw/sim            # lockstep recall/precision per farm style
    python -m perf.quality --weibo ../shared/data/weibo-s  # dense-block ROC-AUC beside shipped baselines

Prints Markdown tables. Labels are used here to *measure*, never by the detectors.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from pipeline.features.lockstep import LockstepParams, dense_block_scores, lockstep


def lockstep_quality(sim: Path, params: LockstepParams = LockstepParams()) -> pl.DataFrame:  # noqa: B008
    """Recall of farm members per farm style, and precision of all grouped accounts."""
    eng = pl.read_parquet(sim / "engagements.parquet")
    labels = pl.read_parquet(sim / "labels.parquet")
    style = pl.read_parquet(sim / "campaigns.parquet").select("farm_id", "style").unique()
    start = time.perf_counter()
    result = lockstep(eng, params)
    seconds = time.perf_counter() - start
    grouped = result.groups.select(pl.col("members").explode().alias("account_id")).unique()
    truth = labels.join(style, on="farm_id", how="left").with_columns(grouped=pl.col("account_id").is_in(grouped["account_id"].implode()))
    per_style = (
        truth.filter(pl.col("is_like_farm"))
        .group_by("style")
        .agg(pl.len().alias("farm members"), pl.col("grouped").mean().alias("recall"))
        .sort("style")
    )
    precision = truth.filter(pl.col("grouped"))["is_like_farm"].mean()
    print(
        f"lockstep on {sim}: {result.groups.height} groups, {grouped.height} accounts grouped, "
        f"precision {precision:.3f} (share of grouped accounts that are farm members), "
        f"{result.skipped_cells} burst cells above the cap skipped, {seconds:.1f} s\n"
    )
    print("| farm style | farm members | recall (share in a lockstep group) |")
    print("|---|---:|---:|")
    for s, n, r in per_style.iter_rows():
        print(f"| {s} | {n} | {r:.3f} |")
    print(f"| all grouped accounts: precision | {grouped.height} | {precision:.3f} |")
    return per_style


def weibo_quality(folder: Path) -> None:
    """ROC-AUC / F1 of the untimed dense-block score beside the baselines shipped with Weibo-S."""
    edges = pl.read_csv(folder / "user_item_edges.csv").select(
        pl.col("user_id").cast(pl.String).alias("actor_id"), pl.col("item_id").cast(pl.String).alias("target_id"), "weight"
    )
    labels = pl.read_csv(folder / "user_labels.csv").select(pl.col("user_id").cast(pl.String).alias("account_id"), "is_suspicious")
    start = time.perf_counter()
    scores = dense_block_scores(edges)
    seconds = time.perf_counter() - start
    d = labels.join(scores, on="account_id", how="left").fill_null(0.0).fill_null(False)
    y, s = d["is_suspicious"].to_numpy(), d["lock_dense_block_score"].to_numpy()
    flagged = d["lock_in_densest_block"].to_numpy().astype(bool)  # FRAUDAR's output is its densest block
    print(f"dense-block score on {folder}: {seconds:.1f} s\n")
    print("| detector | ROC-AUC | precision | recall | F1 |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| ZombieScan dense-block (untimed, this run) | {roc_auc_score(y, s):.3f} | {precision_score(y, flagged):.3f} | "
        f"{recall_score(y, flagged):.3f} | {f1_score(y, flagged):.3f} |"
    )
    base = pl.read_csv(folder / "baseline_outputs.csv")
    base = base.with_columns(pl.col(base.columns[0]).cast(pl.String).alias("account_id")).join(labels, on="account_id", how="inner")
    y = base["is_suspicious"].to_numpy()
    for name in ("FRAUDAR", "LockInfer", "CatchSync", "FEAGLE", "REV2"):
        label_cols = [c for c in base.columns if c.lower().startswith(name.lower()) and "score" not in c.lower()]
        score_cols = [c for c in base.columns if c.lower().startswith(name.lower()) and "score" in c.lower()]
        if not label_cols:
            continue
        pred = base[label_cols[0]].fill_null(0).to_numpy()
        auc = f"{roc_auc_score(y, base[score_cols[0]].fill_null(0).to_numpy()):.3f}" if score_cols else "n/a"
        print(
            f"| {name} (shipped output) | {auc} | {precision_score(y, pred):.3f} | {recall_score(y, pred):.3f} | {f1_score(y, pred):.3f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m perf.quality", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sim", type=Path, help="a simulated contract folder (with labels and campaigns)")
    parser.add_argument("--weibo", type=Path, help="the weibo-s folder of ../shared/data")
    args = parser.parse_args(argv)
    if args.sim:
        lockstep_quality(args.sim)
    if args.weibo:
        weibo_quality(args.weibo)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
