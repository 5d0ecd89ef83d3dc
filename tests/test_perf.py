"""The benchmark's step-versus-library-limit table (perf/limits.py) is built from real runs of both."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from perf.run import main


@pytest.mark.slow  # needs the trained models in models/ (`make repro`), which a clean clone has not
def test_limits_table_puts_each_step_beside_its_library_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--presets", "tiny", "--stages", "simulate", "score_cli", "limits", "--work", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("beside their library limits") :].splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table if line.startswith("| ") and " | " in line}
    for step in ("validating and loading the input", "features: behaviour", "features: lockstep", "features: graph", "scoring", "pages"):
        assert rows[step].count("x |") == 1, rows[step]  # a ratio
    assert "FRAUDAR" in rows["features: dense_block"]  # no library limit, and why


@pytest.mark.slow  # needs the trained models in models/ (`make repro`)
def test_step_memory_gives_each_step_its_seconds_and_peak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from perf import step_memory

    assert main(["--presets", "tiny", "--stages", "simulate", "--work", str(tmp_path)]) == 0
    capsys.readouterr()
    scratch_before = set(Path(tempfile.gettempdir()).glob("step-memory-*"))
    assert step_memory.main(["--work", str(tmp_path), "--preset", "tiny", "--memory-limit", "1GB"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in out.splitlines() if line.startswith("| ") and "---" not in line
    }
    for step in ("validating and loading the input", "features: behaviour", "features: graph", "scoring"):
        seconds, peak = float(rows[step][1]), float(rows[step][2].rstrip(" |").replace(",", ""))
        assert seconds >= 0 and peak > 50  # a Python process with DuckDB and LightGBM loaded holds more than 50 MiB
    assert set(Path(tempfile.gettempdir()).glob("step-memory-*")) == scratch_before  # its outputs removed
