"""All feature families for a world, as the stage, the CLI and batch scoring compute them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.datasets.adapt import read_dataset_info
from pipeline.errors import ZombieScanError
from pipeline.features.behaviour import EMPTY_TARGETS, behavioural_features
from pipeline.features.graph import COENGAGER_COLUMNS, NEIGHBOUR_COLUMNS, graph_features
from pipeline.features.lockstep import LockstepParams, dense_block_scores_sql, empty_groups, lockstep
from pipeline.features.profile import _with_optional_columns, profile_features
from pipeline.features.sql import feature_connection
from pipeline.io import atomic_path
from pipeline.warehouse import attach

log = logging.getLogger(__name__)
FEATURE_FAMILIES = ("profile_", "beh_", "graph_", "lock_")


@dataclass
class FeatureReport:
    reference_time: str
    accounts: int
    features: int
    lockstep_groups: int
    lockstep_accounts: int
    lockstep_skipped_cells: int
    timed: bool
    seconds: dict[str, float] = field(default_factory=dict)  # logged, never written: a file must not change between runs

    def record(self) -> dict[str, Any]:
        """What is written to report.json and metrics/featurize.json: the same run gives the same bytes."""
        return {k: v for k, v in asdict(self).items() if k != "seconds"}


def build_features(
    accounts: pl.DataFrame,
    engagements: pl.DataFrame,
    targets: pl.DataFrame | None = None,
    *,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams = LockstepParams(),  # noqa: B008 (frozen dataclass)
) -> tuple[pl.DataFrame, pl.DataFrame, FeatureReport]:
    """Features (one row per account existing at `reference_time`) and lockstep groups, from frames.

    Engagements after `reference_time` are dropped before anything is computed (default: the
    last engagement's time), so no feature looks past it. Labels are never an input.
    """
    con = feature_connection()
    try:
        eng = engagements if "weight" in engagements.columns else engagements.with_columns(weight=pl.lit(1, pl.Int64))
        con.register("accounts_in", _with_optional_columns(accounts))
        con.register("engagements_in", eng)
        con.register("targets_in", targets if targets is not None else EMPTY_TARGETS)
        return _build(con, "accounts_in", "engagements_in", "targets_in", reference_time, lockstep_params)
    finally:
        con.close()


def featurize_warehouse(
    db: Path | str,
    out: Path | str,
    *,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams = LockstepParams(),  # noqa: B008
    memory_limit: str = "5GB",
) -> FeatureReport:
    """Compute features straight from the warehouse; write `out/features.parquet`, `out/lockstep_groups.parquet` atomically.

    The SQL runs against the warehouse tables (attached read-only), so the engagements are never
    copied into Python for the profile_ and beh_ families; DuckDB spills past `memory_limit`.
    A warehouse built from a dataset spec also gets its `raw_` features, and only the feature
    families and columns its data supports (`dataset_features`).
    """
    features, groups, report = warehouse_features(
        db, reference_time=reference_time, lockstep_params=lockstep_params, memory_limit=memory_limit
    )
    with atomic_path(Path(out), replaceable_dir=_is_features_output) as tmp:
        tmp.mkdir()
        features.write_parquet(tmp / "features.parquet")
        groups.write_parquet(tmp / "lockstep_groups.parquet")
        (tmp / "report.json").write_text(json.dumps(report.record(), indent=2, sort_keys=True) + "\n")
    return report


def warehouse_features(
    db: Path | str,
    *,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams = LockstepParams(),  # noqa: B008
    memory_limit: str = "5GB",
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, FeatureReport]:
    """Features and lockstep groups of a warehouse, in memory (see `featurize_warehouse`).

    `progress(step, done, total)` is called as each feature family starts (total 0: not known ahead).
    """
    con = feature_connection(memory_limit)
    try:
        attach(con, db, "wh")
        info = read_dataset_info(con, "wh")
        if info is None:
            return _build(con, "wh.accounts", "wh.engagements", "wh.targets", reference_time, lockstep_params, progress=progress)
        raw = con.sql("SELECT * FROM wh.raw_features").pl()
        if reference_time is None:
            reference_time = datetime.fromisoformat(info["reference_time"])
        features, groups, report = _build(
            con,
            "wh.accounts",
            "wh.engagements",
            "wh.targets",
            reference_time,
            lockstep_params,
            raw=raw,
            families=FEATURE_FAMILIES if info["engagements"] else ("profile_",),
            progress=progress,
        )
        features = dataset_features(features, timed=info["timed"], created_known=info["created_known"])
        report.features = len(features.columns) - 1
        return features, groups, report
    finally:
        con.close()


# Columns that need real engagement times, or real account creation times. A dataset without them
# (untimed edges; no creation dates) drops them: their values would be artefacts of the placeholder time.
TIMED_COLUMNS = (
    "beh_active_days", "beh_burstiness", "beh_busiest_hour_share", "beh_busiest_minute_share", "beh_first_action_delay_days",
    "beh_gap_cv", "beh_gap_median_s", "beh_hour_entropy", "beh_likes_per_active_day", "beh_night_share",
)  # fmt: skip
AGE_COLUMNS = ("profile_age_days", "profile_posts_per_day", "beh_first_action_delay_days")


def dataset_features(features: pl.DataFrame, *, timed: bool, created_known: bool) -> pl.DataFrame:
    """The columns a real dataset supports: no time- or age-derived column it lacks the data for,
    and no column that is constant or empty over the whole dataset (it carries no information)."""
    drop = set() if timed else set(TIMED_COLUMNS)
    if not created_known:
        drop |= {c for c in features.columns if any(a in c for a in AGE_COLUMNS)}
    keep = ["account_id"]
    for column in features.columns[1:]:
        if column in drop:
            continue
        values = features[column]
        if values.dtype.is_float():
            values = values.fill_nan(None)
        if values.drop_nulls().n_unique() > 1:
            keep.append(column)
    return features.select(keep)


def _build(
    con: duckdb.DuckDBPyConnection,
    accounts: str,
    engagements: str,
    targets: str,
    reference_time: datetime | None,
    lockstep_params: LockstepParams,
    *,
    raw: pl.DataFrame | None = None,
    families: tuple[str, ...] = FEATURE_FAMILIES,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, FeatureReport]:
    """Show the inputs as views cut at the reference time, then compute every family on them.

    `raw` (account_id + raw_ columns from a dataset) joins the features and, with the behaviour
    counts and the dense-block score, is also averaged over each account's graph neighbours and
    co-engagers. `families` leaves out families the data cannot support (no engagements).
    """
    if reference_time is None:
        reference_time = con.execute(f"SELECT max(ts) FROM {engagements}").fetchall()[0][0]
    if reference_time is None:
        raise ZombieScanError("features: there are no engagements to compute features from")
    # Views, not copies: nothing after the reference time is visible to any feature. (A view
    # cannot take a bound parameter; the literal comes from a datetime, not from user text.)
    ref = f"TIMESTAMPTZ '{reference_time.isoformat()}'"
    con.execute(f"CREATE OR REPLACE TEMP VIEW accounts AS SELECT * FROM {accounts} WHERE created_at <= {ref}")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW engagements AS SELECT actor_id, target_id, target_type::VARCHAR AS target_type, "
        f"kind::VARCHAR AS kind, ts, weight FROM {engagements} WHERE ts <= {ref}"
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW targets AS SELECT target_id, created_at FROM {targets}")
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if progress is not None:
            progress(f"features: {name}", len(seconds), 0)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 2)
        log.info("%s: %.1f s", name, seconds[name])
        return result

    features = timed("profile", profile_features, reference_time=reference_time, con=con)
    if "beh_" in families:
        features = features.join(
            timed("behaviour", behavioural_features, reference_time=reference_time, con=con), on="account_id", how="left"
        )
    raw_columns: list[str] = []
    if raw is not None:
        raw_columns = [c for c in raw.columns if c.startswith("raw_")]
        features = features.join(raw.select("account_id", *raw_columns), on="account_id", how="left")
    groups, lock_timed, skipped = empty_groups(), False, 0
    lock_features = None
    if "lock_" in families:
        kinds = list(lockstep_params.kinds)
        kind_list = ", ".join("'" + k.replace("'", "''") + "'" for k in kinds)
        con.execute(f"CREATE OR REPLACE TEMP VIEW lock_input AS SELECT * FROM engagements WHERE kind IN ({kind_list})")
        lock = timed("lockstep", lockstep, None, lockstep_params, con=con)
        dense = timed("dense_block", dense_block_scores_sql, con, "lock_input")
        groups, lock_timed, skipped = lock.groups, lock.timed, lock.skipped_cells
        lock_features = (
            features.select("account_id")
            .join(lock.features, on="account_id", how="left")
            .join(dense, on="account_id", how="left")
            .with_columns(
                pl.col("lock_group_size", "lock_partners").fill_null(0),
                pl.col("lock_max_jaccard", "lock_mean_jaccard", "lock_share", "lock_dense_block_score").fill_null(0.0),
                pl.col("lock_in_densest_block").fill_null(False).cast(pl.Int8),
            )
        )
    if "graph_" in families:
        # The simulator's inputs stay fixed (the shipped models' features); for a dataset, its raw_
        # columns, the action count and the dense-block score are also averaged over neighbours
        # and co-engagers.
        base = features if lock_features is None else features.join(lock_features, on="account_id", how="left")
        extra = [c for c in (*raw_columns, "beh_n_actions", "lock_dense_block_score") if c in base.columns] if raw is not None else []
        graph = timed(
            "graph",
            graph_features,
            base=base,
            con=con,
            neighbour_columns=(*NEIGHBOUR_COLUMNS, *raw_columns),
            coengager_columns=(*COENGAGER_COLUMNS, *extra),
            coengager_weighted=[
                c for c in ("beh_n_actions", "lock_dense_block_score", "lock_in_densest_block") if c in extra or c in base.columns
            ]
            if raw is not None
            else (),
        )
        features = features.join(graph, on="account_id", how="left")
    if lock_features is not None:
        features = features.join(lock_features, on="account_id", how="left")
    features = features.sort("account_id")
    grouped = groups["members"].explode().n_unique() if groups.height else 0
    report = FeatureReport(
        reference_time=reference_time.isoformat(),
        accounts=features.height,
        features=len(features.columns) - 1,
        lockstep_groups=groups.height,
        lockstep_accounts=grouped,
        lockstep_skipped_cells=skipped,
        timed=lock_timed,
        seconds=seconds,
    )
    return features, groups, report


def _is_features_output(folder: Path) -> bool:
    return (folder / "features.parquet").is_file() or not any(folder.iterdir())
