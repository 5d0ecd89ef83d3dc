"""Data tests: every kind of bad input gets its own clear message, and nothing is written."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.errors import ContractError, ZombieScanError
from pipeline.ingest import ingest
from pipeline.warehouse import connect
from tests.conftest import NOW


def good_tables() -> dict[str, pl.DataFrame]:
    """A hand-made valid contract: 4 accounts, 6 engagements (row numbers are easy to reason about)."""
    accounts = pl.DataFrame(
        {
            "account_id": ["a1", "a2", "a3", "a4"],
            "created_at": ["2020-01-01T00:00:00Z", "2021-06-01T12:00:00Z", "2022-03-03T03:03:03Z", "2024-01-01T00:00:00Z"],
            "username": ["ann", "bob99", "x7f3k2l9", "dee"],
            "display_name": ["Ann", "Bob", None, "Dee"],
            "bio": ["hi", None, None, "runner"],
            "has_profile_photo": ["true", "true", "false", "true"],
            "is_verified": ["false", "false", "false", "true"],
            "followers_count": ["10", "3", "0", "12000"],
            "following_count": ["12", "40", "900", "80"],
            "posts_count": ["5", None, "0", "300"],
            "lang": ["en", "en", "pt", "de"],
            "location": ["Paris", None, None, "Berlin"],
            "url": [None, None, None, "https://dee.example"],
        }
    )
    engagements = pl.DataFrame(
        {
            "actor_id": ["a1", "a2", "a3", "a3", "a4", "a1"],
            "target_id": ["p1", "p1", "p1", "a4", "p2", "a2"],
            "target_type": ["page", "page", "page", "account", "post", "account"],
            "kind": ["like", "like", "like", "follow", "post", "follow"],
            "ts": [
                "2026-05-01T10:00:00Z",
                "2026-05-01T10:00:05Z",
                "2026-05-01T10:00:09Z",
                "2026-05-02T08:00:00Z",
                "2026-05-03T09:30:00+02:00",
                "2026-05-04T20:00:00Z",
            ],
        }
    )
    labels = pl.DataFrame(
        {"account_id": ["a1", "a2", "a3", "a4"], "is_zombie": [False, False, True, False], "is_like_farm": [False, True, True, False]}
    )
    return {"accounts": accounts, "engagements": engagements, "labels": labels}


def write(folder: Path, tables: dict[str, pl.DataFrame], fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "csv":
            df.write_csv(folder / f"{name}.csv")
        else:
            df.write_parquet(folder / f"{name}.parquet")
    return folder


def set_cell(df: pl.DataFrame, column: str, row: int, value: object) -> pl.DataFrame:
    """Return df with the value at 1-based data row `row` of `column` replaced."""
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == row - 1).then(pl.lit(value, dtype=df[column].dtype)).otherwise(pl.col(column)).alias(column)
    )


def test_good_tables_load(tmp_path: Path) -> None:
    report = ingest(write(tmp_path / "src", good_tables()), tmp_path / "w.duckdb", now=NOW)
    assert {n: t.rows_loaded for n, t in report.tables.items()} == {"accounts": 4, "engagements": 6, "labels": 4}


def _bad(edit: str) -> dict[str, pl.DataFrame]:
    t = good_tables()
    a, e = t["accounts"], t["engagements"]
    match edit:
        case "missing_column":
            t["accounts"] = a.drop("created_at")
        case "wrong_type_ts":
            t["engagements"] = set_cell(e, "ts", 3, "yesterday")
        case "wrong_type_bool":
            t["accounts"] = set_cell(a, "has_profile_photo", 2, "maybe")
        case "fractional_int":
            t["accounts"] = set_cell(a, "followers_count", 4, "12.5")
        case "negative_count":
            t["accounts"] = set_cell(a, "following_count", 1, "-3")
        case "null_id":
            t["engagements"] = set_cell(e, "actor_id", 5, None)
        case "bad_enum":
            t["engagements"] = set_cell(e, "kind", 2, "love")
        case "duplicate_id":
            t["accounts"] = pl.concat([a, a[1]])
        case "future_ts":
            t["engagements"] = set_cell(e, "ts", 6, "2030-01-01T00:00:00Z")
        case "future_created":
            t["accounts"] = set_cell(a, "created_at", 3, "2031-01-01T00:00:00Z")
        case "before_creation":
            t["engagements"] = set_cell(e, "ts", 5, "2023-12-31T00:00:00Z")
        case "unknown_actor":
            t["engagements"] = set_cell(e, "actor_id", 4, "ghost")
        case "unknown_label_account":
            t["labels"] = set_cell(t["labels"], "account_id", 2, "ghost")
    return t


BAD_INPUTS = [
    # edit, file, text that must appear in the message (column, row, expectation)
    ("missing_column", "accounts.csv", "column 'created_at' missing"),
    (
        "wrong_type_ts",
        "engagements.csv",
        "column 'ts', row 3: expected a UTC timestamp (ISO 8601, e.g. 2024-05-01T13:45:00Z); found 'yesterday'",
    ),
    ("wrong_type_bool", "accounts.csv", "column 'has_profile_photo', row 2: expected a boolean (true/false); found 'maybe'"),
    ("fractional_int", "accounts.csv", "column 'followers_count', row 4: expected an integer; found '12.5'"),
    ("negative_count", "accounts.csv", "column 'following_count', row 1: expected an integer >= 0; found '-3'"),
    ("null_id", "engagements.csv", "column 'actor_id', row 5: expected a value (a string), not empty"),
    ("bad_enum", "engagements.csv", "column 'kind', row 2: expected one of like, follow, share, comment, post, rate; found 'love'"),
    ("duplicate_id", "accounts.csv", "column 'account_id', row 5: expected unique account_id (each value once); found 'a2'"),
    ("future_ts", "engagements.csv", "column 'ts', row 6: expected a timestamp not in the future (now is 2026-11-27T00:00:00+00:00)"),
    ("future_created", "accounts.csv", "column 'created_at', row 3: expected a timestamp not in the future"),
    ("before_creation", "engagements.csv", "column 'ts', row 5: expected a timestamp not before the actor's account was created"),
    ("unknown_actor", "engagements.csv", "column 'actor_id', row 4: expected an actor_id present in accounts; found 'ghost'"),
    ("unknown_label_account", "labels.csv", "column 'account_id', row 2: expected an account_id present in accounts; found 'ghost'"),
]


@pytest.mark.parametrize(("edit", "file", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_named_and_nothing_is_written(tmp_path: Path, edit: str, file: str, message: str) -> None:
    src = write(tmp_path / "src", _bad(edit))
    db = tmp_path / "w.duckdb"
    with pytest.raises(ContractError) as info:
        ingest(src, db, now=NOW)
    text = str(info.value)
    assert f"{src / file}: {message}" in text
    assert len(info.value.problems) == 1, text
    assert list(tmp_path.iterdir()) == [src]  # no warehouse, no temporary left behind


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "engagements.csv: file is empty; expected a header row and at least one engagements row"),
        (b"actor_id,target_id,target_type,kind,ts\n", "engagements.csv: file has no rows"),
        (
            b'actor_id,target_id,target_type,kind,ts\na1,p1,page,like,"2026-01-01\n',
            r"engagements.csv: row 1 \(line 2\): cannot be parsed as CSV: unexpected end of data",
        ),
        (b"actor_id,target_id,target_type,kind,ts\na1,p1,page,like,2026-01-01\na1,p2,page\n", r"row 2 \(line 3\): expected 5 fields"),
        (
            b"actor_id,target_id,target_type,kind,ts\na1,p1,page,like,2026-01-01,extra\n",
            r"row 1 \(line 2\): expected 5 fields like the header, found 6",
        ),
        (b"actor_id,target_id,target_type,kind,ts\na1,p\xff1,page,like,2026-01-01\n", "engagements.csv: line 2: expected UTF-8 text"),
        (
            b"actor_id;target_id;target_type;kind;ts\na1;p1;page;like;2026-01-01\n",
            r"the header \(row 0\) is one column 'actor_id;target_id",
        ),
        (
            b"actor_id,target_id,kind,target_type,kind,ts\na1,p1,like,page,like,2026-01-01\n",
            r"column 'kind' appears twice in the header \(row 0\)",
        ),
    ],
    ids=["empty", "header_only", "unterminated_quote", "short_row", "long_row", "not_utf8", "semicolons", "duplicate_column"],
)
def test_broken_csv_structure(tmp_path: Path, content: bytes, message: str) -> None:
    src = write(tmp_path / "src", good_tables())
    (src / "engagements.csv").write_bytes(content)
    with pytest.raises(ZombieScanError, match=message):
        ingest(src, tmp_path / "w.duckdb", now=NOW)
    assert not (tmp_path / "w.duckdb").exists()


def test_broken_jsonl_line_is_named(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"accounts": good_tables()["accounts"]})
    (src / "engagements.jsonl").write_text('{"actor_id": "a1"}\n\n{"actor_id": "a2"\n')
    with pytest.raises(ZombieScanError, match=r"engagements.jsonl: row 2 \(line 3\): expected one JSON object per line"):
        ingest(src, tmp_path / "w.duckdb", now=NOW)


PARQUET_BAD = [
    # column, replacement values (row 2 is the bad one), message
    (
        "weight",
        pl.Series([1, None, 1, 1, 1, 1], dtype=pl.Int64),
        "column 'weight', row 2: expected a value (an integer), not empty; found an empty value",
    ),
    ("weight", pl.Series(["1", "", "1", "1", "1", "1"]), "column 'weight', row 2: expected an integer; found ''"),
    ("weight", pl.Series([1.0, 2.5, 1.0, 1.0, 1.0, 1.0]), "column 'weight', row 2: expected an integer; found '2.5'"),
    (
        "weight",
        pl.Series([1, 2**64 - 1, 1, 1, 1, 1], dtype=pl.UInt64),
        "column 'weight', row 2: expected an integer; found '18446744073709551615'",
    ),
    ("weight", pl.Series([True, True, True, True, True, True]), "column 'weight', rows 1, 2, 3, 4, 5 (and 1 more): expected an integer"),
    ("ts", pl.Series([1_700_000_000] * 6), "column 'ts', rows 1, 2, 3, 4, 5 (and 1 more): expected a UTC timestamp"),
    (
        "ts",
        pl.Series(["2026-05-01", "-infinity", "2026-05-01", "2026-05-01", "2026-05-01", "2026-05-01"]),
        "column 'ts', row 2: expected a UTC",
    ),
    (
        "ts",
        pl.Series(["2026-05-01", "epoch", "2026-05-01", "2026-05-01", "2026-05-01", "2026-05-01"]),
        "column 'ts', row 2: expected a UTC",
    ),
    (
        "ts",
        pl.Series(["2026-05-01", "1960-01-01", "2026-05-01", "2026-05-01", "2026-05-01", "2026-05-01"]),
        "column 'ts', row 2: expected a timestamp on or after 1970",
    ),
    (
        "ts",
        pl.Series([datetime(1960, 1, 1)] * 6),
        "column 'ts', rows 1, 2, 3, 4, 5 (and 1 more): expected a timestamp on or after 1970-01-01",
    ),
    (
        "actor_id",
        pl.Series(["a1", "a2\t", "a3", "a3", "a4", "a1"]),
        "column 'actor_id', row 2: expected an id (text without leading or trailing",
    ),
    ("target_id", pl.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), "column 'target_id', rows 1, 2, 3, 4, 5 (and 1 more): expected an id"),
    (
        "actor_id",
        pl.Series(["a1", " a2", "a3", "a3", "a4", "a1"]),
        "column 'actor_id', row 2: expected an id (text without leading or trailing spaces); found ' a2'",
    ),
    ("kind", pl.Series([{"x": 1}] * 6), "column 'kind', rows 1, 2, 3, 4, 5 (and 1 more): expected one of like, follow"),
]


@pytest.mark.parametrize(("column", "values", "message"), PARQUET_BAD, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(PARQUET_BAD)])
def test_bad_parquet_values_are_named(tmp_path: Path, column: str, values: pl.Series, message: str) -> None:
    t = good_tables()
    t["engagements"] = t["engagements"].with_columns(values.alias(column))
    src = write(tmp_path / "src", t, fmt="parquet")
    with pytest.raises(ContractError) as info:
        ingest(src, tmp_path / "w.duckdb", now=NOW)
    assert f"{src / 'engagements.parquet'}: {message}" in str(info.value)


@pytest.mark.parametrize(
    ("values", "loaded"),
    [
        (["true", "FALSE", " yes ", "n", "1", "0"], [True, False, True, False, True, False]),
        ([1, 0, 1, 0, 1, 0], [True, False, True, False, True, False]),
    ],
)
def test_boolean_spellings(tmp_path: Path, values: list[object], loaded: list[bool]) -> None:
    t = good_tables()
    t["accounts"] = t["accounts"].with_columns(has_profile_photo=pl.Series(values[:4]))
    db = tmp_path / "w.duckdb"
    ingest(write(tmp_path / "src", t, fmt="parquet"), db, now=NOW)
    got = [r[0] for r in connect(db).execute("SELECT has_profile_photo FROM accounts ORDER BY account_id").fetchall()]
    assert got == loaded[:4]


def test_a_parquet_bool_stored_as_2_is_refused(tmp_path: Path) -> None:
    t = good_tables()
    t["accounts"] = t["accounts"].with_columns(is_verified=pl.Series([0, 2, 1, 0]))
    with pytest.raises(ContractError, match=r"column 'is_verified', row 2: expected a boolean \(true/false\); found '2'"):
        ingest(write(tmp_path / "src", t, fmt="parquet"), tmp_path / "w.duckdb", now=NOW)


def test_broken_parquet(tmp_path: Path) -> None:
    src = write(tmp_path / "src", good_tables(), fmt="parquet")
    (src / "accounts.parquet").write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(ZombieScanError, match=r"accounts.parquet: cannot be read as Parquet"):
        ingest(src, tmp_path / "w.duckdb", now=NOW)


def test_missing_required_table_and_double_format(tmp_path: Path) -> None:
    src = write(tmp_path / "src", good_tables())
    (src / "engagements.csv").unlink()
    with pytest.raises(ZombieScanError, match=r"required table 'engagements' not found"):
        ingest(src, tmp_path / "w.duckdb", now=NOW)
    write(src, good_tables())
    good_tables()["accounts"].write_parquet(src / "accounts.parquet")
    with pytest.raises(ZombieScanError, match=r"table 'accounts' is given twice \(accounts.parquet, accounts.csv\)"):
        ingest(src, tmp_path / "w.duckdb", now=NOW)


def test_failed_ingest_keeps_previous_warehouse(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    ingest(write(tmp_path / "good", good_tables()), db, now=NOW)
    before = db.read_bytes()
    with pytest.raises(ContractError):
        ingest(write(tmp_path / "bad", _bad("unknown_actor")), db, now=NOW)
    assert db.read_bytes() == before


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    t = _bad("unknown_actor")
    t["accounts"] = set_cell(t["accounts"], "is_verified", 1, "perhaps")
    with pytest.raises(ContractError) as info:
        ingest(write(tmp_path / "src", t), tmp_path / "w.duckdb", now=NOW)
    assert len(info.value.problems) == 2


def test_many_offenders_are_summarised(tmp_path: Path) -> None:
    t = good_tables()
    t["engagements"] = t["engagements"].with_columns(kind=pl.lit("love"))
    with pytest.raises(ContractError, match=r"column 'kind', rows 1, 2, 3, 4, 5 \(and 1 more\): expected one of"):
        ingest(write(tmp_path / "src", t), tmp_path / "w.duckdb", now=NOW)


def test_quarantine_moves_bad_rows_to_rejects(tmp_path: Path) -> None:
    t = _bad("unknown_actor")
    t["engagements"] = set_cell(t["engagements"], "ts", 6, "2030-01-01T00:00:00Z")
    src = write(tmp_path / "src", t)
    db = tmp_path / "w.duckdb"
    report = ingest(src, db, quarantine=True, max_reject_share=0.5, now=NOW)
    assert report.tables["engagements"].rows_rejected == 2
    assert report.tables["engagements"].rows_loaded == 4
    con = connect(db)
    rejects = con.execute("SELECT tbl, row, reasons, record->>'actor_id' FROM rejects ORDER BY row").fetchall()
    assert [(r[0], r[1], r[3]) for r in rejects] == [("engagements", 4, "ghost"), ("engagements", 6, "a1")]
    assert "actor_id: expected an actor_id present in accounts (found ghost)" in rejects[0][2]
    assert "ts: expected a timestamp not in the future" in rejects[1][2][0]


def test_quarantine_still_fails_above_the_limit(tmp_path: Path) -> None:
    src = write(tmp_path / "src", _bad("unknown_actor"))
    with pytest.raises(ContractError, match=r"1 of 6 rows rejected \(16.67%\), above the limit of 10.00%"):
        ingest(src, tmp_path / "w.duckdb", quarantine=True, max_reject_share=0.10, now=NOW)
    assert not (tmp_path / "w.duckdb").exists()


def test_missing_column_is_fatal_even_in_quarantine(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="column 'created_at' missing"):
        ingest(write(tmp_path / "src", _bad("missing_column")), tmp_path / "w.duckdb", quarantine=True, max_reject_share=1.0, now=NOW)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\x00"), max_size=12))
@example(value="0.")  # hypothesis found it: a whole number written with a trailing point loads as 0
def test_any_text_in_an_integer_column_loads_or_is_named(tmp_path: Path, value: str) -> None:
    """Whatever a user puts in a count column, ingest loads that integer or names the cell; never crashes."""
    folder = tmp_path / str(abs(hash(value)))
    t = good_tables()
    t["accounts"] = set_cell(t["accounts"], "followers_count", 2, value)
    try:
        ingest(write(folder / "src", t), folder / "w.duckdb", now=NOW)
    except ContractError as exc:
        assert len(exc.problems) == 1
        assert f"{folder / 'src' / 'accounts.csv'}: column 'followers_count', row 2: expected an integer" in exc.problems[0]
        assert not (folder / "w.duckdb").exists()
    else:
        loaded = connect(folder / "w.duckdb").execute("SELECT followers_count FROM accounts WHERE account_id = 'a2'").fetchall()
        stripped = re.sub(r"\.0*$", "", value.strip())  # "12.", "12.0" are whole numbers too (Excel writes them)
        assert loaded == ([(int(stripped),)] if stripped else [(None,)])


def test_excel_csv_with_bom_blank_lines_and_multiline_fields_loads(tmp_path: Path) -> None:
    src = write(tmp_path / "src", good_tables())
    accounts = (src / "accounts.csv").read_text()
    # a byte-order mark, a bio spanning two lines (row 2), CRLF endings and a trailing blank line
    accounts = accounts.replace("bob99,Bob,,", 'bob99,Bob,"line one\nline two",')
    (src / "accounts.csv").write_bytes(b"\xef\xbb\xbf" + accounts.replace("\n", "\r\n").encode() + b"\r\n")
    db = tmp_path / "w.duckdb"
    ingest(src, db, now=NOW)
    assert connect(db).execute("SELECT bio FROM accounts WHERE account_id = 'a2'").fetchall() == [("line one\r\nline two",)]


def test_row_numbers_count_records_not_lines(tmp_path: Path) -> None:
    t = good_tables()
    t["accounts"] = set_cell(set_cell(t["accounts"], "bio", 1, "two\nlines"), "is_verified", 3, "maybe")
    with pytest.raises(ContractError, match=r"column 'is_verified', row 3: expected a boolean"):
        ingest(write(tmp_path / "src", t), tmp_path / "w.duckdb", now=NOW)


def test_jsonl_values(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"accounts": good_tables()["accounts"]})
    lines = [
        '{"actor_id": "a1", "target_id": "p1", "target_type": "page", "kind": "like", "ts": "2026-05-01T10:00:00Z", "weight": 3}',
        '{"actor_id": "a2", "target_id": "p1", "target_type": "page", "kind": "like", "ts": "2026-05-01T10:00:05Z"}',
    ]
    (src / "engagements.jsonl").write_text("\n".join(lines) + "\n")
    db = tmp_path / "w.duckdb"
    ingest(src, db, now=NOW)  # weight missing on a line takes the default, 1
    assert connect(db).execute("SELECT actor_id, weight FROM engagements ORDER BY actor_id").fetchall() == [("a1", 3), ("a2", 1)]
    (src / "engagements.jsonl").write_text(lines[0] + "\n" + lines[1].replace('"p1"', '{"id": 1}') + "\n")
    with pytest.raises(ZombieScanError, match=r"column 'target_id', row 2 \(line 2\): expected a plain value, found an object"):
        ingest(src, db, now=NOW)


def test_quarantine_limit_message_names_knock_on_rejects(tmp_path: Path) -> None:
    t = good_tables()
    t["accounts"] = set_cell(t["accounts"], "created_at", 1, "not a time")  # a1 acts twice
    with pytest.raises(
        ContractError, match=r"engagements.csv: 2 of 6 rows rejected[\s\S]*an actor_id whose accounts row passed validation"
    ):
        ingest(write(tmp_path / "src", t), tmp_path / "w.duckdb", quarantine=True, max_reject_share=0.3, now=NOW)


def test_ingest_never_overwrites_a_file_that_is_not_a_warehouse(tmp_path: Path) -> None:
    src = write(tmp_path / "src", good_tables())
    before = (src / "accounts.csv").read_bytes()
    with pytest.raises(ZombieScanError, match="is an existing file that this command did not write"):
        ingest(src, src / "accounts.csv", now=NOW)
    assert (src / "accounts.csv").read_bytes() == before
    db = tmp_path / "w.duckdb"
    ingest(src, db, now=NOW)
    ingest(src, db, now=NOW)  # an earlier warehouse is replaced


# The engagement `value` (a rating, a review score): an optional real number, may be negative.
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["5", "x", "1", "1", "1", "1"], "column 'value', row 2: expected a finite number (e.g. -2.5 or 10); found 'x'"),
        (["5", "1", "nan", "1", "1", "1"], "column 'value', row 3: expected a finite number (e.g. -2.5 or 10); found 'nan'"),
        (["5", "1", "1", "inf", "1", "1"], "column 'value', row 4: expected a finite number"),
        (["5", "1", "1", "1", "0x10", "1"], "column 'value', row 5: expected a finite number"),
    ],
    ids=["word", "nan", "inf", "hex"],
)
def test_bad_engagement_value_is_named(tmp_path: Path, values: list[str], message: str) -> None:
    t = good_tables()
    t["engagements"] = t["engagements"].with_columns(value=pl.Series(values))
    src = write(tmp_path / "src", t)
    with pytest.raises(ContractError, match=re.escape(message)):
        ingest(src, tmp_path / "w.duckdb", now=NOW)
    assert not (tmp_path / "w.duckdb").exists()


def test_engagement_values_load_as_numbers_and_rate_is_a_kind(tmp_path: Path) -> None:
    t = good_tables()
    e = t["engagements"].with_columns(value=pl.Series(["-10", "2.5", "", " 1e1 ", "0", "-0.5"]))
    t["engagements"] = set_cell(set_cell(e, "kind", 6, "rate"), "target_type", 6, "account")
    ingest(write(tmp_path / "src", t), tmp_path / "w.duckdb", now=NOW)
    con = connect(tmp_path / "w.duckdb")
    try:
        rows = con.sql("SELECT kind::VARCHAR, value FROM engagements ORDER BY ts").fetchall()
    finally:
        con.close()
    assert rows == [("like", -10.0), ("like", 2.5), ("like", None), ("follow", 10.0), ("post", 0.0), ("rate", -0.5)]
    # Parquet numbers of any numeric type are read as DOUBLE; a NaN is refused like the text 'nan'
    t["engagements"] = e.with_columns(value=pl.Series([1, 2, 3, -4, 5, 6], dtype=pl.Int16))
    ingest(write(tmp_path / "pq", t, fmt="parquet"), tmp_path / "p.duckdb", now=NOW)
    t["engagements"] = e.with_columns(value=pl.Series([1.0, float("nan"), 3.0, 4.0, 5.0, 6.0]))
    with pytest.raises(ContractError, match=re.escape("column 'value', row 2: expected a finite number")):
        ingest(write(tmp_path / "nan", t, fmt="parquet"), tmp_path / "n.duckdb", now=NOW)


def test_unknown_creation_time_stays_unknown(tmp_path: Path) -> None:
    """An empty created_at is unknown: loaded as null, no 'engagement before creation' check for that
    account, and the features that need it are null (not the age of a placeholder time)."""
    from pipeline.features.build import warehouse_features

    t = good_tables()
    t["accounts"] = set_cell(t["accounts"], "created_at", 4, None)  # a4 acts on 2026-05-03; now unknown
    t["engagements"] = set_cell(t["engagements"], "ts", 5, "2023-12-31T00:00:00Z")  # before a4's old created_at
    db = tmp_path / "w"
    ingest(write(tmp_path / "src", t), db, now=NOW)
    features, _, _ = warehouse_features(db)
    a4 = features.filter(pl.col("account_id") == "a4").row(0, named=True)
    assert features.height == 4
    assert a4["profile_age_days"] is None and a4["profile_posts_per_day"] is None
    assert a4["beh_first_action_delay_days"] is None and a4["beh_n_actions"] == 1
    a1 = features.filter(pl.col("account_id") == "a1").row(0, named=True)
    assert a1["profile_age_days"] is not None and a1["profile_posts_per_day"] is not None


def test_targets_may_leave_out_created_at(tmp_path: Path) -> None:
    """targets.created_at is optional (docs/data-contract.md): a file of ids and types loads."""
    t = good_tables()
    t["targets"] = pl.DataFrame({"target_id": ["p1", "p2"], "target_type": ["page", "post"]})
    report = ingest(write(tmp_path / "src", t), tmp_path / "w.duckdb", now=NOW)
    assert report.tables["targets"].rows_loaded == 2


# --- Parquet checked in place (what `zombiescan score` and `features` do with Parquet inputs) ---


def _tables_of(db: Path) -> dict[str, list[tuple[object, ...]]]:
    con = connect(db)
    try:
        return {
            t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            for t in ("accounts", "engagements", "targets", "labels", "campaigns")
        }
    finally:
        con.close()


def _typed(t: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The same tables with Parquet's own types (timestamps, booleans, integers), as an export writes them."""
    ts = pl.col("ts").str.to_datetime(time_zone="UTC")
    accounts = t["accounts"].with_columns(
        pl.col("created_at").str.to_datetime(time_zone="UTC"),
        pl.col("has_profile_photo", "is_verified") == "true",
        pl.col("followers_count", "following_count", "posts_count").cast(pl.Int64),
    )
    return {**t, "accounts": accounts, "engagements": t["engagements"].with_columns(ts, weight=pl.Series([1, 2, 1, 1, 3, 1]))}


@pytest.mark.parametrize("typed", [False, True], ids=["text", "typed"])
def test_parquet_that_passes_is_read_in_place_as_ingest_loads_it(tmp_path: Path, typed: bool) -> None:
    from pipeline.ingest.load import check_in_place

    t = good_tables()
    t["targets"] = pl.DataFrame({"target_id": ["p1", "p2"], "target_type": [" page", "post"]})
    src = write(tmp_path / "src", _typed(t) if typed else t, fmt="parquet")
    report = check_in_place(src, tmp_path / "views.duckdb", now=NOW)
    assert report is not None and {n: r.rows_loaded for n, r in report.tables.items()} == {
        "accounts": 4, "engagements": 6, "targets": 2, "labels": 4,
    }  # fmt: skip
    ingest(src, tmp_path / "copy.duckdb", now=NOW)
    assert _tables_of(tmp_path / "views.duckdb") == _tables_of(tmp_path / "copy.duckdb")
    assert (tmp_path / "views.duckdb").stat().st_size < 1 << 20  # views, not a copy


@pytest.mark.parametrize(("edit", "file", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_parquet_that_breaks_a_rule_is_left_to_ingest(tmp_path: Path, edit: str, file: str, message: str) -> None:
    """Every rule is counted in bulk: a file breaking any one is not read in place (ingest names its rows)."""
    from pipeline.ingest.load import check_in_place

    src = write(tmp_path / "src", _bad(edit), fmt="parquet")
    assert check_in_place(src, tmp_path / "views.duckdb", now=NOW) is None
    assert list(tmp_path.iterdir()) == [src]  # nothing written
    with pytest.raises(ContractError, match=re.escape(message.split(":")[0])):
        ingest(src, tmp_path / "w.duckdb", now=NOW)


@pytest.mark.parametrize(("column", "values", "message"), PARQUET_BAD, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(PARQUET_BAD)])
def test_parquet_values_that_ingest_refuses_are_not_read_in_place(tmp_path: Path, column: str, values: pl.Series, message: str) -> None:
    from pipeline.ingest.load import check_in_place

    t = good_tables()
    t["engagements"] = t["engagements"].with_columns(values.alias(column))
    assert check_in_place(write(tmp_path / "src", t, fmt="parquet"), tmp_path / "views.duckdb", now=NOW) is None


@pytest.mark.parametrize("sort_rows", [100_000_000, 0], ids=["numpy-sort", "group-by"])
def test_exact_duplicate_engagements_are_left_to_ingest(tmp_path: Path, sort_rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of finding exact duplicates (ingest keeps one copy); a row equal but for one value is no duplicate."""
    from pipeline.ingest import load

    monkeypatch.setattr(load, "HASH_SORT_ROWS", sort_rows)
    t = good_tables()
    e = t["engagements"]
    t["engagements"] = pl.concat([e, e.slice(2, 1)])
    assert load.check_in_place(write(tmp_path / "dup", t, fmt="parquet"), tmp_path / "a.duckdb", now=NOW) is None
    t["engagements"] = pl.concat([e, set_cell(e.slice(2, 1), "ts", 1, "2026-05-01T10:00:10Z")])
    assert load.check_in_place(write(tmp_path / "near", t, fmt="parquet"), tmp_path / "b.duckdb", now=NOW) is not None
    t["engagements"] = pl.concat([e, set_cell(e.slice(2, 1), "actor_id", 1, "ghost")])  # a broken rule on that path too
    assert load.check_in_place(write(tmp_path / "bad", t, fmt="parquet"), tmp_path / "c.duckdb", now=NOW) is None


def test_csv_and_damaged_parquet_are_left_to_ingest(tmp_path: Path) -> None:
    """A CSV file among the Parquet ones, a damaged Parquet file: not read in place."""
    from pipeline.ingest.load import check_in_place

    src = write(tmp_path / "mixed", good_tables(), fmt="parquet")
    good_tables()["labels"].write_csv(src / "labels.csv")
    (src / "labels.parquet").unlink()
    assert check_in_place(src, tmp_path / "b.duckdb", now=NOW) is None
    src = write(tmp_path / "damaged", good_tables(), fmt="parquet")
    data = bytearray((src / "engagements.parquet").read_bytes())
    data[40:60] = b"\xff" * 20  # inside the first data page; the footer still reads
    (src / "engagements.parquet").write_bytes(bytes(data))
    assert check_in_place(src, tmp_path / "c.duckdb", now=NOW) is None
    assert not any(p.suffix == ".duckdb" for p in tmp_path.iterdir())


def test_a_damaged_column_no_rule_reads_is_left_to_ingest(tmp_path: Path) -> None:
    """The bulk check reads every column (a rule looks at few of them): a damaged bio page is found
    there, and ingest names the file, instead of a view failing halfway through the features."""
    import pyarrow.parquet as pq

    from pipeline.ingest.load import check_in_place

    t = good_tables()
    t["accounts"] = t["accounts"].with_columns(bio=pl.Series(["x" * 2000 + str(i) for i in range(4)]))
    src = write(tmp_path / "src", t, fmt="parquet")
    path = src / "accounts.parquet"
    pq.write_table(t["accounts"].to_arrow(), path, compression="none", use_dictionary=False)
    column = next(c for c in (pq.ParquetFile(path).metadata.row_group(0).column(i) for i in range(13)) if c.path_in_schema == "bio")
    data = bytearray(path.read_bytes())
    start, size = column.data_page_offset, column.total_compressed_size
    data[start + 200 : start + size - 200] = b"\xff" * (size - 400)
    path.write_bytes(bytes(data))
    assert check_in_place(src, tmp_path / "views.duckdb", now=NOW) is None
    with pytest.raises(ZombieScanError, match=re.escape("accounts.parquet: cannot be read")):
        ingest(src, tmp_path / "w.duckdb", now=NOW)


def test_folder_names_like_partitions_are_not_columns(tmp_path: Path) -> None:
    """Files under folders named `weight=0/kind=bogus` are read as they are (no hive partitioning),
    whether checked in place or ingested."""
    from pipeline.scoring.job import ingest_inputs

    t = good_tables()
    t["engagements"] = t["engagements"].with_columns(weight=pl.lit(2))
    src = write(tmp_path / "exports" / "weight=0" / "kind=bogus", t, fmt="parquet")
    (tmp_path / "scratch").mkdir()
    db = ingest_inputs(tmp_path / "scratch", src / "accounts.parquet", src / "engagements.parquet", None, "1GB")
    ingest(src, tmp_path / "w.duckdb", now=NOW)
    for warehouse in (db, tmp_path / "w.duckdb"):
        con = connect(warehouse)
        try:
            assert con.execute("SELECT DISTINCT weight, kind IS NULL FROM engagements").fetchall() == [(2, False)]
        finally:
            con.close()
