"""The Spark engine computes the same features as the DuckDB engine (P10, first part: profile_ and beh_).

Needs the `spark` extra (pyspark) and Java 17+. `.ci/run` installs the extra and sets
ZOMBIESCAN_REQUIRE_SPARK=1, so in CI a missing pyspark fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
from typing import Any

import polars as pl
import pytest

from pipeline.features.profile import profile_features
from tests.spark_compare import assert_same_features

if os.environ.get("ZOMBIESCAN_REQUIRE_SPARK") != "1":
    pytest.importorskip("pyspark", reason="the Spark engine needs the 'spark' extra (pip install -e '.[spark]')")


def test_profile_features_equal_on_spark_and_duckdb(spark: Any, tiny_tables: dict[str, pl.DataFrame]) -> None:
    from pipeline.features.profile import _with_optional_columns
    from pipeline.spark.sql import run_feature_sql

    # characters beyond ASCII (2-, 3- and 4-byte, a combining mark): both engines count code points
    base = _with_optional_columns(tiny_tables["accounts"])
    names = base["username"].to_list()
    names[:4] = ["ééü€😀", "e\u0301e\u0301x", "😀😀😀", ""]
    accounts = base.with_columns(username=pl.Series(names, dtype=pl.String))
    reference = tiny_tables["engagements"]["ts"].max()
    spark.createDataFrame(accounts.to_arrow()).createOrReplaceTempView("accounts")
    on_spark = pl.from_arrow(run_feature_sql(spark, "profile.sql", {"ref": reference}).toArrow())
    assert isinstance(on_spark, pl.DataFrame)
    assert_same_features(profile_features(accounts, reference_time=reference), on_spark)


def test_a_reference_time_without_a_zone_is_refused() -> None:
    from datetime import datetime

    from pipeline.errors import ZombieScanError
    from pipeline.spark.sql import spark_sql

    with pytest.raises(ZombieScanError, match="needs a time zone"):
        spark_sql("profile.sql", {"ref": datetime(2026, 1, 1)})


def test_behaviour_features_equal_on_spark_and_duckdb(spark: Any, tiny_tables: dict[str, pl.DataFrame]) -> None:
    from pipeline.features.behaviour import behavioural_features
    from pipeline.features.profile import _with_optional_columns
    from pipeline.spark.sql import run_feature_sql

    accounts = _with_optional_columns(tiny_tables["accounts"])
    engagements, targets = tiny_tables["engagements"], tiny_tables["targets"]
    if "weight" not in engagements.columns:
        engagements = engagements.with_columns(weight=pl.lit(1, pl.Int64))
    reference = engagements["ts"].max()
    for name, frame in (("accounts", accounts), ("engagements", engagements), ("targets", targets)):
        spark.createDataFrame(frame.to_arrow()).createOrReplaceTempView(name)
    on_spark = pl.from_arrow(run_feature_sql(spark, "behaviour.sql", {"ref": reference, "young_hours": 24.0}).toArrow())
    assert isinstance(on_spark, pl.DataFrame)
    assert_same_features(behavioural_features(accounts, engagements, reference_time=reference, targets=targets), on_spark)


def test_unknown_creation_times_give_the_same_features_on_both_engines(spark: Any, tiny_tables: dict[str, pl.DataFrame]) -> None:
    """A null created_at (unknown) keeps the account, with null age features, on both engines."""
    from pipeline.features.behaviour import behavioural_features
    from pipeline.features.profile import _with_optional_columns
    from pipeline.spark.sql import run_feature_sql

    accounts = _with_optional_columns(tiny_tables["accounts"])
    accounts = accounts.with_columns(created_at=pl.when(pl.int_range(pl.len()) % 3 == 0).then(None).otherwise(pl.col("created_at")))
    engagements, targets = tiny_tables["engagements"], tiny_tables["targets"]
    if "weight" not in engagements.columns:
        engagements = engagements.with_columns(weight=pl.lit(1, pl.Int64))
    reference = engagements["ts"].max()
    for name, frame in (("accounts", accounts), ("engagements", engagements), ("targets", targets)):
        spark.createDataFrame(frame.to_arrow()).createOrReplaceTempView(name)
    duck = profile_features(accounts, reference_time=reference)
    assert duck["profile_age_days"].null_count() == accounts["created_at"].null_count() > 0
    for sql, local in (
        ("profile.sql", duck),
        ("behaviour.sql", behavioural_features(accounts, engagements, reference_time=reference, targets=targets)),
    ):
        on_spark = pl.from_arrow(run_feature_sql(spark, sql, {"ref": reference, "young_hours": 24.0}).toArrow())
        assert isinstance(on_spark, pl.DataFrame)
        assert_same_features(local, on_spark)
