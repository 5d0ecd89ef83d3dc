"""Atomic outputs: a failed run leaves nothing half-written and loses nothing already written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ZombieScanError
from pipeline.io import atomic_path
from pipeline.simulate import make_config, simulate, write_contract


def test_file_appears_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert out.read_text() == "old"
    with atomic_path(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporaries left


def test_folder_is_swapped_whole(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    cfg = make_config("tiny", accounts=300)
    write_contract(simulate(cfg), out, cfg, "tiny")
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(RuntimeError), atomic_path(out, replaceable_dir=lambda p: True) as tmp:
        tmp.mkdir()
        (tmp / "accounts.parquet").write_text("half")
        raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == before
    write_contract(simulate(cfg), out, cfg, "tiny")  # an earlier simulator output is replaced
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_folder_the_command_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    precious = tmp_path / "raw"
    precious.mkdir()
    (precious / "data.csv").write_text("keep me")
    cfg = make_config("tiny", accounts=300)
    with pytest.raises(ZombieScanError, match="is an existing folder that this command did not write"):
        write_contract(simulate(cfg), precious, cfg, "tiny")
    assert (precious / "data.csv").read_text() == "keep me"


def test_a_file_output_never_replaces_a_folder(tmp_path: Path) -> None:
    (tmp_path / "interim").mkdir()
    (tmp_path / "interim" / "x").write_text("keep")
    with pytest.raises(ZombieScanError, match="refusing to replace it"), atomic_path(tmp_path / "interim") as tmp:
        tmp.write_text("db")
    assert (tmp_path / "interim" / "x").read_text() == "keep"
