"""beh_ features: how an account acts, from its own engagements (docs/features.md#behaviour)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from pipeline.features.family import Context, Family, count, share
from pipeline.features.query import Frame, query

EMPTY_TARGETS = pl.DataFrame(schema={"target_id": pl.String, "target_type": pl.String, "created_at": pl.Datetime("us", "UTC")})


YOUNG_HOURS = 24.0  # a like on a target younger than this counts as early


def behavioural_features(
    accounts: Frame | None = None,
    engagements: Frame | None = None,
    *,
    reference_time: datetime,
    targets: Frame | None = None,
    young_hours: float = YOUNG_HOURS,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """One row per account created by `reference_time`, columns `beh_*`.

    Uses only the account's own engagements at or before `reference_time`, so the values for an
    account do not change when other accounts are added or removed.

    Args:
        accounts: Contract accounts (account_id, created_at are used).
        engagements: Contract engagements; `weight` is optional (default 1).
        reference_time: Nothing after it is used.
        targets: Contract targets, for `beh_young_target_like_share` (null without them).
        young_hours: A like on a target younger than this counts as "early".
        con: Instead of the frames, a connection that shows accounts, engagements (with weight)
            and targets by name.
    """
    params = {"ref": reference_time, "young_hours": young_hours}
    if con is not None:
        return query("behaviour.sql", params, con=con)
    if accounts is None or engagements is None:
        raise TypeError("behavioural_features needs accounts and engagements, or con")
    eng = engagements.collect() if isinstance(engagements, pl.LazyFrame) else engagements
    if "weight" not in eng.columns:
        eng = eng.with_columns(weight=pl.lit(1, pl.Int64))
    return query(
        "behaviour.sql",
        params,
        accounts=accounts,
        engagements=eng,
        targets=targets if targets is not None else EMPTY_TARGETS,
    )


def compute(ctx: Context) -> pl.DataFrame:
    return ctx.timed("behaviour", behavioural_features, reference_time=ctx.reference_time, con=ctx.con)


# How an analyst reads each value (the reasons of `zombiescan score`).
DESCRIBE = {
    "beh_n_actions": lambda v: f"{count(v)} actions in total",
    "beh_n_like": lambda v: f"{count(v)} likes",
    "beh_n_follow": lambda v: f"{count(v)} follows",
    "beh_n_post": lambda v: f"{count(v)} posts of its own",
    "beh_distinct_targets": lambda v: f"engaged with {count(v)} distinct targets",
    "beh_like_share": lambda v: f"{share(v)} of its actions are likes",
    "beh_gap_median_s": lambda v: f"median {v:,.0f} s between actions",
    "beh_burstiness": lambda v: f"acts in bursts (burstiness {v:.2f})",
    "beh_hour_entropy": lambda v: f"activity spread over the day: {v:.1f} bits",
    "beh_busiest_hour_share": lambda v: f"{share(v)} of its actions fell in one hour",
    "beh_busiest_minute_share": lambda v: f"{share(v)} of its actions fell in one minute",
    "beh_active_days": lambda v: f"active on {count(v)} days",
    "beh_first_action_delay_days": lambda v: f"first action {v:,.1f} days after joining",
    "beh_likes_per_active_day": lambda v: f"{v:,.0f} likes per active day",
    "beh_young_target_like_share": lambda v: f"{share(v)} of its likes went to posts under a day old",
    "beh_night_share": lambda v: f"{share(v)} of its actions at night (UTC)",
}

FAMILY = Family("beh_", "behaviour", compute, DESCRIBE, role="own", spark="pipeline.spark.features:behaviour")
