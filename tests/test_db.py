"""pipeline.db: every DuckDB connection of the package behaves alike."""

from __future__ import annotations

import pytest

from pipeline import db


def test_a_long_query_draws_nothing_on_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    # `zombiescan score` writes its JSON summary on stdout; DuckDB's progress bar, drawn there for
    # any query longer than progress_bar_time (2 s by default: here 0), would come before it
    con = db.connect()
    try:
        con.execute("SET progress_bar_time = 0")
        con.execute("SELECT count(*) FROM range(30000000) t(x) WHERE x % 7 = 3").fetchall()
    finally:
        con.close()
    assert capfd.readouterr().out == ""
