"""All feature families for a world, as the stage, the CLI and batch scoring compute them."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.errors import ZombieScanError
from pipeline.features.behaviour import EMPTY_TARGETS, behavioural_features
from pipeline.features.graph import graph_features
from pipeline.features.lockstep import LockstepParams, dense_block_scores_sql, lockstep
from pipeline.features.profile import _with_optional_columns, profile_features
from pipeline.features.sql import feature_connection
from pipeline.io import atomic_path

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
    seconds: dict[str, float] = field(default_factory=dict)


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
    """
    if not Path(db).is_file():
        raise ZombieScanError(f"{db}: warehouse not found; build it with `zombiescan ingest` or `dvc repro`")
    con = feature_connection(memory_limit)
    try:
        con.execute("ATTACH ? AS wh (READ_ONLY)", [str(db)])
        features, groups, report = _build(con, "wh.accounts", "wh.engagements", "wh.targets", reference_time, lockstep_params)
    finally:
        con.close()
    with atomic_path(Path(out), replaceable_dir=_is_features_output) as tmp:
        tmp.mkdir()
        features.write_parquet(tmp / "features.parquet")
        groups.write_parquet(tmp / "lockstep_groups.parquet")
        (tmp / "report.json").write_text(json.dumps(asdict(report), indent=2, sort_keys=True) + "\n")
    return report


def _build(
    con: duckdb.DuckDBPyConnection,
    accounts: str,
    engagements: str,
    targets: str,
    reference_time: datetime | None,
    lockstep_params: LockstepParams,
) -> tuple[pl.DataFrame, pl.DataFrame, FeatureReport]:
    """Show the inputs as views cut at the reference time, then compute every family on them."""
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
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 2)
        log.info("%s: %.1f s", name, seconds[name])
        return result

    profile = timed("profile", profile_features, reference_time=reference_time, con=con)
    beh = timed("behaviour", behavioural_features, reference_time=reference_time, con=con)
    base = profile.join(beh, on="account_id", how="left")
    graph = timed("graph", graph_features, base=base, con=con)
    kinds = list(lockstep_params.kinds)
    kind_list = ", ".join("'" + k.replace("'", "''") + "'" for k in kinds)
    con.execute(f"CREATE OR REPLACE TEMP VIEW lock_input AS SELECT * FROM engagements WHERE kind IN ({kind_list})")
    lock = timed("lockstep", lockstep, None, lockstep_params, con=con)
    dense = timed("dense_block", dense_block_scores_sql, con, "lock_input")
    features = (
        base.join(graph, on="account_id", how="left")
        .join(lock.features, on="account_id", how="left")
        .join(dense, on="account_id", how="left")
        .with_columns(
            pl.col("lock_group_size", "lock_partners").fill_null(0),
            pl.col("lock_max_jaccard", "lock_mean_jaccard", "lock_share", "lock_dense_block_score").fill_null(0.0),
            pl.col("lock_in_densest_block").fill_null(False).cast(pl.Int8),
        )
        .sort("account_id")
    )
    grouped = lock.groups["members"].explode().n_unique() if lock.groups.height else 0
    report = FeatureReport(
        reference_time=reference_time.isoformat(),
        accounts=features.height,
        features=len(features.columns) - 1,
        lockstep_groups=lock.groups.height,
        lockstep_accounts=grouped,
        lockstep_skipped_cells=lock.skipped_cells,
        timed=lock.timed,
        seconds=seconds,
    )
    return features, lock.groups, report


def _is_features_output(folder: Path) -> bool:
    return (folder / "features.parquet").is_file() or not any(folder.iterdir())
