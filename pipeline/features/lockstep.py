"""lock_ features: accounts that engage with the same targets at the same times, again and again.

In the spirit of CopyCatch (Beutel et al., WWW 2013) and SynchroTrap (Cao et al., CCS 2014):

1. Likes are put in (target, time bucket) cells, for each window size (on two grids offset by
   half a window, so a burst that straddles a bucket edge is not cut in two).
2. A cell counts only if it is a *burst* for its target: at least `burst_ratio` times the
   likes the target gets in a window on average over its own active span (at least
   `min_span_s`, so a target whose few likes all fall in one window still counts). A popular page liked
   at random times never bursts; a bought campaign always does. Cells above `max_cell_actors`
   are skipped (and counted): they would cost n^2 pairs (see docs/features.md for the effect).
3. Two accounts are lockstep partners when they share bursts on at least `min_common` distinct
   targets. Groups are connected components of the partner graph with at least `min_group`
   members.

Without timestamps (weight-only data) the time test is impossible: `lockstep` then says so and
returns no groups, and `dense_block_scores` (FRAUDAR-style, untimed) is the coordination signal.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numba
import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from pipeline import db
from pipeline.errors import ZombieScanError
from pipeline.features.duckdb_math import trunc_div
from pipeline.features.family import Context, Family, count, share
from pipeline.features.query import Frame, feature_connection, number_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockstepParams:
    """Settings of the lockstep detector (params.yaml: featurize.lockstep)."""

    windows_s: tuple[int, ...] = (3_600, 259_200)
    burst_ratio: float = 3.0
    min_cell_actors: int = 3
    max_cell_actors: int = 1_000
    min_span_s: int = 604_800
    min_common: int = 3
    min_group: int = 3
    kinds: tuple[str, ...] = ("like",)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, where: str = "featurize.lockstep") -> LockstepParams:
        """Settings from a params section or a model.json, naming any unknown setting and where it was."""
        values = dict(values or {})
        known = cls.__dataclass_fields__
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ZombieScanError(f"{where}: unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(known)}")
        for key in ("windows_s", "kinds"):
            if key in values:
                values[key] = tuple(values[key])
        windows = values.get("windows_s", cls.windows_s)
        if not windows or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in windows):
            raise ZombieScanError(f"{where}: windows_s {list(windows)}: expected one or more whole numbers of seconds > 0")
        return cls(**values)


@dataclass
class LockstepResult:
    groups: pl.DataFrame  # one row per group
    features: pl.DataFrame  # one row per account that engaged, lock_* columns
    skipped_cells: int  # bursts above max_cell_actors, left out
    timed: bool


GROUP_SCHEMA: dict[str, pl.DataType] = {
    "group_id": pl.Int64(),
    "size": pl.Int64(),
    "members": pl.List(pl.String),
    "targets": pl.List(pl.String),
    "first_ts": pl.Datetime("us", "UTC"),
    "last_ts": pl.Datetime("us", "UTC"),
    "density": pl.Float64(),
    "mean_common": pl.Float64(),
    "score": pl.Float64(),
}


def lockstep(
    engagements: Frame | None = None, params: LockstepParams = LockstepParams(), *, con: duckdb.DuckDBPyConnection | None = None
) -> LockstepResult:
    """Find lockstep groups and per-account lock_ features in `engagements` (contract columns).

    With `con`, the engagements are the `engagements` table that connection shows.
    """
    own = con is None
    if con is None:
        if engagements is None:
            raise TypeError("lockstep needs engagements or con")
        eng = engagements.collect() if isinstance(engagements, pl.LazyFrame) else engagements
        con = db.connect()
        con.register("engagements", eng.select("actor_id", "target_id", "kind", "ts"))
    try:
        n_acts, timed = acts_table(con, params.kinds)
        if not n_acts:
            log.warning("lockstep: no engagements of the kinds %s; no lockstep groups", ", ".join(params.kinds))
            return LockstepResult(empty_groups(), _features(con, None), 0, False)
        if not timed:
            log.warning("lockstep: engagements carry no time information; no lockstep groups (use the dense-block score)")
            return LockstepResult(empty_groups(), _features(con, None), 0, False)
        # One row per like in a burst cell, of accounts in bursts on >= min_common targets.
        sync, skipped = burst_memberships(con, params)
        _stored(con, "sync", sync)
        pairs = partner_pairs(con.execute("SELECT DISTINCT a, g, cell FROM sync ORDER BY g, cell, a").fetchnumpy(), params.min_common)
        _stored(con, "pairs", pairs)
        groups = _groups(con, params)
        return LockstepResult(groups, _features(con, params.min_group), skipped, True)
    finally:
        if own:
            con.close()
        else:
            for name in (
                "acts_raw",
                "actor_ix",
                "target_ix",
                "acts",
                "sync",
                "pairs",
                "components",
            ):
                con.execute(f"DROP TABLE IF EXISTS {name}")


def _stored(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Temp table `table`: a copy of `frame` (the frame's view is gone again whatever happens)."""
    con.register(f"{table}_df", frame)
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {table}_df")
    finally:
        con.unregister(f"{table}_df")


def acts_table(con: duckdb.DuckDBPyConnection, kinds: Sequence[str]) -> tuple[int, bool]:
    """Temp tables `acts` (a, g, t): each distinct (actor, target, second) of the `engagements`
    of `kinds`, with `actor_ix` (actor_id, a) and `target_ix` (target_id, g) numbering the ids
    in sort order; returns the number of acts and whether they span more than one second.

    Dense integer ids: the acts are sorted, joined and grouped by them in every later step, several
    times faster on integers than on VARCHAR ids.
    """
    con.execute(
        "CREATE TEMP TABLE acts_raw AS SELECT DISTINCT actor_id, target_id, epoch(ts)::BIGINT AS t FROM engagements "
        "WHERE kind::VARCHAR IN (SELECT unnest($kinds::VARCHAR[]))",
        {"kinds": list(kinds)},
    )
    number_ids(con, "actor_ix", "actor_id", "acts_raw", key="a")
    number_ids(con, "target_ix", "target_id", "acts_raw", key="g")
    con.execute("CREATE TEMP TABLE acts AS SELECT a, g, t FROM acts_raw JOIN actor_ix USING (actor_id) JOIN target_ix USING (target_id)")
    con.execute("DROP TABLE acts_raw")
    n_acts, timed = con.execute("SELECT count(*), coalesce(min(t) < max(t), false) FROM acts").fetchall()[0]
    return int(n_acts), bool(timed)


# Acts read from DuckDB at a time by `burst_memberships` (sorted by target and time).
BURST_BATCH = 1 << 22


def burst_memberships(con: duckdb.DuckDBPyConnection, params: LockstepParams) -> tuple[pl.DataFrame, int]:
    """Steps 1 and 2 of the module docstring over `acts`: every like in a burst cell as (a, g, cell),
    `cell` numbering the cells of all grids apart (cell * grids + grid), without the accounts in
    bursts on fewer than `min_common` targets (they cannot have a partner: exact pruning); and the
    number of bursts skipped for holding more than `max_cell_actors`.

    The definition, per grid of window w shifted by s: a like at t falls in cell (t + s) // w
    (DuckDB's integer division, towards zero); a target's rate is its likes n over its span
    greatest(max t - min t, 1); a cell of c likes is a burst when c >= min_cell_actors and
    c >= burst_ratio * (n * w / greatest(span, min_span_s, w) + 1). DuckDB sorts the acts by
    (target, time) once and streams them; in that order each grid's cells are runs, so
    `_bursts` finds every grid's bursts in one pass, where SQL takes a group-by and a join back
    per grid. Python holds one batch and the memberships."""
    grids = [(w, shift, max(params.min_span_s, w)) for w in params.windows_s for shift in (0, w // 2)]
    w, shift, min_span = (np.asarray([grid[i] for grid in grids], dtype=np.int64) for i in range(3))
    rule = (w, shift, min_span, float(params.burst_ratio), params.min_cell_actors, params.max_cell_actors)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    skipped = 0

    def bursts_of(a: np.ndarray, g: np.ndarray, t: np.ndarray) -> None:
        nonlocal skipped
        *memberships, n_skipped = _bursts(a, g, t, *rule)
        found.append((memberships[0], memberships[1], memberships[2]))
        skipped += int(n_skipped)

    reader = con.sql("SELECT a, g, t FROM acts ORDER BY g, t").to_arrow_reader(BURST_BATCH)
    a, g, t = np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64)
    for batch in reader:
        a, g, t = (np.concatenate([held, batch.column(i).to_numpy()]) for i, held in enumerate((a, g, t)))
        cut = int(np.searchsorted(g, g[-1])) if len(g) else 0  # the last target may go on in the next batch: it waits
        bursts_of(a[:cut], g[:cut], t[:cut])
        a, g, t = a[cut:], g[cut:], t[cut:]
    bursts_of(a, g, t)
    a, g, cell = (np.concatenate(column) for column in zip(*found, strict=True))
    keep = _enough_targets(a, g, int(a.max()) + 1 if len(a) else 0, params.min_common)
    return pl.DataFrame({"a": a[keep], "g": g[keep], "cell": cell[keep]}), skipped


@numba.njit(cache=True)
def _bursts(
    a: np.ndarray, g: np.ndarray, t: np.ndarray, w: np.ndarray, shift: np.ndarray, min_span: np.ndarray,
    ratio: float, min_n: int, cap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:  # fmt: skip
    """The burst memberships of acts sorted by (g, t), every grid (see `burst_memberships`), and the skipped bursts."""
    n = len(a)
    grids = len(w)
    size = max(n, 16)
    out_a, out_g, out_c = np.empty(size, np.int32), np.empty(size, np.int32), np.empty(size, np.int64)
    found = 0
    skipped = 0
    start = 0
    while start < n:
        end = start
        while end < n and g[end] == g[start]:
            end += 1
        likes = end - start
        span = max(t[end - 1] - t[start], 1)
        for k in range(grids):
            threshold = ratio * (likes * w[k] / max(span, min_span[k]) + 1)
            i = start
            while i < end:
                cell = trunc_div(t[i] + shift[k], w[k])
                j = i
                while j < end and trunc_div(t[j] + shift[k], w[k]) == cell:
                    j += 1
                c = j - i
                if c >= min_n and c >= threshold:
                    if c > cap:
                        skipped += 1
                    else:
                        if found + c > size:
                            size = 2 * (found + c)
                            out_a, out_g, out_c = _grown(out_a, size), _grown(out_g, size), _grown(out_c, size)
                        for q in range(i, j):
                            out_a[found], out_g[found], out_c[found] = a[q], g[q], cell * grids + k
                            found += 1
                i = j
        start = end
    return out_a[:found].copy(), out_g[:found].copy(), out_c[:found].copy(), skipped


@numba.njit(cache=True)
def _enough_targets(a: np.ndarray, g: np.ndarray, n_accounts: int, min_common: int) -> np.ndarray:
    """Rows whose account is in bursts on at least `min_common` distinct targets (rows grouped by target)."""
    last = np.full(n_accounts, -1, np.int64)
    targets = np.zeros(n_accounts, np.int64)
    for i in range(len(a)):
        if last[a[i]] != g[i]:
            last[a[i]] = g[i]
            targets[a[i]] += 1
    keep = np.empty(len(a), np.bool_)
    for i in range(len(a)):
        keep[i] = targets[a[i]] >= min_common
    return keep


def partner_pairs(sync: dict[str, np.ndarray], min_common: int) -> pl.DataFrame:
    """Lockstep partners: every two accounts that share a burst cell on at least `min_common`
    distinct targets, once each as (u, v, common) with u < v and `common` their shared targets.

    `sync` holds the distinct burst memberships (a, g, cell) sorted by (g, cell, a). This is the
    pair self-join `x JOIN y ON x.g = y.g AND x.cell = y.cell AND x.a < y.a`, then a distinct
    count of g per pair, done without materialising its rows: at 1M accounts the join makes 200M
    rows (113M distinct pair-targets, 34M pairs) for 8M partners, the step's largest cost (README,
    "Performance benchmark"); `_count_partners` visits the same 200M (u, v) meetings once each in ~40 bytes a
    membership of memory.
    """
    a, g, cell = (np.asarray(sync[k]) for k in ("a", "g", "cell"))
    if not len(a):
        return pl.DataFrame(schema={"u": pl.Int32(), "v": pl.Int32(), "common": pl.Int64()})
    cells = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (cell[1:] != cell[:-1]), True])
    cell_end = np.repeat(cells[1:], np.diff(cells))  # where each membership's cell ends
    by_account = np.argsort(a, kind="stable")  # each account's memberships, in (g, cell) order
    accounts = a[by_account]
    firsts = np.flatnonzero(np.r_[True, accounts[1:] != accounts[:-1], True])
    u, v, common = _count_partners(a.astype(np.int32), g.astype(np.int32), cell_end, by_account, firsts, int(accounts[-1]) + 1, min_common)
    return pl.DataFrame({"u": u, "v": v, "common": common.astype(np.int64)})


@numba.njit(cache=True)
def _count_partners(
    a: np.ndarray, g: np.ndarray, cell_end: np.ndarray, by_account: np.ndarray, firsts: np.ndarray, n_accounts: int, min_common: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each account u, the accounts v > u after it in its cells, counted once per target
    (`last[v]` is the last target v was counted for; u's memberships come in target order), kept
    when the count reaches `min_common`. O(meetings + memberships), one pass, no sort of pairs."""
    count = np.zeros(n_accounts, dtype=np.int32)
    last = np.full(n_accounts, -1, dtype=np.int32)
    met = np.empty(n_accounts, dtype=np.int32)  # the accounts u met, in order of first meeting
    size = 1 << 16
    out_u, out_v, out_c = np.empty(size, np.int32), np.empty(size, np.int32), np.empty(size, np.int32)
    n_out = 0
    for k in range(len(firsts) - 1):
        u = a[by_account[firsts[k]]]
        n_met = 0
        for m in range(firsts[k], firsts[k + 1]):
            i = by_account[m]
            target = g[i]
            for j in range(i + 1, cell_end[i]):  # sorted by account within a cell: a[j] > u
                v = a[j]
                if last[v] != target:
                    last[v] = target
                    if count[v] == 0:
                        met[n_met] = v
                        n_met += 1
                    count[v] += 1
        for q in range(n_met):
            v = met[q]
            if count[v] >= min_common:
                if n_out == size:
                    size *= 2
                    out_u, out_v, out_c = _grown(out_u, size), _grown(out_v, size), _grown(out_c, size)
                out_u[n_out], out_v[n_out], out_c[n_out] = u, v, count[v]
                n_out += 1
            count[v] = 0
            last[v] = -1
    return out_u[:n_out].copy(), out_v[:n_out].copy(), out_c[:n_out].copy()


@numba.njit(cache=True)
def _grown(values: np.ndarray, size: int) -> np.ndarray:
    grown = np.empty(size, dtype=values.dtype)
    grown[: len(values)] = values
    return grown


def components(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Connected components of the undirected graph with edges (u[i], v[i]): the sorted node ids,
    each one's component number and the size of its component."""
    u, v = np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)
    ids = np.unique(np.r_[u, v])
    graph = sp.coo_matrix((np.ones(len(u)), (np.searchsorted(ids, u), np.searchsorted(ids, v))), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    size = np.bincount(component)[component] if len(ids) else np.zeros(0, dtype=np.int64)
    return ids, component, size


def _groups(con: duckdb.DuckDBPyConnection, params: LockstepParams) -> pl.DataFrame:
    """Connected components of the partner graph, with their targets, time span, density, score.

    Leaves a table `components` (a, component, size) of every account with a partner.
    """
    pairs = con.execute("SELECT u, v FROM pairs").fetchnumpy()
    ids, component, size = components(pairs["u"], pairs["v"])
    con.register(
        "components_df", pl.DataFrame({"a": ids.astype(np.int32), "component": component.astype(np.int64), "size": size.astype(np.int64)})
    )
    con.execute("CREATE TEMP TABLE components AS SELECT * FROM components_df")
    con.unregister("components_df")
    groups = con.sql(
        """
        WITH members AS (SELECT a, component AS group_id FROM components WHERE size >= $min_group),
        edges AS (
            SELECT m.group_id, count(*) AS n_edges, avg(p.common) AS mean_common
            FROM pairs p JOIN members m ON m.a = p.u GROUP BY m.group_id
        ),
        spans AS (
            SELECT m.group_id, list(DISTINCT ti.target_id ORDER BY ti.target_id) AS targets,
                   to_timestamp(min(x.t)) AS first_ts, to_timestamp(max(x.t)) AS last_ts
            FROM (SELECT DISTINCT a, g FROM sync) s JOIN members m USING (a)
            JOIN acts x ON x.a = s.a AND x.g = s.g JOIN target_ix ti ON ti.g = s.g
            GROUP BY m.group_id
        ),
        sizes AS (
            SELECT m.group_id, count(*) AS size, list(ai.actor_id ORDER BY ai.actor_id) AS members
            FROM members m JOIN actor_ix ai USING (a) GROUP BY m.group_id
        )
        SELECT s.group_id, s.size, s.members, sp.targets, sp.first_ts, sp.last_ts,
               e.n_edges / (s.size * (s.size - 1) / 2.0) AS density, e.mean_common,
               e.n_edges / (s.size * (s.size - 1) / 2.0) * ln(s.size) * ln(1 + e.mean_common) AS score
        FROM sizes s JOIN edges e USING (group_id) JOIN spans sp USING (group_id)
        ORDER BY score DESC, s.members[1]
        """,
        params={"min_group": params.min_group},
    ).pl()
    # Group ids count from 0 in order of suspicion, so they do not depend on how ids were numbered.
    return groups.with_columns(group_id=pl.int_range(pl.len(), dtype=pl.Int64)).cast(GROUP_SCHEMA)


def _features(con: duckdb.DuckDBPyConnection, min_group: int | None) -> pl.DataFrame:
    """Per-account lock_ features for every account with at least one counted action (None: untimed, no groups).

    An action is in lockstep when another account of the same partner component shares its
    burst cell (partners are in one component; this avoids repeating the pair self-join).
    """
    if min_group is None:
        return con.sql(
            """
            SELECT actor_id AS account_id, NULL::BIGINT AS lock_group_size, NULL::BIGINT AS lock_partners,
                   NULL::DOUBLE AS lock_max_jaccard, NULL::DOUBLE AS lock_mean_jaccard, NULL::DOUBLE AS lock_share
            FROM actor_ix ORDER BY account_id
            """
        ).pl()
    return con.sql(
        """
        WITH n_targets AS (SELECT a, count(DISTINCT g) AS n FROM acts GROUP BY 1),
        both_ways AS (SELECT u AS a, v AS b, common FROM pairs UNION ALL SELECT v, u, common FROM pairs),
        jac AS (
            SELECT w.a, count(*) AS partners,
                   max(w.common / (na.n + nb.n - w.common)) AS max_j,
                   -- an exact decimal mean: a float sum in thread order would change the last bits run to run
                   avg(CAST(w.common / (na.n + nb.n - w.common) AS DECIMAL(38, 12))) AS mean_j
            FROM both_ways w JOIN n_targets na ON na.a = w.a JOIN n_targets nb ON nb.a = w.b
            GROUP BY w.a
        ),
        cells AS (
            -- burst cells shared by at least two accounts of one partner component
            SELECT c.component, s.g, s.cell
            FROM sync s JOIN components c USING (a)
            GROUP BY ALL HAVING count(*) >= 2
        ),
        in_sync AS (
            SELECT s.a, count(DISTINCT s.g) AS n_sync
            FROM sync s JOIN components c USING (a) JOIN cells USING (component, g, cell)
            GROUP BY s.a
        )
        SELECT ai.actor_id AS account_id,
               coalesce(c.size, 0) * (coalesce(c.size, 0) >= $min_group)::INT AS lock_group_size,
               coalesce(j.partners, 0) AS lock_partners,
               coalesce(j.max_j, 0.0) AS lock_max_jaccard,
               coalesce(j.mean_j, 0.0) AS lock_mean_jaccard,
               coalesce(i.n_sync, 0) / n.n AS lock_share
        FROM n_targets n JOIN actor_ix ai USING (a) LEFT JOIN components c USING (a)
        LEFT JOIN jac j USING (a) LEFT JOIN in_sync i USING (a)
        ORDER BY account_id
        """,
        params={"min_group": min_group},
    ).pl()


def empty_groups() -> pl.DataFrame:
    return pl.DataFrame(schema=GROUP_SCHEMA)


# The dense-block peel counts in fixed point: an edge value v is kept as the integer
# round(v * DENSE_SCALE). Integer degree sums are exact, so they do not depend on the order in
# which an engine adds (Spark's differs from numpy's, and equal degrees are common: a value one
# ulp off would move a node to the next pass). 2**24 keeps every value to ~7 digits, and a degree
# sum far below 2**63: a value is at most w / ln(6) < 0.56 w, so 20B engagements of weight 1 sum
# to under 2**58.
DENSE_SCALE = 2**24


def fraudar_logs(degrees: Sequence[int], c: float) -> list[float]:
    """ln(c + d) for each target degree d: the denominator of FRAUDAR's column weight.

    Both engines take it from here, Python's math.log once per distinct degree: numpy's vectorised
    log and the JVM's StrictMath.log may differ in the last bit, and a value one bit off can round
    to another quantum.
    """
    return [math.log(c + d) for d in degrees]


class PeelSchedule:
    """The levels of the parallel dense-block peel, decided in one place for both engines.

    An engine only counts: per pass it reports the remaining graph's row degree sum and node count,
    and after the removal its smallest degree, all exact integers. The level (a float64, compared
    with the integer degrees as floor(level)), the densest block and the bound on the passes are
    decided here, in the driver's Python, so the engines cannot disagree on them.
    """

    def __init__(self, min_degree: int, max_degree: int, epsilon: float) -> None:
        if not epsilon > 0:
            raise ZombieScanError(f"dense-block peel: epsilon {epsilon}: expected a number > 0 (the level's growth per pass)")
        self.epsilon = epsilon
        self.level = float(min_degree)
        self.levels: list[float] = []  # the level of each pass so far, in quanta
        self.best_level = self.level
        self._best = (-1, 1)  # (row degree sum, nodes) of the densest remaining graph so far
        # After the first pass the level is >= 1 quantum and grows by (1 + epsilon) a pass; a pass
        # whose level reaches the largest degree removes everything (one pass of slack for rounding).
        self.max_passes = 3 + math.ceil(math.log(max(max_degree, 1)) / math.log(1.0 + epsilon))

    @property
    def passes(self) -> int:
        return len(self.levels)

    def start_pass(self, row_degree_sum: int, nodes: int) -> int:
        """Open a pass over the remaining graph: note its density (FRAUDAR's block is the densest
        remaining graph); every remaining node of degree <= the returned threshold goes in this pass."""
        if self.passes == self.max_passes:
            raise RuntimeError(f"dense-block peel: more than {self.max_passes} passes, which the level's growth rules out")
        if row_degree_sum * self._best[1] > self._best[0] * nodes:  # a higher density, compared exactly
            self._best, self.best_level = (row_degree_sum, nodes), self.level
        self.levels.append(self.level)
        return math.floor(self.level)

    def end_pass(self, min_degree: int) -> None:
        """The next pass's level: up by (1 + epsilon), or to the smallest remaining degree if higher,
        and never under one quantum (zero-valued edges cannot hold the level at 0 pass after pass)."""
        self.level = max(self.level * (1.0 + self.epsilon), float(min_degree), 1.0)


def dense_block_scores(engagements: Frame, *, c: float = 5.0, epsilon: float = 0.1) -> pl.DataFrame:
    """FRAUDAR-style dense-block suspicion for every actor, untimed (works on weight-only data).

    The account x target graph (an edge per account and target, valued by how many times the
    account engaged: the summed `weight`) gets FRAUDAR's column weights, 1 / ln(c + target
    degree), so that edges into popular targets count for little (camouflage resistance, Hooi et
    al., KDD 2016). FRAUDAR peels the graph greedily, node by node with the smallest weighted
    degree, and reports the densest block it passed through; that is one node per step, a chain
    of steps no cluster can shorten. We peel in parallel instead (Bahmani, Kumar & Vassilvitskii,
    VLDB 2012): each pass removes at once every node at or below a level that rises by a factor
    (1 + epsilon) a pass, so there are O(log n) passes (`peel_dense_blocks` gives the definition
    and the argument; pipeline/spark/dense.py runs the same passes on Spark). We keep the whole
    peeling rather than one block: an account's score is the level at which it was peeled (an
    approximate weighted core number), so every dense block, not only the densest, ranks its
    members high.

    Returns columns account_id, lock_dense_block_score and lock_in_densest_block (the accounts of
    the densest block met during the peeling, FRAUDAR's own output).
    """
    eng = engagements.collect() if isinstance(engagements, pl.LazyFrame) else engagements
    if "weight" not in eng.columns:
        eng = eng.with_columns(weight=pl.lit(1, pl.Int64))
    con = feature_connection()
    try:
        con.register("dense_input", eng.select("actor_id", "target_id", "weight"))
        return dense_block_scores_sql(con, "dense_input", c=c, epsilon=epsilon)
    finally:
        con.close()


def dense_block_scores_sql(
    con: duckdb.DuckDBPyConnection,
    engagements: str,
    *,
    kinds: Sequence[str] | None = None,
    c: float = 5.0,
    epsilon: float = 0.1,
) -> pl.DataFrame:
    """`dense_block_scores` of the engagements relation `engagements` on `con` (only those of
    `kinds`, when given), without copying rows into polars.

    The edge list is aggregated and numbered in DuckDB and reaches numpy as three flat arrays, in
    no particular order: the peel's integer degree sums do not depend on it.
    """
    where = "WHERE kind::VARCHAR IN (SELECT unnest($kinds::VARCHAR[]))" if kinds is not None else ""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dense_edges AS
        SELECT actor_id, target_id, sum(coalesce(weight, 1))::DOUBLE AS w FROM {db.quote(engagements)} {where} GROUP BY ALL
        """,
        {"kinds": list(kinds)} if kinds is not None else None,
    )
    try:
        number_ids(con, "dense_actors", "actor_id", "dense_edges")
        number_ids(con, "dense_targets", "target_id", "dense_edges", rows="degree")
        n_targets = con.execute("SELECT count(*) FROM dense_targets").fetchall()[0][0]
        n_actors = con.execute("SELECT count(*) FROM dense_actors").fetchall()[0][0]
        if n_actors:
            score, densest = _peel(*_stored_layouts(con, n_actors, n_targets, c), epsilon)
        else:
            score, densest = np.zeros(0), np.zeros(0, dtype=bool)
        actors = con.sql("SELECT actor_id FROM dense_actors ORDER BY i").pl()["actor_id"]
        return pl.DataFrame({"account_id": actors, "lock_dense_block_score": score, "lock_in_densest_block": densest})
    finally:
        for name in ("dense_edges", "dense_actors", "dense_targets"):
            con.execute(f"DROP TABLE IF EXISTS {name}")


# Edges read from DuckDB at a time by `_stored_layouts`: its only per-chunk temporaries (~40 bytes an edge).
LAYOUT_CHUNK = 1 << 20


def _stored_layouts(con: duckdb.DuckDBPyConnection, n_rows: int, n_cols: int, c: float) -> tuple[sp.csr_matrix, sp.csc_matrix]:
    """`_layouts` of `dense_edges` as numbered by `dense_actors` and `dense_targets` (with each
    target's `degree`), streamed.

    DuckDB sorts the edges by row (spilling past its memory limit) and hands them over a chunk at a
    time, each written in place into the CSR arrays: Python holds the two layouts (8 bytes an edge
    each, 12 when a value needs more than 4 bytes) and one chunk, never the edge list nor a COO copy
    of it. Values as `_layouts` computes them, element by element: the same q."""
    col_degree = con.execute("SELECT degree FROM dense_targets ORDER BY i").fetchnumpy()["degree"].astype(np.int64)
    col_log = _column_logs(col_degree, c)
    nnz = int(col_degree.sum())
    # the values as 4-byte integers when the largest possible one fits (like edges: w is a count, mostly 1)
    w_max = con.execute("SELECT coalesce(max(w), 0) FROM dense_edges").fetchall()[0][0]
    small = _quantised(w_max, col_log.min(initial=np.inf)) < np.iinfo(np.int32).max
    indices, data = np.empty(nnz, dtype=np.int32), np.empty(nnz, dtype=np.int32 if small else np.int64)
    row_degree = np.zeros(n_rows, dtype=np.int64)
    reader = con.sql(
        "SELECT da.i AS row, dt.i AS col, e.w FROM dense_edges e "
        "JOIN dense_actors da USING (actor_id) JOIN dense_targets dt USING (target_id) ORDER BY da.i"
    ).to_arrow_reader(LAYOUT_CHUNK)
    at = 0
    for batch in reader:
        rows, cols, w = (batch.column(k).to_numpy() for k in ("row", "col", "w"))
        end = at + len(rows)
        indices[at:end] = cols
        data[at:end] = _quantised(w, col_log[cols])
        if len(rows):  # sorted: the chunk's rows are rows[0]..rows[-1]
            counted = np.bincount(rows - rows[0])
            row_degree[rows[0] : rows[0] + len(counted)] += counted
        at = end
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(row_degree, out=ptr[1:])
    csr = sp.csr_matrix((data, indices, ptr), shape=(n_rows, n_cols))
    return csr, csr.tocsc()


def _members(ptr: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Positions of all entries of `nodes` in a CSR-style layout with offsets `ptr`."""
    starts, lengths = ptr[nodes], ptr[nodes + 1] - ptr[nodes]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return offsets + np.arange(total)


def _take_off(degree: np.ndarray, ptr: np.ndarray, nodes: np.ndarray, neighbour: np.ndarray, value: np.ndarray) -> None:
    """Subtract the values of `nodes`' edges (a CSR-style layout) from their neighbours' `degree`,
    LAYOUT_CHUNK edges at a time: a pass's temporaries stay ~20 bytes x LAYOUT_CHUNK however many
    edges it removes (the first pass can remove most of them)."""
    ends = np.cumsum(ptr[nodes + 1] - ptr[nodes])
    start = 0
    while start < len(nodes):
        stop = max(int(np.searchsorted(ends, (ends[start - 1] if start else 0) + LAYOUT_CHUNK, side="right")), start + 1)
        edges = _members(ptr, nodes[start:stop])
        # int64 values: ufunc.at takes its fast path only when the operand types match
        np.subtract.at(degree, neighbour[edges], value[edges].astype(np.int64, copy=False))
        start = stop


def _segment_sums(ptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Exact int64 sums of each segment ptr[i]:ptr[i + 1] of `values` (empty segments sum to 0)."""
    total = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=total[1:])
    return total[ptr[1:]] - total[ptr[:-1]]


def peel_dense_blocks(
    rows: np.ndarray, cols: np.ndarray, w: np.ndarray, n_rows: int, n_cols: int, *, c: float = 5.0, epsilon: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """FRAUDAR-weighted parallel peeling of a bipartite edge list; per row: (peel level, in densest block).

    `rows` and `cols` number each edge's actor and target (each pair once), `w` is its summed
    weight. The definition, the same on Spark (pipeline/spark/dense.py):

    1. An edge's value is v = w / ln(c + target degree), the target degree being its number of
       actors, kept as the integer q = round(v * DENSE_SCALE); a node's degree is the sum of its
       edges' q (rows and columns alike).
    2. The level starts at the smallest degree. Each pass notes the density of the remaining
       graph (row degree sum / remaining rows and columns), removes at once every remaining node
       of degree <= floor(level) (a row removed scores level / DENSE_SCALE), takes their edges off
       their neighbours' degrees, and sets level = max(level * (1 + epsilon), smallest remaining
       degree, 1 quantum). A node that a removal pushes under the level waits for the next pass.
    3. The densest block is the remaining graph of the densest pass: the rows scoring at least
       that pass's level.

    Why O(log n) passes: degrees only fall, the level grows by (1 + epsilon) a pass, and a pass
    whose level reaches the largest starting degree D removes everything left; from the smallest
    starting degree m > 0 there are at most 1 + ceil(log_{1+epsilon}(D / m)) passes. With weights
    polynomial in n, so is D / m (D <= n max(w) / ln(c + 1), m >= min(w) / ln(c + n)): O(log n /
    epsilon) passes. Whatever the weights, the level is >= 1 quantum after the first pass and
    D < 2**63, so there are at most ~460 passes at epsilon = 0.1; `PeelSchedule` enforces the
    bound. No pass waits on a chain of removals, as a peel that cascades within a level would.

    Degrees are updated from the removed nodes' edges only and each pass scans the remaining
    nodes: O(edges + nodes x passes) work. The number of passes is logged at debug level.
    """
    if len(rows) == 0:
        return np.zeros(n_rows), np.zeros(n_rows, dtype=bool)
    return _peel(*_layouts(rows, cols, w, n_rows, n_cols, c), epsilon)


def _layouts(rows: np.ndarray, cols: np.ndarray, w: np.ndarray, n_rows: int, n_cols: int, c: float) -> tuple[sp.csr_matrix, sp.csc_matrix]:
    """The edges' integer values q (step 1 of `peel_dense_blocks`) by row (CSR) and by column (CSC).

    Indices keep their own integer type (DuckDB's INTEGER numbering: 4 bytes an edge, not 8), and
    each temporary is dropped once used: at 16M edges each is 64-128 MB."""
    rows, cols = np.asarray(rows), np.asarray(cols)
    col_log = _column_logs(np.bincount(cols, minlength=n_cols), c)
    q = _quantised(w, col_log[cols]).astype(np.int64)
    del col_log
    csr = sp.csr_matrix((q, (rows, cols)), shape=(n_rows, n_cols))
    del q
    return csr, csr.tocsc()


def _column_logs(col_degree: np.ndarray, c: float) -> np.ndarray:
    """ln(c + degree) of each column (`fraudar_logs`, computed once per distinct degree)."""
    target_degrees, which = np.unique(col_degree, return_inverse=True)
    return np.array(fraudar_logs(target_degrees.tolist(), c))[which]


def _quantised(w: np.ndarray, col_log: np.ndarray) -> np.ndarray:
    """An edge's integer value q = round(w / ln(c + its column's degree) * DENSE_SCALE), as float64
    (both layouts' builders store it in their own integer type)."""
    return np.rint(np.asarray(w, dtype=np.float64) / col_log * DENSE_SCALE)


def _peel(csr: sp.csr_matrix, csc: sp.csc_matrix, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2 and 3 of `peel_dense_blocks` on the edges' layouts (`_layouts`)."""
    n_rows, n_cols = csr.shape
    ptr_r, nbr_r, val_r = csr.indptr.astype(np.int64), csr.indices, csr.data  # a row's edges: its columns and values
    ptr_c, nbr_c, val_c = csc.indptr.astype(np.int64), csc.indices, csc.data
    deg_r, deg_c = _segment_sums(ptr_r, val_r), _segment_sums(ptr_c, val_c)
    schedule = PeelSchedule(int(min(deg_r.min(), deg_c.min())), int(max(deg_r.max(), deg_c.max())), epsilon)
    live_r, live_c = np.arange(n_rows), np.arange(n_cols)  # the remaining nodes
    score = np.zeros(n_rows)
    while len(live_r):
        threshold = schedule.start_pass(int(deg_r[live_r].sum()), len(live_r) + len(live_c))
        out_r, out_c = deg_r[live_r] <= threshold, deg_c[live_c] <= threshold
        drop_r, drop_c = live_r[out_r], live_c[out_c]
        live_r, live_c = live_r[~out_r], live_c[~out_c]
        score[drop_r] = schedule.level / DENSE_SCALE
        # Removing a row lowers its columns' degrees and vice versa (edges to nodes removed
        # earlier were already subtracted from nodes that are gone: harmless, never read).
        _take_off(deg_c, ptr_r, drop_r, nbr_r, val_r)
        _take_off(deg_r, ptr_c, drop_c, nbr_c, val_c)
        if len(live_r):
            schedule.end_pass(int(min(deg_r[live_r].min(), deg_c[live_c].min(initial=np.iinfo(np.int64).max))))
    log.debug("dense blocks: %d rows, %d columns, %d edges peeled in %d passes", n_rows, n_cols, csr.nnz, schedule.passes)
    return score, score >= schedule.best_level / DENSE_SCALE


def compute(ctx: Context) -> pl.DataFrame:
    """Lockstep groups and the dense-block score over the engagements of `settings.kinds`; the
    groups, whether the data was timed and the skipped cells go to `ctx.outputs`."""
    params: LockstepParams = ctx.settings
    lock = ctx.timed("lockstep", lockstep, None, params, con=ctx.con)
    dense = ctx.timed("dense_block", dense_block_scores_sql, ctx.con, "engagements", kinds=params.kinds)
    ctx.outputs.update(groups=lock.groups, timed=lock.timed, skipped_cells=lock.skipped_cells)
    return (
        ctx.accounts()
        .join(lock.features, on="account_id", how="left")
        .join(dense, on="account_id", how="left")
        .with_columns(
            pl.col("lock_group_size", "lock_partners").fill_null(0),
            pl.col("lock_max_jaccard", "lock_mean_jaccard", "lock_share", "lock_dense_block_score").fill_null(0.0),
            pl.col("lock_in_densest_block").fill_null(False).cast(pl.Int8),
        )
    )


# How an analyst reads each value (the reasons of `zombiescan score`).
DESCRIBE = {
    "lock_group_size": lambda v: f"in a lockstep group of {count(v)} accounts" if v else "in no lockstep group",
    "lock_partners": lambda v: f"liked the same targets in the same bursts as {count(v)} other accounts",
    "lock_max_jaccard": lambda v: f"shares {share(v)} of its liked targets with its closest lockstep partner",
    "lock_mean_jaccard": lambda v: f"shares {share(v)} of its liked targets with its lockstep partners on average",
    "lock_share": lambda v: f"{share(v)} of its likes were in lockstep bursts",
    "lock_dense_block_score": lambda v: f"sits in a dense block of accounts liking the same targets (score {v:.2f})",
    "lock_in_densest_block": lambda v: "in the densest like block of the data" if v else "outside the densest like block",
}

FAMILY = Family("lock_", "lockstep", compute, DESCRIBE, role="relational", needs=("profile_",), spark="pipeline.spark.features:lockstep")
