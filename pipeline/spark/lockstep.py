"""lock_ features and lockstep groups on Spark: the DuckDB engine's `pipeline.features.lockstep`,
run as SynchroTrap (Cao et al., CCS 2014) ran on Hadoop, by joins and aggregations that scale out.

The definitions are `pipeline.features.lockstep`'s (its docstring says what a burst, a partner
and a group are); this module runs the same steps as DataFrame operations:

1. acts: the distinct (actor, target, epoch second) of the counted kinds, actors and targets
   numbered by 64-bit integers (the joins below run on them, not on the string ids);
2. burst cells of all grids (two offset grids per window) in one pass, the acts crossed with a
   small table of grids; the burst test and the hub cap `max_cell_actors` (cells above it
   skipped and counted);
3. the exact pruning (accounts in fewer than `min_common` burst targets) and the pair self-join
   within a (target, cell). The cap bounds every join key: a cell holds at most
   `max_cell_actors` members, so no key yields more than cap(cap-1)/2 pairs. The join shuffles
   the burst rows by (target, cell) and emits sum over burst cells of n(n-1)/2 pair rows (n: the
   distinct members of the cell), the shuffle that dominates: shrunk to one row per
   (pair, target), then to the pairs with at least `min_common` targets;
4. connected components of the partner graph by alternating large-star and small-star rounds
   (Kiveris et al., "Connected Components in MapReduce and Beyond", SoCC 2014: O(log^2 n)
   rounds, a few in practice), each a join and an aggregation over the edge list, which never
   reaches the driver;
5. groups (few and small) collected to the driver as a polars frame with `GROUP_SCHEMA`, scored
   and ordered there; the per-account features stay a (lazy) Spark DataFrame.

Intermediate tables are cut from their lineage (pipeline/spark/checkpoint.py: reliably when the
session has a checkpoint directory): this bounds the plans of the component rounds and freezes
the integer ids, which `monotonically_increasing_id` would draw anew on a recomputation.

tests/test_spark_lockstep.py runs both engines on simulated worlds and compares groups and features.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from pipeline.errors import ZombieScanError
from pipeline.features.lockstep import GROUP_SCHEMA, LockstepParams, empty_groups
from pipeline.spark.checkpoint import cut

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# A safety stop for the component rounds: large-star/small-star needs O(log^2 n) rounds at worst,
# far fewer in practice (2 on the simulated worlds, 7 on a 200-node path: tests/test_spark_lockstep.py).
MAX_COMPONENT_ROUNDS = 100


@dataclass
class SparkLockstepResult:
    """`LockstepResult` of the Spark engine: the groups on the driver, the features on the cluster."""

    groups: pl.DataFrame  # one row per group, GROUP_SCHEMA
    features: DataFrame  # one row per account with a counted action, account_id and the lock_* columns
    skipped_cells: int  # bursts above max_cell_actors, left out
    timed: bool
    component_rounds: int = 0  # large-star/small-star rounds the partner graph needed


def lockstep(spark: SparkSession, params: LockstepParams) -> SparkLockstepResult:
    """Lockstep groups and per-account lock_ features of the temp view `engagements` (contract columns).

    Same numbers as `pipeline.features.lockstep.lockstep` on the same engagements; untimed data
    (every counted action at one second) gives a warning, no groups and null features.
    """
    from pyspark.sql import functions as F

    eng = spark.table("engagements")
    raw = (
        eng.where(F.col("kind").cast("string").isin(list(params.kinds)))
        # DuckDB's epoch(ts)::BIGINT: fractional seconds, rounded half to even
        .select("actor_id", "target_id", F.bround(F.col("ts").cast("double"), 0).cast("bigint").alias("t"))
        .distinct()
    )
    actor_ix = cut(raw.select("actor_id").distinct().withColumn("a", F.monotonically_increasing_id()))
    target_ix = cut(raw.select("target_id").distinct().withColumn("g", F.monotonically_increasing_id()))
    acts = cut(raw.join(actor_ix, "actor_id").join(target_ix, "target_id").select("a", "g", "t"))
    span = acts.agg(F.min("t").alias("lo"), F.max("t").alias("hi")).first()
    timed = span is not None and span["lo"] is not None and span["lo"] < span["hi"]
    if not timed:
        log.warning("lockstep: engagements carry no time information; no lockstep groups (use the dense-block score)")
        features = actor_ix.select(
            F.col("actor_id").alias("account_id"),
            *(F.lit(None).cast(kind).alias(name) for name, kind in _FEATURE_TYPES.items()),
        )
        return SparkLockstepResult(empty_groups(), features, 0, False)
    sync, skipped = _sync(spark, acts, params)
    pairs = _pairs(sync, params)
    components, rounds = _components(pairs)
    log.info("lockstep on Spark: partner components in %d large-star/small-star rounds", rounds)
    groups = _groups(acts, sync, pairs, components, actor_ix, target_ix, params)
    features = _features(acts, sync, pairs, components, actor_ix, params.min_group)
    return SparkLockstepResult(groups, features, skipped, True, rounds)


_FEATURE_TYPES = {
    "lock_group_size": "bigint",
    "lock_partners": "bigint",
    "lock_max_jaccard": "double",
    "lock_mean_jaccard": "double",
    "lock_share": "double",
}


def _sync(spark: SparkSession, acts: DataFrame, params: LockstepParams) -> tuple[DataFrame, int]:
    """One row (a, g, cell) per act in a burst cell of any grid, after the hub cap and the pruning;
    and the number of burst cells the cap skipped.

    `cell` numbers the cells of all grids apart, as the DuckDB engine does (cell * grids + grid).
    Like DuckDB's, a cell's count `n` counts acts, so an account that liked a target twice in one
    cell counts twice there (and keeps two rows here).
    """
    from pyspark.sql import functions as F

    n_grids = 2 * len(params.windows_s)
    grids = spark.createDataFrame(
        [(2 * k + s, w, shift, max(params.min_span_s, w)) for k, w in enumerate(params.windows_s) for s, shift in enumerate((0, w // 2))],
        "grid INT, w BIGINT, shift BIGINT, min_span BIGINT",
    )
    rate = acts.groupBy("g").agg(F.count("*").alias("rate_n"), F.greatest(F.max("t") - F.min("t"), F.lit(1)).alias("span"))
    gridded = acts.crossJoin(F.broadcast(grids)).withColumn("cell", F.expr("(t + shift) div w"))
    # A burst holds >= min_cell_actors and >= burst_ratio x the target's mean count per window
    # over its active span (at least min_span), the same double arithmetic as DuckDB's.
    bursts = cut(
        gridded.groupBy("grid", "g", "cell", "w", "min_span")
        .agg(F.count("*").alias("n"))
        .join(rate, "g")
        .where(
            (F.col("n") >= params.min_cell_actors)
            & (F.col("n") >= F.lit(float(params.burst_ratio)) * (F.col("rate_n") * F.col("w") / F.greatest("span", "min_span") + 1))
        )
        .select("grid", "g", "cell", "n")
    )
    skipped = bursts.where(F.col("n") > params.max_cell_actors).count()
    sync = gridded.join(bursts.where(F.col("n") <= params.max_cell_actors), ["grid", "g", "cell"], "left_semi").select(
        "a", "g", (F.col("cell") * n_grids + F.col("grid")).alias("cell")
    )
    # Exact pruning: an account in fewer than min_common burst targets cannot have a partner.
    keep = sync.groupBy("a").agg(F.countDistinct("g").alias("n_g")).where(F.col("n_g") >= params.min_common)
    return cut(sync.join(keep, "a", "left_semi")), skipped


def _pairs(sync: DataFrame, params: LockstepParams) -> DataFrame:
    """Partner pairs (u < v, common): accounts sharing burst cells on >= min_common distinct targets.

    The self-join is keyed by (target, cell), at most `max_cell_actors` members a key; a pair
    meets once per shared cell and is counted once per target.
    """
    from pyspark.sql import functions as F

    members = sync.distinct()
    x, y = members.alias("x"), members.alias("y")
    pair_targets = (
        x.join(y, (F.col("x.g") == F.col("y.g")) & (F.col("x.cell") == F.col("y.cell")) & (F.col("x.a") < F.col("y.a")))
        .select(F.col("x.a").alias("u"), F.col("y.a").alias("v"), F.col("x.g").alias("g"))
        .distinct()
    )
    return cut(pair_targets.groupBy("u", "v").agg(F.count("*").alias("common")).where(F.col("common") >= params.min_common))


def _components(pairs: DataFrame) -> tuple[DataFrame, int]:
    """Connected components of the partner graph: (a, component, size) for every account with a
    partner, the component labelled by its smallest id; and the number of rounds it took.

    Large-star/small-star (Kiveris et al., SoCC 2014) on the edge list, each edge kept as
    (src, dst) with src > dst. A round is a large-star (every node hands its larger neighbours to
    its smallest neighbour) then a small-star (every node and its smaller neighbours go to the
    smallest of them); both keep the components and end in a forest of stars around each
    component's smallest node: every node with one edge, to a node with none of its own.
    """
    from pyspark.sql import functions as F

    edges = pairs.select(F.col("v").alias("src"), F.col("u").alias("dst"))
    rounds = 0
    while True:
        if rounds == MAX_COMPONENT_ROUNDS:
            raise ZombieScanError(f"lockstep on Spark: the partner components did not converge in {MAX_COMPONENT_ROUNDS} rounds")
        rounds += 1
        # large-star: (v, m(u)) for each larger neighbour v of u, m(u) the smallest of u and its neighbours
        smallest = edges.groupBy("src").agg(F.min("dst").alias("m"))
        edges = (
            edges.join(smallest.withColumnRenamed("src", "dst"), "dst", "left")
            .select("src", F.coalesce("m", "dst").alias("dst"))
            .distinct()
        )
        # small-star: u and its smaller neighbours v (all dst of src u) each to m, the smallest v
        smallest = edges.groupBy("src").agg(F.min("dst").alias("m"))
        with_m = edges.join(smallest, "src")
        edges = (
            with_m.select(F.col("dst").alias("src"), "m")
            .union(with_m.select("src", "m"))
            .where(F.col("src") != F.col("m"))
            .withColumnRenamed("m", "dst")
            .distinct()
        )
        edges = cut(edges)
        out = edges.groupBy("src").agg(F.count("*").alias("degree"))
        not_star = (
            edges.join(out.select(F.col("src").alias("dst")), "dst", "left_semi")
            .select("src")
            .union(out.where(F.col("degree") > 1).select("src"))
        )
        if not_star.isEmpty():
            break
    labels = edges.select(F.col("src").alias("a"), F.col("dst").alias("component")).union(
        edges.select(F.col("dst").alias("a"), F.col("dst").alias("component")).distinct()
    )
    sizes = labels.groupBy("component").agg(F.count("*").alias("size"))
    return cut(labels.join(sizes, "component").select("a", "component", "size")), rounds


def _groups(
    acts: DataFrame,
    sync: DataFrame,
    pairs: DataFrame,
    components: DataFrame,
    actor_ix: DataFrame,
    target_ix: DataFrame,
    params: LockstepParams,
) -> pl.DataFrame:
    """Components of at least `min_group` accounts with their targets, time span, density and
    score, numbered 0, 1, ... by score (descending), then first member: DuckDB's `_groups`."""
    from pyspark.sql import functions as F

    members = components.where(F.col("size") >= params.min_group).select("a", F.col("component").alias("group_id"))
    edges = (
        pairs.join(members.withColumnRenamed("a", "u"), "u")
        .groupBy("group_id")
        .agg(F.count("*").alias("n_edges"), F.avg("common").alias("mean_common"))
    )
    spans = (
        sync.select("a", "g")
        .distinct()
        .join(members, "a")
        .join(acts, ["a", "g"])
        .join(target_ix, "g")
        .groupBy("group_id")
        .agg(
            F.array_sort(F.collect_set("target_id")).alias("targets"),
            F.timestamp_seconds(F.min("t")).alias("first_ts"),
            F.timestamp_seconds(F.max("t")).alias("last_ts"),
        )
    )
    sizes = (
        members.join(actor_ix, "a")
        .groupBy("group_id")
        .agg(F.count("*").alias("size"), F.array_sort(F.collect_list("actor_id")).alias("members"))
    )
    table = sizes.join(edges, "group_id").join(spans, "group_id").drop("group_id")
    groups = pl.from_arrow(table.toArrow())
    assert isinstance(groups, pl.DataFrame)
    if groups.is_empty():
        return empty_groups()
    # The score on the driver, by C's log as DuckDB's: the JVM's (fdlibm) can differ in the last
    # bit, and the scores order the groups.
    density = [e / (s * (s - 1) / 2.0) for e, s in zip(groups["n_edges"], groups["size"], strict=True)]
    score = [d * math.log(s) * math.log(1 + c) for d, s, c in zip(density, groups["size"], groups["mean_common"], strict=True)]
    # Group ids count from 0 in order of suspicion, so they do not depend on how ids were numbered.
    return (
        groups.with_columns(density=pl.Series(density, dtype=pl.Float64), score=pl.Series(score, dtype=pl.Float64))
        .sort(pl.col("score"), pl.col("members").list.first(), descending=[True, False])
        .with_columns(group_id=pl.int_range(pl.len(), dtype=pl.Int64))
        .select(list(GROUP_SCHEMA))
        .cast(pl.Schema(GROUP_SCHEMA))
    )


def _features(acts: DataFrame, sync: DataFrame, pairs: DataFrame, components: DataFrame, actor_ix: DataFrame, min_group: int) -> DataFrame:
    """Per-account lock_ features for every account with a counted action: DuckDB's `_features`.

    An action is in lockstep when another act of the same partner component shares its burst cell.
    """
    from pyspark.sql import functions as F

    n_targets = acts.groupBy("a").agg(F.countDistinct("g").alias("n"))
    both_ways = pairs.select(F.col("u").alias("a"), F.col("v").alias("b"), "common").union(
        pairs.select(F.col("v").alias("a"), F.col("u").alias("b"), "common")
    )
    jaccard = F.col("common") / (F.col("na") + F.col("nb") - F.col("common"))
    jac = (
        both_ways.join(n_targets.withColumnRenamed("n", "na"), "a")
        .join(n_targets.select(F.col("a").alias("b"), F.col("n").alias("nb")), "b")
        .groupBy("a")
        .agg(
            F.count("*").alias("partners"),
            F.max(jaccard).alias("max_j"),
            # an exact decimal mean of 12-decimal values, as DuckDB's (a float sum in task order would vary)
            F.avg(jaccard.cast("decimal(38,12)")).cast("double").alias("mean_j"),
        )
    )
    labelled = sync.join(components.select("a", "component"), "a")
    cells = labelled.groupBy("component", "g", "cell").agg(F.count("*").alias("n")).where(F.col("n") >= 2).select("component", "g", "cell")
    in_sync = labelled.join(cells, ["component", "g", "cell"], "left_semi").groupBy("a").agg(F.countDistinct("g").alias("n_sync"))
    size = F.coalesce(F.col("size"), F.lit(0))
    return (
        n_targets.join(actor_ix, "a")
        .join(components.select("a", "size"), "a", "left")
        .join(jac, "a", "left")
        .join(in_sync, "a", "left")
        .select(
            F.col("actor_id").alias("account_id"),
            F.when(size >= min_group, size).otherwise(0).cast("bigint").alias("lock_group_size"),
            F.coalesce("partners", F.lit(0)).cast("bigint").alias("lock_partners"),
            F.coalesce("max_j", F.lit(0.0)).alias("lock_max_jaccard"),
            F.coalesce("mean_j", F.lit(0.0)).alias("lock_mean_jaccard"),
            (F.coalesce("n_sync", F.lit(0)) / F.col("n")).alias("lock_share"),
        )
    )
