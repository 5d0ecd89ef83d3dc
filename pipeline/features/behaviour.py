"""beh_ features: how an account acts, from its own engagements (docs/features.md#behaviour)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from pipeline.features.sql import Frame, query

EMPTY_TARGETS = pl.DataFrame(schema={"target_id": pl.String, "target_type": pl.String, "created_at": pl.Datetime("us", "UTC")})


def behavioural_features(
    accounts: Frame | None = None,
    engagements: Frame | None = None,
    *,
    reference_time: datetime,
    targets: Frame | None = None,
    young_hours: float = 24.0,
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
