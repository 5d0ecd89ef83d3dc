"""A warehouse: where the ingested contract tables live, and how every reader opens it.

A warehouse is either a DuckDB file (a path ending in `.duckdb`: one file to hand around, with
keys and optional indexes) or a folder of Parquet files, one per table, each sorted (any other
path). DuckDB never writes the same file twice (a random id in its header, unused bytes in
its string blocks), so the folder is what `dvc repro` tracks: the same input gives the same
bytes. `connect` opens either kind the same way; `warehouse_output` builds either kind whole
(pipeline.ingest and the dataset adapter write through it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from pipeline.db import connect as db_connect
from pipeline.db import literal, quote
from pipeline.errors import ZombieScanError
from pipeline.io import atomic_path


def _is_duckdb_file(path: Path) -> bool:
    """DuckDB database files carry the magic bytes 'DUCK' at offset 8."""
    with path.open("rb") as fh:
        return fh.read(12)[8:12] == b"DUCK"


def is_folder_warehouse(db: Path | str) -> bool:
    """A warehouse path that does not end in `.duckdb` names a folder of Parquet tables."""
    return Path(db).suffix != ".duckdb"


def _is_parquet_warehouse(path: Path) -> bool:
    """A folder an earlier ingest wrote: Parquet tables, accounts among them, nothing else."""
    names = [p.name for p in path.iterdir()]
    return "accounts.parquet" in names and all(n.endswith(".parquet") for n in names)


def warehouse_exists(db: Path | str) -> bool:
    db = Path(db)
    return (db / "accounts.parquet").is_file() if is_folder_warehouse(db) else db.is_file()


def attach(con: duckdb.DuckDBPyConnection, db: Path | str, alias: str) -> None:
    """Show the warehouse's tables in `con` as `<alias>.<table>` (read-only).

    Raises:
        ZombieScanError: there is no warehouse at `db`, or the file is not a DuckDB database.
    """
    if not warehouse_exists(db):
        raise ZombieScanError(f"{db}: warehouse not found; build it with `zombiescan ingest` or `dvc repro`")
    if not is_folder_warehouse(db):
        if not _is_duckdb_file(Path(db)):
            raise ZombieScanError(f"{db}: is not a DuckDB database (no DuckDB header); give a warehouse written by `zombiescan ingest`")
        try:
            con.execute("ATTACH ? AS " + quote(alias) + " (READ_ONLY)", [str(db)])
        except duckdb.Error as exc:
            raise ZombieScanError(f"{db}: cannot open it as a DuckDB warehouse ({str(exc).splitlines()[0]})") from None
        return
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(alias)}")
    for path in sorted(Path(db).glob("*.parquet")):
        # a view cannot take a bound parameter: the path goes in as an escaped literal
        con.execute(f"CREATE VIEW {quote(alias)}.{quote(path.stem)} AS SELECT * FROM read_parquet({literal(str(path.resolve()))})")


def connect(db: Path | str) -> duckdb.DuckDBPyConnection:
    """Open a warehouse (a DuckDB file or a Parquet folder) for reading, with timestamps shown in
    UTC (what the contract stores); its tables are visible by their names.

    Raises:
        ZombieScanError: if there is no warehouse at `db` (run `zombiescan ingest` or `dvc repro`
            first), or the file is not one.
    """
    con = db_connect()
    try:
        attach(con, db, "wh")
        con.execute("USE wh")
    except BaseException:
        con.close()
        raise
    return con


@contextlib.contextmanager
def warehouse_output(db: Path | str) -> Iterator[Path]:
    """Yield a DuckDB file to build; on success it becomes the warehouse at `db`, whole.

    For a `.duckdb` path the file itself is renamed into place (replacing only an earlier DuckDB
    file). For a folder, every table is written as `<table>.parquet`, rows sorted, and the folder
    is swapped in (replacing only an earlier Parquet warehouse).
    """
    if not is_folder_warehouse(db):
        with atomic_path(db, replaceable_file=_is_duckdb_file) as tmp:
            yield tmp
        return
    with atomic_path(db, replaceable_dir=_is_parquet_warehouse) as folder:
        build = folder.parent / "build.duckdb"
        yield build
        folder.mkdir()
        con = db_connect(build)
        try:
            for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1").fetchall():
                # the wall-clock time of the load would make every ingest's bytes differ
                cols = "* EXCLUDE (loaded_at)" if name == "ingest_log" else "*"
                con.execute(
                    f"COPY (SELECT {cols} FROM {quote(name)} ORDER BY ALL) TO ? (FORMAT parquet, COMPRESSION zstd)",
                    [str(folder / f"{name}.parquet")],
                )
        finally:
            con.close()


def read_dataset_info(con: duckdb.DuckDBPyConnection, schema: str = "") -> dict[str, Any] | None:
    """The dataset_info of a warehouse built from a dataset spec; None for any other warehouse."""
    prefix = f"{quote(schema)}." if schema else ""
    try:
        rows = con.execute(f"SELECT info FROM {prefix}dataset_info").fetchall()
    except duckdb.CatalogException:
        return None
    return json.loads(rows[0][0]) if rows else None
