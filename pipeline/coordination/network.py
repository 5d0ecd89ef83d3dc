"""The coordination network: pairs of accounts that engage with the same targets within a window, again and again.

Built from the lockstep detector's pieces (pipeline.features.lockstep), not a second detector:
its acts table (distinct actor, target, second; dense integer ids), its hub cap
(`max_cell_actors`), its pair self-join in slices of targets, its components, and its groups as
a node attribute. The definition, chosen to be comparable with CooRnet, CooRTweet and the
coordination-network-toolkit:

- A co-engagement is two different accounts engaging the same target with |t_a - t_b| <= window.
  Candidates come from cells of width `window` per target, each joined with itself and the next
  cell (two times within a window are in one cell or in neighbouring ones), then the exact gap test.
- An edge (a, b) exists when a and b co-engaged on at least `min_repeats` distinct targets, as
  the coordination-network-toolkit's co_retweet network counts them (distinct items; its like
  reader keeps only the first like of one item by one account, where every repeat is an act here,
  and it caps no hub: perf/coordination_compare.py labels each difference). `edge_percentile` then keeps the edges whose
  shared-target count is at or above that percentile of the window's edges (CooRnet's rule).
- Per shared target, the fastest co-engagement gives the gap and who led (a tie counts half).
- Cells holding more than `max_cell_actors` engagements are skipped (their pairs cost n^2) and
  counted: capped cells, their targets, and the engagements in them.
- Several windows: each is a network of its own; an edge is marked with the fastest window that
  gives it (`window_s`, CooRTweet's fast network) and its attributes are those of that window.
- `auto`: CooRnet's rule: the window within which quantile q of the fastest co-engagement gaps
  (one per account pair and target, within `auto_max_window_s`) fall.

Without timestamps (every engagement at one time) the network is the untimed co-engagement
network: an edge joins accounts that engaged at least `min_repeats` common targets at all.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.contract import KINDS
from pipeline.errors import ZombieScanError
from pipeline.features.lockstep import LockstepParams, acts_table, components, lockstep
from pipeline.features.query import feature_connection
from pipeline.warehouse import attach

log = logging.getLogger(__name__)

UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
# Pair rows per slice of a pair step: ~25M (pair, target) rows fit in DuckDB's default 5GB with
# room for its hash tables (one slice of lockstep's old self-join at `large` failed at 200M).
PAIR_ROWS_PER_SLICE = 25_000_000
MASK = 4_294_967_295  # the low 32 bits of a packed pair key: (u << 32) | v
ROW_BYTES = 190  # DuckDB memory per row of a pair step: 25M rows (PAIR_ROWS_PER_SLICE) in its default 5GB
STAGE_KEYS = ("out", "report", "formats")  # a params section's keys for the DVC stage, not network settings
COMPUTE, NONE = "compute", "none"  # the lockstep groups: run the detector here, or leave them out


def parse_window(text: str | int, option: str = "--window") -> int:
    """A window such as `60s`, `15m`, `1h`, `3d` or plain seconds (`3600`) in seconds, > 0.

    Raises:
        ZombieScanError: naming the option and the value, when it is not such a window.
    """
    match = re.fullmatch(r"\s*(-?\d+)\s*([smhd]?)\s*", str(text).lower())
    if match is None:
        raise ZombieScanError(f"{option} {text!r}: expected a window such as 60s, 15m, 1h, 3d or seconds (3600), or auto")
    seconds = int(match.group(1)) * UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ZombieScanError(f"{option} {text!r}: a window must be longer than 0 seconds")
    return seconds


@dataclass(frozen=True)
class CoordinationParams:
    """Settings of the coordination network (a params section `coordination`, or the CLI's options).

    `kinds` and `max_cell_actors` default to the lockstep settings' (None), so the network and the
    lockstep groups beside it see the same engagements and the same hub cap.
    """

    windows_s: tuple[int, ...] = (3_600,)
    auto_window: bool = False
    auto_quantile: float = 0.1
    auto_max_window_s: int = 86_400
    min_repeats: int = 3
    edge_percentile: float = 0.0
    kinds: tuple[str, ...] | None = None
    max_cell_actors: int | None = None
    max_edges: int = 5_000_000
    max_pair_rows: int = 500_000_000
    max_listed_targets: int = 20
    lockstep: LockstepParams = field(default_factory=LockstepParams)

    def __post_init__(self) -> None:
        if not self.windows_s and not self.auto_window:
            raise ZombieScanError("--window: give at least one window (e.g. 1h) or auto")
        for w in self.windows_s:
            if not isinstance(w, int) or isinstance(w, bool) or w <= 0:
                raise ZombieScanError(f"--window {w!r}: a window must be a whole number of seconds > 0")
        unknown = [k for k in self.kinds or () if k not in KINDS]
        if unknown:
            raise ZombieScanError(f"--kinds {','.join(unknown)}: unknown kind; expected some of {', '.join(KINDS)}")
        if self.kinds is not None and not self.kinds:
            raise ZombieScanError(f"--kinds: give at least one kind of {', '.join(KINDS)}")
        if self.min_repeats < 1:
            raise ZombieScanError(f"--min-repeats {self.min_repeats}: expected a whole number >= 1 (distinct shared targets per edge)")
        if not 0 <= self.edge_percentile < 100:
            raise ZombieScanError(f"--edge-percentile {self.edge_percentile:g}: expected a number in [0, 100) (0 keeps every edge)")
        if not 0 < self.auto_quantile < 1:
            raise ZombieScanError(f"--auto-quantile {self.auto_quantile:g}: expected a number between 0 and 1 (e.g. 0.1)")
        if self.auto_max_window_s <= 0:
            raise ZombieScanError(f"auto_max_window_s {self.auto_max_window_s}: expected seconds > 0")
        if self.max_edges < 1:
            raise ZombieScanError(f"--max-edges {self.max_edges}: expected a whole number >= 1")
        if self.max_pair_rows < 1:
            raise ZombieScanError(f"--max-pair-rows {self.max_pair_rows}: expected a whole number >= 1")
        if self.max_cell_actors is not None and self.max_cell_actors < 2:
            raise ZombieScanError(f"--max-cell-actors {self.max_cell_actors}: expected a whole number >= 2")

    @property
    def engagement_kinds(self) -> tuple[str, ...]:
        return self.kinds if self.kinds is not None else self.lockstep.kinds

    @property
    def cell_cap(self) -> int:
        return self.max_cell_actors if self.max_cell_actors is not None else self.lockstep.max_cell_actors

    @classmethod
    def from_dict(
        cls, values: dict[str, Any] | None, lockstep_params: LockstepParams | None = None, where: str = "coordination"
    ) -> CoordinationParams:
        """Settings from a params section (windows as `1h`, `60s`, seconds or `auto`), naming any unknown setting.
        The stage's own keys (STAGE_KEYS: its output paths and file formats) are not settings and are skipped."""
        values = {k: v for k, v in (values or {}).items() if k not in STAGE_KEYS}
        known = {f.name for f in fields(cls)} - {"lockstep", "auto_window"} | {"windows"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ZombieScanError(f"{where}: unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known))}")
        windows = values.pop("windows", None)
        if windows is not None:
            values.update(windows_from_text([windows] if isinstance(windows, str | int) else list(windows)))
        elif "windows_s" in values:
            values["windows_s"] = tuple(values["windows_s"])
        if values.get("kinds") is not None:
            values["kinds"] = tuple(values["kinds"])
        return cls(**values, lockstep=lockstep_params or LockstepParams())


def windows_from_text(texts: Sequence[str | int]) -> dict[str, Any]:
    """`windows_s` and `auto_window` from window texts (`60s`, `1h,3d`, `auto`), sorted and unique."""
    seconds: set[int] = set()
    auto = False
    for text in texts:
        for part in str(text).split(","):
            if part.strip().lower() == "auto":
                auto = True
            else:
                seconds.add(parse_window(part))
    return {"windows_s": tuple(sorted(seconds)), "auto_window": auto}


@dataclass
class CoordinationResult:
    nodes: pl.DataFrame  # one row per account with at least one edge
    edges: pl.DataFrame  # one row per account pair, source < target
    groups: pl.DataFrame  # components of the network with >= 3 members
    engagements: pl.DataFrame  # actor_id, target_id, ts, coordinated: every engagement of the kinds
    report: dict[str, Any]  # what was computed, with which settings (no timings: same input, same bytes)

    @property
    def timed(self) -> bool:
        return bool(self.report["timed"])


EDGE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "target": pl.String(),
    "shared_targets": pl.Int64(),
    "targets": pl.List(pl.String),
    "min_gap_s": pl.Int64(),
    "median_gap_s": pl.Float64(),
    "led_by_source_share": pl.Float64(),
    "first_ts": pl.Datetime("us", "UTC"),
    "last_ts": pl.Datetime("us", "UTC"),
    "window_s": pl.Int64(),
    "windows": pl.List(pl.Int64),
}

GROUP_SCHEMA: dict[str, pl.DataType] = {
    "group_id": pl.Int64(),
    "n_members": pl.Int64(),
    "members": pl.List(pl.String),
    "n_edges": pl.Int64(),
    "density": pl.Float64(),
    "n_targets": pl.Int64(),
    "targets": pl.List(pl.String),
    "first_ts": pl.Datetime("us", "UTC"),
    "last_ts": pl.Datetime("us", "UTC"),
    "like_farm_share": pl.Float64(),
}

MIN_GROUP = 3

# The co-engagements within $w among the rows of one slice of targets: each unordered pair of
# engagements once (one cell with itself, x.a < y.a; a cell with the next one, either order).
CO_ENGAGEMENTS = """
    SELECT x.a AS xa, y.a AS ya, x.g, x.t AS xt, y.t AS yt
    FROM {cells} x JOIN {cells} y ON x.g = y.g AND x.c = y.c AND x.a < y.a
    WHERE x.g % $slices = $i AND abs(x.t - y.t) <= $w
    UNION ALL
    SELECT x.a, y.a, x.g, x.t, y.t
    FROM {cells} x JOIN {cells} y ON x.g = y.g AND x.c + 1 = y.c AND x.a <> y.a
    WHERE x.g % $slices = $i AND abs(x.t - y.t) <= $w
"""
PAIR_KEY = "((least(xa, ya)::BIGINT << 32) | greatest(xa, ya)::BIGINT)"


def coordination_network(
    db: Path | str,
    params: CoordinationParams,
    scores: Path | str | None = None,
    *,
    lockstep_groups: Path | str = COMPUTE,
    memory_limit: str = "5GB",
) -> CoordinationResult:
    """The coordination network of a warehouse: edges, nodes, groups, flagged engagements and a report.

    `scores` is a file `zombiescan score` wrote (Parquet): its p_zombie / p_like_farm join the nodes.
    `lockstep_groups` gives the nodes' lockstep group: "compute" runs the lockstep detector here;
    a folder `zombiescan features` wrote (or its lockstep_groups.parquet) reuses its groups; "none"
    leaves the attribute out.

    Raises:
        ZombieScanError: no warehouse at `db`; a scores file without account_id; a lockstep groups
            file that is not one; a network above `params.max_pair_rows` candidate pairs or
            `params.max_edges` edges (naming the count and the options that make it smaller).
    """
    score_columns = _read_scores(scores) if scores is not None else None
    read_groups = _read_lockstep_groups(lockstep_groups) if str(lockstep_groups) not in (COMPUTE, NONE) else None
    con = feature_connection(memory_limit)
    try:
        attach(con, db, "wh")
        con.execute("CREATE OR REPLACE TEMP VIEW engagements AS SELECT actor_id, target_id, kind::VARCHAR AS kind, ts FROM wh.engagements")
        if read_groups is not None:
            lock_groups, lock_report = read_groups
        elif str(lockstep_groups) == COMPUTE:
            log.info("coordination: lockstep groups (the node attribute)")
            lock = lockstep(con=con, params=params.lockstep)
            lock_groups, lock_report = lock.groups, {"source": COMPUTE, "groups": lock.groups.height, "skipped_cells": lock.skipped_cells}
        else:
            lock_groups, lock_report = None, {"source": NONE, "groups": None, "skipped_cells": None}
        kinds = params.engagement_kinds
        n_acts, timed = acts_table(con, kinds)
        farm = _labels(con)
        report: dict[str, Any] = {
            "timed": timed,
            "kinds": list(kinds),
            "engagements": n_acts,
            "min_repeats": params.min_repeats,
            "edge_percentile": params.edge_percentile,
            "max_edges": params.max_edges,
            "hub_cap": {"max_cell_actors": params.cell_cap},
            "lockstep": lock_report,
            "auto_window": None,
        }
        con.execute("CREATE TEMP TABLE co_capped (g INTEGER)")
        con.execute("CREATE TEMP TABLE co_flag (a INTEGER, g INTEGER, t BIGINT)")
        con.execute(
            "CREATE TEMP TABLE co_edges (uv BIGINT, window_s BIGINT, shared BIGINT, targets INTEGER[], min_gap BIGINT, "
            "median_gap DOUBLE, led DOUBLE, first BIGINT, last BIGINT)"
        )
        windows: list[int] = list(params.windows_s)
        per_window: list[dict[str, Any]] = []
        if not n_acts:
            log.warning("coordination: no engagements of the kinds %s; the network is empty", ", ".join(kinds))
        elif not timed:
            log.warning(
                "coordination: the engagements carry no time information (all at one time): this is the UNTIMED "
                "co-engagement network (an edge: at least %d common targets at any time); --window is ignored",
                params.min_repeats,
            )
            report["note"] = (
                "untimed: the engagements carry no time information, so this is the untimed co-engagement network "
                f"(an edge joins accounts that engaged at least {params.min_repeats} common targets, at any time); the window is ignored"
            )
            windows = []
            per_window.append(_window(con, None, params, farm))
        else:
            if params.auto_window:
                chosen, auto = _auto_window(con, params)
                report["auto_window"] = auto
                windows = sorted({*windows, chosen})
            for w in windows:
                per_window.append(_window(con, w, params, farm))
        report["windows_s"] = windows
        last = con.execute("SELECT max(t) FROM acts").fetchall()[0][0]
        report["last_ts"] = datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if last is not None else None
        report["per_window"] = per_window
        n_edges = con.execute("SELECT count(DISTINCT uv) FROM co_edges").fetchall()[0][0]
        _check_size(n_edges, params, "all windows together")
        edges = _merged_edges(con, timed)
        nodes, groups, flagged = _nodes_and_groups(con, kinds, lock_groups, score_columns, timed, farm)
        capped = con.execute("SELECT count(DISTINCT g) FROM co_capped").fetchall()[0][0]
        report["hub_cap"].update(
            capped_targets=capped,
            capped_cells=sum(p["capped_cells"] for p in per_window),
            capped_engagements=sum(p["capped_engagements"] for p in per_window),
        )
        report.update(
            edges=edges.height,
            nodes=nodes.height,
            groups=groups.height,
            coordinated_engagements=int(flagged["coordinated"].sum()),
            edges_per_window={str(w): int((edges["window_s"] == w).sum()) for w in windows},
            labels=_label_summary(con, nodes, farm),
        )
        return CoordinationResult(nodes, edges, groups, flagged, report)
    finally:
        con.close()


def _read_lockstep_groups(source: Path | str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Lockstep groups `zombiescan features` wrote: its output folder (groups and the report's skipped
    cells) or its lockstep_groups.parquet (a file, or the folder of parts the Spark engine writes)."""
    path = Path(source)
    folder = None
    if path.is_dir() and (path / "lockstep_groups.parquet").exists():
        folder, path = path, path / "lockstep_groups.parquet"
    option = f"--lockstep-groups {source}"
    if not path.exists():
        raise ZombieScanError(
            f"{option}: no {path}; give compute, none, or a folder `zombiescan features` wrote (or its lockstep_groups.parquet)"
        )
    try:
        schema = pl.read_parquet_schema(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ZombieScanError(
            f"{option}: cannot read {path} as Parquet ({str(exc).splitlines()[0]}); give a folder `zombiescan features` wrote "
            "(or its lockstep_groups.parquet)"
        ) from None
    missing = [c for c in ("group_id", "size", "members") if c not in schema]
    if missing:
        raise ZombieScanError(
            f"{option}: {path} has no column {', '.join(missing)}; expected lockstep_groups.parquet from `zombiescan features`"
        )
    groups = pl.read_parquet(path, columns=["group_id", "size", "members"])
    skipped = None
    if folder is not None and (folder / "report.json").is_file():
        skipped = json.loads((folder / "report.json").read_text()).get("lockstep_skipped_cells")
    return groups, {"source": "featurize", "groups": groups.height, "skipped_cells": skipped}


def _read_scores(path: Path | str) -> pl.DataFrame:
    """account_id and the p_zombie / p_like_farm columns of a scores file (the ones it has)."""
    path = Path(path)
    try:
        schema = pl.read_parquet_schema(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ZombieScanError(
            f"--scores {path}: cannot read it as Parquet ({str(exc).splitlines()[0]}); give a file `zombiescan score` wrote"
        ) from None
    wanted = [c for c in ("p_zombie", "p_like_farm") if c in schema]
    if "account_id" not in schema or not wanted:
        raise ZombieScanError(f"--scores {path}: expected columns account_id and p_zombie or p_like_farm (a file `zombiescan score` wrote)")
    return pl.read_parquet(path, columns=["account_id", *wanted]).with_columns(pl.col(wanted).cast(pl.Float64))


def _labels(con: duckdb.DuckDBPyConnection) -> bool:
    """Temp table co_farm (a) of the accounts labelled like-farm; False when the warehouse has no such labels."""
    try:
        con.execute(
            "CREATE TEMP TABLE co_farm AS SELECT ai.a FROM wh.labels l JOIN actor_ix ai ON ai.actor_id = l.account_id WHERE l.is_like_farm"
        )
        return con.execute("SELECT count(*) FROM wh.labels WHERE is_like_farm IS NOT NULL").fetchall()[0][0] > 0
    except (duckdb.CatalogException, duckdb.BinderException):
        return False


def _cells(con: duckdb.DuckDBPyConnection, w: int | None, cap: int, min_targets: int, farm: bool) -> dict[str, Any]:
    """Temp table co_cells (a, g, t, c): the acts in cells of width `w` (None: one cell per target),
    without the cells above the hub cap (recorded in co_capped) and without the accounts in fewer
    than `min_targets` targets (they cannot have an edge). Returns what the cap cost."""

    def cell(t: str) -> str:
        return f"{t} // $w" if w is not None else "0"

    args = {"w": w} if w is not None else {}
    con.execute(f"CREATE OR REPLACE TEMP TABLE co_counts AS SELECT g, {cell('t')} AS c, count(*) AS n FROM acts GROUP BY ALL", args)
    cost = con.execute("SELECT count(*), count(DISTINCT g), coalesce(sum(n), 0) FROM co_counts WHERE n > $cap", {"cap": cap}).fetchall()[0]
    con.execute("INSERT INTO co_capped SELECT DISTINCT g FROM co_counts WHERE n > $cap", {"cap": cap})
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE co_cells AS
        SELECT x.a, x.g, x.t, k.c FROM acts x JOIN co_counts k ON k.g = x.g AND k.c = {cell("x.t")}
        WHERE k.n <= $cap
        """,
        {**args, "cap": cap},
    )
    capped_farm = None
    if farm:
        capped_farm = con.execute(
            f"SELECT count(*) FROM acts x JOIN co_counts k ON k.g = x.g AND k.c = {cell('x.t')} "
            "WHERE k.n > $cap AND x.a IN (SELECT a FROM co_farm)",
            {**args, "cap": cap},
        ).fetchall()[0][0]
    if min_targets > 1:
        con.execute("DELETE FROM co_cells WHERE a IN (SELECT a FROM co_cells GROUP BY a HAVING count(DISTINCT g) < $m)", {"m": min_targets})
    return {"capped_cells": cost[0], "capped_targets": cost[1], "capped_engagements": int(cost[2]), "capped_farm_engagements": capped_farm}


def _rows_per_slice(con: duckdb.DuckDBPyConnection) -> int:
    """Rows one slice of a pair step may hold: PAIR_ROWS_PER_SLICE at DuckDB's default 5GB, fewer
    under a smaller --memory-limit (~190 bytes a row with the hash tables and the median's state:
    measured, the evidence step of 2.8M pair-target rows needs ~1GB at once)."""
    text = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]  # e.g. '286.1 MiB'
    number, unit = text.split()
    limit = float(number) * 1024 ** (["B", "KiB", "MiB", "GiB", "TiB", "PiB"].index(unit))
    return int(min(PAIR_ROWS_PER_SLICE, max(100_000, limit // ROW_BYTES)))


def _candidate_rows(con: duckdb.DuckDBPyConnection, cells: str) -> int:
    """The pairs of engagements the cell join will test: n(n-1)/2 within a cell plus n x n' with the next cell."""
    rows = con.execute(
        f"""
        WITH k AS (SELECT g, c, count(*) AS n FROM {cells} GROUP BY ALL)
        SELECT coalesce(sum(k.n * (k.n - 1) // 2 + k.n * coalesce(k2.n, 0)), 0) FROM k LEFT JOIN k k2 ON k2.g = k.g AND k2.c = k.c + 1
        """
    ).fetchall()[0][0]
    return int(rows)


def _pair_targets(con: duckdb.DuckDBPyConnection, w: int | None, params: CoordinationParams, where: str) -> int:
    """Temp table co_pt (uv, g, key, first, last): per account pair and target, the fastest
    co-engagement packed as key = gap * 3 + (0 source led, 1 together, 2 target led), and the
    first and last engagement of all their co-engagements there. Returns the candidate pair rows.

    Raises:
        ZombieScanError: the candidate pair rows are above `params.max_pair_rows` (counted from the
            cell sizes before any join, so a window too wide for the machine stops in seconds).
    """
    rows = _candidate_rows(con, "co_cells")
    if rows > params.max_pair_rows:
        raise ZombieScanError(
            f"coordination: the network ({where}) would test {rows:,} pairs of engagements (two engagements of one target in one "
            f"window-wide cell or the next), above --max-pair-rows {params.max_pair_rows:,}; nothing was written. Raise "
            f"--max-pair-rows (DuckDB spills what does not fit in --memory-limit to disk: ~40 bytes a row), or test fewer pairs: "
            f"a smaller --window, a lower hub cap --max-cell-actors (now {params.cell_cap:,}), fewer --kinds, or a higher "
            f"--min-repeats (now {params.min_repeats})"
        )
    slices = max(1, -(-rows // _rows_per_slice(con)))
    con.execute("CREATE OR REPLACE TEMP TABLE co_pt (uv BIGINT, g INTEGER, key BIGINT, first BIGINT, last BIGINT)")
    for i in range(slices):
        # A target's co-engagements are all in one slice, so the GROUP BY within a slice is exact.
        con.execute(
            f"""
            INSERT INTO co_pt
            SELECT {PAIR_KEY} AS uv, g,
                   min(abs(xt - yt) * 3 + CASE WHEN xt = yt THEN 1 WHEN (xt < yt) = (xa < ya) THEN 0 ELSE 2 END),
                   min(least(xt, yt)), max(greatest(xt, yt))
            FROM ({CO_ENGAGEMENTS.format(cells="co_cells")}) GROUP BY ALL
            """,
            {"slices": slices, "i": i, "w": w if w is not None else 0},
        )
    return rows


def _auto_window(con: duckdb.DuckDBPyConnection, params: CoordinationParams) -> tuple[int, dict[str, Any]]:
    """CooRnet's rule: the window within which `auto_quantile` of the fastest co-engagement gaps fall."""
    w = params.auto_max_window_s
    log.info("coordination: estimating the window (quantile %g of the fastest gaps within %d s)", params.auto_quantile, w)
    _cells(con, w, params.cell_cap, 1, False)
    con.execute("DELETE FROM co_capped")  # the estimate's cells are not the network's: their cap is not reported
    _pair_targets(con, w, params, f"--window auto (gaps within {w:,} s)")
    n, gap = con.execute("SELECT count(*), quantile_disc(key // 3, $q) FROM co_pt", {"q": params.auto_quantile}).fetchall()[0]
    if not n:
        raise ZombieScanError(
            f"--window auto: no two accounts engaged the same target within {w:,} s, so there is no gap to take a quantile of; "
            "give a window (e.g. 1h)"
        )
    chosen = max(1, int(gap))  # simultaneous co-engagements (gap 0) still need a window of a second
    log.info("coordination: auto window %d s (%s co-engagement gaps)", chosen, f"{n:,}")
    return chosen, {"quantile": params.auto_quantile, "max_window_s": w, "co_engagements": n, "window_s": chosen}


def _check_size(n_edges: int, params: CoordinationParams, where: str) -> None:
    if n_edges > params.max_edges:
        raise ZombieScanError(
            f"coordination: the network ({where}) would have {n_edges:,} edges, above --max-edges {params.max_edges:,}; nothing "
            f"was written. Raise --max-edges, or keep fewer edges: a higher --min-repeats (now {params.min_repeats}), a smaller "
            f"--window, or --edge-percentile (now {params.edge_percentile:g}, e.g. 90)"
        )


def _window(con: duckdb.DuckDBPyConnection, w: int | None, params: CoordinationParams, farm: bool) -> dict[str, Any]:
    """The network of one window (None: untimed) into co_edges, its engagements into co_flag; what it found."""
    log.info("coordination: window %s", f"{w:,} s" if w is not None else "none (untimed)")
    stats: dict[str, Any] = {"window_s": w, **_cells(con, w, params.cell_cap, params.min_repeats, farm)}
    stats["candidate_pair_rows"] = _pair_targets(con, w, params, f"window {w:,} s" if w is not None else "untimed")
    # One pass over the pair-target rows gives the edges and their evidence; the listed targets are
    # the first k target numbers, which are in target_id order (target_ix numbers them sorted). In
    # parts of pairs, so the median's per-pair state never has to hold every pair at once.
    n_pt = con.execute("SELECT count(*) FROM co_pt").fetchall()[0][0]
    parts = max(1, -(-n_pt // _rows_per_slice(con)))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE co_w (uv BIGINT, shared BIGINT, min_gap BIGINT, median_gap DOUBLE, led DOUBLE, "
        "first BIGINT, last BIGINT, targets INTEGER[])"
    )
    for i in range(parts):
        con.execute(
            """
            INSERT INTO co_w
            SELECT uv, count(*), min(key // 3), quantile_cont(key // 3, 0.5)::DOUBLE,
                   -- who led, from integer counts (exact): 1 per target the source led, 0.5 per tie
                   sum(2 - key % 3) / (2.0 * count(*)), min(first), max(last), min(g, $k)
            FROM co_pt WHERE $parts = 1 OR uv % $parts = $i GROUP BY uv HAVING count(*) >= $m
            """,
            {"m": params.min_repeats, "k": params.max_listed_targets, "parts": parts, "i": i},
        )
    stats["co_engagements"] = n_pt
    stats["edges_before_percentile"] = n = con.execute("SELECT count(*) FROM co_w").fetchall()[0][0]
    threshold = None
    if params.edge_percentile > 0 and n:
        # R's default quantile (type 7), as CooRnet takes it
        threshold = con.execute("SELECT quantile_cont(shared, $p) FROM co_w", {"p": params.edge_percentile / 100}).fetchall()[0][0]
        con.execute("DELETE FROM co_w WHERE shared < $x", {"x": threshold})
    stats["percentile_threshold"] = threshold
    stats["edges"] = kept = con.execute("SELECT count(*) FROM co_w").fetchall()[0][0]
    _check_size(kept, params, f"window {w:,} s" if w is not None else "untimed")
    con.execute("INSERT INTO co_edges SELECT uv, $w, shared, targets, min_gap, median_gap, led, first, last FROM co_w", {"w": w})
    _flag(con, w)
    for name in ("co_pt", "co_cells", "co_counts", "co_w"):
        con.execute(f"DROP TABLE {name}")
    return stats


def _flag(con: duckdb.DuckDBPyConnection, w: int | None) -> None:
    """The engagements behind the kept edges into co_flag, from the kept pair-target rows (no second pair join).

    An account's only engagement with a target in a kept pair's shared target is in a
    co-engagement of that pair, so it is flagged as it is; where an account engaged one target
    several times, each of those engagements is tested against its partners' engagements there.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE co_kept AS
        -- (a, b, g) is unique: co_pt holds one row per pair and target, and a <> b
        WITH k AS (SELECT p.uv, p.g FROM co_pt p SEMI JOIN co_w USING (uv))
        SELECT (uv >> 32)::INTEGER AS a, (uv & {MASK})::INTEGER AS b, g FROM k
        UNION ALL
        SELECT (uv & {MASK})::INTEGER, (uv >> 32)::INTEGER, g FROM k
        """
    )
    con.execute(
        """
        INSERT INTO co_flag
        WITH x AS (
            SELECT c.a, c.g, c.t, c.c, count(*) OVER (PARTITION BY c.a, c.g) AS n
            FROM co_cells c SEMI JOIN (SELECT DISTINCT a, g FROM co_kept) e USING (a, g)
        )
        SELECT a, g, t FROM x WHERE n = 1
        UNION ALL
        SELECT DISTINCT x.a, x.g, x.t
        FROM x JOIN co_kept e ON e.a = x.a AND e.g = x.g
        JOIN co_cells y ON y.a = e.b AND y.g = x.g AND y.c BETWEEN x.c - 1 AND x.c + 1  -- implied by the gap: bounds the join
        WHERE x.n > 1 AND abs(x.t - y.t) <= $w
        """,
        {"w": w if w is not None else 0},
    )
    con.execute("DROP TABLE co_kept")


def _merged_edges(con: duckdb.DuckDBPyConnection, timed: bool) -> pl.DataFrame:
    """One row per account pair: the attributes of its fastest window, and every window that gives it."""
    times = (
        "e.min_gap AS min_gap_s, e.median_gap AS median_gap_s, e.led AS led_by_source_share, "
        "to_timestamp(e.first) AS first_ts, to_timestamp(e.last) AS last_ts, e.window_s, e.windows"
        if timed
        else "NULL AS min_gap_s, NULL AS median_gap_s, NULL AS led_by_source_share, NULL AS first_ts, NULL AS last_ts, "
        "NULL AS window_s, NULL AS windows"
    )
    one_window = con.execute("SELECT count(DISTINCT window_s) <= 1 FROM co_edges").fetchall()[0][0]
    fastest = (
        "SELECT *, [window_s] AS windows FROM co_edges"
        if one_window
        else """
            SELECT e.*, w.windows FROM co_edges e
            JOIN (SELECT uv, list(window_s ORDER BY window_s) AS windows, min(window_s) AS fastest FROM co_edges GROUP BY uv) w
            ON w.uv = e.uv AND e.window_s IS NOT DISTINCT FROM w.fastest
        """
    )
    edges = con.sql(
        f"""
        WITH e AS ({fastest})
        SELECT s.actor_id AS source, t.actor_id AS target, e.shared AS shared_targets, e.targets, {times}
        FROM e JOIN actor_ix s ON s.a = (e.uv >> 32)::INTEGER JOIN actor_ix t ON t.a = (e.uv & {MASK})::INTEGER
        ORDER BY e.uv
        """
    ).pl()
    # The listed targets are numbers in target_id order (target_ix numbers the sorted ids): their ids,
    # looked up by position in one array of every target id (a take, not a join and a regrouping).
    names = con.sql("SELECT target_id FROM target_ix ORDER BY g").pl()["target_id"].rechunk().to_arrow()
    listed = edges["targets"].rechunk().to_arrow()
    # (the list's whole child array and its offsets as they are; pyarrow.compute and .to_numpy() would import pandas, 0.1 s)
    edges = edges.with_columns(pl.Series("targets", type(listed).from_arrays(listed.offsets, names.take(listed.values))))
    return edges.cast(EDGE_SCHEMA)


def _nodes_and_groups(
    con: duckdb.DuckDBPyConnection,
    kinds: Sequence[str],
    lock_groups: pl.DataFrame | None,
    scores: pl.DataFrame | None,
    timed: bool,
    farm: bool,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Nodes (accounts with an edge), the groups (components with >= 3 members) and the flagged engagements."""
    con.execute(
        f"CREATE TEMP TABLE co_ends AS SELECT (uv >> 32)::INTEGER AS u, (uv & {MASK})::INTEGER AS v FROM (SELECT DISTINCT uv FROM co_edges)"
    )
    ends = con.execute("SELECT u, v FROM co_ends ORDER BY u, v").fetchnumpy()
    ids, component, size = components(ends["u"], ends["v"])
    comp = pl.DataFrame({"a": ids.astype("int32"), "component": component.astype("int64"), "size": size.astype("int64")})
    con.register("co_components", comp)
    try:
        nodes = con.sql(
            """
            WITH degree AS (SELECT a, count(*) AS degree FROM (SELECT u AS a FROM co_ends UNION ALL SELECT v FROM co_ends) GROUP BY a),
            counts AS (
                SELECT actor_id, count(*) AS engagements, min(ts) AS first_ts, max(ts) AS last_ts FROM engagements
                WHERE kind IN (SELECT unnest($kinds::VARCHAR[])) AND actor_id IN (SELECT actor_id FROM degree JOIN actor_ix USING (a))
                GROUP BY actor_id
            )
            SELECT ai.actor_id AS account_id, c.engagements, d.degree, c.first_ts, c.last_ts, k.component, k.size
            FROM degree d JOIN actor_ix ai USING (a) JOIN counts c USING (actor_id) JOIN co_components k USING (a)
            ORDER BY account_id
            """,
            params={"kinds": list(kinds)},
        ).pl()
        flagged = con.sql(
            """
            SELECT ai.actor_id, ti.target_id, to_timestamp(x.t) AS ts, f.a IS NOT NULL AS coordinated
            FROM acts x JOIN actor_ix ai USING (a) JOIN target_ix ti USING (g)
            LEFT JOIN (SELECT DISTINCT a, g, t FROM co_flag) f ON f.a = x.a AND f.g = x.g AND f.t = x.t
            ORDER BY x.a, x.g, x.t  -- the numbers are in id order: this is account, target, time order
            """
        ).pl()
        group_rows = con.sql(
            f"""
            WITH members AS (SELECT a, component FROM co_components WHERE size >= {MIN_GROUP}),
            per AS (
                SELECT m.component, list(ai.actor_id ORDER BY ai.actor_id) AS members, count(*) AS n_members,
                       {"avg(coalesce(l.farm, false)::INT)" if farm else "NULL::DOUBLE"} AS like_farm_share
                FROM members m JOIN actor_ix ai USING (a)
                {"LEFT JOIN (SELECT a, true AS farm FROM co_farm) l USING (a)" if farm else ""}
                GROUP BY m.component
            ),
            links AS (SELECT m.component, count(*) AS n_edges FROM co_ends e JOIN members m ON m.a = e.u GROUP BY m.component),
            hits AS (
                SELECT m.component, count(DISTINCT f.g) AS n_targets,
                       list(DISTINCT ti.target_id ORDER BY ti.target_id)[1:20] AS targets,
                       to_timestamp(min(f.t)) AS first_ts, to_timestamp(max(f.t)) AS last_ts
                FROM co_flag f JOIN members m USING (a) JOIN target_ix ti USING (g) GROUP BY m.component
            )
            SELECT p.n_members, p.members, l.n_edges, l.n_edges / (p.n_members * (p.n_members - 1) / 2.0) AS density,
                   h.n_targets, h.targets, h.first_ts, h.last_ts, p.like_farm_share
            FROM per p JOIN links l USING (component) JOIN hits h USING (component)
            ORDER BY p.n_members DESC, p.members[1]
            """
        ).pl()
    finally:
        con.unregister("co_components")
    # Group ids count from 0, largest first, so they do not depend on how ids were numbered.
    groups = group_rows.with_columns(group_id=pl.int_range(pl.len(), dtype=pl.Int64)).select(list(GROUP_SCHEMA)).cast(GROUP_SCHEMA)
    group_of = groups.select(pl.col("members").alias("account_id"), "group_id").explode("account_id")
    nodes = nodes.drop("component", "size").join(group_of.rename({"group_id": "coordination_group"}), on="account_id", how="left")
    if lock_groups is not None:
        lock_of = lock_groups.select(
            pl.col("members").alias("account_id"), pl.col("group_id").alias("lockstep_group"), pl.col("size").alias("lockstep_group_size")
        ).explode("account_id")
        nodes = nodes.join(lock_of, on="account_id", how="left")
    if scores is not None:
        nodes = nodes.join(scores, on="account_id", how="left")
    if not timed:
        nodes = nodes.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias(c) for c in ("first_ts", "last_ts"))
        flagged = flagged.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("ts"))
    nodes = nodes.with_columns(pl.col("first_ts", "last_ts").cast(pl.Datetime("us", "UTC")), pl.col("engagements", "degree").cast(pl.Int64))
    flagged = flagged.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    return nodes.sort("account_id"), groups, flagged


def _label_summary(con: duckdb.DuckDBPyConnection, nodes: pl.DataFrame, farm: bool) -> dict[str, Any] | None:
    """With like-farm labels: how many labelled farm accounts engaged, and how many the network holds (its recall)."""
    if not farm:
        return None
    engaged = con.execute("SELECT count(*) FROM co_farm").fetchall()[0][0]
    in_network = con.execute(
        "SELECT count(*) FROM co_farm f JOIN actor_ix ai USING (a) WHERE ai.actor_id IN (SELECT unnest($ids::VARCHAR[]))",
        {"ids": nodes["account_id"].to_list()},
    ).fetchall()[0][0]
    return {
        "like_farm_accounts_engaged": engaged,
        "like_farm_accounts_in_network": in_network,
        "recall": round(in_network / engaged, 6) if engaged else None,
    }
