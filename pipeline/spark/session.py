"""A Spark session for the feature and scoring jobs.

On one machine (`local[N]`) every Spark process listens on 127.0.0.1 only: the driver, its block
manager and the UI (off). With a cluster master (`spark://host:port`, `yarn`, `k8s://...`) the
network settings are the cluster's, given with `conf`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipeline.errors import ZombieScanError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOOPBACK = "127.0.0.1"


def _pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise ZombieScanError("the Spark engine needs the 'spark' extra: pip install 'zombiescan[spark]' (and Java 17+)") from None
    return pyspark.sql


@contextmanager
def spark_session(master: str = "local[2]", conf: dict[str, str] | None = None, app: str = "zombiescan") -> Iterator[SparkSession]:
    """A Spark session for the block, stopped at its end (timestamps in UTC, as the contract stores them)."""
    sql = _pyspark()
    active = sql.SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        # getOrCreate would hand back that session, silently on the wrong master
        raise ZombieScanError(f"a Spark session on {active.sparkContext.master} is running in this process; stop it before using {master}")
    local = master.startswith("local")
    if local:
        os.environ["SPARK_LOCAL_IP"] = LOOPBACK  # the JVM Spark starts binds here, not to the machine's address
    builder = (
        sql.SparkSession.builder.master(master)
        .appName(app)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.ansi.enabled", "false")  # NULL on a division by zero, as DuckDB's nullif-guarded SQL expects
    )
    if local:
        builder = builder.config("spark.driver.host", LOOPBACK).config("spark.driver.bindAddress", LOOPBACK)
        builder = builder.config("spark.sql.shuffle.partitions", "8")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()
