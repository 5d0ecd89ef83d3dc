"""Ingest round trip on a simulated world: counts, types, duplicates, formats."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import ZombieScanError
from pipeline.ingest import ingest
from pipeline.warehouse import connect
from tests.conftest import NOW

Tables = dict[str, pl.DataFrame]


def test_round_trip_keeps_every_row_and_types(tmp_path: Path, tiny_dir: Path, tiny_tables: Tables) -> None:
    db = tmp_path / "w.duckdb"
    report = ingest(tiny_dir, db, now=NOW)
    con = connect(db)
    for name, df in tiny_tables.items():
        assert report.tables[name].rows_loaded == df.height
        assert con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0] == df.height
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'engagements'").fetchall())
    assert types["ts"] == "TIMESTAMP WITH TIME ZONE"
    assert types["kind"].startswith("ENUM")
    assert types["weight"] == "BIGINT"
    assert con.execute("SELECT min(weight), max(weight) FROM engagements").fetchall() == [(1, 1)]
    # Values survive unchanged: compare the engagements as sets of rows.
    back = con.sql("SELECT actor_id, target_id, target_type::VARCHAR AS target_type, kind::VARCHAR AS kind, ts FROM engagements").pl()
    src = tiny_tables["engagements"]
    assert back.sort(back.columns).equals(src.sort(src.columns))
    assert con.execute("SELECT count(*) FROM rejects").fetchall()[0][0] == 0
    log = con.execute("SELECT report->>'$.tables.accounts.rows_loaded' FROM ingest_log").fetchall()
    assert log == [(str(tiny_tables["accounts"].height),)]


def test_exact_duplicate_engagements_are_removed_and_counted(tmp_path: Path, tiny_dir: Path, tiny_tables: Tables) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_dir, src)
    eng = tiny_tables["engagements"]
    pl.concat([eng, eng.head(25), eng.head(3)]).write_parquet(src / "engagements.parquet")
    report = ingest(src, tmp_path / "w.duckdb", now=NOW)
    assert report.tables["engagements"].rows_read == eng.height + 28
    assert report.tables["engagements"].duplicates_removed == 28
    assert report.tables["engagements"].rows_loaded == eng.height


def test_csv_and_parquet_load_the_same(tmp_path: Path, tiny_dir: Path, tiny_tables: Tables) -> None:
    src = tmp_path / "csv"
    src.mkdir()
    for name, df in tiny_tables.items():
        df.write_csv(src / f"{name}.csv")
    ingest(src, tmp_path / "csv.duckdb", now=NOW)
    ingest(tiny_dir, tmp_path / "pq.duckdb", now=NOW)
    q = "SELECT * FROM accounts ORDER BY account_id"
    a = connect(tmp_path / "csv.duckdb").sql(q).pl()
    b = connect(tmp_path / "pq.duckdb").sql(q).pl()
    assert a.equals(b)


def test_jsonl_is_accepted(tmp_path: Path, tiny_tables: Tables) -> None:
    src = tmp_path / "src"
    src.mkdir()
    tiny_tables["accounts"].write_ndjson(src / "accounts.jsonl")
    tiny_tables["engagements"].head(500).write_ndjson(src / "engagements.jsonl")
    report = ingest(src, tmp_path / "w.duckdb", now=NOW)
    assert report.tables["engagements"].rows_loaded == 500


def test_optional_weight_defaults_to_one_and_is_kept_when_given(tmp_path: Path, tiny_dir: Path, tiny_tables: Tables) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_dir, src)
    tiny_tables["engagements"].with_columns(weight=pl.int_range(pl.len()) % 3 + 1).write_parquet(src / "engagements.parquet")
    db = tmp_path / "w.duckdb"
    ingest(src, db, now=NOW)
    con = connect(db)
    assert con.execute("SELECT min(weight), max(weight) FROM engagements").fetchall() == [(1, 3)]


def test_keys_and_optional_indexes(tmp_path: Path, tiny_dir: Path) -> None:
    db = tmp_path / "w.duckdb"
    ingest(tiny_dir, db, now=NOW, index_engagements=["actor_id", "target_id"])
    con = connect(db)
    indexes = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    keys = {r[0] for r in con.execute("SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'").fetchall()}
    assert {"engagements_actor_id", "engagements_target_id"} <= indexes
    assert keys == {"accounts", "targets", "labels", "campaigns"}
    with pytest.raises(ZombieScanError, match="cannot index 'ts'"):
        ingest(tiny_dir, tmp_path / "x.duckdb", now=NOW, index_engagements=["ts"])
