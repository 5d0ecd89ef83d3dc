"""Notebooks (P6) run top to bottom on the tiny world, and the summary page holds what a reader needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def run_params(tiny_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny run's params.yaml, pointing the benchmark at this repository's committed tables and the shared data."""
    params = json.loads(json.dumps(tiny_run["params"]))  # a deep copy
    params["benchmark"]["out"] = str(ROOT / "reports")
    params["benchmark"]["root"] = str(SHARED)
    path = tmp_path_factory.mktemp("notebooks") / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_there_are_five_notebooks_committed_without_outputs() -> None:
    assert [p.stem for p in NOTEBOOKS] == ["01-explore-data", "02-features", "03-models", "04-like-farms", "05-real-data"]
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        code = [c for c in book.cells if c.cell_type == "code"]
        assert not any(c.outputs or c.execution_count for c in code), f"{path.name}: clear its outputs (make notebooks-strip)"
        assert "**Question:**" in book.cells[0].source, f"{path.name}: open with the question it answers"
        assert book.cells[-1].source.startswith("## What we found"), f"{path.name}: end with what it found"
        assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name}: needs a parameter cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_on_the_tiny_world(path: Path, run_params: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if path.stem == "05-real-data" and not SHARED.is_dir():
        pytest.skip("../shared/data is not beside the project")
    monkeypatch.setenv("ZOMBIESCAN_PARAMS", str(run_params))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 3, f"{path.name}: {len(figures)} figures"


def test_report_writes_one_self_contained_page(run_params: Path, tmp_path: Path) -> None:
    out = tmp_path / "summary.html"
    assert main(["report", "--params", str(run_params), "--out", str(out)]) == 0
    page = out.read_text()
    for heading in ("The data", "Zombie profiles", "Like-farm accounts", "Lockstep groups and pages that bought likes", "Model cards"):
        assert f">{heading}</h2>" in page
    assert "<td>average precision</td>" in page and "Not trained" not in page  # both metrics tables
    assert "Pages that bought likes" in page
    assert "The coordination network</h3>" in page and "network.gexf</code></a>" in page  # the stage's files, linked
    assert page.count("data:image/png;base64,") >= 8  # data (3), per task curves + ablation (4), the largest group (1)
    assert 'src="http' not in page and 'href="http' not in page  # nothing to fetch: one file
    if SHARED.is_dir():
        assert ">Real data</h2>" in page and "cresci-2015" in page


def test_report_reads_relative_paths_from_the_params_files_folder(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    """`zombiescan report --params elsewhere/params.yaml` reports on the run beside that file, not on the current folder's."""
    root = tiny_run["root"]
    params = json.loads(json.dumps(tiny_run["params"]))
    for section, key in (("ingest", "db"), ("featurize", "out"), ("train", "models"), ("evaluate", "metrics"), ("evaluate", "predictions")):
        params[section][key] = str(Path(params[section][key]).relative_to(root))
    (root / "relative-params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "summary.html"
    assert main(["report", "--params", str(root / "relative-params.yaml"), "--out", str(out)]) == 0
    assert "· warehouse w.duckdb</p>" in out.read_text()  # relative to the run's folder: the page does not depend on the clone's path


def test_the_data_notebook_runs_on_a_warehouse_alone(tiny_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An analyst with only a DuckDB warehouse (no pipeline run) can explore it with 01."""
    monkeypatch.setenv("ZOMBIESCAN_PARAMS", str(tmp_path / "no-such-params.yaml"))
    monkeypatch.setenv("ZOMBIESCAN_WAREHOUSE", str(tiny_run["root"] / "w.duckdb"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    path = ROOT / "notebooks" / "01-explore-data.ipynb"
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "") for c in book.cells if c.cell_type == "code" for o in c.outputs
    )
    assert str(tiny_run["root"] / "w.duckdb") in text
