"""profile_ features: what the profile alone says (docs/features.md#profile)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from pipeline.features.sql import Frame, query


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
