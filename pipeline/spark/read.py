"""The contract tables as Spark DataFrames, checked against the data contract before any work.

Inputs are Parquet: a file, a folder of part files or a glob, on any file system Spark reads
(local, HDFS, S3 ...). The checks are the contract's own (pipeline/contract.py: columns, types,
nulls, allowed values, minimums, keys, times in the future), run in bulk: one pass over each
table counts every rule broken, and only for a rule that fails are the first rows looked up,
named by their file and row (Parquet's row index, counted from 1). Unlike `zombiescan ingest`,
which quarantines bad rows up to a share, the Spark path refuses the input: at platform scale
a quarantine is a table of its own, and a silent drop of rows would change every score.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.contract import ACCOUNTS, ENGAGEMENTS, EXPECTED, TARGETS, Column, Table
from pipeline.errors import ZombieScanError

if TYPE_CHECKING:
    from pyspark.sql import Column as SparkColumn
    from pyspark.sql import DataFrame, SparkSession

# Spark type names (DataType.typeName()) each contract type accepts.
SPARK_TYPES = {
    "string": ("string",),
    "timestamp": ("timestamp",),
    "bool": ("boolean",),
    "int": ("byte", "short", "integer", "long"),
    "number": ("byte", "short", "integer", "long", "float", "double", "decimal"),
}
EXAMPLES = 3  # failing rows named per rule


@dataclass(frozen=True)
class Inputs:
    """Where the contract tables are (Parquet paths Spark reads: files, folders or globs)."""

    accounts: str
    engagements: str | None = None
    targets: str | None = None


def read_table(spark: SparkSession, path: str, table: Table, *, now: datetime | None = None) -> DataFrame:
    """`path` as a checked DataFrame of `table`'s columns (absent optional ones added with their default).

    Raises:
        ZombieScanError: the path is missing or not Parquet, a required column is missing or of
            the wrong type, or rows break the contract; the message names the path, the column,
            the file and row of the first rows, and what was expected.
    """
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    try:
        frame = spark.read.parquet(path)
        fields = {f.name: f.dataType.typeName() for f in frame.schema.fields}
    except AnalysisException as exc:
        raise ZombieScanError(f"{path}: {table.name}: cannot read it ({_first_line(exc)}); expected Parquet files") from None
    except Exception as exc:  # a broken file fails on its footer: Py4JJavaError
        raise ZombieScanError(f"{path}: {table.name}: not a readable Parquet file ({_cause(exc)})") from None
    missing = [c.name for c in table.columns if c.required and c.name not in fields]
    if missing:
        raise ZombieScanError(
            f"{path}: column '{missing[0]}' missing: expected columns {', '.join(c.name for c in table.columns if c.required)}"
            f" (optional: {', '.join(c.name for c in table.columns if not c.required) or 'none'}); found {', '.join(fields) or 'none'}"
        )
    for column in table.columns:
        found = fields.get(column.name)
        if found is not None and found not in SPARK_TYPES[column.dtype]:
            raise ZombieScanError(f"{path}: column '{column.name}' is {found}: expected {EXPECTED[column.dtype]}")
    _check_rows(frame, path, table, now or datetime.now(UTC))
    return frame.select(
        *[
            (F.col(c.name).cast("double").alias(c.name) if c.dtype == "number" else F.col(c.name))
            if c.name in fields
            else F.expr(c.default).cast(_spark_type(c)).alias(c.name)
            for c in table.columns
        ]
    )


def read_inputs(spark: SparkSession, inputs: Inputs, *, now: datetime | None = None) -> dict[str, DataFrame]:
    """Every table of `inputs`, checked (including that the engagements' actors are accounts),
    exact duplicate engagements dropped; targets default to an empty table."""
    if inputs.engagements is None:
        raise ZombieScanError("--engagements: missing; the Spark engine needs the engagements (Parquet) beside the accounts")
    from pyspark import StorageLevel

    accounts = read_table(spark, inputs.accounts, ACCOUNTS, now=now)  # checked first: the cheap table
    # Exact duplicate rows are one engagement, as `zombiescan ingest` loads them. The distinct rows
    # are kept (memory, then disk): every family, the checks below and the pages report read them,
    # and each would otherwise read the files and shuffle them for the distinct again (at 1M
    # accounts, ~25M rows: tens of seconds each time). A lost executor's share is recomputed.
    engagements = read_table(spark, inputs.engagements, ENGAGEMENTS, now=now).distinct().persist(StorageLevel.MEMORY_AND_DISK)
    engagements.count()
    tables = {"accounts": accounts, "engagements": engagements}
    if inputs.targets is not None:
        tables["targets"] = read_table(spark, inputs.targets, TARGETS, now=now)
    else:
        schema = ", ".join(f"{c.name} {_spark_type(c)}" for c in TARGETS.columns)
        tables["targets"] = spark.createDataFrame([], schema)
    _check_actors(tables["engagements"], tables["accounts"], inputs.engagements)
    return tables


def warehouse_inputs(db: Path) -> Inputs:
    """The tables of a Parquet-folder warehouse (what `zombiescan ingest` and `dvc repro` write)."""
    if db.suffix == ".duckdb":
        raise ZombieScanError(
            f"--db {db}: the Spark engine reads Parquet; give a Parquet-folder warehouse (ingest to a path not ending in .duckdb) "
            "or the tables with --accounts/--engagements"
        )
    if not (db / "accounts.parquet").exists():
        raise ZombieScanError(f"--db {db}: no accounts.parquet in it; give a warehouse folder written by `zombiescan ingest`")
    targets = db / "targets.parquet"
    return Inputs(str(db / "accounts.parquet"), str(db / "engagements.parquet"), str(targets) if targets.exists() else None)


def register_inputs(spark: Any, tables: dict[str, Any]) -> None:
    """Show the checked tables as the temp views `accounts_in`, `engagements_in`, `targets_in`."""
    for name, frame in tables.items():
        frame.createOrReplaceTempView(f"{name}_in")


def _rules(column: Column, now: datetime) -> list[tuple[str, SparkColumn, str]]:
    """(what is wrong, a condition true on a bad row, what was expected) for each rule of one column."""
    from pyspark.sql import functions as F

    col = F.col(column.name)
    rules = []
    if not column.nullable:
        rules.append(("empty value", col.isNull(), EXPECTED[column.dtype]))
    if column.allowed is not None:
        rules.append(("a value not allowed", col.isNotNull() & ~col.isin(*column.allowed), f"one of {', '.join(column.allowed)}"))
    if column.minimum is not None:
        rules.append(("a value too small", col < column.minimum, f"at least {column.minimum}"))
    if column.dtype == "number":
        value = col.cast("double")
        rules.append(("a value not finite", F.isnan(value) | (F.abs(value) == float("inf")), EXPECTED["number"]))
    if column.dtype == "timestamp":
        rules.append(("a time in the future", col > F.lit(now), f"a time before now ({now.isoformat(timespec='seconds')})"))
    return rules


def _check_rows(frame: DataFrame, path: str, table: Table, now: datetime) -> None:
    """One aggregation counts the rows breaking each rule and each duplicated key; the first bad rows
    are then looked up by file and row index. Raises with every rule broken, one line each."""
    from pyspark.sql import functions as F

    present = [c for c in table.columns if c.name in frame.columns]
    rules = [(c, *rule) for c in present for rule in _rules(c, now)]
    counts = frame.agg(*[F.count(F.when(cond, 1)).alias(f"r{i}") for i, (_, _, cond, _) in enumerate(rules)]).first() if rules else None
    problems = []
    for i, (column, what, cond, expected) in enumerate(rules):
        n = counts[f"r{i}"] if counts is not None else 0
        if not n:
            continue
        rows = (
            frame.where(cond)
            .select(
                F.col("_metadata.file_path").alias("file"),
                (F.col("_metadata.row_index") + 1).alias("row"),
                F.col(column.name).cast("string"),
            )
            .orderBy("file", "row")
            .limit(EXAMPLES)
            .collect()
        )
        at = "; ".join(
            f"{_short(r['file'])} row {r['row']}" + (f" ({r[column.name]!r})" if r[column.name] is not None else "") for r in rows
        )
        problems.append(f"{path}: column '{column.name}', {what} in {n:,} row{'s' if n > 1 else ''}: expected {expected}; found at {at}")
    if table.key:
        key = [F.col(k) for k in table.key]
        dup = frame.groupBy(*key).count().where("count > 1")
        first = dup.orderBy(*table.key).first()
        if first is not None:
            n_dup = dup.count()
            where = frame.where(reduce(operator.and_, [F.col(k) == first[k] for k in table.key]))
            located = where.select(F.col("_metadata.file_path").alias("file"), (F.col("_metadata.row_index") + 1).alias("row"))
            at = ", ".join(f"{_short(r['file'])} row {r['row']}" for r in located.orderBy("file", "row").limit(EXAMPLES).collect())
            value = ", ".join(str(first[k]) for k in table.key)
            problems.append(
                f"{path}: column '{', '.join(table.key)}', duplicate id {value!r} (and {n_dup - 1:,} more duplicated)"
                if n_dup > 1
                else f"{path}: column '{', '.join(table.key)}', duplicate id {value!r}"
            )
            problems[-1] += f": expected each {', '.join(table.key)} once; found at {at}"
    if problems:
        raise ZombieScanError("\n".join(problems) + "\nnothing was written")


def _check_actors(engagements: DataFrame, accounts: DataFrame, path: str) -> None:
    """Every engagement's actor must be an account (the features describe accounts)."""
    from pyspark.sql import functions as F

    orphans = engagements.join(accounts.select(F.col("account_id").alias("actor_id")), "actor_id", "left_anti")
    first = orphans.select("actor_id").orderBy("actor_id").first()
    if first is not None:
        raise ZombieScanError(
            f"{path}: column 'actor_id', an actor that is not in the accounts ({first['actor_id']!r}, "
            f"{orphans.count():,} engagements in all): expected the account_id of an accounts row\nnothing was written"
        )


def _spark_type(column: Column) -> str:
    return {"string": "string", "timestamp": "timestamp", "bool": "boolean", "int": "bigint", "number": "double"}[column.dtype]


def _short(file: str) -> str:
    return file.removeprefix("file:")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _cause(exc: Any) -> str:
    """The Java cause of a failed read, in one line (e.g. 'is not a Parquet file. Expected magic number ...')."""
    text = str(exc)
    for line in text.splitlines():
        if "Caused by:" in line:
            return line.split("Caused by:", 1)[1].strip()[:300]
    return _first_line(exc)[:300]
