"""graph_ features: the follow graph and the account -> target engagement graph (docs/features.md#graph).

Graph algorithms run on igraph: on this machine it is many times faster than networkx for
PageRank and k-core at a million nodes (the benchmark's `graphlib` row measures both), and
tests/test_features.py checks that both give the same numbers on a small graph. networkx stays
the reference API for analysts (`follow_graph_networkx`).
"""

from __future__ import annotations

from collections.abc import Sequence

import igraph as ig
import networkx as nx
import numpy as np
import polars as pl
import scipy.sparse as sp

from pipeline.features.sql import Frame

NEIGHBOUR_COLUMNS = ("profile_age_days", "profile_username_digit_share", "profile_follow_ratio_log", "beh_n_actions", "beh_burstiness")
COENGAGER_COLUMNS = ("profile_age_days", "beh_burstiness")


def _collect(frame: Frame) -> pl.DataFrame:
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def follow_edges(accounts: Frame, engagements: Frame) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """Account ids (sorted) and the follow edges between them as index arrays (src follows dst)."""
    ids = _collect(accounts)["account_id"].sort()
    index = pl.DataFrame({"id": ids, "i": np.arange(len(ids), dtype=np.int64)})
    follows = (
        _collect(engagements)
        .filter((pl.col("kind").cast(pl.String) == "follow") & (pl.col("target_type").cast(pl.String) == "account"))
        .select("actor_id", "target_id")
        .unique()
        .join(index.rename({"id": "actor_id", "i": "src"}), on="actor_id")
        .join(index.rename({"id": "target_id", "i": "dst"}), on="target_id")
        .filter(pl.col("src") != pl.col("dst"))
    )
    return ids, follows["src"].to_numpy(), follows["dst"].to_numpy()


def follow_graph_networkx(accounts: Frame, engagements: Frame) -> nx.DiGraph:
    """The follow graph as a networkx DiGraph keyed by account_id, for exploration."""
    ids, src, dst = follow_edges(accounts, engagements)
    g = nx.DiGraph()
    g.add_nodes_from(ids.to_list())
    g.add_edges_from(zip(ids.gather(src).to_list(), ids.gather(dst).to_list(), strict=True))
    return g


def graph_features(
    accounts: Frame,
    engagements: Frame,
    base: pl.DataFrame | None = None,
    *,
    neighbour_columns: Sequence[str] = NEIGHBOUR_COLUMNS,
    coengager_columns: Sequence[str] = COENGAGER_COLUMNS,
) -> pl.DataFrame:
    """One row per account, graph_* columns.

    Args:
        accounts: Contract accounts (the nodes).
        engagements: Contract engagements; follows between known accounts make the follow graph,
            every engagement with a target makes the bipartite graph.
        base: Per-account features (profile_, beh_) to aggregate over neighbours, GADBench-style.
        neighbour_columns: Columns of `base` averaged (1 and 2 hops) and maxed (1 hop) over
            follow-graph neighbours.
        coengager_columns: Columns of `base` averaged over the other accounts that engaged
            with the same targets.
    """
    ids, src, dst = follow_edges(accounts, engagements)
    n = len(ids)
    g = ig.Graph(n=n, edges=np.column_stack([src, dst]).tolist(), directed=True)
    indeg = np.asarray(g.indegree(), dtype=np.float64)
    outdeg = np.asarray(g.outdegree(), dtype=np.float64)
    undirected = g.as_undirected(mode="collapse")
    out = pl.DataFrame(
        {
            "account_id": ids,
            "graph_in_degree": indeg,
            "graph_out_degree": outdeg,
            "graph_reciprocity": _reciprocity(src, dst, n),
            "graph_pagerank": np.asarray(g.pagerank(directed=True)) * n,  # 1.0 = average
            "graph_core": np.asarray(undirected.coreness(), dtype=np.float64),
            "graph_clustering": np.asarray(undirected.transitivity_local_undirected(mode="zero")),
        }
    )
    if base is not None:
        out = out.join(_neighbour_means(ids, src, dst, base, neighbour_columns), on="account_id", how="left")
    out = out.join(_bipartite(engagements, base, coengager_columns), on="account_id", how="left")
    return out.sort("account_id")


def _reciprocity(src: np.ndarray, dst: np.ndarray, n: int) -> np.ndarray:
    """Share of an account's follows that are followed back (null without follows)."""
    edges = pl.DataFrame({"s": src, "d": dst})
    back = edges.join(edges, left_on=["s", "d"], right_on=["d", "s"], how="semi")
    out_n = np.bincount(src, minlength=n).astype(np.float64)
    back_n = np.bincount(back["s"].to_numpy(), minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(out_n > 0, back_n / out_n, np.nan)


def _neighbour_means(ids: pl.Series, src: np.ndarray, dst: np.ndarray, base: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Mean (1 and 2 hops) and max (1 hop) of `columns` over undirected follow neighbours."""
    n = len(ids)
    x = pl.DataFrame({"account_id": ids}).join(base.select("account_id", *columns), on="account_id", how="left")
    values = x.select(columns).fill_nan(None).to_numpy().astype(np.float64)
    known = ~np.isnan(values)
    values = np.where(known, values, 0.0)
    adj = sp.coo_matrix((np.ones(2 * len(src)), (np.r_[src, dst], np.r_[dst, src])), shape=(n, n)).tocsr()
    adj.data[:] = 1.0  # a pair that follows both ways is one neighbour
    counts = adj @ known.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean1 = (adj @ values) / counts
        known2 = ~np.isnan(mean1)
        mean2 = (adj @ np.where(known2, mean1, 0.0)) / (adj @ known2.astype(np.float64))
    result = {"account_id": ids}
    for j, col in enumerate(columns):
        result[f"graph_nb_{col}_mean"] = mean1[:, j]
        result[f"graph_nb2_{col}_mean"] = mean2[:, j]
    edges = pl.DataFrame({"i": np.r_[src, dst], "j": np.r_[dst, src]}).unique()
    vals = pl.DataFrame({"j": np.arange(n), **{c: np.where(known[:, k], values[:, k], np.nan) for k, c in enumerate(columns)}})
    maxes = edges.join(vals, on="j").group_by("i").agg(pl.col(c).fill_nan(None).max().alias(f"graph_nb_{c}_max") for c in columns)
    frame = pl.DataFrame(result).with_columns(pl.all().exclude("account_id").fill_nan(None))
    return frame.with_row_index("i").join(maxes.with_columns(pl.col("i").cast(pl.UInt32)), on="i", how="left").drop("i")


def _bipartite(engagements: Frame, base: pl.DataFrame | None, columns: Sequence[str]) -> pl.DataFrame:
    """Popularity of the targets an account engages with, and who else engages with them."""
    pairs = _collect(engagements).select("actor_id", "target_id").unique()
    degree = pairs.group_by("target_id").len("target_degree")
    pairs = pairs.join(degree, on="target_id")
    stats = pairs.group_by("actor_id").agg(
        pl.col("target_degree").log1p().mean().alias("graph_target_pop_mean"),
        pl.col("target_degree").log1p().median().alias("graph_target_pop_median"),
        pl.col("target_degree").log1p().max().alias("graph_target_pop_max"),
        pl.col("target_degree").log1p().min().alias("graph_target_pop_min"),
        (pl.col("target_degree") <= 5).mean().alias("graph_target_small_share"),
    )
    if base is not None and columns:
        # Mean over each target's engagers (the account itself included: cheap, and it keeps the
        # aggregate independent of row order), then mean over the account's targets.
        per_target = (
            pairs.join(base.select("account_id", *columns), left_on="actor_id", right_on="account_id", how="left")
            .group_by("target_id")
            .agg(pl.col(c).fill_nan(None).mean().alias(c) for c in columns)
        )
        co = (
            pairs.join(per_target, on="target_id")
            .group_by("actor_id")
            .agg(pl.col(c).mean().alias(f"graph_coengager_{c}_mean") for c in columns)
        )
        stats = stats.join(co, on="actor_id", how="left")
    return stats.rename({"actor_id": "account_id"})
