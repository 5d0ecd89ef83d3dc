"""profile_ features: what the profile alone says (docs/features.md#profile)."""

from __future__ import annotations

import math
from datetime import datetime

import duckdb
import polars as pl

from pipeline.features.family import Context, Family, count, from_log1p, share
from pipeline.features.query import Frame, query


def profile_features(
    accounts: Frame | None = None, *, reference_time: datetime, con: duckdb.DuckDBPyConnection | None = None
) -> pl.DataFrame:
    """One row per account created by `reference_time`, columns `profile_*`.

    Args:
        accounts: The contract's accounts table (absent optional columns may be missing).
        reference_time: The moment the features describe; nothing after it is used.
        con: Instead of `accounts`, a connection that shows a complete `accounts` table.
    """
    if con is not None:
        return query("profile.sql", {"ref": reference_time}, con=con)
    if accounts is None:
        raise TypeError("profile_features needs accounts or con")
    return query("profile.sql", {"ref": reference_time}, accounts=_with_optional_columns(accounts))


def _with_optional_columns(accounts: Frame) -> pl.DataFrame:
    """Add absent optional profile columns as nulls, so the SQL sees the full contract."""
    from pipeline.contract import ACCOUNTS

    df = accounts.collect() if isinstance(accounts, pl.LazyFrame) else accounts
    types: dict[str, pl.DataType] = {"string": pl.String(), "bool": pl.Boolean(), "int": pl.Int64(), "timestamp": pl.Datetime("us", "UTC")}
    missing = [pl.lit(None, types[c.dtype]).alias(c.name) for c in ACCOUNTS.columns if c.name not in df.columns]
    return df.with_columns(missing) if missing else df


def compute(ctx: Context) -> pl.DataFrame:
    return ctx.timed("profile", profile_features, reference_time=ctx.reference_time, con=ctx.con)


# How an analyst reads each value (the reasons of `zombiescan score`).
DESCRIBE = {
    "profile_age_days": lambda v: f"account is {count(v)} days old",
    "profile_username_digit_share": lambda v: f"{share(v)} of the username is digits",
    "profile_username_trailing_digits": lambda v: f"username ends in {count(v)} digits",
    "profile_username_entropy": lambda v: f"username looks random (entropy {v:.1f} bits)",
    "profile_name_similarity": lambda v: f"display name and username share {share(v)}",
    "profile_default_photo": lambda v: "no profile photo" if v else "has a profile photo",
    "profile_bio_len": lambda v: f"bio of {count(v)} characters",
    "profile_has_url": lambda v: "profile links a URL" if v else "no URL in the profile",
    "profile_followers_log": lambda v: f"{from_log1p(v)} followers",
    "profile_following_log": lambda v: f"follows {from_log1p(v)} accounts",
    # ln(1 + following) - ln(1 + followers)
    "profile_follow_ratio_log": lambda v: f"follows {math.exp(v):,.1f}x as many accounts as follow it",
    "profile_posts_per_day": lambda v: f"{v:.2f} posts per day since it joined",
    "profile_verified": lambda v: "verified" if v else "not verified",
}

FAMILY = Family("profile_", "profile", compute, DESCRIBE, role="own", engagements=False, spark="pipeline.spark.features:profile")
