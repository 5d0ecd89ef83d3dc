"""graph_ features on Spark, equal to pipeline/features/graph.py (the DuckDB/igraph engine).

Every step is a DataFrame or SQL operation that runs on a cluster as it runs on one machine: no
edge list is collected to the driver (only one or two numbers per iteration), and no GraphFrames
(a Maven jar). Nodes are numbered with `monotonically_increasing_id` (unique, not dense: any key
works; checkpointed at once, as the numbers follow the partitioning) so the iterations join on
longs, not strings. The iterations cut their lineage every pass (`pipeline.spark.checkpoint.cut`), so a plan never grows.

- Follow graph: the DuckDB engine's distinct `follow` edges between known accounts, no self loops.
- PageRank (`_pagerank`): the power iteration of `pipeline.features.graph.pagerank`, term for term
  (a dangling node's rank spread over all nodes; stop at an L1 change below `tol` or after
  `max_iter` passes). Spark adds each node's inflow in its own order, so values differ from the
  local engine's in the last bits (tiny world: 2e-14 relative at most, the same 141 passes).
- k-core (`_coreness`): the distributed h-index iteration (Montresor, De Pellegrini & Miorandi
  2013): start from the degree, each node takes the h-index of its neighbours' estimates, until
  none changes; it converges to igraph's coreness exactly.
- Clustering (`_clustering`): triangles by joins on the degree-ordered graph (each triangle found
  once, at its lowest vertex: O(m^1.5) wedges), as igraph's `transitivity_local_undirected(mode="zero")`.
- Neighbour means and maxima (`_neighbour_means`): joins over the undirected neighbours.
- The bipartite features run the DuckDB engine's own SQL (`pipeline.features.graph.bipartite_sql`),
  transpiled by sqlglot as pipeline/spark/sql.py does, with DuckDB's decimal arithmetic kept
  (`_duckdb_arithmetic`): one text for both engines rather than a DataFrame copy of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

from pipeline.errors import ZombieScanError
from pipeline.features.graph import COENGAGER_COLUMNS, NEIGHBOUR_COLUMNS, bipartite_sql
from pipeline.spark.checkpoint import cut

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from sqlglot import exp

log = logging.getLogger(__name__)

EDGES_PER_PARTITION = 2_000_000
_BIPARTITE_VIEWS = ("graph_bp", "graph_bp_deg", "graph_median", "graph_co", "graph_base")


def graph_features(
    spark: SparkSession,
    base: DataFrame | None,
    *,
    neighbour_columns: Sequence[str] = NEIGHBOUR_COLUMNS,
    coengager_columns: Sequence[str] = COENGAGER_COLUMNS,
    coengager_weighted: Sequence[str] = (),
    tol: float = 1e-12,
    max_iter: int = 1000,
    damping: float = 0.85,
) -> DataFrame:
    """One row per account of the `accounts` view, the columns of `pipeline.features.graph.graph_features`.

    Args:
        spark: A session that shows the temp views `accounts` (account_id) and `engagements`
            (actor_id, target_id, kind, target_type, weight).
        base: Per-account features (profile_, beh_) to aggregate over neighbours; None: only
            the structural and target-popularity columns.
        neighbour_columns: Columns of `base` averaged (1 and 2 hops) and maxed (1 hop) over
            follow-graph neighbours.
        coengager_columns: Columns of `base` averaged over the other engagers of the same targets.
        coengager_weighted: Columns of `base` whose co-engager average is also weighted by
            engagement weight, with its maximum over the account's targets.
        tol: PageRank stops when the L1 change of a pass is below it.
        max_iter: The most PageRank passes, and the most k-core passes (k-core raises past it:
            an unconverged estimate is not a core number).
        damping: PageRank's damping factor.

    Rows come in no particular order.
    """
    from pyspark.sql import functions as F

    nodes = cut(spark.sql("SELECT DISTINCT account_id FROM accounts").withColumn("i", F.monotonically_increasing_id()))
    edges = cut(_follow_edges(spark, nodes))
    n = nodes.count()
    undirected = cut(edges.select(F.col("src").alias("u"), F.col("dst").alias("v")).union(edges.select("dst", "src")).distinct())

    out_degree = edges.groupBy(F.col("src").alias("i")).agg(F.count("*").alias("out_n"))
    in_degree = edges.groupBy(F.col("dst").alias("i")).agg(F.count("*").alias("in_n"))
    back = edges.alias("e").join(edges.alias("r"), (F.col("e.src") == F.col("r.dst")) & (F.col("e.dst") == F.col("r.src")))
    followed_back = back.groupBy(F.col("e.src").alias("i")).agg(F.count("*").alias("back_n"))
    with _passes(spark, undirected.count()) as partitions:
        start = time.perf_counter()
        pagerank, pagerank_passes = _pagerank(nodes, edges, n, damping=damping, tol=tol, max_iter=max_iter, partitions=partitions)
        middle = time.perf_counter()
        core, core_passes = _coreness(undirected, max_iter=max_iter, partitions=partitions)
        end = time.perf_counter()
    log.info(
        "graph: %d accounts; PageRank %d passes in %.1f s, k-core %d passes in %.1f s",
        *(n, pagerank_passes, middle - start, core_passes, end - middle),
    )

    out = nodes
    for part in (in_degree, out_degree, followed_back, pagerank, core, _clustering(undirected)):
        out = out.join(part, "i", "left")
    out_n = F.coalesce(F.col("out_n"), F.lit(0)).cast("double")
    out = out.select(
        "i",
        "account_id",
        F.coalesce(F.col("in_n"), F.lit(0)).cast("double").alias("graph_in_degree"),
        out_n.alias("graph_out_degree"),
        # NaN, not null, without follows: what the local engine's numpy column holds
        F.when(out_n > 0, F.coalesce(F.col("back_n"), F.lit(0)).cast("double") / out_n)
        .otherwise(F.lit(float("nan")))
        .alias("graph_reciprocity"),
        F.col("graph_pagerank"),
        F.coalesce(F.col("core"), F.lit(0)).cast("double").alias("graph_core"),
        F.coalesce(F.col("graph_clustering"), F.lit(0.0)).alias("graph_clustering"),
    )
    if base is not None and neighbour_columns:
        out = out.join(_neighbour_means(nodes, undirected, base, neighbour_columns), "i", "left")
    out = out.drop("i").join(
        _bipartite(spark, base, coengager_columns if base is not None else (), coengager_weighted if base is not None else ()),
        "account_id",
        "left",
    )
    return out


@contextmanager
def _passes(spark: SparkSession, edges: int) -> Iterator[int]:
    """Settings for the iterations over a graph of `edges` edges; yields the partition count by
    which their frames are co-partitioned (so a join on the key needs no shuffle).

    Adaptive execution is off while they run: it runs each shuffle of a plan as a job of its own
    and plans exchanges around frames already partitioned by the join key, which made every pass
    four times slower on local[2] (10 PageRank passes: 11 s with, 2.8 s without). Its other duty,
    sizing the partitions, is done here: about `EDGES_PER_PARTITION` edges each (a few tens of
    MB), at most `spark.sql.shuffle.partitions`. The caller's settings are restored, and the
    returned frame runs under them.
    """
    settings = {"spark.sql.adaptive.enabled": "false"}
    most = int(cast(str, spark.conf.get("spark.sql.shuffle.partitions")))
    partitions = max(1, min(most, -(-edges // EDGES_PER_PARTITION)))
    settings["spark.sql.shuffle.partitions"] = str(partitions)  # the inflow's shuffle lands on the ranks' partitions
    before = {key: str(spark.conf.get(key)) for key in settings}  # both have defaults: never None
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield partitions
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)


def _follow_edges(spark: SparkSession, nodes: DataFrame) -> DataFrame:
    """Distinct (src, dst) node keys: src follows dst, both known accounts, no self loops."""
    from pyspark.sql import functions as F

    follows = spark.table("engagements").where(
        (F.col("kind").cast("string") == "follow") & (F.col("target_type").cast("string") == "account")
    )
    src = nodes.select(F.col("account_id").alias("actor_id"), F.col("i").alias("src"))
    dst = nodes.select(F.col("account_id").alias("target_id"), F.col("i").alias("dst"))
    return follows.join(src, "actor_id").join(dst, "target_id").where(F.col("src") != F.col("dst")).select("src", "dst").distinct()


def _pagerank(
    nodes: DataFrame, edges: DataFrame, n: int, *, damping: float, tol: float, max_iter: int, partitions: int
) -> tuple[DataFrame, int]:
    """(i, graph_pagerank) times n (1.0 = average), and the passes run.

    The pass of `pipeline.features.graph.pagerank` as one join and one aggregation: each node
    sends rank x/out-degree along its edges, and x times 0.0 to itself, which carries its old
    rank and makes a row for a node nothing flows into; its new rank is damping times its
    inflow plus the dangling and teleport share. The edges are partitioned by source and the
    ranks by node, so only the inflow is shuffled; the dangling mass and the L1 change are the
    only numbers the driver sees. A pass is a few SQL expressions: over a hundred passes, every
    call to the JVM counts.
    """
    from pyspark.sql import functions as F

    if n == 0:
        return nodes.selectExpr("i", "0.0D AS graph_pagerank"), 0
    out_n = edges.groupBy("src").agg(F.expr("count(*) AS out_n"))
    # the same share as the local engine (1.0 / out-degree) multiplied into the same terms
    flows = edges.join(out_n, "src").selectExpr("src AS i", "dst", "1.0D / out_n AS share", "false AS self")
    flows = cut(flows.unionByName(nodes.selectExpr("i", "i AS dst", "0.0D AS share", "true AS self")).repartition(partitions, "i"))
    state = nodes.join(out_n.withColumnRenamed("src", "i"), "i", "left")
    state = cut(state.selectExpr("i", "out_n IS NULL AS dangling", f"{_double(1.0 / n)} AS x").repartition(partitions, "i"))
    dangling_mass = state.selectExpr("sum(CASE WHEN dangling THEN x END)").first()[0] or 0.0  # type: ignore[index]
    passes = 0
    while passes < max_iter:
        passes += 1
        teleport = (damping * dangling_mass + 1.0 - damping) / n
        sent = flows.join(state, "i").selectExpr(
            "dst AS i", "x * share AS flow", "CASE WHEN self THEN x END AS old", "CASE WHEN self THEN dangling END AS dangling"
        )
        new = sent.groupBy("i").agg(F.expr("sum(flow) AS inflow"), F.expr("max(old) AS old"), F.expr("max(dangling) AS dangling"))
        state = cut(new.selectExpr("i", "dangling", f"{_double(damping)} * inflow + {_double(teleport)} AS x", "old"), eager=False)
        stats = state.selectExpr("sum(abs(x - old))", "sum(CASE WHEN dangling THEN x END)").first()
        change, dangling_mass = stats[0], stats[1] or 0.0  # type: ignore[index]
        if change < tol:
            break
    total = state.selectExpr("sum(x)").first()[0]  # type: ignore[index]
    return state.selectExpr("i", f"x / {_double(total)} * {n} AS graph_pagerank"), passes


def _double(value: float) -> str:
    """A DOUBLE literal of Spark SQL that reads back as exactly `value`."""
    return f"{value!r}D"


def _coreness(undirected: DataFrame, *, max_iter: int, partitions: int) -> tuple[DataFrame, int]:
    """(i, core) for every node with a neighbour (the others are 0), and the passes run.

    Each pass, a node's estimate becomes the h-index of its neighbours' estimates (the largest h
    with h neighbours at h or more), never above its own: from the degree down to the core number.
    """
    from pyspark.sql import functions as F

    pairs = cut(undirected.selectExpr("v AS i", "u").repartition(partitions, "i"))  # keyed by the neighbour
    estimate = undirected.groupBy("u").agg(F.expr("count(*) AS core")).selectExpr("u AS i", "core")
    estimate = cut(estimate.repartition(partitions, "i"))
    for passes in range(1, max_iter + 1):
        # rank a node's neighbours by estimate: the h-index is the last rank r whose estimate is >= r
        ranked = pairs.join(estimate, "i").selectExpr("u AS i", "core AS k", "row_number() OVER (PARTITION BY u ORDER BY core DESC) AS r")
        h = ranked.groupBy("i").agg(F.expr("max(CASE WHEN k >= r THEN r ELSE 0 END) AS h"))
        estimate = cut(estimate.join(h, "i").selectExpr("i", "least(core, h) AS core", "core AS old"), eager=False)
        if estimate.where("core <> old").count() == 0:
            return estimate.select("i", "core"), passes
    raise ZombieScanError(f"graph_core: the k-core iteration did not settle in max_iter={max_iter} passes; raise max_iter")


def _clustering(undirected: DataFrame) -> DataFrame:
    """(i, graph_clustering) for every node with a neighbour: triangles / (degree choose 2), 0 below degree 2."""
    from pyspark.sql import functions as F

    degree = undirected.groupBy(F.col("u").alias("i")).agg(F.count("*").alias("d"))
    du = degree.select(F.col("i").alias("u"), F.col("d").alias("du"))
    dv = degree.select(F.col("i").alias("v"), F.col("d").alias("dv"))
    # edges pointing up the (degree, key) order: a node has few neighbours above it, so the
    # wedges stay O(m^1.5) even around the accounts with huge follower counts
    up = undirected.join(du, "u").join(dv, "v").where("du < dv OR (du = dv AND u < v)").selectExpr("u AS a", "v AS b")
    wedges = up.join(up.select("a", F.col("b").alias("c")), "a").where(F.col("b") < F.col("c"))
    triangles = wedges.join(undirected, (F.col("u") == F.col("b")) & (F.col("v") == F.col("c")), "left_semi")
    corners = triangles.select(F.explode(F.array("a", "b", "c")).alias("i")).groupBy("i").agg(F.count("*").alias("t"))
    d = F.col("d").cast("double")
    return degree.join(corners, "i", "left").select(
        "i",
        # igraph's expression, in its order
        F.when(F.col("d") < 2, F.lit(0.0))
        .otherwise(F.coalesce(F.col("t"), F.lit(0)).cast("double") / d / (d - 1) * 2.0)
        .alias("graph_clustering"),
    )


def _known(column: Column) -> Column:
    """NaN as null: unknown, as the local engine's `fill_nan(None)`."""
    from pyspark.sql import functions as F

    return F.when(F.isnan(column), F.lit(None)).otherwise(column)


def _neighbour_means(nodes: DataFrame, undirected: DataFrame, base: DataFrame, columns: Sequence[str]) -> DataFrame:
    """(i, graph_nb_*_mean, graph_nb2_*_mean ..., graph_nb_*_max ...): the local engine's
    `_neighbour_means` as joins: means over the neighbours whose value is known (1 hop, then the
    1-hop means averaged again), the largest known value; null without a known neighbour."""
    from pyspark.sql import functions as F

    names = [f"c{j}" for j in range(len(columns))]  # positional names: dataset columns may hold any character
    pairs = list(zip(columns, names, strict=True))
    values = nodes.join(base.select("account_id", *(_column(c).cast("double").alias(k) for c, k in pairs)), "account_id", "left")
    values = values.select(F.col("i").alias("v"), *(_known(F.col(k)).alias(k) for k in names))
    hop1 = cut(
        undirected.join(values, "v")
        .groupBy(F.col("u").alias("i"))
        .agg(*(_known(F.sum(k) / F.count(k)).alias(f"mean_{k}") for k in names), *(F.max(k).alias(f"max_{k}") for k in names))
    )
    hop2 = (
        undirected.join(hop1.select(F.col("i").alias("v"), *(f"mean_{k}" for k in names)), "v")
        .groupBy(F.col("u").alias("i"))
        .agg(*(_known(F.sum(f"mean_{k}") / F.count(f"mean_{k}")).alias(f"mean2_{k}") for k in names))
    )
    means = [F.col(f"{prefix}_{k}").alias(f"graph_{hop}_{c}_mean") for c, k in pairs for prefix, hop in (("mean", "nb"), ("mean2", "nb2"))]
    maxima = [F.col(f"max_{k}").alias(f"graph_nb_{c}_max") for c, k in pairs]
    return hop1.join(hop2, "i", "left").select("i", *means, *maxima)


def _column(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _bipartite(spark: SparkSession, base: DataFrame | None, columns: Sequence[str], weighted: Sequence[str]) -> DataFrame:
    """The DuckDB engine's bipartite SQL (`bipartite_sql`) run on the session: its temp tables as
    temp views, dropped once the SELECT is planned (the returned frame holds the plan)."""
    if columns or weighted:
        used = list(dict.fromkeys([*columns, *weighted]))
        base.select("account_id", *(_column(c) for c in used)).createOrReplaceTempView("graph_base")  # type: ignore[union-attr]
    try:
        *views, select = _spark_statements(bipartite_sql(columns, weighted))
        for statement in views:
            spark.sql(statement)
        return spark.sql(select)
    finally:
        for name in _BIPARTITE_VIEWS:
            spark.catalog.dropTempView(name)


def _spark_statements(statements: Sequence[str]) -> list[str]:
    """DuckDB statements as Spark SQL: pipeline/spark/sql.py's rewrites, then DuckDB's decimal arithmetic."""
    import sqlglot

    from pipeline.spark.sql import _spark_form

    trees = [sqlglot.parse_one(statement, read="duckdb") for statement in statements]
    return [tree.transform(_spark_form).transform(_duckdb_arithmetic).sql("spark") for tree in trees]


def _duckdb_arithmetic(node: exp.Expression) -> exp.Expression:
    """One node with DuckDB's meaning on Spark, where decimals part ways.

    DuckDB's avg of a DECIMAL is a DOUBLE from the exact sum; Spark's is a DECIMAL rounded to
    16 places (so a small mean loses its digits): here it is the exact sum as a DOUBLE over the
    count. DuckDB's `/` is always a DOUBLE division; Spark divides decimals as decimals, rounded
    to as few as 6 places: here both sides are cast to DOUBLE first.
    """
    from sqlglot import exp

    def double(e: exp.Expression) -> exp.Expression:
        if isinstance(e, exp.Cast) and e.to.is_type(exp.DataType.Type.DOUBLE):
            return e
        return exp.Cast(this=e, to=exp.DataType.build("DOUBLE"))

    if isinstance(node, exp.Avg) and isinstance(node.this, exp.Cast) and node.this.to.is_type(exp.DataType.Type.DECIMAL):
        value = node.this
        return exp.Div(this=double(exp.Sum(this=value.copy())), expression=double(exp.Count(this=value.copy())))
    if isinstance(node, exp.Div):
        node.set("this", double(node.this))
        node.set("expression", double(node.expression))
    return cast("exp.Expression", node)
