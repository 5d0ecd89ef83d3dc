"""Read a contract file into DuckDB, checking its structure, and convert its columns to their types.

Structure first (the file parses, the header names each contract column once, every record has
as many fields as the header), then types, value by value, in SQL. A problem in the structure
stops the ingest; a bad value is a row-level problem the caller reports or quarantines.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from pathlib import Path
from typing import IO, cast

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contract import Column, Table, file_format
from pipeline.db import literal
from pipeline.errors import ZombieScanError

ROW = "__row"  # 1-based data row number; the header of a CSV is row 0
RESERVED = (ROW, "file_row_number")  # our row column, and DuckDB's for Parquet
BATCH_ROWS = 500_000
FORMAT_NAMES = {".parquet": "Parquet", ".csv": "CSV", ".jsonl": "JSON Lines"}
INT_TYPES = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT", "UHUGEINT"}
FLOAT_TYPES = {"DOUBLE", "FLOAT", "REAL"}
ID_COLUMNS = {"account_id", "actor_id", "target_id", "owner_id", "campaign_id", "farm_id"}
BOOL_WORDS = {"true": True, "t": True, "yes": True, "y": True, "1": True, "false": False, "f": False, "no": False, "n": False, "0": False}


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, uncompressed if its name ends in .gz."""
    if path.name.lower().endswith(".gz"):
        return cast(IO[bytes], gzip.GzipFile(path, "rb"))
    return path.open("rb")


def _open_text(path: Path, newline: str | None = None) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline=newline)


def _check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8, naming the first bad line (decoded in 16 MiB blocks)."""
    lines_before = 0
    with _open_binary(path) as fh:
        rest = b""
        while True:
            chunk = fh.read(1 << 24)
            buf = rest + chunk
            cut = len(buf) if not chunk else buf.rfind(b"\n") + 1
            block, rest = buf[:cut], buf[cut:]
            try:
                block.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = lines_before + block.count(b"\n", 0, exc.start) + 1
                raise ZombieScanError(f"{path}: line {line}: expected UTF-8 text, found bytes that are not UTF-8") from None
            lines_before += block.count(b"\n")
            if not chunk:
                return


class _BatchWriter:
    """Collect string columns in batches and append them to one Parquet file."""

    def __init__(self, out: Path, columns: list[str]) -> None:
        self.out = out
        self.columns = columns
        self.schema = pa.schema([(ROW, pa.int64())] + [(c, pa.string()) for c in columns])
        self.writer = pq.ParquetWriter(out, self.schema)
        self.rows = 0

    def write(self, row_numbers: list[int], values: list[tuple[str | None, ...]]) -> None:
        if not row_numbers:
            return
        columns = list(zip(*values, strict=True)) if values else [() for _ in self.columns]
        arrays = [pa.array(row_numbers, pa.int64())] + [pa.array(col, pa.string()) for col in columns]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(row_numbers)

    def close(self) -> None:
        self.writer.close()


def _stage_csv(path: Path, table: Table, out: Path) -> list[str]:
    """Parse a CSV with the csv module into `out`; every structural problem names its row and line.

    Returns the header. Blank lines are skipped; an empty field is a null; a UTF-8 byte-order
    mark (Excel's "CSV UTF-8") is allowed.
    """
    _check_utf8(path)
    with _open_text(path, newline="") as fh:
        reader = csv.reader(fh, strict=True)
        row, start_line = 0, 1
        try:
            header = next(reader, None)
            if header is None:
                raise ZombieScanError(f"{path}: file is empty; expected a header row and at least one {table.name} row")
            _check_names(path, table, header)
            wanted = [i for i, name in enumerate(header) if name in table.column_names]
            writer = _BatchWriter(out, [header[i] for i in wanted])
            numbers: list[int] = []
            values: list[tuple[str | None, ...]] = []
            width = len(header)
            start_line = reader.line_num + 1
            for record in reader:
                if not record:  # a blank line
                    start_line = reader.line_num + 1
                    continue
                row += 1
                if len(record) != width:
                    raise ZombieScanError(
                        f"{path}: row {row} (line {start_line}): expected {width} fields like the header, found {len(record)}"
                    )
                numbers.append(row)
                values.append(tuple(record[i] or None for i in wanted))
                start_line = reader.line_num + 1
                if len(numbers) == BATCH_ROWS:
                    writer.write(numbers, values)
                    numbers, values = [], []
            writer.write(numbers, values)
            writer.close()
        except csv.Error as exc:
            raise ZombieScanError(f"{path}: row {row + 1} (line {start_line}): cannot be parsed as CSV: {exc}") from None
    return header


def _json_text(path: Path, row: int, line: int, column: str, value: object) -> str | None:
    """A JSON value as the text the type conversions read; objects and arrays are refused."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    kind = "an object" if isinstance(value, dict) else "an array"
    raise ZombieScanError(f"{path}: column '{column}', row {row} (line {line}): expected a plain value, found {kind}")


def _stage_jsonl(path: Path, table: Table, out: Path) -> list[str]:
    """Parse JSON Lines (one object per non-blank line) into `out`; return the keys seen, in order.

    A key missing from some objects is null there, except for columns with a default (`weight`),
    which take the default.
    """
    _check_utf8(path)
    names = table.column_names
    defaults = {c.name: c.default.strip("'") for c in table.columns if c.default != "NULL"}
    seen: dict[str, None] = {}
    writer = _BatchWriter(out, list(names))
    numbers: list[int] = []
    values: list[tuple[str | None, ...]] = []
    row = 0
    with _open_text(path) as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            row += 1
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ZombieScanError(
                    f"{path}: row {row} (line {line}): expected one JSON object per line: {exc.msg} at column {exc.colno}"
                ) from None
            if not isinstance(record, dict):
                raise ZombieScanError(f"{path}: row {row} (line {line}): expected a JSON object, found {type(record).__name__}")
            seen.update(dict.fromkeys(record))
            numbers.append(row)
            values.append(tuple(_json_text(path, row, line, c, record[c]) if c in record else defaults.get(c) for c in names))
            if len(numbers) == BATCH_ROWS:
                writer.write(numbers, values)
                numbers, values = [], []
    writer.write(numbers, values)
    writer.close()
    if row == 0:
        raise ZombieScanError(f"{path}: file has no rows; expected at least one {table.name} row")
    return list(seen)


def _check_names(path: Path, table: Table, header: list[str]) -> None:
    """A column named twice, a reserved name, or a header that used another separator."""
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise ZombieScanError(f"{path}: column '{name}' appears twice in the header (row 0); expected each column once")
        seen.add(name)
    for reserved in RESERVED:
        if reserved in seen:
            raise ZombieScanError(f"{path}: column '{reserved}' (row 0) is a name ZombieScan reserves; rename it")
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|") and header[0] not in table.column_names:
        raise ZombieScanError(
            f"{path}: the header (row 0) is one column '{header[0][:60]}': expected comma-separated columns "
            f"{', '.join(table.column_names)} (is the file separated by another character?)"
        )


def stage(con: duckdb.DuckDBPyConnection, table: Table, path: Path, scratch: Path) -> tuple[list[str], int]:
    """Check `path` and expose it as temp view raw_<table> with column `__row`; return columns and rows.

    Parquet is read by DuckDB directly. CSV and JSON Lines are parsed by Python's own parsers
    (which check every record and know its row and line) into a scratch Parquet file of text
    columns, converted like any text column afterwards.
    """
    fmt = file_format(path)
    if fmt == ".parquet":
        try:
            columns = list(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise ZombieScanError(f"{path}: cannot be read as Parquet: {_first_line(exc)}") from None
        _check_names(path, table, columns)
        # no hive partitioning: a folder named `weight=0` above the file must not become a column
        scan = f"read_parquet({literal(str(path))}, file_row_number = true, binary_as_string = true, hive_partitioning = false)"
        source = f"(SELECT file_row_number + 1 AS {ROW}, * EXCLUDE (file_row_number) FROM {scan})"
    else:
        staged = scratch / f"{table.name}.staged.parquet"
        try:
            columns = _stage_csv(path, table, staged) if fmt == ".csv" else _stage_jsonl(path, table, staged)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise ZombieScanError(f"{path}: cannot be read as gzip-compressed {FORMAT_NAMES[fmt]}: {_first_line(exc)}") from None
        source = f"read_parquet({literal(str(staged))})"
    view = f"raw_{table.name}"
    try:
        con.execute(f"CREATE TEMP VIEW {view} AS SELECT * FROM {source}")
        rows = con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
    except duckdb.Error as exc:
        raise ZombieScanError(f"{path}: cannot be read as {FORMAT_NAMES[fmt]}: {_first_line(exc)}") from None
    if rows == 0:
        raise ZombieScanError(f"{path}: file has no rows; expected at least one {table.name} row")
    return columns, rows


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def source_types(con: duckdb.DuckDBPyConnection, table: Table) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE raw_{table.name}").fetchall()}


def checked_conversion(col: Column, source_type: str, src: str) -> str:
    """`conversion` for a column whose every value is known to convert (check_in_place counted no
    failure): an id is then its text unchanged, so the id test (no blank ends, not empty) is left out."""
    if col.name in ID_COLUMNS and col.dtype == "string" and col.allowed is None:
        return src if source_type == "VARCHAR" else f"{src}::VARCHAR"
    return conversion(col, source_type, src)[0]


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
            if not (text or source_type in INT_TYPES):
                return "NULL", True  # a float or boolean id is a broken export, not an id
            value = f"{src}::VARCHAR"
            # no blank first or last character: RE2's \\s, [\\t\\n\\f\\r ], by code point (a third of the regexp's cost)
            blank = "(9, 10, 12, 13, 32)"
            return (
                f"CASE WHEN {value} <> '' AND ascii({value}) NOT IN {blank} AND ascii(({value})[-1]) NOT IN {blank} THEN {value} END",
                True,
            )
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
    if col.dtype == "number":
        if source_type in INT_TYPES or source_type in FLOAT_TYPES or source_type.startswith("DECIMAL"):
            return f"CASE WHEN isfinite({src}::DOUBLE) THEN {src}::DOUBLE END", source_type in FLOAT_TYPES
        if text:  # decimal notation only: no 'nan', 'inf', hex or 1_000
            number = "[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?"
            return f"CASE WHEN regexp_full_match(trim({src}), '{number}') THEN TRY_CAST(trim({src}) AS DOUBLE) END", True
        return "NULL", True
    if col.dtype == "bool":
        if source_type == "BOOLEAN":
            return src, False
        if source_type in INT_TYPES or source_type in FLOAT_TYPES:
            return f"CASE WHEN {src} = 1 THEN true WHEN {src} = 0 THEN false END", True
        if text:
            cases = " ".join(f"WHEN {literal(word)} THEN {str(value).lower()}" for word, value in BOOL_WORDS.items())
            return f"CASE lower(trim({src})) {cases} END", True
        return "NULL", True
    if col.dtype == "timestamp":
        if source_type.startswith("TIMESTAMP") or source_type == "DATE":
            return f"{src}::TIMESTAMPTZ", False
        if text:
            # Only dates: DuckDB would also read words such as 'epoch' and 'infinity'.
            return f"CASE WHEN regexp_matches(trim({src}), '^[0-9]{{4}}-') THEN TRY_CAST(trim({src}) AS TIMESTAMPTZ) END", True
        return "NULL", True  # epoch numbers: the unit is ambiguous, so the adapter must convert
    raise AssertionError(f"no conversion for {col.dtype}")
