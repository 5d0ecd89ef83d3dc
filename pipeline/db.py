"""One way to open DuckDB, so every connection behaves alike.

Timestamps in UTC (what the contract stores; a bare `duckdb.connect` shows the machine's zone);
an in-memory connection spills to this process's scratch folder (removed at exit, or by the next
run if this one is killed) instead of `.tmp/` in whatever folder we run from; every connection
is registered to be interrupted at once on Ctrl-C or SIGTERM (pipeline/interrupt.py). A file
database keeps DuckDB's own spill folder beside it, on the disk the caller chose. DuckDB draws no
progress bar: it draws on stdout, where `zombiescan score` writes its JSON summary for scripts to
read (a million accounts gave ~11 KB of bars in front of it); the commands say their steps on stderr.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipeline.errors import ZombieScanError
from pipeline.interrupt import track
from pipeline.io import process_scratch

MEMORY = ":memory:"


def connect(database: Path | str = MEMORY, *, read_only: bool = False, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up as above; `memory_limit` (e.g. "5GB") caps it, past which it spills."""
    con = track(duckdb.connect(str(database), read_only=read_only))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute("SET enable_progress_bar_print = false")  # also when a caller sets progress_bar_time, which turns the bar on
        if str(database) == MEMORY:
            con.execute("SET temp_directory = ?", [str(process_scratch())])
        if memory_limit:
            set_memory_limit(con, memory_limit)
    except BaseException:
        con.close()
        raise
    return con


def quote(name: str) -> str:
    """An SQL identifier, quoted (a double quote inside is doubled)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string constant written by the code (a class name, a kind), as an SQL literal. Values that
    come from users or data are bound as parameters instead, never spliced in."""
    return "'" + text.replace("'", "''") + "'"


def set_memory_limit(con: duckdb.DuckDBPyConnection, value: str, option: str = "memory limit") -> None:
    """SET memory_limit, or a message that names the option and says what a size looks like."""
    try:
        con.execute("SET memory_limit = ?", [value])
    except duckdb.Error:
        raise ZombieScanError(f"{option} {value!r}: not a size; expected e.g. 5GB, 800MB or 60% (of the machine's memory)") from None


def check_memory_limit(value: str, option: str = "--memory-limit") -> None:
    """Fail now, not after minutes of work, on a size DuckDB cannot read."""
    con = duckdb.connect()
    try:
        set_memory_limit(con, value, option)
    finally:
        con.close()
