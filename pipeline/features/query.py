"""Run the feature SQL in `sql/` (DuckDB) over a connection or frames: the definitions stay SQL so another engine can run them."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

import duckdb
import polars as pl

from pipeline import db

Frame = pl.DataFrame | pl.LazyFrame


def feature_connection(memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for feature SQL (pipeline.db.connect: UTC, spill, interruptible)."""
    return db.connect(memory_limit=memory_limit)


def number_ids(con: duckdb.DuckDBPyConnection, table: str, column: str, source: str, key: str = "i", *, rows: str | None = None) -> None:
    """Temp table `table` (column, key): the distinct values of `source`.`column` numbered 0, 1, ... in sort order;
    with `rows`, also a column of that name: the number of rows of `source` holding the value (from the same pass).

    Joins and group-bys over tens of millions of rows run several times faster on these dense
    integers than on VARCHAR ids.
    """
    counted = f", {rows}" if rows else ""
    distinct = f"SELECT {column}, count(*) AS {rows} FROM {source} GROUP BY {column}" if rows else f"SELECT DISTINCT {column} FROM {source}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS "
        f"SELECT {column}, (row_number() OVER (ORDER BY {column}) - 1)::INTEGER AS {key}{counted} FROM ({distinct})"
    )


# Steps of a feature script done another way on DuckDB: a function that creates a group of the
# script's temp tables (the same names, columns and values) and returns their names.
Replacement = tuple[tuple[str, ...], Callable[[duckdb.DuckDBPyConnection], list[str]]]


def query(
    sql_file: str,
    params: dict[str, Any] | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    replace: Replacement | None = None,
    **tables: Frame | None,
) -> pl.DataFrame:
    """Run `pipeline/features/sql/<sql_file>`.

    Either `con` already shows the contract tables by name (the stage: views over the
    warehouse), or the frames in `tables` are registered under their names in a new connection
    (notebooks, tests, batch scoring on a slice). With `replace` (names, function), the script's
    statements that create the temp tables `names` are not run: at the first of them the function
    runs instead and creates the tables the later statements read.
    """
    text = files("pipeline.features").joinpath("sql", sql_file).read_text()
    if con is not None:
        return _run_script(con, text, params or {}, replace)
    own = feature_connection()
    try:
        for name, frame in tables.items():
            if frame is not None:
                own.register(name, frame.collect() if isinstance(frame, pl.LazyFrame) else frame)
        return _run_script(own, text, params or {}, replace)
    finally:
        own.close()


def _run_script(con: duckdb.DuckDBPyConnection, text: str, params: dict[str, Any], replace: Replacement | None = None) -> pl.DataFrame:
    """Run a script of `;`-separated statements; the last one is the SELECT whose rows we return.

    Each statement gets only the parameters it names. Temp tables the script creates are dropped.
    """
    statements = [part.strip() for part in _strip_comments(text).split(";") if part.strip()]
    names, function = replace or ((), None)
    tables = [t for t in map(_created_table, statements) if t is not None]
    if set(names) - set(tables):
        raise ValueError(f"the script makes no table {', '.join(sorted(set(names) - set(tables)))} to replace")
    created: list[str] = []
    try:
        for statement in statements:
            args = {k: v for k, v in params.items() if f"${k}" in statement}
            if statement is statements[-1]:
                return con.sql(statement, params=args).pl()
            table = _created_table(statement)
            if table is not None:
                created.append(table)  # before it runs: dropped even when it fails halfway
            if table in names:
                if function is not None:
                    created += function(con)
                    function = None
                continue
            con.execute(statement, args)
        raise ValueError("feature script has no statements")
    finally:
        for name in created:
            con.execute(f"DROP TABLE IF EXISTS {name}")


def _created_table(statement: str) -> str | None:
    """The temp table a script statement creates (`CREATE OR REPLACE TEMP TABLE name ...`), if any."""
    words = statement.split(maxsplit=6)
    return words[5] if words[:5] == ["CREATE", "OR", "REPLACE", "TEMP", "TABLE"] and len(words) > 5 else None


def _strip_comments(statement: str) -> str:
    return "\n".join(line for line in statement.splitlines() if not line.strip().startswith("--")).strip()
