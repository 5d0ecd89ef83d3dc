"""Read a contract file into DuckDB, checking its structure, and convert its columns to their types.

Structure first (the file parses, the header names each contract column once, every record has
as many fields as the header), then types, value by value, in SQL. A problem in the structure
stops the ingest; a bad value is a row-level problem the caller reports or quarantines.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from pipeline.contract import Column, Table
from pipeline.errors import ZombieScanError

ROW = "__row"  # 1-based data row number; the header of a CSV is row 0
FORMAT_NAMES = {".parquet": "Parquet", ".csv": "CSV", ".jsonl": "JSON Lines"}
INT_TYPES = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT", "UHUGEINT"}
FLOAT_TYPES = {"DOUBLE", "FLOAT", "REAL"}
ID_COLUMNS = {"account_id", "actor_id", "target_id", "owner_id", "campaign_id", "farm_id"}
BOOL_WORDS = {"true": True, "t": True, "yes": True, "y": True, "1": True, "false": False, "f": False, "no": False, "n": False, "0": False}


def _literal(text: str) -> str:
    """An SQL string literal (file paths cannot be bound as parameters inside a view)."""
    return "'" + text.replace("'", "''") + "'"


def _csv_header(path: Path) -> list[str]:
    """Check a CSV record by record with the csv module: UTF-8, quotes closed, field counts."""
    row, line = 0, 1
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None:
                raise ZombieScanError(f"{path}: file is empty; expected a header row and at least one {path.stem} row")
            width = len(header)
            row = 0
            for row, record in enumerate(reader, start=1):
                if len(record) != width:
                    raise ZombieScanError(
                        f"{path}: row {row} (line {reader.line_num}): expected {width} fields like the header, found {len(record)}"
                    )
    except UnicodeDecodeError:
        raise ZombieScanError(f"{path}: row {row + 1}: expected UTF-8 text, found bytes that are not UTF-8") from None
    except csv.Error as exc:
        raise ZombieScanError(f"{path}: row {row + 1} (line {line + 1}): cannot be parsed as CSV: {exc}") from None
    return header


def _jsonl_header(path: Path) -> list[str]:
    """Check that every line of a JSON Lines file is one JSON object; return the keys seen."""
    keys: dict[str, None] = {}
    line = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ZombieScanError(
                        f"{path}: row {line}: expected one JSON object per line: {exc.msg} at column {exc.colno}"
                    ) from None
                if not isinstance(record, dict):
                    raise ZombieScanError(f"{path}: row {line}: expected a JSON object, found {type(record).__name__}")
                keys.update(dict.fromkeys(record))
    except UnicodeDecodeError:
        raise ZombieScanError(f"{path}: row {line + 1}: expected UTF-8 text, found bytes that are not UTF-8") from None
    return list(keys)


def _parquet_header(path: Path) -> list[str]:
    try:
        return list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for a broken file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ZombieScanError(f"{path}: cannot be read as Parquet: {first}") from None


def check_header(path: Path, table: Table) -> list[str]:
    """Check the file's structure and return its column names.

    Raises:
        ZombieScanError: the file cannot be parsed, a record has the wrong number of fields, a
            column is named twice, or the header looks like another separator was used.
    """
    header = {".csv": _csv_header, ".jsonl": _jsonl_header, ".parquet": _parquet_header}[path.suffix](path)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise ZombieScanError(f"{path}: column '{name}' appears twice in the header (row 0); expected each column once")
        seen.add(name)
    if ROW in seen:
        raise ZombieScanError(f"{path}: column '{ROW}' (row 0) is reserved by ZombieScan; rename it")
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|") and header[0] not in table.column_names:
        raise ZombieScanError(
            f"{path}: the header (row 0) is one column '{header[0][:60]}': expected comma-separated columns "
            f"{', '.join(table.column_names)} (is the file separated by another character?)"
        )
    return header


def stage(con: duckdb.DuckDBPyConnection, table: Table, path: Path, scratch: Path) -> tuple[list[str], int]:
    """Check `path` and expose it as temp view raw_<table> with column `__row`; return columns and rows.

    Parquet is read by DuckDB directly. CSV and JSON Lines go through polars (which keeps row
    order exactly, as the row numbers in messages need) into a scratch Parquet file.
    """
    columns = check_header(path, table)
    view = f"raw_{table.name}"
    try:
        if path.suffix == ".parquet":
            scan = f"read_parquet({_literal(str(path))}, file_row_number = true)"
            source = f"(SELECT file_row_number + 1 AS {ROW}, * EXCLUDE (file_row_number) FROM {scan})"
        else:
            staged = scratch / f"{table.name}.parquet"
            if path.suffix == ".csv":
                lf = pl.scan_csv(path, infer_schema=False, row_index_name=ROW, row_index_offset=1, raise_if_empty=True)
            else:
                lf = pl.scan_ndjson(path, infer_schema_length=None, row_index_name=ROW, row_index_offset=1)
            lf.sink_parquet(staged)
            source = f"read_parquet({_literal(str(staged))})"
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {source}")
        rows = con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
    except (duckdb.Error, pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ZombieScanError(f"{path}: cannot be read as {FORMAT_NAMES[path.suffix]}: {first}") from None
    if rows == 0:
        raise ZombieScanError(f"{path}: file has no rows; expected at least one {table.name} row")
    return columns, rows


def source_types(con: duckdb.DuckDBPyConnection, table: Table) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE raw_{table.name}").fetchall()}


def conversion(col: Column, source_type: str, src: str) -> tuple[str, bool]:
    """SQL that converts raw column `src` to the contract type, NULL where it cannot.

    Returns the expression and whether it can fail (so a `_bad_` flag is worth computing).
    Conversions are strict on purpose: DuckDB's own casts would turn 12.5 into 13, 2 into true
    and '0x10' into 16.
    """
    text = source_type == "VARCHAR"
    nested = source_type.endswith("[]") or source_type.split("(")[0] in {"STRUCT", "MAP", "UNION", "BLOB", "LIST"}
    if nested:
        return "NULL", True
    if col.allowed is not None:
        return f"TRY_CAST(trim({src}) AS {col.sql_type})", True
    if col.dtype == "string":
        if col.name in ID_COLUMNS:
            value = f"{src}::VARCHAR"
            return f"CASE WHEN {value} = trim({value}) AND {value} <> '' THEN {value} END", True
        return (f"{src}::VARCHAR", False) if not text else (src, False)
    if col.dtype == "int":
        if source_type in INT_TYPES:
            return f"TRY_CAST({src} AS BIGINT)", source_type in {"UBIGINT", "HUGEINT", "UHUGEINT"}
        if source_type in FLOAT_TYPES or source_type.startswith("DECIMAL"):
            return f"CASE WHEN isfinite({src}::DOUBLE) AND {src} = floor({src}) THEN TRY_CAST({src} AS BIGINT) END", True
        if text:
            whole = f"regexp_full_match(trim({src}), '[+-]?[0-9]+(\\.0*)?')"
            return f"CASE WHEN {whole} THEN TRY_CAST(regexp_replace(trim({src}), '\\.0*$', '') AS BIGINT) END", True
        return "NULL", True
    if col.dtype == "bool":
        if source_type == "BOOLEAN":
            return src, False
        if source_type in INT_TYPES or source_type in FLOAT_TYPES:
            return f"CASE WHEN {src} = 1 THEN true WHEN {src} = 0 THEN false END", True
        if text:
            cases = " ".join(f"WHEN {_literal(word)} THEN {str(value).lower()}" for word, value in BOOL_WORDS.items())
            return f"CASE lower(trim({src})) {cases} END", True
        return "NULL", True
    if col.dtype == "timestamp":
        if source_type.startswith("TIMESTAMP") or source_type == "DATE":
            return f"{src}::TIMESTAMPTZ", False
        if text:
            return f"TRY_CAST(trim({src}) AS TIMESTAMPTZ)", True
        return "NULL", True  # epoch numbers: the unit is ambiguous, so the adapter must convert
    raise AssertionError(f"no conversion for {col.dtype}")
