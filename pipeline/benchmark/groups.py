"""Groups for the group-aware protocol: communities of the co-engagement graph, so that a dense block stays on one side.

In stratified K-fold the members of one dense block (a like farm, workers on the same tasks) land
in both the training and the test part, and a model can learn the block instead of the behaviour.
Connected components cannot be the groups here: on Weibo-S the co-engagement graph is one
component of 8,403 of its 8,405 accounts, on Tolokers one of all 11,758 (measured when this
protocol was designed, before any group-aware model was run; so were the alternatives: removing
targets with more than 20-200 engagers still leaves a component of 4,766-6,127 accounts, and
peeling densest blocks FRAUDAR-style cuts the positives' block apart, keeping 8% of the pairs of
suspicious accounts that share 10 or more items). The groups are the communities Leiden finds
(modularity, resolution 1, a fixed seed) in the account graph:

- accounts that engaged with the same targets are linked, each shared target weighing
  1 / log(5 + its number of engagers), FRAUDAR's column weight, so that a popular target links
  little; a link weighing less than `min_weight` is left out (0.5: one target only the two
  engaged with, or two targets with up to ~50 engagers each), which keeps Weibo-S's graph at 0.9M
  of its 11.3M pairs;
- account-to-account engagements (Tolokers' co-work edges) are links of weight 1.

An account without links is a group of its own. The report gives the groups' count and sizes and
how many links, and how many links between two positives, stay within a group.
"""

from __future__ import annotations

import random
from typing import Any

import igraph as ig
import numpy as np
import polars as pl
import scipy.sparse as sp

GROUPS_TEXT = (
    "communities found by Leiden (modularity, resolution 1, fixed seed) in the account graph: accounts linked by the "
    "targets they share (each weighing 1 / log(5 + its engagers), links under {min_weight} left out) and by "
    "account-to-account engagements; an account without links is a group of its own"
)


def coengagement_links(
    account_ids: pl.Series, engagements: pl.DataFrame, *, min_weight: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected account links (i < j, as positions in `account_ids`) and their weights (module docstring)."""
    index = pl.DataFrame({"account_id": account_ids, "i": np.arange(len(account_ids))})
    e = (
        engagements.select("actor_id", "target_id", "target_type")
        .join(index.rename({"account_id": "actor_id"}), on="actor_id", how="inner")
        .unique(["i", "target_id", "target_type"], maintain_order=True)
    )
    n = len(account_ids)
    direct = e.filter(pl.col("target_type") == "account").join(
        index.rename({"account_id": "target_id", "i": "j"}), on="target_id", how="inner"
    )
    a = sp.coo_matrix((np.ones(direct.height), (direct["i"].to_numpy(), direct["j"].to_numpy())), shape=(n, n)).tocsr()
    a = ((a + a.T) > 0).astype(np.float64)  # an edge stored once or both ways weighs 1
    items = e.filter(pl.col("target_type") != "account")
    if items.height:
        item = items["target_id"].cast(pl.String).rank("dense").cast(pl.Int64).to_numpy() - 1
        b = sp.csr_matrix((np.ones(items.height), (items["i"].to_numpy(), item)), shape=(n, int(item.max()) + 1))
        engagers = np.asarray(b.sum(axis=0)).ravel()
        a = a + b @ sp.diags(1.0 / np.log(5.0 + engagers)) @ b.T
    links = sp.triu(a, k=1).tocoo()
    keep = links.data >= min_weight
    order = np.lexsort((links.col[keep], links.row[keep]))  # a fixed order: Leiden's result depends on it
    return links.row[keep][order], links.col[keep][order], links.data[keep][order]


def coengagement_groups(
    account_ids: pl.Series,
    engagements: pl.DataFrame,
    *,
    positives: np.ndarray | None = None,
    min_weight: float = 0.5,
    seed: int = 0,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """(account_id, group) for every account, and what the grouping kept together (module docstring).

    With `positives` (a boolean per account) the stats also say how the positives were grouped:
    the links between two positives kept within a group, and the most positives in one group (a
    dense block of positives kept whole shows up there).
    """
    i, j, w = coengagement_links(account_ids, engagements, min_weight=min_weight)
    n = len(account_ids)
    graph = ig.Graph(n=n, edges=np.column_stack([i, j]))
    # igraph draws from Python's `random` module unless told otherwise: a private generator makes
    # the communities (and so the folds and the report) the same on every run.
    ig.set_random_number_generator(random.Random(seed))
    try:
        membership = np.asarray(graph.community_leiden(objective_function="modularity", weights=w.tolist(), n_iterations=-1).membership)
    finally:
        ig.set_random_number_generator(random)
    sizes = np.bincount(membership, minlength=1)
    within = membership[i] == membership[j]
    stats: dict[str, Any] = {
        "how": GROUPS_TEXT.format(min_weight=min_weight),
        "accounts": n,
        "links": len(w),
        "links_within_groups": round(float(within.mean()), 3) if len(w) else 0.0,
        "groups": len(sizes),
        "singletons": int((sizes == 1).sum()),
        "largest": sorted(sizes.tolist(), reverse=True)[:3],
    }
    if positives is not None:
        y = np.asarray(positives, dtype=bool)
        both = y[i] & y[j]
        stats["positives"] = int(y.sum())
        stats["positive_links"] = int(both.sum())
        stats["positive_links_within_groups"] = round(float(within[both].mean()), 3) if both.any() else 0.0
        stats["most_positives_in_one_group"] = int(np.bincount(membership[y], minlength=1).max())
    return pl.DataFrame({"account_id": account_ids, "group": membership}), stats
