"""The `zombiescan` command line and the DVC stage entry points, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from pipeline.cli import main
from pipeline.stages import featurize as featurize_stage
from pipeline.stages import ingest as ingest_stage
from pipeline.stages import simulate as simulate_stage


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, check=False)


def test_help_explains_every_option() -> None:
    top = run_cli("--help")
    assert top.returncode == 0
    assert "simulate" in top.stdout and "ingest" in top.stdout
    for command, options in {
        "simulate": ["--preset", "--seed", "--accounts", "--out", "--params"],
        "ingest": ["--source", "--db", "--quarantine", "--max-reject-share", "--index"],
    }.items():
        out = run_cli(command, "--help")
        assert out.returncode == 0, out.stderr
        for option in options:
            assert option in out.stdout, f"{command} --help does not mention {option}"


def test_simulate_then_ingest(tmp_path: Path) -> None:
    assert main(["simulate", "--preset", "tiny", "--seed", "3", "--accounts", "400", "--out", str(tmp_path / "sim")]) == 0
    assert (tmp_path / "sim" / "engagements.parquet").is_file()
    assert main(["ingest", "--source", str(tmp_path / "sim"), "--db", str(tmp_path / "w.duckdb")]) == 0
    assert (tmp_path / "w.duckdb").is_file()


def test_user_error_is_one_clear_line_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "accounts.csv").write_text("account_id,created_at\n")
    out = run_cli("ingest", "--source", str(tmp_path / "src"), "--db", str(tmp_path / "w.duckdb"))
    assert out.returncode == 1
    assert "required table 'engagements' not found" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_unknown_preset_is_refused() -> None:
    out = run_cli("simulate", "--preset", "huge", "--out", "/nonexistent/never-written")
    assert out.returncode == 2
    message = " ".join(out.stderr.replace("│", " ").split())  # rich wraps the error in a box
    assert "Invalid value for '--preset'" in message
    assert "'huge' is not one of 'tiny', 'default', 'large'" in message


def test_stages_run_from_params(tmp_path: Path) -> None:
    params = {
        "simulate": {
            "preset": "tiny",
            "seed": 5,
            "accounts": None,
            "out": str(tmp_path / "raw"),
            "report": str(tmp_path / "metrics" / "simulate.json"),
            "knobs": {"stealth_share": 0.5},
        },
        "ingest": {
            "source": str(tmp_path / "raw"),
            "db": str(tmp_path / "w.duckdb"),
            "report": str(tmp_path / "metrics" / "ingest.json"),
            "quarantine": False,
            "max_reject_share": 0.01,
        },
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert simulate_stage.main(["--params", str(path)]) == 0
    assert ingest_stage.main(["--params", str(path)]) == 0
    assert '"rows_loaded"' in (tmp_path / "metrics" / "ingest.json").read_text()
    params["featurize"] = {
        "out": str(tmp_path / "features"),
        "report": str(tmp_path / "metrics" / "featurize.json"),
        "lockstep": {"min_common": 2},
    }
    path.write_text(yaml.safe_dump(params))
    assert featurize_stage.main(["--params", str(path)]) == 0
    features = pl.read_parquet(tmp_path / "features" / "features.parquet")
    assert features.height == 1_500
    assert (tmp_path / "features" / "lockstep_groups.parquet").is_file()
    assert '"lockstep_groups"' in (tmp_path / "metrics" / "featurize.json").read_text()


def test_features_command(tmp_path: Path) -> None:
    assert main(["simulate", "--preset", "tiny", "--accounts", "600", "--out", str(tmp_path / "sim")]) == 0
    assert main(["ingest", "--source", str(tmp_path / "sim"), "--db", str(tmp_path / "w.duckdb")]) == 0
    args = ["features", "--db", str(tmp_path / "w.duckdb"), "--out", str(tmp_path / "f"), "--reference-time", "2026-05-15T00:00:00Z"]
    assert main(args) == 0
    features = pl.read_parquet(tmp_path / "f" / "features.parquet")
    assert {"profile_age_days", "beh_n_like", "graph_pagerank", "lock_group_size"} <= set(features.columns)
    bad = ["features", "--db", str(tmp_path / "w.duckdb"), "--out", str(tmp_path / "g"), "--reference-time", "yesterday"]
    assert main(bad) == 1
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("simulate: [1, 2", "not valid YAML"),
        ("- just a list", "expected a mapping of stage sections"),
        ("simulate: {preset: tiny, seed: 1}", "setting 'simulate.out' is missing"),
        ("simulate: {preset: tiny, out: x, knobs: {zombie_share: '0.1'}}", "knob 'zombie_share' = '0.1': expected a number"),
    ],
)
def test_broken_params_are_named(tmp_path: Path, broken: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "my-params.yaml"
    path.write_text(broken)
    assert simulate_stage.main(["--params", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_error_messages_print_user_data_literally(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "accounts.csv").write_text("account_id,created_at\na1,[/b]not a date\n")
    (src / "engagements.csv").write_text("actor_id,target_id,target_type,kind,ts\na1,p1,page,like,2026-01-01\n")
    out = run_cli("ingest", "--source", str(src), "--db", str(tmp_path / "w.duckdb"))
    assert out.returncode == 1
    assert "found '[/b]not a date'" in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr


def test_simulate_refuses_to_write_over_a_file(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep")
    assert main(["simulate", "--preset", "tiny", "--accounts", "300", "--out", str(target)]) == 1
    assert target.read_text() == "keep"
