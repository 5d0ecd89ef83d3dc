"""A Spark session for the feature and scoring jobs.

On one machine (`local[N]`) every Spark process listens on 127.0.0.1 only: the driver, its block
manager and the UI (off). With a cluster master (`spark://host:port`, `yarn`, `k8s://...`) the
network settings are the cluster's, given with `conf`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.errors import ZombieScanError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class SparkSettings:
    """Where the job runs: `--master` (local[N], spark://host:port, yarn, k8s://...) and `--spark-conf k=v` pairs."""

    master: str = "local[2]"
    conf: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, master: str | None, pairs: list[str] | None) -> SparkSettings:
        conf = {}
        for pair in pairs or []:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ZombieScanError(f"--spark-conf {pair}: expected KEY=VALUE, e.g. spark.executor.memory=8g")
            conf[key.strip()] = value.strip()
        return cls(master or "local[2]", conf)


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
    if active is not None:
        if active.sparkContext.master != master:
            # getOrCreate would hand back that session, silently on the wrong master
            raise ZombieScanError(
                f"a Spark session on {active.sparkContext.master} is running in this process; stop it before using {master}"
            )
        # a session someone else started (a notebook, a test's): used as it is, and left running for its owner
        for key, value in (conf or {}).items():
            if active.conf.get(key, None) == value:
                continue
            try:
                active.conf.set(key, value)  # a runtime (SQL) setting applies at once
            except Exception:  # a static one (memory, cores) was fixed when the JVM started
                raise ZombieScanError(f"--spark-conf {key}={value}: the running Spark session cannot take it; restart it") from None
        yield active
        return
    local = master.startswith("local")
    if local:
        os.environ["SPARK_LOCAL_IP"] = LOOPBACK  # the JVM Spark starts binds here, not to the machine's address
        # Python workers run this interpreter (its packages: LightGBM for scoring), not whatever
        # `python3` is first on PATH; on a cluster, spark.pyspark.python names the nodes' interpreter
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        sql.SparkSession.builder.master(master)
        .appName(app)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")  # the CLI shows its own progress
        .config("spark.sql.ansi.enabled", "false")  # NULL on a division by zero, as DuckDB's nullif-guarded SQL expects
    )
    if local:
        builder = builder.config("spark.driver.host", LOOPBACK).config("spark.driver.bindAddress", LOOPBACK)
        builder = builder.config("spark.sql.shuffle.partitions", "8")
    if (conf or {}).get("spark.checkpoint.dir"):  # delete a cut frame's checkpoint files once nothing refers to it
        builder = builder.config("spark.cleaner.referenceTracking.cleanCheckpoints", "true")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if (conf or {}).get("spark.checkpoint.dir"):
        # reliable checkpoints for the iterations (pipeline/spark/checkpoint.py)
        spark.sparkContext.setCheckpointDir((conf or {})["spark.checkpoint.dir"])
    try:
        yield spark
    finally:
        spark.stop()
