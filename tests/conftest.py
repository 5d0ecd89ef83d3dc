"""Shared fixtures: small seed-fixed simulated worlds and a fixed 'now'."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from pipeline.ingest import ingest
from pipeline.params import DEFAULT_PARAMS
from pipeline.simulate import make_config, simulate, write_contract
from pipeline.stages import coordination as coordination_stage
from pipeline.stages import evaluate as evaluate_stage
from pipeline.stages import featurize as featurize_stage
from pipeline.stages import split as split_stage
from pipeline.stages import train as train_stage

NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[2] Spark session for every Spark test (a session costs 15-30 s to start).

    Skipped without the `spark` extra, except in CI (ZOMBIESCAN_REQUIRE_SPARK=1), where a missing
    pyspark fails instead.
    """
    if os.environ.get("ZOMBIESCAN_REQUIRE_SPARK") != "1":
        pytest.importorskip("pyspark", reason="the Spark engine needs the 'spark' extra (pip install -e '.[spark]')")
    from pipeline.spark.session import spark_session

    with spark_session("local[2]") as session:
        yield session


@pytest.fixture(scope="session")
def tiny_tables() -> dict[str, pl.DataFrame]:
    return simulate(make_config("tiny", seed=7))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tables: dict[str, pl.DataFrame]) -> Path:
    """A tiny simulated contract folder on disk. Read-only: copy it before changing it."""
    out = tmp_path_factory.mktemp("tiny") / "sim"
    write_contract(tiny_tables, out, make_config("tiny", seed=7), "tiny")
    return out


@pytest.fixture(scope="session")
def default_tables() -> dict[str, pl.DataFrame]:
    """The `make repro` world (20k accounts, ~1M engagements): for statistical properties."""
    return simulate(make_config("default"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> dict[str, Any]:
    """featurize -> split -> train -> evaluate -> coordination on the tiny world, MLflow in a temporary store."""
    root = tmp_path_factory.mktemp("pipeline")
    ingest(tiny_dir, root / "w.duckdb")
    params = yaml.safe_load(DEFAULT_PARAMS.read_text())
    params["ingest"]["db"] = str(root / "w.duckdb")
    params["featurize"].update(out=str(root / "features"), report=str(root / "featurize.json"))
    params["split"].update(out=str(root / "split.parquet"), folds=3)
    params["train"]["models"] = str(root / "models")
    params["evaluate"].update(metrics=str(root / "metrics"), reports=str(root / "reports"), predictions=str(root / "pred"), bootstrap=20)
    params["coordination"].update(out=str(root / "coordination"), report=str(root / "coordination.json"))
    # The tiny world (8 small farms) is a fixture for the pipeline's mechanics; the guard's limits hold
    # the `default` world of `dvc repro` (tests/test_models.py plants a giveaway to test the guard).
    params["evaluate"]["guard"]["enforce"] = False
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.chdir(root)  # MLflow's default artifact folder lands here, not in the repo
    try:
        for stage in (featurize_stage, split_stage):
            assert stage.main(["--params", str(path)]) == 0
        for task in ("zombie", "like_farm"):
            assert train_stage.main(["--params", str(path), "--task", task]) == 0
            assert evaluate_stage.main(["--params", str(path), "--task", task]) == 0
        assert coordination_stage.main(["--params", str(path)]) == 0
    finally:
        mp.undo()
    return {"root": root, "params": params, "path": path}
