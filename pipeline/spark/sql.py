"""The feature SQL on Spark: pipeline/features/sql/*.sql transpiled from DuckDB's dialect by sqlglot.

The files are the one definition of the profile_ and beh_ features. They are written in the part
of DuckDB's dialect that sqlglot carries to Spark SQL with the same values (docs/features.md),
and tests/test_spark.py runs both engines on the same world and compares every column.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from pipeline.db import literal
from pipeline.errors import ZombieScanError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def spark_sql(sql_file: str, params: dict[str, Any]) -> str:
    """The Spark SQL text of one feature file, its `$name` parameters written in as literals
    (Spark SQL has no bound parameters for a whole script; every value here comes from the code
    or a parsed datetime, never from data)."""
    import sqlglot

    text = files("pipeline.features").joinpath("sql", sql_file).read_text()
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    for name, value in sorted(params.items(), key=lambda kv: -len(kv[0])):  # $young_hours before $young
        text = text.replace(f"${name}", _literal(value))
    statements = sqlglot.transpile(text, read="duckdb", write="spark")
    if len(statements) != 1:
        raise ZombieScanError(f"{sql_file}: {len(statements)} statements; the Spark engine runs single-query feature files")
    return statements[0]


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ZombieScanError(f"reference time {value}: needs a time zone")
        return f"TIMESTAMPTZ {literal(value.isoformat())}"
    if isinstance(value, bool | int | float):
        return repr(value)
    raise ZombieScanError(f"feature SQL parameter {value!r}: not a time or a number")


def run_feature_sql(spark: SparkSession, sql_file: str, params: dict[str, Any]) -> DataFrame:
    """Run one feature file on the session; the contract tables must be temp views by their names."""
    return spark.sql(spark_sql(sql_file, params))
