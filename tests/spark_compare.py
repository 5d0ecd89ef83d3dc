"""Comparing a feature table computed by the Spark engine with the DuckDB engine's."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl


def assert_same_features(duck: pl.DataFrame, on_spark: pl.DataFrame, *, rtol: float = 1e-9, tolerances: Mapping[str, float] = {}) -> None:
    """Same columns in the same order, same accounts, values equal to `rtol` relative (or the
    column's own tolerance in `tolerances`); integers and flags exactly, nulls in the same places."""
    assert on_spark.columns == duck.columns, f"columns on one engine only: {set(on_spark.columns) ^ set(duck.columns)}"
    other = on_spark.sort("account_id")
    duck = duck.sort("account_id")
    assert other["account_id"].to_list() == duck["account_id"].to_list()
    for column in duck.columns[1:]:
        a = duck[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
        b = other[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
        assert (np.isnan(a) == np.isnan(b)).all(), f"{column}: null on one engine only ({int((np.isnan(a) != np.isnan(b)).sum())} rows)"
        known = ~np.isnan(a)
        np.testing.assert_allclose(b[known], a[known], rtol=tolerances.get(column, rtol), atol=0, err_msg=column)
