"""What analysts look at first: tables behind the notebooks and `zombiescan report`.

Each function reads a warehouse or the pipeline's outputs and returns a polars frame (or a
dict); `pipeline.figures` draws them. The notebooks and the report call these, so a number in a
notebook and the same number in the summary come from one piece of code.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline import tasks
from pipeline.db import literal, quote
from pipeline.errors import ZombieScanError
from pipeline.warehouse import connect


def class_order() -> list[str]:
    """How each account's labels read in a legend, in legend order: 'genuine' (no task positive),
    each task's positive ('zombie', 'like farm'), then accounts positive for several tasks
    ('zombie + like farm'), and 'unlabelled' (no label row, or every label unknown)."""
    nouns = [t.positive for t in tasks.all_tasks()]
    combos = [" + ".join(c) for k in range(2, len(nouns) + 1) for c in itertools.combinations(nouns, k)]
    return ["genuine", *nouns, *combos, "unlabelled"]


def _class_sql(con: Any) -> str:
    """Each row's class (see class_order) from the labels joined as `l`: from the label columns the warehouse has."""
    present = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'labels'").fetchall()}
    labelled = [t for t in tasks.all_tasks() if t.label in present]
    if not labelled:
        return "'unlabelled'"
    unknown = " AND ".join(f"l.{quote(t.label)} IS NULL" for t in labelled)
    positives = ", ".join(f"CASE WHEN coalesce(l.{quote(t.label)}, false) THEN {literal(t.positive)} END" for t in labelled)
    # concat_ws skips NULLs: the positive tasks' names joined by ' + ', or '' for none
    return f"""
    CASE WHEN l.account_id IS NULL OR ({unknown}) THEN 'unlabelled'
         ELSE coalesce(nullif(concat_ws(' + ', {positives}), ''), 'genuine') END
    """


@dataclass(frozen=True)
class RunPaths:
    """Where a pipeline run keeps its outputs, from its params.yaml (relative paths are read from the file's folder)."""

    params: dict[str, Any]
    db: Path
    features: Path  # features.parquet
    groups: Path  # lockstep_groups.parquet
    models: Path
    metrics: Path
    predictions: Path
    benchmark: Path  # the folder of benchmark.json and benchmark-details.json
    data_root: Path  # the public datasets
    transfer: Path  # transfer.json: trained on other worlds, tested on this one
    robustness: Path  # robustness.json: the knob sweep
    coordination: Path  # the coordination network's folder (network.graphml, network.gexf, nodes/edges CSV, report.json)

    @classmethod
    def from_params(cls, params_file: Path | str, warehouse: Path | str | None = None) -> RunPaths:
        """The run described by `params_file`; `warehouse` replaces its warehouse (for a warehouse of
        your own, the params file may then be missing: only the data notebook can run on it alone)."""
        import dataclasses

        from pipeline.params import load_params

        path = Path(params_file).resolve()
        params = load_params(path) if path.is_file() or warehouse is None else {}
        run = cls.from_dict(params, path.parent)
        return dataclasses.replace(run, db=Path(warehouse).resolve()) if warehouse else run

    @classmethod
    def from_dict(cls, params: dict[str, Any], base: Path) -> RunPaths:
        from pipeline.datasets.spec import data_root

        def at(value: Any) -> Path:
            return (base / str(value)).resolve()

        def get(name: str) -> dict[str, Any]:
            return dict(params.get(name) or {})

        features = at(get("featurize").get("out", "data/features"))
        evaluation = get("evaluate")
        root = data_root(str(at(get("benchmark").get("root", "../shared/data"))))
        return cls(
            params=params,
            db=at(get("ingest").get("db", "data/interim/warehouse")),
            features=features / "features.parquet",
            groups=features / "lockstep_groups.parquet",
            models=at(get("train").get("models", "models")),
            metrics=at(evaluation.get("metrics", "metrics")),
            predictions=at(evaluation.get("predictions", "data/predictions")),
            benchmark=at(get("benchmark").get("out", "reports")),
            data_root=root,
            transfer=at(get("transfer").get("out", "metrics/transfer.json")),
            robustness=at(get("robustness").get("out", "metrics/robustness.json")),
            coordination=at(get("coordination").get("out", "data/coordination")),
        )

    def check(self, *needed: str) -> RunPaths:
        """Fail clearly when the run has not produced what is `needed` (default: warehouse, features, models)."""
        for path in [getattr(self, n) for n in needed] or [self.db, self.features, self.models]:
            if not path.exists():
                raise ZombieScanError(f"{path}: missing; run `make repro` (or `dvc repro`) first, or point PARAMS at another run")
        return self


def _tables(con: Any) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _class_of(con: Any, account: str) -> tuple[str, str]:
    """(join, expression): the labels joined on `account` and each row's class (class_order()); 'unlabelled' without labels."""
    if "labels" not in _tables(con):
        return "", "'unlabelled'"
    return f"LEFT JOIN labels l ON l.account_id = {account}", _class_sql(con)


def overview(db: Path | str) -> pl.DataFrame:
    """One row per fact an analyst checks first: table sizes, engagements by kind, labels, time span."""
    con = connect(db)
    try:
        tables = _tables(con)
        rows: list[tuple[str, str]] = []
        for table in ("accounts", "engagements", "targets", "labels"):
            if table in tables:
                rows.append((f"{table} rows", f"{con.execute(f'SELECT count(*) FROM {table}').fetchone()[0]:,}"))  # type: ignore[index]
        for kind, n in con.execute("SELECT kind::VARCHAR, count(*) FROM engagements GROUP BY 1 ORDER BY 2 DESC").fetchall():
            rows.append((f"engagements: {kind}", f"{n:,}"))
        first, last = con.execute("SELECT min(ts), max(ts) FROM engagements").fetchone()  # type: ignore[misc]
        if first is not None:
            rows.append(("engagements from", f"{first:%Y-%m-%d %H:%M} UTC"))
            rows.append(("engagements to", f"{last:%Y-%m-%d %H:%M} UTC"))
        if "labels" in tables:
            for name, n in con.execute(
                f"SELECT {_class_sql(con)} AS c, count(*) FROM accounts a LEFT JOIN labels l USING (account_id) GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall():
                rows.append((f"accounts: {name}", f"{n:,}"))
    finally:
        con.close()
    return pl.DataFrame(rows, schema=["what", "value"], orient="row")


def account_activity(db: Path | str) -> pl.DataFrame:
    """Per account: its class (see class_order()), age in days at the last engagement, and its actions by kind."""
    con = connect(db)
    try:
        join, klass = _class_of(con, "a.account_id")
        return con.sql(
            f"""
            WITH ref AS (SELECT max(ts) AS ref FROM engagements),
            acts AS (
                SELECT actor_id AS account_id, count(*) AS n_actions,
                       count(*) FILTER (WHERE kind = 'like') AS n_likes,
                       count(DISTINCT target_id) AS n_targets
                FROM engagements GROUP BY 1
            )
            SELECT a.account_id, {klass} AS class,
                   date_diff('second', a.created_at, ref.ref) / 86400.0 AS age_days,
                   coalesce(acts.n_actions, 0) AS n_actions, coalesce(acts.n_likes, 0) AS n_likes,
                   coalesce(acts.n_targets, 0) AS n_targets
            FROM accounts a CROSS JOIN ref LEFT JOIN acts USING (account_id) {join}
            ORDER BY a.account_id
            """
        ).pl()
    finally:
        con.close()


def hour_of_day(db: Path | str) -> pl.DataFrame:
    """Share of each class's actions in each UTC hour of the day (rows: class, hour, share)."""
    con = connect(db)
    try:
        join, klass = _class_of(con, "e.actor_id")
        frame = con.sql(
            f"""
            SELECT {klass} AS class, hour(e.ts) AS hour, count(*) AS n
            FROM engagements e {join} GROUP BY ALL
            """
        ).pl()
    finally:
        con.close()
    return (
        frame.with_columns(share=pl.col("n") / pl.col("n").sum().over("class"))
        .select("class", pl.col("hour").cast(pl.Int32), "share")
        .sort("class", "hour")
    )


def labelled_features(features: pl.DataFrame, db: Path | str, task: str) -> pl.DataFrame:
    """The features of the accounts labelled for `task` (a name in pipeline.tasks), with the label as `label`."""
    column = quote(tasks.get(task).label)
    con = connect(db)
    try:
        labels = con.sql(f"SELECT account_id, {column} AS label FROM labels WHERE {column} IS NOT NULL").pl()
    finally:
        con.close()
    return features.join(labels, on="account_id", how="inner", maintain_order="left")


def telling_features(labelled: pl.DataFrame, top: int = 8) -> pl.DataFrame:
    """Features ranked by how well each alone separates the classes: ROC-AUC of the column as a
    score, folded so that 0.5 is useless and 1.0 separates perfectly (direction says which side)."""
    from sklearn.metrics import roc_auc_score

    y = labelled["label"].to_numpy().astype(bool)
    if y.all() or not y.any():
        raise ZombieScanError("telling features: the labels have one class only")
    rows = []
    for name in labelled.columns:
        if name in ("account_id", "label") or not labelled[name].dtype.is_numeric():
            continue
        x = labelled[name].cast(pl.Float64).fill_nan(None).fill_null(strategy="mean").to_numpy()
        if np.isnan(x).all() or np.nanstd(x) == 0:
            continue
        auc = float(roc_auc_score(y, np.nan_to_num(x)))
        rows.append((name, max(auc, 1 - auc), "higher in positives" if auc >= 0.5 else "lower in positives"))
    ranked = pl.DataFrame(rows, schema=["feature", "separation_auc", "direction"], orient="row")
    return ranked.sort("separation_auc", descending=True).head(top)


def load_metrics(metrics_dir: Path | str, task: str) -> dict[str, Any]:
    path = Path(metrics_dir) / f"{task}.json"
    if not path.is_file():
        raise ZombieScanError(f"{path}: missing; run `dvc repro` first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def metrics_table(metrics: dict[str, Any], variant: str = "full") -> pl.DataFrame:
    """The shipped model's metrics: mean ± std over the evaluation folds and the bootstrap 95% interval."""
    rows = []
    for name, value in metrics["variants"][variant].items():
        low, high = metrics.get("intervals", {}).get(name, [None, None])
        rows.append((METRIC_NAMES.get(name, name), value["mean"], value["std"], value["n_folds"], low, high))
    schema = {"metric": pl.String, "mean": pl.Float64, "std": pl.Float64, "folds": pl.Int64, "ci_low": pl.Float64, "ci_high": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


METRIC_NAMES = {
    "average_precision": "average precision",
    "roc_auc": "ROC-AUC",
    "recall_at_1pct_fpr": "recall at 1% false positives",
    "f1": "F1",
    "brier": "Brier score (lower is better)",
}


# The evaluate stage's variants: feature families added one at a time, then the shipped model.
ABLATION_ORDER = ("profile", "profile+beh", "profile+beh+graph", "profile+beh+lock", "full")


def ablation_table(metrics: dict[str, Any], metric: str = "average_precision") -> pl.DataFrame:
    """Every variant the evaluate stage trained (feature families added one by one, baselines), best first."""
    order = {name: i for i, name in enumerate(ABLATION_ORDER)}
    rows = [
        (name, "model" if name in order else "baseline", v[metric]["mean"], v[metric]["std"], v["roc_auc"]["mean"])
        for name, v in metrics["variants"].items()
    ]
    frame = pl.DataFrame(rows, schema=["variant", "kind", metric, f"{metric}_std", "roc_auc"], orient="row")
    # the families in the order they are added, then the baselines best first
    rank = pl.col("variant").replace_strict(order, default=len(order), return_dtype=pl.Int64)
    return frame.sort(rank, pl.col(metric), descending=[False, True])


def threshold_tradeoffs(predictions: pl.DataFrame, label: str, thresholds: list[float] | None = None) -> pl.DataFrame:
    """At each threshold: precision, recall, false positives and accounts flagged per 1M accounts scored."""
    y = predictions[label].to_numpy().astype(bool)
    p = predictions["p"].to_numpy()
    rows = []
    for t in sorted(set(thresholds or [0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99])):
        flagged = p >= t
        tp = int((flagged & y).sum())
        fp = int((flagged & ~y).sum())
        rows.append(
            (
                t,
                tp / max(int(flagged.sum()), 1) if flagged.any() else float("nan"),
                tp / max(int(y.sum()), 1),
                fp,
                flagged.mean() * 1_000_000,
                fp / max(len(y), 1) * 1_000_000,
            )
        )
    return pl.DataFrame(
        rows,
        schema=["threshold", "precision", "recall", "false_positives", "flagged_per_1M", "false_positives_per_1M"],
        orient="row",
    )


def review_cases(predictions: pl.DataFrame, label: str) -> dict[str, str | None]:
    """One true positive, one false positive and one false negative at the stored threshold (the
    most confident of each), by account id; None where the test fold has no such case."""
    cases: dict[str, str | None] = {}
    for name, cond, desc in (
        ("true positive", pl.col(label) & pl.col("flagged"), True),
        ("false positive", ~pl.col(label) & pl.col("flagged"), True),
        ("false negative", pl.col(label) & ~pl.col("flagged"), False),
    ):
        picked = predictions.filter(cond).sort(["p", "account_id"], descending=[desc, False]).head(1)
        cases[name] = picked["account_id"][0] if picked.height else None
    return cases


def contributions(model: Any, features: pl.DataFrame, account_id: str) -> pl.DataFrame:
    """LightGBM `pred_contrib` for one account: feature, value, contribution (log-odds), largest first."""
    from pipeline.models.train import to_matrix

    row = features.filter(pl.col("account_id") == account_id)
    if row.height != 1:
        raise ZombieScanError(f"contributions: account {account_id!r} is not in the features")
    x = to_matrix(row, model.features)
    contrib = np.asarray(model.booster.predict(x, pred_contrib=True))[0]
    frame = pl.DataFrame({"feature": model.features, "value": x[0].astype(np.float64), "contribution": contrib[:-1]})
    return frame.sort(pl.col("contribution").abs(), descending=True)


def group_likes(db: Path | str, members: list[str]) -> pl.DataFrame:
    """The likes of a set of accounts (a lockstep group): actor_id, target_id, ts, sorted by time."""
    con = connect(db)
    try:
        con.register("members_in", pl.DataFrame({"actor_id": members}))
        return con.sql(
            """
            SELECT e.actor_id, e.target_id, e.ts FROM engagements e JOIN members_in USING (actor_id)
            WHERE e.kind = 'like' ORDER BY e.ts, e.actor_id
            """
        ).pl()
    finally:
        con.close()


def top_groups(groups: pl.DataFrame, db: Path | str, top: int = 10) -> pl.DataFrame:
    """The largest lockstep groups with their size, targets, time window and (where labelled) the
    share of members that are known like-farm accounts."""
    if not groups.height:
        return pl.DataFrame(schema={"group_id": pl.Int64, "accounts": pl.Int64, "labelled_farm_share": pl.Float64})
    picked = groups.with_columns(accounts=pl.col("members").list.len()).sort(["accounts", "group_id"], descending=[True, False]).head(top)
    con = connect(db)
    try:
        seller = tasks.like_seller()
        has_labels = "labels" in _tables(con) and seller is not None
        members = picked.select("group_id", pl.col("members").alias("account_id")).explode("account_id")
        con.register("members_in", members)
        farm = (
            con.sql(
                f"""
                SELECT m.group_id, count(l.{quote(seller.label)}) AS labelled_members,
                       avg(l.{quote(seller.label)}::DOUBLE) AS labelled_farm_share  -- over labelled members only
                FROM members_in m LEFT JOIN labels l USING (account_id) GROUP BY 1
                """
            ).pl()
            if has_labels and seller is not None
            else picked.select("group_id", labelled_members=pl.lit(0, pl.Int64), labelled_farm_share=pl.lit(None, pl.Float64))
        )
    finally:
        con.close()
    picked = picked.with_columns(n_targets=pl.col("targets").list.len())
    keep = [
        "group_id",
        "accounts",
        "n_targets",
        *[c for c in picked.columns if c not in ("group_id", "accounts", "n_targets", "members", "targets", "size")],
    ]
    return picked.select(keep).join(farm, on="group_id", how="left", maintain_order="left")


def benchmark_table(reports: Path | str) -> pl.DataFrame:
    """The real-data benchmark (P4): each dataset's headline metrics (fresh folds) beside the best published result
    for that metric, with the note saying how that result's protocol differs from ours."""
    details_path = Path(reports) / "benchmark-details.json"
    if not details_path.is_file():
        raise ZombieScanError(f"{details_path}: missing; run `dvc repro benchmark` (needs the datasets in data.root)")
    details = json.loads(details_path.read_text())
    rows = []
    for dataset, d in details.items():
        for metric, value in d["metrics"].items():
            published = [p for p in d.get("published", []) if p["metric"] == metric]
            best = max(published, key=lambda p: p["value"]) if published else None
            goal = d.get("goals", {}).get(metric)
            rows.append(
                (
                    dataset,
                    metric,
                    value["mean"],
                    value["std"],
                    goal["goal"] if goal else None,
                    ("met" if goal["met"] else "missed") if goal else None,
                    best["value"] if best else None,
                    best["method"] if best else None,
                    best.get("note") if best else None,
                )
            )
    schema = ["dataset", "metric", "ours_mean", "ours_std", "goal", "goal_met", "best_published", "published_method", "published_protocol"]
    return pl.DataFrame(rows, schema=schema, orient="row")


def load_json(path: Path | str, how: str) -> dict[str, Any]:
    """A stage's JSON output, or a clear error saying which stage writes it."""
    path = Path(path)
    if not path.is_file():
        raise ZombieScanError(f"{path}: missing; run `dvc repro {how}` first")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def guard_table(metrics: dict[str, Any]) -> pl.DataFrame:
    """The giveaway guard's shallow trees (out-of-fold ROC-AUC per depth, and the limit)."""
    guard = metrics.get("guard") or {}
    limits = guard.get("limits", {}).get("max_tree_auc", {})
    rows = [(int(d), t["roc_auc"], limits.get(d)) for d, t in (guard.get("trees") or {}).items()]
    return pl.DataFrame(rows, schema={"tree depth": pl.Int64, "ROC-AUC": pl.Float64, "limit": pl.Float64}, orient="row")


def presence_table(metrics: dict[str, Any], top: int = 8) -> pl.DataFrame:
    """The features whose presence (share non-zero) differs most between the classes."""
    presence = (metrics.get("guard") or {}).get("presence") or {}
    rows = sorted(((f, v["positives"], v["negatives"]) for f, v in presence.items()), key=lambda r: -abs(r[1] - r[2]))[:top]
    return pl.DataFrame(
        rows, schema={"feature": pl.String, "positives non-zero": pl.Float64, "negatives non-zero": pl.Float64}, orient="row"
    )


def transfer_table(transfer: dict[str, Any]) -> pl.DataFrame:
    """In-world and transfer AP per task (the transfer stage)."""
    rows = [
        (task, r["in_world_average_precision"], r["transfer_average_precision"], r["gap"], r["max_gap"], "met" if r["met"] else "missed")
        for task, r in (transfer.get("tasks") or {}).items()
        if r.get("applicable", True)
    ]
    schema = {"task": pl.String, "in-world AP": pl.Float64, "transfer AP": pl.Float64, "gap": pl.Float64, "goal": pl.Float64, "": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def adaptive_family_table(robustness: dict[str, Any]) -> pl.DataFrame:
    """The like sellers' AP (like_farm) of one-family models in the world with the most adaptive farms."""
    families = (robustness.get("adaptive_families") or {}).get("families") or {}
    rows = [(name, r["average_precision"], r["adaptive_farm_average_precision"]) for name, r in families.items()]
    seller = tasks.like_seller()
    ap = f"{seller.name if seller else 'like seller'} AP"
    return pl.DataFrame(rows, schema={"family": pl.String, ap: pl.Float64, "adaptive-farm AP": pl.Float64}, orient="row")
