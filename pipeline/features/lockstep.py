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
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from pipeline.features.sql import Frame

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
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.register("engagements", eng.select("actor_id", "target_id", "kind", "ts"))
    try:
        con.execute(
            "CREATE TEMP TABLE acts AS SELECT DISTINCT actor_id, target_id, epoch(ts)::BIGINT AS t FROM engagements "
            "WHERE kind::VARCHAR IN (SELECT unnest($kinds::VARCHAR[]))",
            {"kinds": list(params.kinds)},
        )
        timed = con.execute("SELECT count(DISTINCT t) > 1 FROM acts").fetchall()[0][0]
        if not timed:
            log.warning("lockstep: engagements carry no time information; no lockstep groups (use the dense-block score)")
            return LockstepResult(_empty_groups(), _features(con, None), 0, False)
        con.execute(
            "CREATE TEMP TABLE target_rate AS SELECT target_id, count(*) AS n, greatest(max(t) - min(t), 1) AS span FROM acts GROUP BY 1"
        )
        con.execute("CREATE TEMP TABLE sync (actor_id VARCHAR, target_id VARCHAR, w BIGINT, cell BIGINT)")
        skipped = 0
        for w in params.windows_s:
            for shift in (0, w // 2):
                # Count the cells of one grid first (no lists); only burst cells are joined back to
                # their likes. A burst holds >= min_cell_actors and >= burst_ratio x the target's rate.
                args = {
                    "w": w,
                    "shift": shift,
                    "min_n": params.min_cell_actors,
                    "ratio": params.burst_ratio,
                    "min_span": max(params.min_span_s, w),
                }
                con.execute(
                    """
                    CREATE OR REPLACE TEMP TABLE bursts AS
                    SELECT c.target_id, c.cell, c.n
                    FROM (SELECT target_id, (t + $shift) // $w AS cell, count(*) AS n FROM acts GROUP BY ALL) c
                    JOIN target_rate r USING (target_id)
                    WHERE c.n >= $min_n AND c.n >= $ratio * (r.n * $w / greatest(r.span, $min_span) + 1)
                    """,
                    args,
                )
                skipped += con.execute("SELECT count(*) FROM bursts WHERE n > $cap", {"cap": params.max_cell_actors}).fetchall()[0][0]
                con.execute(
                    """
                    INSERT INTO sync
                    SELECT a.actor_id, a.target_id, $w, b.cell * 2 + ($shift > 0)::INT
                    FROM acts a JOIN bursts b ON a.target_id = b.target_id AND (a.t + $shift) // $w = b.cell
                    WHERE b.n <= $cap
                    """,
                    {"w": w, "shift": shift, "cap": params.max_cell_actors},
                )
        # Exact pruning before the self-join: an account in fewer than min_common burst targets
        # cannot have a partner, and most accounts are in one or two organic bursts at most.
        con.execute(
            """
            DELETE FROM sync WHERE actor_id IN (
                SELECT actor_id FROM sync GROUP BY actor_id HAVING count(DISTINCT target_id) < $min_common
            )
            """,
            {"min_common": params.min_common},
        )
        con.execute(
            """
            CREATE TEMP TABLE pairs AS
            SELECT a.actor_id AS u, b.actor_id AS v, count(DISTINCT a.target_id) AS common
            FROM sync a JOIN sync b ON a.target_id = b.target_id AND a.w = b.w AND a.cell = b.cell AND a.actor_id < b.actor_id
            GROUP BY ALL HAVING count(DISTINCT a.target_id) >= $min_common
            """,
            {"min_common": params.min_common},
        )
        groups = _groups(con, params)
        return LockstepResult(groups, _features(con, groups), skipped, True)
    finally:
        if own:
            con.close()
        else:
            for name in ("acts", "target_rate", "sync", "bursts", "pairs", "members"):
                con.execute(f"DROP TABLE IF EXISTS {name}")


def _groups(con: duckdb.DuckDBPyConnection, params: LockstepParams) -> pl.DataFrame:
    """Connected components of the partner graph, with their targets, time span, density, score."""
    pairs = con.sql("SELECT u, v, common FROM pairs").pl()
    if pairs.is_empty():
        con.execute("CREATE TEMP TABLE members (actor_id VARCHAR, group_id BIGINT)")
        return _empty_groups()
    ids = pl.concat([pairs["u"], pairs["v"]]).unique(maintain_order=False).sort()
    index = pl.DataFrame({"actor_id": ids, "i": np.arange(len(ids))})
    u = pairs.join(index, left_on="u", right_on="actor_id")["i"].to_numpy()
    v = pairs.join(index, left_on="v", right_on="actor_id")["i"].to_numpy()
    graph = sp.coo_matrix((np.ones(len(u)), (u, v)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    members = index.with_columns(group_id=pl.Series(component, dtype=pl.Int64)).drop("i")
    sizes = members.group_by("group_id").len()
    members = members.join(sizes.filter(pl.col("len") >= params.min_group), on="group_id").drop("len")
    con.register("members_df", members)
    con.execute("CREATE TEMP TABLE members AS SELECT * FROM members_df")
    con.unregister("members_df")
    return (
        con.sql(
            """
        WITH edges AS (
            SELECT m.group_id, count(*) AS n_edges, avg(p.common) AS mean_common
            FROM pairs p JOIN members m ON m.actor_id = p.u GROUP BY m.group_id
        ),
        acts_in AS (
            SELECT m.group_id, s.target_id, a.t
            FROM sync s JOIN members m USING (actor_id)
            JOIN acts a ON a.actor_id = s.actor_id AND a.target_id = s.target_id
        ),
        spans AS (
            SELECT group_id, list(DISTINCT target_id ORDER BY target_id) AS targets,
                   to_timestamp(min(t)) AS first_ts, to_timestamp(max(t)) AS last_ts
            FROM acts_in GROUP BY group_id
        ),
        sizes AS (SELECT group_id, count(*) AS size, list(actor_id ORDER BY actor_id) AS members FROM members GROUP BY group_id)
        SELECT s.group_id, s.size, s.members, sp.targets, sp.first_ts, sp.last_ts,
               e.n_edges / (s.size * (s.size - 1) / 2.0) AS density, e.mean_common,
               e.n_edges / (s.size * (s.size - 1) / 2.0) * ln(s.size) * ln(1 + e.mean_common) AS score
        FROM sizes s JOIN edges e USING (group_id) JOIN spans sp USING (group_id)
        ORDER BY score DESC, s.group_id
        """
        )
        .pl()
        .cast(GROUP_SCHEMA)
    )


def _features(con: duckdb.DuckDBPyConnection, groups: pl.DataFrame | None) -> pl.DataFrame:
    """Per-account lock_ features for every account with at least one counted action."""
    if groups is None:
        return con.sql(
            """
            SELECT DISTINCT actor_id AS account_id, NULL::BIGINT AS lock_group_size, NULL::BIGINT AS lock_partners,
                   NULL::DOUBLE AS lock_max_jaccard, NULL::DOUBLE AS lock_mean_jaccard, NULL::DOUBLE AS lock_share
            FROM acts ORDER BY account_id
            """
        ).pl()
    return con.sql(
        """
        WITH n_targets AS (SELECT actor_id, count(DISTINCT target_id) AS n FROM acts GROUP BY 1),
        both_ways AS (SELECT u AS a, v AS b, common FROM pairs UNION ALL SELECT v, u, common FROM pairs),
        jac AS (
            SELECT w.a AS actor_id, count(*) AS partners,
                   max(w.common / (na.n + nb.n - w.common)) AS max_j, avg(w.common / (na.n + nb.n - w.common)) AS mean_j
            FROM both_ways w JOIN n_targets na ON na.actor_id = w.a JOIN n_targets nb ON nb.actor_id = w.b
            GROUP BY w.a
        ),
        in_sync AS (
            -- an action is in lockstep when a partner shares its burst cell
            SELECT DISTINCT s.actor_id, s.target_id
            FROM sync s JOIN sync o ON o.target_id = s.target_id AND o.w = s.w AND o.cell = s.cell AND o.actor_id <> s.actor_id
            JOIN both_ways bw ON bw.a = s.actor_id AND bw.b = o.actor_id
        ),
        share AS (
            SELECT n.actor_id, count(i.target_id) / n.n AS lock_share
            FROM n_targets n LEFT JOIN in_sync i USING (actor_id) GROUP BY n.actor_id, n.n
        ),
        gsize AS (SELECT actor_id, count(*) OVER (PARTITION BY group_id) AS size FROM members)
        SELECT n.actor_id AS account_id,
               coalesce(g.size, 0) AS lock_group_size,
               coalesce(j.partners, 0) AS lock_partners,
               coalesce(j.max_j, 0.0) AS lock_max_jaccard,
               coalesce(j.mean_j, 0.0) AS lock_mean_jaccard,
               coalesce(s.lock_share, 0.0) AS lock_share
        FROM n_targets n LEFT JOIN gsize g USING (actor_id) LEFT JOIN jac j USING (actor_id) LEFT JOIN share s USING (actor_id)
        ORDER BY account_id
        """
    ).pl()


def _empty_groups() -> pl.DataFrame:
    return pl.DataFrame(schema=GROUP_SCHEMA)


def dense_block_scores(engagements: Frame, *, c: float = 5.0, epsilon: float = 0.1) -> pl.DataFrame:
    """FRAUDAR-style dense-block suspicion for every actor, untimed (works on weight-only data).

    The account x target graph (an edge per account and target, valued by how many times the
    account engaged: the summed `weight`) gets FRAUDAR's column weights, 1 / log(c + target
    degree), so that edges into popular targets count for little
    (camouflage resistance, Hooi et al., KDD 2016). FRAUDAR then peels the graph greedily, node by
    node with the smallest weighted degree, and reports the densest block it passed through. We
    keep the whole peeling rather than one block: an account's score is the weighted-degree level
    at which it was peeled (its weighted core number), so every dense block, not only the densest,
    ranks its members high. Peeling is vectorised: all nodes at or below the current level go at
    once, and the level rises by a factor (1 + epsilon) when none is left (an epsilon-approximate
    core decomposition), at O(edges) numpy work per round instead of a heap operation per edge.

    Returns columns account_id, lock_dense_block_score and lock_in_densest_block (the accounts of
    the densest block met during the peeling, FRAUDAR's own output).
    """
    eng = engagements.collect() if isinstance(engagements, pl.LazyFrame) else engagements
    weight = pl.col("weight").sum() if "weight" in eng.columns else pl.len()
    edges = eng.group_by("actor_id", "target_id").agg(weight.cast(pl.Float64).alias("w"))
    actors = edges["actor_id"].unique().sort()
    targets = edges["target_id"].unique().sort()
    idx = edges.join(pl.DataFrame({"actor_id": actors, "a": np.arange(len(actors))}), on="actor_id").join(
        pl.DataFrame({"target_id": targets, "b": np.arange(len(targets))}), on="target_id"
    )
    rows, cols = idx["a"].to_numpy(), idx["b"].to_numpy()
    deg_t = np.bincount(cols, minlength=len(targets))
    values = idx["w"].to_numpy() / np.log(c + deg_t[cols])
    m = sp.csr_matrix((values, (rows, cols)), shape=(len(actors), len(targets)))
    mt = m.T.tocsr()
    alive_a = np.ones(len(actors))
    alive_b = np.ones(len(targets))
    score = np.zeros(len(actors))
    deg_a, deg_b = m @ alive_b, mt @ alive_a
    level = min(deg_a.min(), deg_b.min())
    best_density, best_level = -1.0, 0.0
    while alive_a.any():
        # FRAUDAR's block: the remaining subgraph with the highest weight per node.
        density = float(deg_a @ alive_a) / (alive_a.sum() + alive_b.sum())
        if density > best_density:
            best_density, best_level = density, level
        while True:
            drop_a = (alive_a > 0) & (deg_a <= level)
            drop_b = (alive_b > 0) & (deg_b <= level)
            if not drop_a.any() and not drop_b.any():
                break
            score[drop_a] = level
            alive_a[drop_a] = 0.0
            alive_b[drop_b] = 0.0
            deg_a, deg_b = m @ alive_b, mt @ alive_a
        level *= 1.0 + epsilon
    return pl.DataFrame({"account_id": actors, "lock_dense_block_score": score, "lock_in_densest_block": score >= best_level})
