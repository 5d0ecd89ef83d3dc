"""Exact TreeSHAP for LightGBM models, the values `Booster.predict(pred_contrib=True)` gives, faster.

LightGBM's pred_contrib runs Lundberg's path algorithm for every row, every tree and every leaf:
O(leaves x depth^2) per tree and row. Here, as in Fast TreeSHAP v2 (Yang 2021), each leaf's share
of the Shapley values depends on a row only through which of the leaf's path conditions the row
meets (one bit per distinct feature on the path). For a path with distinct features F (zero
fractions z_k, the share of the training rows that went the path's way) and the set O of features
whose conditions the row meets, the leaf (value v) adds to feature j:

    phi_j = v (1[j in O] - z_j) prod_{k in F \\ O \\ {j}} z_k  sum_{S subset of O \\ {j}} w(|S|) prod_{k in (O \\ {j}) \\ S} z_k

with w(s) = s! (|F| - s - 1)! / |F|!. That value is computed once per (leaf, pattern) that occurs
and looked up for every row with the same pattern, so a row costs one decision per node and one
lookup per leaf and distinct feature: O(leaves x depth) per tree. And a tree gives the same values to
every row that decides alike at each of its nodes: the values are summed once per distinct decision
word (in our models' trees, 88k flagged rows make ~26k words) and added to each row, so a row costs
its decisions and one add per feature the tree splits on. The covers are the trees' data
counts and the decisions LightGBM's own (missing values, zero as missing, default directions), so
the values are LightGBM's to floating-point rounding (tests/test_treeshap.py: <= 1e-6 on real
models). Numerical splits only: a model with a categorical split falls back to pred_contrib.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numba
import numpy as np

MISSING = {"None": 0, "Zero": 1, "NaN": 2}
ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (1e-35f): |x| at or below it is zero for "zero as missing"
BLOCK = 2048  # distinct decision words a thread takes leaf by leaf (one leaf's table and the block's sums stay in cache)
PREDICT_BLOCK = 4096  # rows that walk a tree together in `raw_scores` (by hand on our models: 4096 beat 32-512)
MAX_DENSE_DEPTH = 16  # distinct features on a path up to this: a table of 2^d patterns; above it, no table
# Bytes of (virtual) memory a forest's tables may take; leaves past it get no table. The tables are kept
# with the forest and filled as rows' patterns appear, so the chunks of a scoring job reuse each other's
# values; pages no pattern touched are never made resident. Our models' tables: 159 and 46 MB.
TABLE_BUDGET = 1 << 30


@dataclass(frozen=True)
class Forest:
    """A LightGBM model's trees as flat arrays (see `forest`); node and leaf arrays are indexed from each tree's start."""

    n_features: int
    node_start: np.ndarray  # (trees + 1,) offsets into the node arrays
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    left_child: np.ndarray  # a tree-local node, or ~leaf (tree-local) for a leaf
    right_child: np.ndarray
    leaf_start: np.ndarray  # (trees + 1,) offsets into the leaf arrays
    leaf_value: np.ndarray
    cond_start: np.ndarray  # (leaves + 1,) each leaf's path conditions
    cond_node: np.ndarray  # tree-local internal node
    cond_left: np.ndarray  # the path goes left there
    cond_unique: np.ndarray  # which of the leaf's distinct features the condition is on (0 .. d-1)
    unique_start: np.ndarray  # (leaves + 1,) each leaf's distinct path features
    unique_feature: np.ndarray  # column index
    unique_zero: np.ndarray  # zero fraction: product of the path's count ratios for that feature
    path_mask: np.ndarray  # (leaves,) uint64: bit k set when tree-local node k is on the leaf's path (trees of <= 64 nodes)
    left_mask: np.ndarray  # (leaves,) uint64: bit k set when the path goes left at node k
    unique_mask: np.ndarray  # (distinct path features,) uint64: the nodes of the path that split on that feature
    max_nodes: int
    max_unique: int
    table_at: np.ndarray  # (leaves,) where the leaf's table starts in `table` (2^d patterns x d values); -1: no table
    done_at: np.ndarray  # (leaves,) where its flags start in `done` (2^d)
    table: np.ndarray  # every (leaf, pattern)'s values times the leaf value, filled when a row first has that pattern
    done: np.ndarray  # whether that entry of `table` is filled
    average_output: bool  # a random forest: LightGBM averages the trees' outputs (`raw_scores` leaves it to LightGBM)


def forest(booster: lgb.Booster) -> Forest | None:
    """The booster's trees as flat arrays; None when TreeSHAP here cannot reproduce pred_contrib
    (a categorical split, a linear tree, several outputs per row)."""
    model = booster.dump_model()
    if model.get("num_tree_per_iteration", 1) != 1 or any(t.get("is_linear") for t in model["tree_info"]):
        return None
    try:
        trees = [_Tree(info["tree_structure"]) for info in model["tree_info"]]
    except _UnsupportedSplitError:
        return None
    nodes = [node for tree in trees for node in tree.nodes]
    leaves = [leaf for tree in trees for leaf in tree.leaves]
    conditions = [c for leaf in leaves for c in leaf.conditions]
    table_at, done_at = np.full(len(leaves), -1, np.int64), np.zeros(len(leaves), np.int64)
    size = done_size = 0
    for k, leaf in enumerate(leaves):
        d = len(leaf.features)
        if d <= MAX_DENSE_DEPTH and (size + (1 << d) * d) * 8 + done_size + (1 << d) <= TABLE_BUDGET:
            table_at[k], done_at[k] = size, done_size
            size, done_size = size + (1 << d) * d, done_size + (1 << d)
    return Forest(
        n_features=booster.num_feature(),
        node_start=np.cumsum([0, *(len(t.nodes) for t in trees)]).astype(np.int64),
        feature=np.asarray([n["split_feature"] for n in nodes], np.int64),
        threshold=np.asarray([n["threshold"] for n in nodes], np.float64),
        default_left=np.asarray([n["default_left"] for n in nodes], np.bool_),
        missing=np.asarray([MISSING[n["missing_type"]] for n in nodes], np.int8),
        left_child=np.asarray([c[0] for tree in trees for c in tree.children], np.int32),
        right_child=np.asarray([c[1] for tree in trees for c in tree.children], np.int32),
        leaf_start=np.cumsum([0, *(len(t.leaves) for t in trees)]).astype(np.int64),
        leaf_value=np.asarray([leaf.value for leaf in leaves], np.float64),
        cond_start=np.cumsum([0, *(len(leaf.conditions) for leaf in leaves)]).astype(np.int64),
        cond_node=np.asarray([c[0] for c in conditions], np.int64),
        cond_left=np.asarray([c[1] for c in conditions], np.bool_),
        cond_unique=np.asarray([c[2] for c in conditions], np.int64),
        unique_start=np.cumsum([0, *(len(leaf.features) for leaf in leaves)]).astype(np.int64),
        unique_feature=np.asarray([f for leaf in leaves for f in leaf.features], np.int64),
        unique_zero=np.asarray([z for leaf in leaves for z in leaf.zero], np.float64),
        path_mask=np.asarray([_bits(at for at, _, _ in leaf.conditions) for leaf in leaves], np.uint64),
        left_mask=np.asarray([_bits(at for at, goes_left, _ in leaf.conditions if goes_left) for leaf in leaves], np.uint64),
        unique_mask=np.asarray(
            [_bits(at for at, _, v in leaf.conditions if v == u) for leaf in leaves for u in range(len(leaf.features))], np.uint64
        ),
        max_nodes=max((len(t.nodes) for t in trees), default=0),
        max_unique=max((len(leaf.features) for leaf in leaves), default=0),
        table_at=table_at,
        done_at=done_at,
        table=np.zeros(size),  # calloc: untouched pages take no memory
        done=np.zeros(done_size, np.bool_),
        average_output=bool(model.get("average_output")),
    )


def _bits(positions: Iterable[int]) -> int:
    """An integer with the given bits set (bits past 63 dropped: such trees take the per-condition route)."""
    return sum(1 << k for k in positions if k < 64)


@dataclass
class _Leaf:
    value: float
    conditions: list[tuple[int, bool, int]]  # (tree-local node, the path goes left, index into features)
    features: list[int]  # the distinct features on the path, in path order
    zero: list[float]  # each one's zero fraction


class _Tree:
    """One tree of a model dump: internal nodes numbered in preorder, leaves with their paths."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.leaves: list[_Leaf] = []
        self.children: list[list[int]] = []  # each node's [left, right]: a tree-local node, or ~leaf (LightGBM's encoding)
        self._walk(root, [])

    def _walk(self, node: dict[str, Any], path: list[tuple[int, bool, int, float]]) -> int:
        """path: (feature, goes left, tree-local node, count ratio of the child taken) from the root to `node`;
        returns the node's number (~leaf for a leaf)."""
        if "leaf_value" in node:
            if "leaf_coeff" in node:  # a linear tree: pred_contrib itself refuses it
                raise _UnsupportedSplitError
            leaf = _Leaf(node["leaf_value"], [], [], [])
            for feature, goes_left, at, ratio in path:
                if feature not in leaf.features:
                    leaf.features.append(feature)
                    leaf.zero.append(1.0)
                u = leaf.features.index(feature)
                leaf.zero[u] *= ratio  # a feature split twice on the path: the fractions multiply (TreeSHAP's unwind)
                leaf.conditions.append((at, goes_left, u))
            self.leaves.append(leaf)
            return ~(len(self.leaves) - 1)
        if node["decision_type"] != "<=":
            raise _UnsupportedSplitError
        at = len(self.nodes)
        self.nodes.append(node)
        self.children.append([0, 0])
        total = node["internal_count"]
        for side, (child, goes_left) in enumerate(((node["left_child"], True), (node["right_child"], False))):
            count = child["leaf_count"] if "leaf_value" in child else child["internal_count"]
            self.children[at][side] = self._walk(child, [*path, (node["split_feature"], goes_left, at, count / total if total else 0.0)])
        return at


class _UnsupportedSplitError(Exception):
    """A split this module does not reproduce (categorical)."""


_FORESTS: weakref.WeakKeyDictionary[lgb.Booster, Forest | None] = weakref.WeakKeyDictionary()


def _forest_of(booster: lgb.Booster) -> Forest | None:
    if booster not in _FORESTS:
        _FORESTS[booster] = forest(booster)
    return _FORESTS[booster]


def raw_scores(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    """`booster.predict(x, raw_score=True)`, the same bytes, faster (README, "Performance benchmark": the scoring step).

    LightGBM's predict copies each row into a buffer of pairs and walks every tree from it; here
    blocks of rows walk each tree in turn while its nodes stay in cache. The same decisions
    (`_goes_left`, with LightGBM's input rule that |x| <= 1e-35f reads as 0) and each row's leaf
    values summed in tree order from 0.0, as LightGBM sums them: equal to the bit (tests). Models
    `forest` does not reproduce, and random forests (averaged outputs), are left to LightGBM."""
    model = _forest_of(booster)
    if model is None or model.average_output:
        return np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != model.n_features:
        raise ValueError(f"expected a matrix of {model.n_features} columns, got shape {x.shape}")
    x = np.where(np.abs(x) <= ZERO, 0, x)  # LightGBM keeps only |x| > kZeroThreshold (and NaN) of a dense row; a copy, C order
    m = model
    # where a NaN and an exact zero go at each node (tree.h NumericalDecision): NaN reads as 0 unless the
    # missing type is NaN; 0 goes the default way when the missing type is Zero
    nan_left = np.where(m.missing == MISSING["None"], m.threshold >= 0, m.default_left)
    zero_left = np.where(m.missing == MISSING["Zero"], m.default_left, m.threshold >= 0)
    return _forest_raw(
        x, m.node_start, m.feature, m.threshold, m.left_child, m.right_child, nan_left, zero_left, m.leaf_start, m.leaf_value
    )


@numba.njit(parallel=True, cache=True)
def _forest_raw(
    x: np.ndarray, node_start: np.ndarray, feature: np.ndarray, threshold: np.ndarray, left_child: np.ndarray,
    right_child: np.ndarray, nan_left: np.ndarray, zero_left: np.ndarray, leaf_start: np.ndarray, leaf_value: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Each row's leaf values summed over the trees in order, from 0.0; blocks of rows in parallel."""
    n = x.shape[0]
    out = np.zeros(n)
    for b in numba.prange((n + PREDICT_BLOCK - 1) // PREDICT_BLOCK):
        r0, r1 = b * PREDICT_BLOCK, min(n, (b + 1) * PREDICT_BLOCK)
        for t in range(len(node_start) - 1):
            n0, l0 = node_start[t], leaf_start[t]
            root = 0 if node_start[t + 1] > n0 else -1  # a tree of one leaf: ~0
            for i in range(r0, r1):
                node = root
                while node >= 0:
                    k = n0 + node
                    v = np.float64(x[i, feature[k]])
                    if v <= threshold[k]:
                        left = v != 0.0 or zero_left[k]
                    elif v > threshold[k]:
                        left = v == 0.0 and zero_left[k]
                    else:  # NaN
                        left = nan_left[k]
                    node = left_child[k] if left else right_child[k]
                out[i] += leaf_value[l0 + ~node]
    return out


def shap_values(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    """`booster.predict(x, pred_contrib=True)` without its last (bias) column: by `contributions`,
    or by LightGBM where this module does not reproduce the model (see `forest`)."""
    model = _forest_of(booster)
    if model is None:
        return np.asarray(booster.predict(x, pred_contrib=True))[:, :-1]
    return contributions(model, x)


def contributions(model: Forest, x: np.ndarray, dense_depth: int = MAX_DENSE_DEPTH) -> np.ndarray:
    """SHAP values (rows x features), as `pred_contrib` without its last (bias) column.

    Fills the forest's tables with the (leaf, pattern) values the rows need, for later calls (the
    chunks of a scoring job) to look up. Paths with more than `dense_depth` distinct features use
    no table: each row's value is computed directly (the same formula; slower)."""
    x = np.ascontiguousarray(x, dtype=np.float64)  # LightGBM compares features as doubles
    if x.ndim != 2 or x.shape[1] != model.n_features:
        raise ValueError(f"expected a matrix of {model.n_features} columns, got shape {x.shape}")
    weights = np.array(
        [[math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) if s < d else 0.0 for s in range(model.max_unique + 1)]
         for d in range(model.max_unique + 1)]
    )  # fmt: skip
    out = np.zeros((x.shape[0], model.n_features))
    m = model
    _forest_shap(
        x, out, weights, m.node_start, m.feature, m.threshold, m.default_left, m.missing, m.leaf_start, m.leaf_value,
        m.cond_start, m.cond_node, m.cond_left, m.cond_unique, m.unique_start, m.unique_feature, m.unique_zero, m.path_mask,
        m.left_mask, m.unique_mask, m.max_nodes, dense_depth, m.table_at, m.done_at, m.table, m.done,
    )  # fmt: skip
    return out


@numba.njit(cache=True)
def _goes_left(value: float, threshold: float, default_left: bool, missing: int) -> bool:
    """LightGBM's numerical decision (tree.h NumericalDecision)."""
    if np.isnan(value) and missing != 2:
        value = 0.0
    if (missing == 1 and abs(value) <= ZERO) or (missing == 2 and np.isnan(value)):
        return default_left
    return value <= threshold


@numba.njit(cache=True)
def _tabled(table_at: int, d: int, m: int, dense_depth: int) -> bool:
    """A leaf's values come from its table (see `forest`) when it has one, d is at most dense_depth and the
    table is not far larger than the call's m decision words (a few rows would touch a page of a large table
    each); otherwise each word's value is computed directly: the same product, the same bytes."""
    return table_at >= 0 and d <= dense_depth and (1 << d) <= 64 * m


@numba.njit(cache=True)
def _pattern_value(zero: np.ndarray, pattern: int, d: int, weights: np.ndarray, out: np.ndarray) -> None:
    """phi_j / v for every distinct feature j of a leaf's path, given the pattern of met conditions (see the module docstring)."""
    e = np.empty(d + 1)
    for j in range(d):
        # elementary symmetric polynomials of z over A = O \ {j}; the product of z over the rest
        e[0] = 1.0
        size = 0
        rest = 1.0
        for k in range(d):
            if k == j:
                continue
            if (pattern >> k) & 1:
                size += 1
                e[size] = 0.0
                for r in range(size, 0, -1):
                    e[r] += e[r - 1] * zero[k]
            else:
                rest *= zero[k]
        total = 0.0
        for s in range(size + 1):  # |S| = s, |A \ S| = size - s
            total += weights[d, s] * e[size - s]
        met = 1.0 if (pattern >> j) & 1 else 0.0
        out[j] = (met - zero[j]) * rest * total


@numba.njit(cache=True)
def _distinct(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each word's group (0, 1, ... in order of first appearance) and the distinct words, by an open-addressing
    hash table whose slots hold (word, group) side by side: one cache line read per probe."""
    n = len(words)
    bits = 1
    while (1 << bits) < 2 * n:
        bits += 1
    mask = np.uint64((1 << bits) - 1)
    shift = np.uint64(64 - bits)
    slots = np.zeros((1 << bits, 2), np.uint64)  # (word, group + 1); group 0: empty
    group = np.empty(n, np.int64)
    distinct = np.empty(n, np.uint64)
    m = 0
    for i in range(n):
        w = words[i]
        h = (w * np.uint64(0x9E3779B97F4A7C15)) >> shift  # Fibonacci hashing: the product's top bits
        while slots[h, 1] != 0 and slots[h, 0] != w:
            h = (h + np.uint64(1)) & mask
        if slots[h, 1] == 0:
            distinct[m] = w
            m += 1
            slots[h, 0] = w
            slots[h, 1] = m
        group[i] = np.int64(slots[h, 1]) - 1
    return group, distinct[:m]


@numba.njit(parallel=True, cache=True)
def _forest_shap(
    x, out, weights, node_start, feature, threshold, default_left, missing, leaf_start, leaf_value,
    cond_start, cond_node, cond_left, cond_unique, unique_start, unique_feature, unique_zero, path_mask, left_mask, unique_mask,
    max_nodes, dense_depth, table_at, done_at, table, done,
):  # fmt: skip
    n = x.shape[0]
    go = np.empty((n if max_nodes > 64 else 1, max(max_nodes, 1)), np.bool_)  # trees of > 64 nodes: each row's decisions
    max_leaves = 0
    for t in range(len(leaf_start) - 1):
        max_leaves = max(max_leaves, leaf_start[t + 1] - leaf_start[t])
    patterns = np.empty((max_leaves, n), np.int64)  # leaf-major: the table pass reads one leaf's patterns in a run
    decisions = np.empty(n, np.uint64)
    slot = np.full(out.shape[1], -1, np.int64)  # a feature's place among the tree's features
    for t in range(len(node_start) - 1):
        n0, n1 = node_start[t], node_start[t + 1]
        l0, l1 = leaf_start[t], leaf_start[t + 1]
        n_leaves = l1 - l0
        if n1 == n0:
            continue  # a single leaf: no feature changes the output
        # a row's value in this tree depends only on its decisions at the tree's nodes: rows that decide alike
        # (a fraction of them, far from the root's few thresholds) share one pattern per leaf and one vector
        if n1 - n0 <= 64:  # the decisions as one word; a leaf's missed conditions are (G ^ left) & path
            for i in numba.prange(n):
                g = np.uint64(0)
                for k in range(n1 - n0):
                    if _goes_left(x[i, feature[n0 + k]], threshold[n0 + k], default_left[n0 + k], missing[n0 + k]):
                        g |= np.uint64(1) << np.uint64(k)
                decisions[i] = g
            group, words = _distinct(decisions)
            m = len(words)
            for b in numba.prange((m + BLOCK - 1) // BLOCK):
                for leaf in range(n_leaves):
                    u0, u1 = unique_start[l0 + leaf], unique_start[l0 + leaf + 1]
                    for r in range(b * BLOCK, min(m, (b + 1) * BLOCK)):
                        missed = (words[r] ^ left_mask[l0 + leaf]) & path_mask[l0 + leaf]
                        pattern = 0
                        for u in range(u1 - u0):
                            if missed & unique_mask[u0 + u] == 0:
                                pattern |= 1 << u
                        patterns[leaf, r] = pattern
        else:  # each row on its own
            group = np.arange(n)
            m = n
            for i in numba.prange(n):
                for k in range(n1 - n0):
                    go[i, k] = _goes_left(x[i, feature[n0 + k]], threshold[n0 + k], default_left[n0 + k], missing[n0 + k])
                for leaf in range(n_leaves):
                    c0, c1 = cond_start[l0 + leaf], cond_start[l0 + leaf + 1]
                    d = unique_start[l0 + leaf + 1] - unique_start[l0 + leaf]
                    pattern = (1 << d) - 1
                    for c in range(c0, c1):
                        if go[i, cond_node[c]] != cond_left[c]:
                            pattern &= ~(1 << cond_unique[c])
                    patterns[leaf, i] = pattern
        # the value of each (leaf, pattern) that occurs, computed once (in this call or an earlier one)
        for leaf in numba.prange(n_leaves):
            u0, u1 = unique_start[l0 + leaf], unique_start[l0 + leaf + 1]
            d = u1 - u0
            if not _tabled(table_at[l0 + leaf], d, m, dense_depth):
                continue
            for r in range(m):
                p = patterns[leaf, r]
                if not done[done_at[l0 + leaf] + p]:
                    at = table_at[l0 + leaf] + p * d
                    _pattern_value(unique_zero[u0:u1], p, d, weights, table[at : at + d])
                    for j in range(d):
                        table[at + j] *= leaf_value[l0 + leaf]
                    done[done_at[l0 + leaf] + p] = True
        # each distinct decision's contributions over the tree's features, then added to its rows
        features = 0
        for k in range(n1 - n0):
            if slot[feature[n0 + k]] == -1:
                slot[feature[n0 + k]] = features
                features += 1
        tree_feature = np.empty(features, np.int64)
        for k in range(n1 - n0):
            tree_feature[slot[feature[n0 + k]]] = feature[n0 + k]
        place = np.empty(unique_start[l1] - unique_start[l0], np.int64)  # each leaf's distinct features' places
        for u in range(unique_start[l0], unique_start[l1]):
            place[u - unique_start[l0]] = slot[unique_feature[u]]
        vector = np.zeros((m, features))
        blocks = (m + BLOCK - 1) // BLOCK
        for b in numba.prange(blocks):
            r0, r1 = b * BLOCK, min(m, (b + 1) * BLOCK)
            for leaf in range(n_leaves):
                u0, u1 = unique_start[l0 + leaf], unique_start[l0 + leaf + 1]
                d = u1 - u0
                tabled = _tabled(table_at[l0 + leaf], d, m, dense_depth)
                phi = np.empty(d)
                for r in range(r0, r1):
                    if tabled:
                        at = table_at[l0 + leaf] + patterns[leaf, r] * d
                        for j in range(d):
                            vector[r, place[u0 - unique_start[l0] + j]] += table[at + j]
                    else:  # a path too long for a table: this word's value directly
                        _pattern_value(unique_zero[u0:u1], patterns[leaf, r], d, weights, phi)
                        for j in range(d):
                            vector[r, place[u0 - unique_start[l0] + j]] += leaf_value[l0 + leaf] * phi[j]
        for i in numba.prange(n):
            for s in range(features):
                out[i, tree_feature[s]] += vector[group[i], s]
        for s in range(features):
            slot[tree_feature[s]] = -1
