"""Validate a contract folder and load it into a warehouse.

All checks run as DuckDB SQL over the staged files (pipeline.ingest.read puts each file in a
staging table), so validating and loading 20M engagements never touches a Python loop. The
warehouse is built under a temporary name and renamed into place at the end
(pipeline.warehouse.warehouse_output): a failed ingest leaves the previous warehouse (if any)
untouched.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from pipeline.contract import EXPECTED, Column, Table, file_format, find_table_files, table_by_name, tables
from pipeline.db import connect as db_connect
from pipeline.db import literal, quote
from pipeline.errors import ContractError, ZombieScanError
from pipeline.ingest import read as staging
from pipeline.warehouse import warehouse_output

log = logging.getLogger(__name__)

MAX_EXAMPLES = 5
INDEXABLE = ("actor_id", "target_id")
DEFAULT_MAX_REJECT_SHARE = 0.01
# check_in_place looks for duplicate engagements by sorting their 64-bit hashes in numpy up to this
# many rows (1.6 GB with the sorted copy); beyond, by DuckDB's GROUP BY, which spills past its limit
HASH_SORT_ROWS = 100_000_000
# check_in_place copies a table holding a longer text than this instead of showing it through a view
LONG_TEXT = 100_000


@dataclass
class TableReport:
    """What happened to one table on the way in."""

    file: str
    rows_read: int
    rows_rejected: int = 0
    duplicates_removed: int = 0
    rows_loaded: int = 0

    def summary(self) -> str:
        return (
            f"read {self.rows_read:,}, rejected {self.rows_rejected:,}, "
            f"duplicates removed {self.duplicates_removed:,}, loaded {self.rows_loaded:,}"
        )


@dataclass
class IngestReport:
    """Summary of an ingest, stored in the warehouse and written as the stage's metrics."""

    source: str
    db: str
    quarantine: bool
    tables: dict[str, TableReport] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _is_damaged_file(exc: duckdb.Error) -> bool:
    """DuckDB's errors for a file whose footer reads but whose data does not (a flipped byte, a
    cut-off page): plain `Error` ("Out of buffer"), invalid input (a decompression failure), I/O."""
    return type(exc) is duckdb.Error or isinstance(exc, duckdb.InvalidInputException | duckdb.IOException)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The single value a query returns (fetching every row, which DuckDB requires before the next query)."""
    return con.execute(sql).fetchall()[0][0]


def _typed_select(table: Table, types: dict[str, str], present: list[str]) -> tuple[list[str], list[str]]:
    """The select list converting raw_<table> to the contract's types: `_row`, every contract column,
    and for each column whose conversion can fail a boolean `_bad_<col>` marking the rows whose value
    could not be converted. Returns the list and those columns."""
    select = [f"{staging.ROW} AS _row"]
    checked = []
    for col in table.columns:
        if col.name not in present:
            select.append(f"CAST({col.default} AS {col.sql_type}) AS {quote(col.name)}")
            continue
        src = quote(col.name)
        expr, can_fail = staging.conversion(col, types[col.name], src)
        select.append(f"CAST({expr} AS {col.sql_type}) AS {quote(col.name)}")
        if can_fail:
            select.append(f"({src} IS NOT NULL AND ({expr}) IS NULL) AS {quote('_bad_' + col.name)}")
            checked.append(col.name)
    return select, checked


def _typed_table(con: duckdb.DuckDBPyConnection, table: Table, present: list[str]) -> list[str]:
    """Create temp table typed_<table>: `_row` plus every contract column converted to its type.

    Returns the columns whose conversion can fail; for each, a boolean `_bad_<col>` column marks
    the rows whose value could not be converted.
    """
    select, checked = _typed_select(table, staging.source_types(con, table), present)
    # Engagements carry a 64-bit hash of the converted row, computed once, for deduplication.
    outer = f"*, hash({', '.join(quote(c) for c in table.column_names)}) AS _hash" if table.name == "engagements" else "*"
    con.execute(f"CREATE TEMP TABLE typed_{table.name} AS SELECT {outer} FROM (SELECT {', '.join(select)} FROM raw_{table.name})")
    return checked


def _expected(col: Column) -> str:
    if col.allowed is not None:
        return f"one of {', '.join(col.allowed)}"
    if col.name in staging.ID_COLUMNS:
        return "an id (text without leading or trailing spaces)"
    return EXPECTED[col.dtype]


@dataclass(frozen=True)
class _Check:
    column: str
    expected: str
    where: str  # predicate over the typed table `t` (and any joins in `join`)
    value: str  # SQL expression shown as the offending value
    join: str = ""
    # A consequence of another row's problem (e.g. the actor's account row was rejected). It
    # is only reported through the rejects table, since fixing the cause fixes it.
    cascade: bool = False
    # The same rule for the bulk check (check_in_place), as a predicate over `t` LEFT JOIN the
    # accepted accounts `a`: None, `where` as it is; "", not counted there (a key is checked by a
    # GROUP BY of its own, and a cascade cannot happen when the table it follows from is clean).
    bulk: str | None = None


def _row_checks(table: Table, checked: list[str], loaded: set[str]) -> list[_Check]:
    """Every row-level rule of the contract for `table`, as SQL predicates."""
    checks: list[_Check] = []
    for name in checked:
        checks.append(_Check(name, _expected(table.column(name)), f"t.{quote('_bad_' + name)}", f"r.{quote(name)}::VARCHAR"))
    for col in table.columns:
        bad_flag = f"t.{quote('_bad_' + col.name)}" if col.name in checked else "false"
        c = f"t.{quote(col.name)}"
        if not col.nullable:
            checks.append(_Check(col.name, f"a value ({EXPECTED[col.dtype]}), not empty", f"{c} IS NULL AND NOT {bad_flag}", "NULL"))
        if col.minimum is not None:
            checks.append(_Check(col.name, f"an integer >= {col.minimum}", f"{c} < {col.minimum}", f"{c}::VARCHAR"))
        if col.dtype == "timestamp":
            checks.append(_Check(col.name, "a timestamp not in the future (now is $now)", f"{c} > $now", f"{c}::VARCHAR"))
            checks.append(
                _Check(
                    col.name, "a timestamp on or after 1970-01-01", f"NOT isfinite({c}) OR {c} < TIMESTAMPTZ '1970-01-01'", f"{c}::VARCHAR"
                )
            )
    if table.key:
        key = ", ".join(f"t.{quote(k)}" for k in table.key)
        shown = " || '/' || ".join(f"t.{quote(k)}::VARCHAR" for k in table.key)
        checks.append(
            _Check(
                "/".join(table.key),
                f"unique {'/'.join(table.key)} (each value once)",
                f"t._row IN (SELECT _row FROM (SELECT t._row, row_number() OVER (PARTITION BY {key} ORDER BY t._row) AS n "
                f"FROM typed_{table.name} t WHERE {' AND '.join(f't.{quote(k)} IS NOT NULL' for k in table.key)}) WHERE n > 1)",
                shown,
                bulk="",
            )
        )
    for ref in ("actor_id",) if table.name == "engagements" else ("account_id",) if table.name == "labels" else ():
        if "accounts" not in loaded:
            break
        checks.append(
            _Check(
                ref,
                f"an {ref} present in accounts",
                f"t.{ref} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM typed_accounts k WHERE k.account_id = t.{ref})",
                f"t.{ref}",
                bulk=f"t.{ref} IS NOT NULL AND a.account_id IS NULL",
            )
        )
        checks.append(
            _Check(
                ref,
                f"an {ref} whose accounts row passed validation",
                f"a.account_id IS NULL AND EXISTS (SELECT 1 FROM typed_accounts k WHERE k.account_id = t.{ref})",
                f"t.{ref}",
                f"LEFT JOIN accepted_accounts a ON a.account_id = t.{ref}",
                cascade=True,
                bulk="",
            )
        )
    if table.name == "engagements" and "accounts" in loaded:
        checks.append(
            _Check(
                "ts",
                "a timestamp not before the actor's account was created",
                "t.ts < a.created_at",
                "t.ts::VARCHAR || ' < created_at ' || a.created_at::VARCHAR",
                "JOIN accepted_accounts a ON a.account_id = t.actor_id",
            )
        )
    if table.name == "campaigns" and "starts_at" in table.column_names:
        checks.append(_Check("ends_at", "ends_at not before starts_at", "t.ends_at < t.starts_at", "t.ends_at::VARCHAR"))
    return checks


def _find_problems(con: duckdb.DuckDBPyConnection, table: Table, checks: list[_Check], now: datetime) -> None:
    """Insert one row per (row, rule broken) into temp table `problems`."""
    parts = []
    for i, ch in enumerate(checks):
        parts.append(
            f"SELECT {literal(table.name)} AS tbl, t._row, {i} AS check_id, {ch.value} AS value "
            f"FROM typed_{table.name} t JOIN raw_{table.name} r ON r.{staging.ROW} = t._row {ch.join} WHERE {ch.where}"
            if "r." in ch.value
            else f"SELECT {literal(table.name)} AS tbl, t._row, {i} AS check_id, {ch.value} AS value "
            f"FROM typed_{table.name} t {ch.join} WHERE {ch.where}"
        )
    if parts:
        sql = f"INSERT INTO problems {' UNION ALL '.join(parts)}"
        con.execute(sql, {"now": now} if "$now" in sql else None)


def _describe_problems(
    con: duckdb.DuckDBPyConnection, table: Table, path: Path, checks: list[_Check], now: datetime, *, cascades: bool = False
) -> list[str]:
    """Format this table's problems: file, column, first rows, what was expected, a bad value.

    Knock-on problems (`cascade` checks) are left out unless `cascades`: their cause is reported
    on its own table.
    """
    rows = con.execute(
        f"""
        SELECT check_id, count(*) AS n, list(_row ORDER BY _row)[1:{MAX_EXAMPLES}] AS rows,
               arg_min(value, _row) AS first_value
        FROM problems WHERE tbl = ? GROUP BY check_id ORDER BY min(_row), check_id
        """,
        [table.name],
    ).fetchall()
    out = []
    for check_id, n, first_rows, value in rows:
        ch = checks[check_id]
        if ch.cascade and not cascades:
            continue
        where = ", ".join(str(r) for r in first_rows)
        more = f" (and {n - len(first_rows)} more)" if n > len(first_rows) else ""
        noun = "row" if n == 1 else "rows"
        expected = ch.expected.replace("$now", now.isoformat())
        found = "an empty value" if value is None else repr(value)
        out.append(f"{path}: column '{ch.column}', {noun} {where}{more}: expected {expected}; found {found} at row {first_rows[0]}")
    return out


def _missing_columns(table: Table, path: Path, present: list[str]) -> list[str]:
    missing = [c.name for c in table.columns if c.required and c.name not in present]
    if not missing:
        return []
    expected = ", ".join(c.name for c in table.columns if c.required)
    return [
        f"{path}: column '{name}' missing (row 0, the header): expected columns {expected}; found {', '.join(present)}" for name in missing
    ]


def _create_final_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the warehouse tables with their types (keys are added after the bulk load)."""
    for table in tables():
        cols = [f"{quote(c.name)} {c.sql_type}{'' if c.nullable else ' NOT NULL'}" for c in table.columns]
        con.execute(f"CREATE TABLE {table.name} ({', '.join(cols)})")
    con.execute(
        "CREATE TABLE rejects (tbl VARCHAR NOT NULL, file VARCHAR NOT NULL, row BIGINT NOT NULL, reasons VARCHAR[] NOT NULL, record JSON)"
    )
    con.execute("CREATE TABLE ingest_log (loaded_at TIMESTAMPTZ, source VARCHAR, report JSON)")


def ingest(
    source: Path | str,
    db: Path | str,
    *,
    quarantine: bool = False,
    max_reject_share: float = DEFAULT_MAX_REJECT_SHARE,
    now: datetime | None = None,
    index_engagements: tuple[str, ...] | list[str] = (),
    require: tuple[str, ...] | None = None,
    memory_limit: str | None = None,
) -> IngestReport:
    """Validate the contract folder `source` and load it into the DuckDB file `db`.

    Args:
        source: Folder of contract tables (`accounts.parquet|csv|jsonl`, `engagements...`, ...).
        db: Warehouse file to (re)create; replaced only when the whole ingest succeeds.
        quarantine: Move bad rows into table `rejects` with their reasons instead of failing.
        max_reject_share: With `quarantine`, still fail if any table loses more than this share.
        now: The present, for the "not in the future" check (default: the current UTC time).
        index_engagements: Engagement columns (actor_id, target_id) to give an ART index.
        require: Tables the folder must hold (default: accounts and engagements). A profile-only
            dataset requires only accounts; its engagements table is then empty.
        memory_limit: DuckDB's memory limit (e.g. "2GB"); past it DuckDB spills to disk. Default: DuckDB's (80% of RAM).

    Returns:
        Counts per table: rows read, rejected, duplicate engagements removed, loaded.

    Raises:
        ContractError: the input breaks the contract (every problem listed); nothing is written.
        ZombieScanError: a file is missing, unreadable or empty; nothing is written.
    """
    source, db = Path(source), Path(db)
    now = now or datetime.now(UTC)
    if not isinstance(quarantine, bool):
        raise ZombieScanError(f"ingest: quarantine = {quarantine!r}: expected true or false")
    if isinstance(max_reject_share, bool) or not isinstance(max_reject_share, int | float) or not 0 <= max_reject_share <= 1:
        raise ZombieScanError(f"ingest: max_reject_share = {max_reject_share!r}: expected a share between 0 and 1")
    if isinstance(index_engagements, str):
        index_engagements = [index_engagements]
    for col in index_engagements:
        if col not in INDEXABLE:
            raise ZombieScanError(f"ingest: index_engagements: cannot index '{col}': expected some of {', '.join(INDEXABLE)}")
    files = find_table_files(source, require)
    report = IngestReport(source=str(source), db=str(db), quarantine=quarantine)
    with warehouse_output(db) as tmp_db:
        con = db_connect(tmp_db, memory_limit=memory_limit)
        try:
            # Row numbers travel in an explicit column, so DuckDB may reorder rows: faster loads.
            con.execute("SET preserve_insertion_order = false")
            con.execute("CREATE TEMP TABLE problems (tbl VARCHAR, _row BIGINT, check_id INTEGER, value VARCHAR)")
            fatal: list[str] = []
            row_problems: list[str] = []
            loaded: set[str] = set()
            all_checks: dict[str, list[_Check]] = {}
            for table in tables():
                if table.name not in files:
                    continue
                path = files[table.name]
                present, rows_read = staging.stage(con, table, path, tmp_db.parent)
                report.tables[table.name] = TableReport(file=str(path), rows_read=rows_read)
                missing = _missing_columns(table, path, present)
                if missing:
                    fatal += missing
                    continue
                try:  # the first read of every value: a damaged Parquet data page shows only now
                    checked = _typed_table(con, table, present)
                except duckdb.Error as exc:
                    if not _is_damaged_file(exc):
                        raise
                    raise ZombieScanError(
                        f"{path}: cannot be read: the file is damaged ({str(exc).splitlines()[0]}); export it again"
                    ) from None
                checks = _row_checks(table, checked, loaded)
                all_checks[table.name] = checks
                _find_problems(con, table, checks, now)
                row_problems += _describe_problems(con, table, path, checks, now)
                has_problems = _scalar(con, f"SELECT count(*) FROM problems WHERE tbl = {literal(table.name)}") > 0
                con.execute(
                    f"CREATE TEMP TABLE accepted_{table.name} AS SELECT * FROM typed_{table.name} t "
                    f"WHERE NOT EXISTS (SELECT 1 FROM problems p WHERE p.tbl = {literal(table.name)} AND p._row = t._row)"
                    if has_problems
                    else f"CREATE TEMP VIEW accepted_{table.name} AS SELECT * FROM typed_{table.name}"
                )
                loaded.add(table.name)
            if fatal:
                raise ContractError(fatal + row_problems)
            if row_problems and not quarantine:
                raise ContractError(row_problems)
            if quarantine:
                _check_reject_share(con, report, files, all_checks, max_reject_share, now)
            _create_final_tables(con)
            _load(con, report, files, all_checks, now)
            _create_indexes(con, list(index_engagements))
            con.execute("INSERT INTO ingest_log VALUES (?, ?, ?)", [datetime.now(UTC), str(source), report.to_json()])
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return report


def check_in_place(
    source: Path | str,
    db: Path | str,
    *,
    now: datetime | None = None,
    require: tuple[str, ...] | None = None,
    memory_limit: str | None = None,
) -> IngestReport | None:
    """Check a folder of Parquet contract files where they are, and if every row passes, write `db`
    as a warehouse of views over them: what `ingest` would load, with nothing copied.

    The rules are `ingest`'s, counted in bulk: one scan per table (the accounts joined in for the
    tables that reference them; for the engagements, grouped by a hash of each row in the same
    scan to find exact duplicates) and a GROUP BY per key. Each view converts its file's columns
    the way `ingest` does.

    Returns None, with nothing written, when the folder holds a file that is not Parquet, a column
    is missing, any row breaks a rule, an engagement is repeated exactly (ingest removes the copy),
    or a file cannot be read: `ingest` then names each problem by file, column and row (or loads
    the rows it drops duplicates from). The views read the files on every query: they must stay
    in place, unchanged, while the warehouse is used (a scratch warehouse for one command).
    """
    source, db = Path(source), Path(db)
    now = now or datetime.now(UTC)
    files = find_table_files(source, require)
    if any(file_format(path) != ".parquet" for path in files.values()):
        return None
    report = IngestReport(source=str(source), db=str(db), quarantine=False)
    views: dict[str, str] = {}
    long_text: set[str] = set()
    con = db_connect(memory_limit=memory_limit)
    try:
        loaded: set[str] = set()
        for table in tables():
            if table.name not in files:
                continue
            path = files[table.name]
            present, rows = staging.stage(con, table, path, source)
            if _missing_columns(table, path, present):
                return None
            types = staging.source_types(con, table)
            select, checked = _typed_select(table, types, present)
            # each column as the warehouse view shows it: the conversion, without the tests it passed
            columns = [
                f"CAST({staging.checked_conversion(c, types[c.name], quote(c.name)) if c.name in present else c.default} AS {c.sql_type})"
                for c in table.columns
            ]
            dedup = table.name == "engagements"  # ingest keeps one copy of an exact duplicate: left to it
            if dedup:  # a row's hash as the view shows it (when a rule fails, the hash is moot)
                select.append(f"hash({', '.join(columns)}) AS _hash")
            con.execute(f"CREATE TEMP VIEW typed_{table.name} AS SELECT {', '.join(select)} FROM raw_{table.name}")
            checks = _row_checks(table, checked, loaded)
            texts = [quote(c.name) for c in table.columns if c.dtype == "string" and c.name in present]
            problems, long = _bulk_problems(con, table, checks, now, rows=rows, dedup=dedup, texts=texts)
            if problems:
                return None
            if long:
                long_text.add(table.name)
            con.execute(f"CREATE TEMP VIEW accepted_{table.name} AS SELECT * FROM typed_{table.name}")
            named = ", ".join(f"{expr} AS {quote(c.name)}" for expr, c in zip(columns, table.columns, strict=True))
            # the path checked (in `ingest_inputs`, a link in the scratch folder, which lives as long as this
            # warehouse: no user-chosen characters that read_parquet would take for a glob)
            source_file = literal(str(path.absolute()))
            views[table.name] = f"SELECT {named} FROM read_parquet({source_file}, binary_as_string = true, hive_partitioning = false)"
            report.tables[table.name] = TableReport(file=str(path), rows_read=rows, rows_loaded=rows)
            loaded.add(table.name)
    except duckdb.Error as exc:
        if _is_damaged_file(exc):
            return None
        raise
    finally:
        con.close()
    with warehouse_output(db) as tmp_db:
        con = db_connect(tmp_db)
        try:
            _create_final_tables(con)
            for name, view in views.items():
                con.execute(f"DROP TABLE {name}")
                # A table holding a text of more than LONG_TEXT characters is copied instead: read
                # through a view, a 2M-character username made the profile features' per-character
                # entropy run for minutes (found by tests/test_faults.py "a huge id"; cause not found)
                kind = "TABLE" if name in long_text else "VIEW"
                con.execute(f"CREATE {kind} {name} AS {view}")
            con.execute("INSERT INTO ingest_log VALUES (?, ?, ?)", [datetime.now(UTC), str(source), report.to_json()])
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return report


def _bulk_problems(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    checks: list[_Check],
    now: datetime,
    *,
    rows: int,
    dedup: bool = False,
    texts: list[str] | None = None,
) -> tuple[bool, bool]:
    """Whether any row of typed_<table> breaks one of `checks` (counted in one scan, the rows' accepted
    accounts LEFT JOINed as `a` where a rule looks at them; each key in a GROUP BY of its own), or,
    with `dedup`, repeats another exactly (its column `_hash`: up to HASH_SORT_ROWS rows the scan's
    hashes are sorted in numpy, beyond that grouped in the same scan); and, from the same scan, whether
    a value of the `texts` columns (quoted names) is longer than LONG_TEXT characters."""
    counted = [ch.where if ch.bulk is None else ch.bulk for ch in checks if ch.bulk != ""]
    joined = any(ch.join or (ch.bulk and "a." in ch.bulk) for ch in checks if ch.bulk != "")
    ref = "actor_id" if table.name == "engagements" else "account_id"
    for ch in checks:  # the one join the bulk scan makes: a rule joining anything else needs its own bulk form
        if ch.bulk != "" and ch.join and ch.join.removeprefix("LEFT ") != f"JOIN accepted_accounts a ON a.account_id = t.{ref}":
            raise AssertionError(f"check_in_place: rule on {table.name}.{ch.column} joins {ch.join!r}; give it a bulk form")
    join = f"LEFT JOIN accepted_accounts a ON a.account_id = t.{ref}" if joined else ""
    # a rule's predicate is NULL on a NULL value: only a true one is a problem
    bad = f"coalesce({' OR '.join(f'({w})' for w in counted) or 'false'}, false)"
    long = f"coalesce(greatest({', '.join(f'length(t.{c})' for c in texts)}) > {LONG_TEXT}, false)" if texts else "false"
    params = {"now": now} if "$now" in bad else None
    if dedup and rows <= HASH_SORT_ROWS:
        # numpy sorts 24M hashes in 0.7 s; DuckDB's GROUP BY of as many distinct keys takes 4 s. A row's
        # code says in one byte whether it breaks a rule (2) or holds a long text (1).
        code = f"(CASE WHEN {bad} THEN 2 WHEN {long} THEN 1 ELSE 0 END)::UTINYINT"
        got = con.execute(f"SELECT t._hash AS h, {code} AS code FROM typed_{table.name} t {join}", params).fetchnumpy()
        hashes, codes = np.asarray(got.pop("h")), np.asarray(got.pop("code"))
        del got
        if (codes == 2).any():
            return True, False
        long_rows = bool((codes == 1).any())
        del codes
        hashes.sort()  # in place: 8 bytes a row, no copy
        return bool((hashes[1:] == hashes[:-1]).any()), long_rows
    if dedup:  # past what numpy holds comfortably: DuckDB's GROUP BY, which spills to disk past its memory limit
        sql = (
            "SELECT coalesce(sum(bad), 0) + count(*) FILTER (WHERE n > 1), coalesce(bool_or(long), false) FROM "
            f"(SELECT count(*) AS n, sum({bad}::INTEGER) AS bad, bool_or({long}) AS long "
            f"FROM typed_{table.name} t {join} GROUP BY t._hash)"
        )
    else:
        # every column's value is read (hashed), not only those a rule looks at: a damaged data page
        # in any column fails here, before a view would fail in the middle of the features
        every = ", ".join(f"t.{quote(c)}" for c in table.column_names)
        sql = (
            f"SELECT count(*) FILTER (WHERE {bad}), coalesce(bool_or({long}), false), bit_xor(hash({every})) "
            f"FROM typed_{table.name} t {join}"
        )
    problems, long_rows = con.execute(sql, params).fetchall()[0][:2]
    if problems:
        return True, False
    if table.key:
        key = ", ".join(quote(k) for k in table.key)
        not_null = " AND ".join(f"{quote(k)} IS NOT NULL" for k in table.key)
        sql = f"SELECT count(*) FROM (SELECT 1 FROM typed_{table.name} WHERE {not_null} GROUP BY {key} HAVING count(*) > 1)"
        if _scalar(con, sql):
            return True, False
    return False, bool(long_rows)


def _check_reject_share(
    con: duckdb.DuckDBPyConnection,
    report: IngestReport,
    files: dict[str, Path],
    all_checks: dict[str, list[_Check]],
    max_share: float,
    now: datetime,
) -> None:
    over = []
    for name, counts in con.execute("SELECT tbl, count(DISTINCT _row) FROM problems GROUP BY tbl").fetchall():
        tr = report.tables[name]
        tr.rows_rejected = counts
        if counts / tr.rows_read > max_share:
            over.append(
                f"{files[name]}: {counts} of {tr.rows_read} rows rejected ({counts / tr.rows_read:.2%}), "
                f"above the limit of {max_share:.2%} (ingest.max_reject_share):"
            )
            table = table_by_name(name)
            over += [f"    {p}" for p in _describe_problems(con, table, files[name], all_checks[name], now, cascades=True)]
    if over:
        raise ContractError(over)


def _load(
    con: duckdb.DuckDBPyConnection,
    report: IngestReport,
    files: dict[str, Path],
    all_checks: dict[str, list[_Check]],
    now: datetime,
) -> None:
    """Copy accepted rows into the final tables, rejected rows into `rejects`."""
    for name, tr in report.tables.items():
        table = table_by_name(name)
        cols = ", ".join(quote(c) for c in table.column_names)
        if name == "engagements":
            _insert_deduplicated(con, cols)
        else:
            con.execute(f"INSERT INTO {name} SELECT {cols} FROM accepted_{name}")
        if table.key:
            # One bulk index build after the load is ~4x faster than checking the key per insert.
            con.execute(f"ALTER TABLE {name} ADD PRIMARY KEY ({', '.join(quote(k) for k in table.key)})")
        tr.rows_loaded = _scalar(con, f"SELECT count(*) FROM {name}")
        tr.duplicates_removed = _scalar(con, f"SELECT count(*) FROM accepted_{name}") - tr.rows_loaded
        if tr.duplicates_removed:
            log.info("%s: removed %d exact duplicate rows", files[name], tr.duplicates_removed)
    checks = [(name, i, ch) for name, chs in all_checks.items() for i, ch in enumerate(chs)]
    if checks:
        con.execute("CREATE TEMP TABLE check_names (tbl VARCHAR, check_id INTEGER, reason VARCHAR)")
        con.executemany(
            "INSERT INTO check_names VALUES (?, ?, ?)",
            [(n, i, f"{ch.column}: expected {ch.expected.replace('$now', now.isoformat())}") for n, i, ch in checks],
        )
    for name in report.tables:
        raw_columns = [c for c in staging.source_types(con, table_by_name(name)) if c != staging.ROW]
        record = "struct_pack(" + ", ".join(f"{quote(c)} := r.{quote(c)}" for c in raw_columns) + ")"
        con.execute(
            f"""
            INSERT INTO rejects
            SELECT p.tbl, ?, p._row,
                   list(c.reason || ' (found ' || coalesce(p.value, 'an empty value') || ')' ORDER BY p.check_id),
                   to_json(any_value({record}))
            FROM problems p JOIN check_names c USING (tbl, check_id) JOIN raw_{name} r ON r.{staging.ROW} = p._row
            WHERE p.tbl = ? GROUP BY p.tbl, p._row ORDER BY p._row
            """,
            [str(files[name]), name],
        )
    for reason, n in (
        con.execute(
            "SELECT c.reason, count(*) FROM problems p JOIN check_names c USING (tbl, check_id) GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        if checks
        else []
    ):
        report.reject_reasons[reason] = n


def _insert_deduplicated(con: duckdb.DuckDBPyConnection, cols: str) -> None:
    """Insert accepted engagements, keeping one copy of rows that are exact duplicates.

    A full DISTINCT over 20M+ rows costs a sort or a wide hash table. Grouping a 64-bit hash of
    each row is cheap and finds the few candidate duplicates; only those rows get the exact
    DISTINCT (so a hash collision can never drop a row that merely shares the hash).
    """
    con.execute("CREATE TEMP TABLE dup_hashes AS SELECT _hash FROM accepted_engagements GROUP BY _hash HAVING count(*) > 1")
    if _scalar(con, "SELECT count(*) FROM dup_hashes") == 0:
        con.execute(f"INSERT INTO engagements SELECT {cols} FROM accepted_engagements")
        return
    con.execute(
        f"INSERT INTO engagements SELECT {cols} FROM accepted_engagements WHERE _hash NOT IN (SELECT _hash FROM dup_hashes) "
        f"UNION ALL SELECT DISTINCT {cols} FROM accepted_engagements WHERE _hash IN (SELECT _hash FROM dup_hashes)"
    )


def _create_indexes(con: duckdb.DuckDBPyConnection, columns: list[str]) -> None:
    """Optional ART indexes on engagements (see docs/data-contract.md for their cost and benefit)."""
    for col in columns:
        con.execute(f"CREATE INDEX engagements_{col} ON engagements ({quote(col)})")
