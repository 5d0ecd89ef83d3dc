"""All feature families for a world, as the stage, the CLI and batch scoring compute them."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.db import literal, quote
from pipeline.errors import ZombieScanError
from pipeline.features import families
from pipeline.features.behaviour import EMPTY_TARGETS
from pipeline.features.family import Context
from pipeline.features.lockstep import LockstepParams, empty_groups
from pipeline.features.profile import _with_optional_columns
from pipeline.features.query import feature_connection
from pipeline.io import atomic_path
from pipeline.warehouse import attach, connect, read_dataset_info

log = logging.getLogger(__name__)


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
        eng = eng if "value" in eng.columns else eng.with_columns(value=pl.lit(None, pl.Float64))
        con.register("accounts_in", _with_optional_columns(accounts))
        con.register("engagements_in", eng)
        con.register("targets_in", targets if targets is not None else EMPTY_TARGETS)
        return _build(con, "accounts_in", "engagements_in", "targets_in", reference_time, lockstep_params).frames()
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
    families and columns its data supports (`dataset_columns`).
    """
    features, groups, report = warehouse_features(
        db, reference_time=reference_time, lockstep_params=lockstep_params, memory_limit=memory_limit
    )
    write_features(out, features, groups, report)
    return report


def write_features(out: Path | str, features: pl.DataFrame, groups: pl.DataFrame, report: FeatureReport) -> None:
    """`out/features.parquet`, `out/lockstep_groups.parquet` and `out/report.json`, replacing `out` whole."""
    with atomic_path(Path(out), replaceable_dir=_is_features_output) as tmp:
        tmp.mkdir()
        features.write_parquet(tmp / "features.parquet")
        groups.write_parquet(tmp / "lockstep_groups.parquet")
        (tmp / "report.json").write_text(json.dumps(report.record(), indent=2, sort_keys=True) + "\n")


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
    with computed_features(
        db, reference_time=reference_time, lockstep_params=lockstep_params, memory_limit=memory_limit, progress=progress
    ) as done:
        return done.frames()


@contextlib.contextmanager
def computed_features(
    db: Path | str,
    *,
    reference_time: datetime | None = None,
    lockstep_params: LockstepParams = LockstepParams(),  # noqa: B008
    memory_limit: str = "5GB",
    progress: Callable[[str, int, int], None] | None = None,
) -> Iterator[Computed]:
    """The features of a warehouse computed into an open connection (see `Computed`), which closes on exit.

    The SQL runs against the warehouse tables (attached read-only); a warehouse built from a
    dataset spec also gets its `raw_` features, and only the feature families and columns its
    data supports (`dataset_columns`).
    """
    con = feature_connection(memory_limit)
    try:
        attach(con, db, "wh")
        info = read_dataset_info(con, "wh")
        if info is None:
            yield _build(con, "wh.accounts", "wh.engagements", "wh.targets", reference_time, lockstep_params, progress=progress)
            return
        raw = con.sql("SELECT * FROM wh.raw_features").pl()
        if reference_time is None:
            reference_time = datetime.fromisoformat(info["reference_time"])
        done = _build(
            con,
            "wh.accounts",
            "wh.engagements",
            "wh.targets",
            reference_time,
            lockstep_params,
            raw=raw,
            engagements_known=bool(info["engagements"]),
            progress=progress,
        )
        done.columns = dataset_columns(con, done.ctx, done.columns, timed=info["timed"], created_known=info["created_known"])
        done.report.features = len(done.columns)
        yield done
    finally:
        con.close()


@dataclass
class Computed:
    """Features computed into a connection: each family a temp table (`Context.keep`), joined by `sql`.

    Nothing per account is held in Python until read: `frames` reads the features whole (the
    featurize stage, notebooks); batch scoring reads `sql` a chunk at a time
    (pipeline.scoring.score.warehouse_scores).
    """

    ctx: Context
    columns: list[str]  # the feature columns, in column order (account_id not included)
    groups: pl.DataFrame
    report: FeatureReport

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.ctx.con

    @property
    def sql(self) -> str:
        """account_id + `columns`, one row per account, sorted by account_id."""
        return self.ctx.features_sql([f.prefix for f in families.FAMILIES if f.prefix in self.ctx.computed], self.columns)

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame, FeatureReport]:
        """(features, lockstep groups, report), the features as one frame."""
        return self.con.sql(self.sql).pl(), self.groups, self.report


# Columns that need real engagement times, or real account creation times. A dataset without them
# (untimed edges; no creation dates) drops them: their values would be artefacts of the placeholder time.
TIMED_COLUMNS = (
    "beh_active_days", "beh_burstiness", "beh_busiest_hour_share", "beh_busiest_minute_share", "beh_first_action_delay_days",
    "beh_gap_cv", "beh_gap_median_s", "beh_hour_entropy", "beh_likes_per_active_day", "beh_night_share",
    "rate_given_burstiness", "rate_given_span_days", "rate_received_burstiness", "rate_received_span_days",
)  # fmt: skip
AGE_COLUMNS = ("profile_age_days", "profile_posts_per_day", "beh_first_action_delay_days")


def dataset_columns(con: duckdb.DuckDBPyConnection, ctx: Context, columns: list[str], *, timed: bool, created_known: bool) -> list[str]:
    """The columns a real dataset supports: no time- or age-derived column it lacks the data for,
    and no column that is constant or empty over the whole dataset (it carries no information).
    One aggregate over the families' tables: a column varies when its least and greatest values
    (nulls and NaN left out) differ."""
    drop = set() if timed else set(TIMED_COLUMNS)
    if not created_known:
        drop |= {c for c in columns if any(a in c for a in AGE_COLUMNS)}
    candidates = [c for c in columns if c not in drop]
    if not candidates:
        return []
    relation = con.sql(ctx.features_sql(list(ctx.computed), candidates))
    names, varies = relation.columns[1:], []
    for column, kind in zip(names, relation.types[1:], strict=True):
        name = quote(column)
        real = name if str(kind) not in ("FLOAT", "DOUBLE") else f"CASE WHEN isnan({name}) THEN NULL ELSE {name} END"
        varies.append(f"coalesce(min({real}) < max({real}), false)")
    found = dict(zip(names, relation.aggregate(", ".join(varies)).fetchall()[0], strict=True))
    return [c for c in candidates if found[c]]


def _build(
    con: duckdb.DuckDBPyConnection,
    accounts: str,
    engagements: str,
    targets: str,
    reference_time: datetime | None,
    lockstep_params: LockstepParams,
    *,
    raw: pl.DataFrame | None = None,
    engagements_known: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> Computed:
    """Show the inputs as views cut at the reference time, then compute every family on them
    (pipeline.features.families) into the connection.

    `raw` (account_id + raw_ columns from a dataset) joins the features and, with the behaviour
    counts and the dense-block score, is also averaged over each account's graph neighbours and
    co-engagers. Without engagements (`engagements_known` false: profile-only data) the families
    that need them are left out, and so are those that need engagement values (rate_) when no
    engagement up to the reference time carries one.
    """
    if reference_time is None:
        reference_time = con.execute(f"SELECT max(ts) FROM {engagements}").fetchall()[0][0]
    if reference_time is None:
        raise ZombieScanError("features: there are no engagements to compute features from")
    # Views, not copies: nothing after the reference time is visible to any feature. (A view
    # cannot take a bound parameter: the time goes in as an escaped literal of its ISO text.)
    ref = f"TIMESTAMPTZ {literal(reference_time.isoformat())}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW accounts AS SELECT * FROM {accounts} WHERE created_at IS NULL OR created_at <= {ref}")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW engagements AS SELECT actor_id, target_id, target_type::VARCHAR AS target_type, "
        f"kind::VARCHAR AS kind, ts, weight, value FROM {engagements} WHERE ts <= {ref}"
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW targets AS SELECT target_id, created_at FROM {targets}")
    ctx = Context(con, reference_time, lockstep_params, raw=raw, progress=progress)
    wanted = families.supported(engagements=engagements_known, values=engagements_known and has_values(con), raw=raw is not None)
    families.build(ctx, wanted)
    groups = ctx.outputs.get("groups", empty_groups())
    grouped = groups["members"].explode().n_unique() if groups.height else 0
    report = FeatureReport(
        reference_time=reference_time.isoformat(),
        accounts=con.execute(f"SELECT count(*) FROM {ctx.table('profile_')}").fetchall()[0][0],
        features=len(ctx.columns()),
        lockstep_groups=groups.height,
        lockstep_accounts=grouped,
        lockstep_skipped_cells=ctx.outputs.get("skipped_cells", 0),
        timed=ctx.outputs.get("timed", False),
        seconds=ctx.seconds,
    )
    columns = [c for f in families.FAMILIES for c in ctx.computed.get(f.prefix, [])]  # column order, not computation order
    return Computed(ctx, columns, groups, report)


def has_values(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any engagement the connection shows carries a value (a rating): the families that
    need values are computed only then. One scan of one column, stopped at the first value."""
    return con.execute("SELECT count(*) FROM (SELECT 1 FROM engagements WHERE value IS NOT NULL LIMIT 1)").fetchall()[0][0] > 0


def _is_features_output(folder: Path) -> bool:
    return (folder / "features.parquet").is_file() or not any(folder.iterdir())


def check_reference_time(db: Path | str, when: datetime | None) -> None:
    """A reference time before every account's creation leaves nothing to describe: say so before any work."""
    if when is None:
        return
    con = connect(db)
    try:
        first = con.execute("SELECT min(created_at) FROM accounts").fetchall()[0][0]
    finally:
        con.close()
    if first is not None and when < first:
        raise ZombieScanError(
            f"--reference-time {when.isoformat()}: is before every account was created (the first on {first.isoformat()}); "
            "there is nothing to describe: give a later time, or leave it out (the last engagement)"
        )
