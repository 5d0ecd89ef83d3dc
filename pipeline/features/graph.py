"""graph_ features: the follow graph and the account -> target engagement graph (docs/features.md#graph).

k-core and clustering run on igraph: on this machine it is many times faster than networkx at a
million nodes (the benchmark's `graphlib` row measures both). PageRank is a sparse power
iteration (`pagerank`): slower, but the same input gives the same bytes, which igraph's
multithreaded solver does not. tests/test_features.py checks all of them against networkx on a
small graph; networkx stays the reference API for analysts (`follow_graph_networkx`).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import igraph as ig
import networkx as nx
import numba
import numpy as np
import polars as pl
import scipy.sparse as sp

from pipeline.db import quote
from pipeline.features.family import Context, Family, count, share
from pipeline.features.query import Frame, feature_connection, number_ids

NEIGHBOUR_COLUMNS = ("profile_age_days", "profile_username_digit_share", "profile_follow_ratio_log", "beh_n_actions", "beh_burstiness")
COENGAGER_COLUMNS = ("profile_age_days", "beh_burstiness")


def _collect(frame: Frame) -> pl.DataFrame:
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def _frames_connection(accounts: Frame, engagements: Frame) -> duckdb.DuckDBPyConnection:
    """A connection that shows the frames as `accounts` and `engagements`, as the stage's views do."""
    con = feature_connection()
    con.register("accounts", _collect(accounts).select("account_id"))
    eng = _collect(engagements)
    weight = pl.col("weight") if "weight" in eng.columns else pl.lit(1, pl.Int64).alias("weight")
    con.register("engagements", eng.select("actor_id", "target_id", "kind", "target_type", weight))
    return con


def _follow_index(con: duckdb.DuckDBPyConnection) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Account ids (sorted) and the follow edges between them as index arrays (src follows dst)."""
    number_ids(con, "graph_ix", "account_id", "accounts")
    try:
        ids = con.sql("SELECT account_id FROM graph_ix ORDER BY i").pl()["account_id"]
        edges = con.execute(
            """
            SELECT DISTINCT s.i AS src, d.i AS dst
            FROM engagements e JOIN graph_ix s ON s.account_id = e.actor_id JOIN graph_ix d ON d.account_id = e.target_id
            WHERE e.kind::VARCHAR = 'follow' AND e.target_type::VARCHAR = 'account' AND s.i <> d.i
            ORDER BY src, dst
            """
        ).fetchnumpy()
    finally:
        con.execute("DROP TABLE IF EXISTS graph_ix")
    # sorted: PageRank and the sparse sums add in edge order, and the same input must give the same bytes
    return ids, edges["src"].astype(np.int64), edges["dst"].astype(np.int64)


def follow_edges(accounts: Frame, engagements: Frame) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Account ids (sorted) and the follow edges between them as index arrays (src follows dst)."""
    con = _frames_connection(accounts, engagements)
    try:
        return _follow_index(con)
    finally:
        con.close()


def follow_graph_networkx(accounts: Frame, engagements: Frame) -> nx.DiGraph:
    """The follow graph as a networkx DiGraph keyed by account_id, for exploration."""
    ids, src, dst = follow_edges(accounts, engagements)
    g = nx.DiGraph()
    g.add_nodes_from(ids.to_list())
    g.add_edges_from(zip(ids.gather(src).to_list(), ids.gather(dst).to_list(), strict=True))
    return g


def graph_features(
    accounts: Frame | None = None,
    engagements: Frame | None = None,
    base: pl.DataFrame | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    neighbour_columns: Sequence[str] = NEIGHBOUR_COLUMNS,
    coengager_columns: Sequence[str] = COENGAGER_COLUMNS,
    coengager_weighted: Sequence[str] = (),
) -> pl.DataFrame:
    """One row per account, graph_* columns.

    Args:
        accounts: Contract accounts (the nodes).
        engagements: Contract engagements; follows between known accounts make the follow graph,
            every engagement with a target makes the bipartite graph.
        base: Per-account features (profile_, beh_) to aggregate over neighbours, GADBench-style.
        con: Instead of the frames, a connection that shows `accounts` and `engagements` by name
            (the stage: views over the warehouse, so the edges are never copied into polars).
        neighbour_columns: Columns of `base` averaged (1 and 2 hops) and maxed (1 hop) over
            follow-graph neighbours.
        coengager_columns: Columns of `base` averaged over the other accounts that engaged
            with the same targets.
        coengager_weighted: Columns of `base` whose co-engager average is also taken weighted
            by engagement weight, with its maximum over the account's targets.
    """
    if con is None:
        if accounts is None or engagements is None:
            raise TypeError("graph_features needs accounts and engagements, or con")
        own = _frames_connection(accounts, engagements)
        try:
            return graph_features(
                base=base,
                con=own,
                neighbour_columns=neighbour_columns,
                coengager_columns=coengager_columns,
                coengager_weighted=coengager_weighted,
            )
        finally:
            own.close()
    # DuckDB's part first, before the follow graph is held in memory: the step's peak is then the
    # larger of the two, not their sum (at a million accounts the step's peak fell from 3,740 to 2,840 MiB)
    bipartite = _bipartite(con, base, coengager_columns, coengager_weighted) if base is not None else _bipartite(con, None, ())
    ids, src, dst = _follow_index(con)
    n = len(ids)
    adj, mutual = _adjacency(src, dst, n)
    lo, hi = _pairs(adj)
    # igraph for what it does best (k-core, clustering), on the undirected graph given directly: it
    # reads a list of int pairs ~2x faster than a numpy array, and the directed graph it was built
    # from before (for its degrees, then as_undirected) cost 8.5 s of the step at a million accounts
    undirected = ig.Graph(n=n, edges=list(zip(lo.tolist(), hi.tolist(), strict=True)))
    del lo, hi
    out = pl.DataFrame(
        {
            "account_id": ids,
            "graph_in_degree": np.bincount(dst, minlength=n).astype(np.float64),  # the edges are distinct
            "graph_out_degree": np.bincount(src, minlength=n).astype(np.float64),
            "graph_reciprocity": _reciprocity(src, mutual, n),
            "graph_pagerank": pagerank(src, dst, n) * n,  # 1.0 = average
            "graph_core": np.asarray(undirected.coreness(), dtype=np.float64),
            "graph_clustering": np.asarray(undirected.transitivity_local_undirected(mode="zero")),
        }
    )
    del undirected, src, dst
    if base is not None and neighbour_columns:
        out = out.join(_neighbour_means(ids, adj, base, neighbour_columns), on="account_id", how="left")
    del adj
    out = out.join(bipartite, on="account_id", how="left")
    return out.sort("account_id")


def pagerank(src: np.ndarray, dst: np.ndarray, n: int, *, damping: float = 0.85, tol: float = 1e-12, max_iter: int = 1000) -> np.ndarray:
    """PageRank of the directed graph `src -> dst` on `n` nodes, by power iteration (sums to 1).

    The same definition as networkx and igraph (a dangling node's rank is spread over all nodes),
    iterated until the L1 change is below `tol`; a repeated edge counts once per copy. Plain
    sparse products add in a fixed order, so the same edges give the same bytes on every run,
    which igraph's multithreaded PRPACK solver does not. Each iteration's product is `_inflow`:
    every node's sum on its own, in its row's order, so the rows can share the cores and the
    bytes stay those of scipy's single-threaded product. tests/test_features.py compares it with
    networkx and with scipy's product.
    """
    if n == 0:
        return np.zeros(0)
    out = np.bincount(src, minlength=n).astype(np.float64)
    dangling = np.flatnonzero(out == 0)
    share = 1.0 / np.maximum(out, 1.0)
    # row v sums the ranks flowing into v, each edge u -> v weighted by u's share (1 / out-degree):
    # the same products as multiplying x by the shares first, one pass over x fewer per iteration
    to = sp.csr_matrix((share[src], (dst, src)), shape=(n, n))
    x = np.full(n, 1.0 / n)
    # the iterations reuse their arrays: a fresh 8 MB array per step cost its page faults every time
    new, diff, lost = np.empty(n), np.empty(n), np.empty(len(dangling))
    for _ in range(max_iter):
        _inflow(to.indptr, to.indices, to.data, x, new)
        new *= damping
        new += (damping * np.take(x, dangling, out=lost).sum() + 1.0 - damping) / n
        done = np.abs(np.subtract(new, x, out=diff), out=diff).sum() < tol
        x, new = new, x
        if done:
            break
    return x / x.sum()


@numba.njit(parallel=True, cache=True)
def _inflow(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`out` = the CSR matrix (indptr, indices, data) times `x`: each row summed from 0.0 in its
    stored order, as scipy's csr_matvec adds (the same bytes), the rows over the cores."""
    for v in numba.prange(len(out)):
        total = 0.0
        for k in range(indptr[v], indptr[v + 1]):
            total += data[k] * x[indices[k]]
        out[v] = total
    return out


def _adjacency(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """The undirected follow graph as a symmetric 0/1 CSR matrix, each row's neighbours in id order
    (a pair that follows both ways is one neighbour), and each account's number of such mutual
    pairs (the (distinct) edges both ways summed to 2 before the entries are set to 1)."""
    adj = sp.coo_matrix((np.ones(2 * len(src)), (np.r_[src, dst], np.r_[dst, src])), shape=(n, n)).tocsr()
    adj.sort_indices()  # the neighbour sums add in this order
    rows = np.repeat(np.arange(n), np.diff(adj.indptr))
    mutual = np.bincount(rows[adj.data == 2.0], minlength=n).astype(np.float64)
    adj.data[:] = 1.0
    return adj, mutual


def _pairs(adj: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each neighbour pair of `adj` once, as (lo, hi) with lo < hi, sorted."""
    rows = np.repeat(np.arange(adj.shape[0], dtype=adj.indices.dtype), np.diff(adj.indptr))
    upper = adj.indices > rows
    return rows[upper], adj.indices[upper]


def _reciprocity(src: np.ndarray, mutual: np.ndarray, n: int) -> np.ndarray:
    """Share of an account's follows that are followed back (null without follows), from its
    mutual pairs (`_adjacency`)."""
    out_n = np.bincount(src, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(out_n > 0, mutual / out_n, np.nan)


def _neighbour_means(ids: pl.Series, adj: sp.csr_matrix, base: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Mean (1 and 2 hops) and max (1 hop) of `columns` over undirected follow neighbours (`_adjacency`, sparse algebra)."""
    n = len(ids)
    # rows must stay in the order of `ids` (the adjacency's index): polars does not keep it by default
    x = pl.DataFrame({"account_id": ids}).join(base.select("account_id", *columns), on="account_id", how="left", maintain_order="left")
    values = x.select(columns).fill_nan(None).to_numpy().astype(np.float64)
    known = ~np.isnan(values)
    values = np.where(known, values, 0.0)
    counts = adj @ known.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean1 = (adj @ values) / counts
        known2 = ~np.isnan(mean1)
        mean2 = (adj @ np.where(known2, mean1, 0.0)) / (adj @ known2.astype(np.float64))
    result: dict[str, object] = {"account_id": ids}
    for j, col in enumerate(columns):
        result[f"graph_nb_{col}_mean"] = mean1[:, j]
        result[f"graph_nb2_{col}_mean"] = mean2[:, j]
    starts = adj.indptr[:-1][np.diff(adj.indptr) > 0]
    for j, col in enumerate(columns):
        # Max over known neighbours: unknown values as -inf, each row's maximum over its CSR
        # segment; a row with no known neighbour is null
        top = np.full(n, -np.inf)
        if len(adj.indices):
            top[np.diff(adj.indptr) > 0] = np.maximum.reduceat(np.where(known[:, j], values[:, j], -np.inf)[adj.indices], starts)
        result[f"graph_nb_{col}_max"] = np.where(counts[:, j] > 0, top, np.nan)
    return pl.DataFrame(result).with_columns(pl.all().exclude("account_id").fill_nan(None))


def _exact(expr: str) -> str:
    """`expr` as an exact decimal for summing: a parallel float sum adds in a varying order, so the
    same input would not give the same bytes. Values are clamped to +-1e18 first (a DECIMAL(38, 12)
    sum holds 26 integer digits), which no count, age or rate comes near. Unknown stays unknown:
    greatest() and least() skip NULLs, so without the guard a null became -1e18 and dragged every
    mean it entered down to about -1e18 (an account with one unknown co-engager value)."""
    return f"CAST(CASE WHEN ({expr}) IS NULL THEN NULL ELSE least(greatest({expr}, -1e18), 1e18) END AS DECIMAL(38, 12))"


def _bipartite(
    con: duckdb.DuckDBPyConnection, base: pl.DataFrame | None, columns: Sequence[str], weighted: Sequence[str] = ()
) -> pl.DataFrame:
    """Popularity of the targets an account engages with, and who else engages with them (SQL on `engagements`).

    `columns` are averaged over each target's engagers, then over the account's targets. For the
    `weighted` ones, both averages are also weighted by engagement weight, and the largest target
    mean is kept as well: a farm account's targets are all farm-heavy, an organic account's few are.
    """
    if columns or weighted:
        used = list(dict.fromkeys([*columns, *weighted]))
        con.register("graph_base", base.select("account_id", *used))  # type: ignore[union-attr]
    *tables, select = bipartite_sql(columns, weighted)
    try:
        for statement in tables:
            con.execute(statement)
        return con.sql(select).pl()
    finally:
        for name in ("graph_bp", "graph_bp_deg", "graph_median", "graph_co"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
        if columns or weighted:
            con.unregister("graph_base")


def bipartite_sql(columns: Sequence[str], weighted: Sequence[str] = ()) -> list[str]:
    """The statements of `_bipartite` in DuckDB's dialect: temp tables `graph_bp`, `graph_bp_deg`,
    `graph_median` (and `graph_co` when there are columns to average), then the SELECT of the features.

    They read `engagements` and, for the columns, `graph_base` (account_id + the columns). One
    text for both engines: pipeline/spark/graph.py runs it on Spark, transpiled by sqlglot.
    """
    statements = [
        "CREATE OR REPLACE TEMP TABLE graph_bp AS SELECT actor_id, target_id, sum(weight) AS w FROM engagements GROUP BY ALL",
        "CREATE OR REPLACE TEMP TABLE graph_bp_deg AS "
        "SELECT target_id, count(*) AS degree, ln(1 + count(*)) AS pop FROM graph_bp GROUP BY 1",
        # The median by sorting, not by the median() aggregate: DuckDB holds a holistic aggregate's
        # values per group in memory, and at a million accounts under --memory-limit 1GB it ran out
        # of memory (a sort spills). The middle one or two of each account's targets by popularity
        # (2r in [n, n + 1] and [n + 1, n + 2]), averaged as median() does: (lo + hi) / 2.
        "CREATE OR REPLACE TEMP TABLE graph_median AS "
        "SELECT actor_id, (max(pop) FILTER (WHERE 2 * r BETWEEN n AND n + 1) + max(pop) FILTER (WHERE 2 * r BETWEEN n + 1 AND n + 2)) / 2 "
        "AS graph_target_pop_median FROM ("
        "SELECT bp.actor_id, d.pop, row_number() OVER (PARTITION BY bp.actor_id ORDER BY d.pop) AS r, "
        "count(*) OVER (PARTITION BY bp.actor_id) AS n FROM graph_bp bp JOIN graph_bp_deg d ON d.target_id = bp.target_id"
        ") WHERE 2 * r BETWEEN n AND n + 2 GROUP BY actor_id",
    ]
    co_select, co_join = "", ""
    if columns or weighted:
        # Mean over each target's engagers (the account itself included: cheap, and it keeps
        # the aggregate independent of row order), then mean over the account's targets.
        # NaN counts as unknown, like null.

        def value(c: str) -> str:
            return f"CASE WHEN isnan(b.{quote(c)}) THEN NULL ELSE b.{quote(c)} END"

        per_target = [f"avg({_exact(value(c))}) AS {quote('m_' + c)}" for c in columns]
        per_target += [
            f"sum({_exact(f'bp.w * {value(c)}')}) / sum(bp.w) FILTER (WHERE {value(c)} IS NOT NULL) AS {quote('w_' + c)}" for c in weighted
        ]
        statements.append(
            f"CREATE OR REPLACE TEMP TABLE graph_co AS SELECT bp.target_id, {', '.join(per_target)} "
            "FROM graph_bp bp LEFT JOIN graph_base b ON b.account_id = bp.actor_id GROUP BY bp.target_id"
        )
        co_select = "".join(f", avg({_exact('co.' + quote('m_' + c))}) AS {quote(f'graph_coengager_{c}_mean')}" for c in columns)
        co_select += "".join(
            f", sum({_exact('bp.w * co.' + quote('w_' + c))}) / sum(bp.w) FILTER (WHERE co.{quote('w_' + c)} IS NOT NULL) "
            f"AS {quote(f'graph_coengager_{c}_wmean')}"
            f", max(co.{quote('w_' + c)}) AS {quote(f'graph_coengager_{c}_max')}"
            for c in weighted
        )
        co_join = "JOIN graph_co co ON co.target_id = bp.target_id"
    after = ["graph_target_pop_max", "graph_target_pop_min", "graph_target_small_share"]
    after += [f"graph_coengager_{c}_mean" for c in columns]
    after += [name for c in weighted for name in (f"graph_coengager_{c}_wmean", f"graph_coengager_{c}_max")]
    statements.append(
        f"""
            SELECT a.account_id, a.graph_target_pop_mean, m.graph_target_pop_median, {", ".join("a." + quote(c) for c in after)}
            FROM (
                SELECT bp.actor_id AS account_id,
                       avg({_exact("d.pop")}) AS graph_target_pop_mean,
                       max(d.pop) AS graph_target_pop_max, min(d.pop) AS graph_target_pop_min,
                       avg((d.degree <= 5)::DOUBLE) AS graph_target_small_share{co_select}
                FROM graph_bp bp JOIN graph_bp_deg d ON d.target_id = bp.target_id {co_join}
                GROUP BY bp.actor_id
            ) a JOIN graph_median m ON m.actor_id = a.account_id
            """
    )
    return statements


def compute(ctx: Context) -> pl.DataFrame:
    """The graph family over the families before it: the simulator's inputs stay fixed (the shipped
    models' features); for a dataset, its raw_ columns, the action count and the dense-block score
    are also averaged over neighbours and co-engagers."""
    present = ctx.columns()
    raw_columns = [c for c in present if c.startswith("raw_")]
    extra = [c for c in (*raw_columns, "beh_n_actions", "lock_dense_block_score") if c in present] if ctx.dataset else []
    weighted = [c for c in ("beh_n_actions", "lock_dense_block_score", "lock_in_densest_block") if c in extra or c in present]
    used = {*NEIGHBOUR_COLUMNS, *raw_columns, *COENGAGER_COLUMNS, *extra, *(weighted if ctx.dataset else ())}
    return ctx.timed(
        "graph",
        graph_features,
        base=ctx.so_far(sorted(used)),  # only the columns averaged: not a copy of every feature so far
        con=ctx.con,
        neighbour_columns=(*NEIGHBOUR_COLUMNS, *raw_columns),
        coengager_columns=(*COENGAGER_COLUMNS, *extra),
        coengager_weighted=weighted if ctx.dataset else (),
    )


# How an analyst reads each value (the reasons of `zombiescan score`).
DESCRIBE = {
    "graph_in_degree": lambda v: f"followed by {count(v)} accounts",
    "graph_out_degree": lambda v: f"follows {count(v)} accounts",
    "graph_reciprocity": lambda v: f"{share(v)} of its follows are followed back",
    "graph_pagerank": lambda v: f"follow-graph PageRank {v:.2f}x the average",
    "graph_core": lambda v: f"in the {count(v)}-core of the follow graph",
    "graph_clustering": lambda v: f"its follow neighbours are {share(v)} interconnected",
    "graph_target_small_share": lambda v: f"{share(v)} of what it engaged with has 5 or fewer engagers",
}

FAMILY = Family(
    "graph_",
    "graph",
    compute,
    DESCRIBE,
    role="relational",
    needs=("profile_", "beh_", "raw_", "lock_"),
    spark="pipeline.spark.features:graph",
)
