"""Shared fixtures: small seed-fixed simulated worlds and a fixed 'now'."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from pipeline.simulate import make_config, simulate, write_contract

NOW = datetime(2026, 11, 27, tzinfo=UTC)


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
