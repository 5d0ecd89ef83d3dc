"""The pages that bought likes: targets ranked by likes from flagged like sellers beyond their popularity."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from pipeline import tasks
from pipeline.db import literal
from pipeline.errors import ZombieScanError

# One query for both engines: DuckDB runs it as is, the Spark engine through sqlglot (pipeline/spark/score.py).
PAGES_SQL = """
WITH likes AS (
    SELECT e.target_id, e.target_type::VARCHAR AS target_type, e.ts, coalesce(e.weight, 1) AS w,
           s.farm, s.lockstep_group
    FROM engagements e JOIN scores_in s ON s.account_id = e.actor_id
    WHERE e.kind = 'like' AND ($until IS NULL OR e.ts <= $until)
),
base AS (SELECT sum(w) FILTER (WHERE farm) / sum(w) AS rate FROM likes),
per_target AS (
    SELECT target_id, any_value(target_type) AS target_type,
           CAST(sum(w) FILTER (WHERE farm) AS BIGINT) AS farm_likes,
           CAST(sum(w) AS BIGINT) AS all_likes,
           list_sort(list(DISTINCT lockstep_group) FILTER (WHERE farm AND lockstep_group IS NOT NULL)) AS lockstep_groups,
           min(ts) FILTER (WHERE farm) AS first_farm_like,
           max(ts) FILTER (WHERE farm) AS last_farm_like
    FROM likes GROUP BY target_id
    HAVING sum(w) FILTER (WHERE farm) > 0
)
SELECT target_id, target_type, farm_likes, all_likes, farm_likes / all_likes AS farm_share,
       all_likes * base.rate AS expected_farm_likes,
       greatest(farm_likes - all_likes * base.rate, 0) AS suspected_bought_likes,
       lockstep_groups, first_farm_like, last_farm_like
FROM per_target, base
ORDER BY suspected_bought_likes DESC, farm_share DESC, target_id
"""


def suspected_pages(db: Path, scores: pl.DataFrame | Path, *, until: datetime | None = None, task: str | None = None) -> pl.DataFrame:
    """Targets ranked by suspected bought likes: likes from accounts over the like-farm threshold,
    beyond what the target's popularity explains.

    Farm accounts also like popular pages to look real, so a raw count of their likes ranks the
    most popular pages first. The expected number is the target's likes times the share of all
    likes that farm accounts give; what exceeds it is the suspected bought likes. One row per
    target with a farm like: farm likes, all likes, share, expected, excess, the lockstep groups of
    the liking accounts, and the window in which the farm likes came. `until`: only likes up to
    that time (the reference time the scores' features describe). `task`: whose flags mark the
    like sellers (default: the registry's like-selling task, like_farm). `scores`: a frame, or a
    Parquet file of them (read by DuckDB, never whole into Python).
    """
    from pipeline.warehouse import connect

    task = seller_task(task)
    con = connect(db)
    try:
        if isinstance(scores, Path):
            con.execute(
                f'CREATE TEMP VIEW scores_in AS SELECT account_id, "flagged_{task}" AS farm, lockstep_group '
                f"FROM read_parquet({literal(str(scores))})"
            )
        else:
            con.register("scores_in", scores.select("account_id", pl.col(f"flagged_{task}").alias("farm"), "lockstep_group"))
        return con.sql(
            PAGES_SQL,
            params={"until": until},
        ).pl()
    finally:
        con.close()


def seller_task(task: str | None = None) -> str:
    """The task whose flags mark the like sellers: `task`, else the registry's like-selling one."""
    if task is not None:
        return task
    seller = tasks.like_seller()
    if seller is None:
        raise ZombieScanError("pages: no task is marked as selling likes (pipeline/tasks.py)")
    return seller.name
