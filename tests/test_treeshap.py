"""pipeline.scoring.treeshap gives LightGBM's pred_contrib (without the bias column) to 1e-6, and its raw scores to the bit,
on every kind of split it handles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from pipeline.models.train import FULL, to_matrix
from pipeline.scoring import treeshap
from pipeline.scoring.models import load_models


def _reference(booster: lgb.Booster, x: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(x, pred_contrib=True))[:, :-1]


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of every awkward kind: NaN, exact zeros, few distinct integers (values on the thresholds), wide floats."""
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.integers(0, 4, n).astype(float),  # thresholds fall between these, rows sit on both sides
            np.where(rng.random(n) < 0.3, np.nan, rng.exponential(size=n)),
            np.where(rng.random(n) < 0.4, 0.0, rng.normal(size=n)),
            rng.lognormal(3, 2, n),
            *(rng.normal(size=n) for _ in range(20)),
        ]
    )
    signal = x[:, 0] + (x[:, 1] > 1) + np.nan_to_num(x[:, 2]) - x[:, 3] + 0.3 * x[:, 5:].sum(axis=1)
    y = (signal + rng.normal(size=n) > 1).astype(int)
    return x, y


@pytest.mark.parametrize(
    ("params", "rows"),
    [
        ({"num_leaves": 31}, 2_000),
        ({"num_leaves": 63, "min_data_in_leaf": 5, "zero_as_missing": True}, 2_000),  # "Zero" missing type
        ({"num_leaves": 15, "use_missing": False}, 2_000),  # "None": NaN read as 0
        # long paths (depth 14-18): fewer rows, as each costs pred_contrib and the direct path ~100x a shallow tree's
        ({"num_leaves": 255, "min_data_in_leaf": 2, "max_depth": -1, "feature_fraction": 1.0}, 500),
    ],
)
def test_equal_to_pred_contrib(params: dict[str, Any], rows: int) -> None:
    x, y = _data(3_000, seed=len(params))
    booster = lgb.train({"objective": "binary", "verbose": -1, "seed": 1, **params}, lgb.Dataset(x, y), num_boost_round=40)
    test, _ = _data(rows, seed=99)
    root = booster.dump_model()["tree_info"][0]["tree_structure"]
    test[:50, root["split_feature"]] = root["threshold"]  # rows exactly on a threshold: `<=` goes left
    model = treeshap.forest(booster)
    assert model is not None
    ref = _reference(booster, test)
    np.testing.assert_allclose(treeshap.contributions(model, test), ref, rtol=0, atol=1e-6)
    # every path's value computed directly (no table): the same numbers
    np.testing.assert_allclose(treeshap.contributions(model, test, dense_depth=0), ref, rtol=0, atol=1e-6)
    assert np.abs(treeshap.shap_values(booster, test.astype(np.float32)) - _reference(booster, test.astype(np.float32))).max() <= 1e-6


def test_zero_as_missing_uses_lightgbms_float_threshold() -> None:
    """LightGBM's zero threshold is the float 1e-35f (1.0000000180025095e-35), not the double 1e-35."""
    x, y = _data(3_000, seed=11)
    x[::3, 3] = 0.0
    booster = lgb.train({"objective": "binary", "verbose": -1, "zero_as_missing": True}, lgb.Dataset(x, y), num_boost_round=20)
    test, _ = _data(300, seed=12)
    test[:100, 3] = 1.00000001e-35
    test[100:200, 3] = -1.00000001e-35
    model = treeshap.forest(booster)
    assert model is not None
    np.testing.assert_allclose(treeshap.contributions(model, test), _reference(booster, test), rtol=0, atol=1e-6)


def test_a_few_rows_and_one_row() -> None:
    x, y = _data(2_000, seed=13)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 63}, lgb.Dataset(x, y), num_boost_round=20)
    for rows in (x[:1], x[:7]):
        np.testing.assert_allclose(treeshap.shap_values(booster, rows), _reference(booster, rows), rtol=0, atol=1e-6)


def test_rows_that_decide_alike_share_a_trees_values() -> None:
    """Rows repeated 50 times (half with a missing value) make few distinct decision words per tree: each row
    still gets its pred_contrib, in any order, with the same bytes as when it is explained alone."""
    x, y = _data(3_000, seed=15)
    x[:, 0] = np.round(x[:, 0])  # few distinct values: many rows decide alike
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 31}, lgb.Dataset(x[:, :24], y), num_boost_round=30)
    base, _ = _data(40, seed=16)
    rows = np.repeat(base[:, :24], 50, axis=0)
    rows[::2, 1] = np.nan  # half of each repeat takes the missing-value branches
    rows = rows[np.random.default_rng(0).permutation(len(rows))]
    model = treeshap.forest(booster)
    assert model is not None
    values = treeshap.contributions(model, rows)
    np.testing.assert_allclose(values, _reference(booster, rows), rtol=0, atol=1e-6)
    alone = np.vstack([treeshap.contributions(model, rows[i : i + 1]) for i in range(0, len(rows), 97)])
    np.testing.assert_array_equal(values[::97], alone)


def test_leaves_past_the_table_budget_are_computed_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forest whose tables would pass TABLE_BUDGET gives the leaves past it no table: same values."""
    x, y = _data(3_000, seed=17)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 63, "min_data_in_leaf": 5}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=20)
    monkeypatch.setattr(treeshap, "TABLE_BUDGET", 200_000)
    model = treeshap.forest(booster)
    assert model is not None
    assert (model.table_at < 0).any() and (model.table_at >= 0).any()
    assert model.table.nbytes + model.done.nbytes <= 200_000
    test, _ = _data(1_000, seed=18)
    np.testing.assert_allclose(treeshap.contributions(model, test), _reference(booster, test), rtol=0, atol=1e-6)


def test_linear_trees_are_left_to_lightgbm() -> None:
    x, y = _data(2_000, seed=14)
    booster = lgb.train({"objective": "binary", "verbose": -1, "linear_tree": True}, lgb.Dataset(np.nan_to_num(x), y), num_boost_round=5)
    assert treeshap.forest(booster) is None  # pred_contrib refuses them; so must we, not give the constant leaves' values


def test_categorical_splits_fall_back_to_lightgbm() -> None:
    x, y = _data(2_000, seed=5)
    x[:, 1] = np.floor(x[:, 1])
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
        lgb.Dataset(x, y, categorical_feature=[1]),
        num_boost_round=10,
    )
    assert treeshap.forest(booster) is None
    np.testing.assert_array_equal(treeshap.shap_values(booster, x[:100]), _reference(booster, x[:100]))


def test_the_trained_models_on_their_features(tiny_run: dict[str, Any]) -> None:
    """The pipeline's own models (train stage on the tiny world) on the features they were trained on."""
    root = Path(str(tiny_run["root"]))
    models, _ = load_models(root / "models", FULL)
    features = pl.read_parquet(root / "features" / "features.parquet")
    for task, model in models.items():
        assert model.booster is not None
        x = to_matrix(features, model.features)
        got = treeshap.shap_values(model.booster, x)
        assert np.abs(got - _reference(model.booster, x)).max() <= 1e-6, task
        np.testing.assert_array_equal(treeshap.raw_scores(model.booster, x), model.booster.predict(x, raw_score=True))


@pytest.mark.parametrize(
    ("params", "missing"),
    [
        ({"num_leaves": 31}, "NaN"),
        ({"num_leaves": 63, "min_data_in_leaf": 5, "zero_as_missing": True}, "Zero"),
        ({"num_leaves": 15, "use_missing": False}, "None"),  # NaN read as 0
        ({"num_leaves": 7, "min_gain_to_split": 1e9}, None),  # no split at all: trees of one leaf
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_raw_scores_are_lightgbms_to_the_bit(params: dict[str, Any], missing: str | None, dtype: type) -> None:
    """The scoring's predictions: the same bytes as Booster.predict(raw_score=True), rows on the
    thresholds, NaN, zeros and values at and just above LightGBM's zero threshold (1e-35f) included."""
    x, y = _data(3_000, seed=len(params))
    x[::3, 3] = 0.0
    booster = lgb.train({"objective": "binary", "verbose": -1, "seed": 1, **params}, lgb.Dataset(x, y), num_boost_round=40)
    model = treeshap.forest(booster)
    assert model is not None
    if missing is None:
        assert len(model.feature) == 0  # every tree a single leaf
    else:
        assert (model.missing == treeshap.MISSING[missing]).any()
    test, _ = _data(5_000, seed=98)  # more rows than a block: blocks and their remainder
    test = test.astype(dtype)
    if len(model.feature):
        test[:50, model.feature[0]] = model.threshold[0]  # on the root's threshold (float64 rows exactly)
    for at, value in enumerate((treeshap.ZERO, -treeshap.ZERO, np.nextafter(treeshap.ZERO, 1.0), 2e-35, 1e-36)):
        test[50 + 30 * at : 80 + 30 * at, 3] = value  # at the zero threshold, just above it, below it
    want = booster.predict(test, raw_score=True)
    np.testing.assert_array_equal(treeshap.raw_scores(booster, test), want)
    np.testing.assert_array_equal(treeshap.raw_scores(booster, test[:1]), want[:1])
    assert treeshap.raw_scores(booster, test[:0]).shape == (0,)


def test_raw_scores_leave_random_forests_and_categorical_splits_to_lightgbm() -> None:
    x, y = _data(2_000, seed=6)
    rf = lgb.train(
        {"objective": "binary", "verbose": -1, "boosting": "rf", "bagging_fraction": 0.5, "bagging_freq": 1}, lgb.Dataset(x, y), 10
    )
    forest = treeshap.forest(rf)
    assert forest is not None and forest.average_output
    np.testing.assert_array_equal(treeshap.raw_scores(rf, x[:100]), rf.predict(x[:100], raw_score=True))  # the average of the trees
    x[:, 1] = np.floor(x[:, 1])
    cat = lgb.train({"objective": "binary", "verbose": -1, "min_data_per_group": 5}, lgb.Dataset(x, y, categorical_feature=[1]), 10)
    assert "==" in str(cat.dump_model())  # a categorical split, which the walk does not do
    np.testing.assert_array_equal(treeshap.raw_scores(cat, x[:100]), cat.predict(x[:100], raw_score=True))
