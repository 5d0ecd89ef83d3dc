"""The benchmark protocol (no leakage) and the fast real-data benchmark that CI runs against floors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipeline.benchmark.protocol as protocol_module
from pipeline.benchmark.protocol import Protocol, Variant, crossfit, evaluate_dataset
from pipeline.benchmark.run import FLOOR_MARGINS, fast_protocol, missed_floors, run_benchmark
from pipeline.datasets.spec import list_specs, load_spec
from pipeline.models.evaluate import METRICS as EVALUATE_METRICS
from pipeline.models.evaluate import FoldResult, fold_statistics, summarise
from pipeline.models.train import TaskParams

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _toy(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    return pl.DataFrame(
        {
            "account_id": [f"a{i:04d}" for i in range(n)],
            "is_zombie": y,
            "profile_signal": y * 1.0 + rng.normal(0, 0.7, n),
            "raw_noise": rng.normal(0, 1, n),
        }
    )


def test_crossfit_never_fits_on_test_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _toy()
    train, test = data[:300], data[300:]
    seen: list[set[str]] = []
    real_fit = protocol_module.fit_task

    def spy(task, p, fit_rows, stop_rows, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(set(fit_rows["account_id"]) | set(stop_rows["account_id"]))
        return real_fit(task, p, fit_rows, stop_rows, **kwargs)

    monkeypatch.setattr(protocol_module, "fit_task", spy)
    p = TaskParams(label="is_zombie", num_boost_round=50)
    prob, threshold = crossfit("zombie", p, train, test, ["profile_signal", "raw_noise"], inner_folds=4, seed=0)
    assert len(seen) == 4
    assert all(rows <= set(train["account_id"]) for rows in seen)
    assert all(not (rows & set(test["account_id"])) for rows in seen)
    assert prob.shape == (100,) and 0 < threshold < 1
    # the signal is found: the test rows are ranked far better than chance
    y = test["is_zombie"].to_numpy()
    assert prob[y].mean() > prob[~y].mean() + 0.2


def test_repeated_kfold_and_variants() -> None:
    data = _toy()
    p = TaskParams(label="is_zombie", num_boost_round=50)
    variants = [Variant("full", ("profile_", "raw_")), Variant("raw only", ("raw_",)), Variant("profile_signal", column="profile_signal")]
    results = evaluate_dataset("zombie", p, data, Protocol(seeds=2, folds=5, inner_folds=2, ablation_seeds=1), variants)
    by_variant: dict[str, list[float]] = {}
    for r in results:
        by_variant.setdefault(r.variant, []).append(r.metrics["roc_auc"])
    assert len(by_variant["full"]) == 10 and len(by_variant["raw only"]) == 5  # ablations on the first seed only
    assert np.mean(by_variant["full"]) > 0.75 > np.mean(by_variant["raw only"])  # the noise column alone is near chance


NAN = float("nan")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.9, 0.8, 1.0], {"mean": 0.9, "std": 0.1, "n_folds": 3, "n_nan": 0}),  # ddof 1: sqrt(0.02 / 2)
        ([0.9, NAN, 0.7], {"mean": 0.8, "std": 0.02**0.5, "n_folds": 3, "n_nan": 1}),  # the NaN fold is counted, not dropped
        ([0.5], {"mean": 0.5, "std": NAN, "n_folds": 1, "n_nan": 0}),  # one fold: the spread is unknown, not 0
        ([NAN, NAN], {"mean": NAN, "std": NAN, "n_folds": 2, "n_nan": 2}),
    ],
)
def test_fold_statistics(values: list[float], expected: dict[str, float]) -> None:
    got = fold_statistics(values)
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert got[key] == pytest.approx(want, nan_ok=True), key


def test_summarise_reports_nan_folds_per_variant_and_metric() -> None:
    def fold(variant: str, i: int, auc: float) -> FoldResult:
        return FoldResult(variant, i, {m: 0.5 for m in EVALUATE_METRICS} | {"roc_auc": auc}, 0.5)

    summary = summarise([fold("full", 0, 0.9), fold("full", 1, NAN), fold("full", 2, 0.7), fold("ablation", 0, 0.6)])
    assert list(summary) == ["full", "ablation"]
    assert summary["full"]["roc_auc"]["n_nan"] == 1 and summary["full"]["roc_auc"]["mean"] == pytest.approx(0.8)
    assert summary["full"]["f1"] == {"mean": 0.5, "std": 0.0, "n_folds": 3, "n_nan": 0}
    assert summary["ablation"]["roc_auc"]["n_folds"] == 1 and np.isnan(summary["ablation"]["roc_auc"]["std"])


def _goal_details(measured: float, n_nan: int = 0) -> dict[str, dict[str, object]]:
    return {"d": {"goals": {"roc_auc": {"goal": 0.9, "measured": measured, "n_nan": n_nan, "met": measured >= 0.9}}}}


@pytest.mark.parametrize(
    ("measured", "n_nan", "missed"),
    [
        (0.95, 0, []),
        (0.895, 0, []),  # below the goal, within the margin (0.01 for ROC-AUC)
        (0.88, 0, ["d: roc_auc 0.880 < floor 0.890 (goal 0.900)"]),
        (NAN, 3, ["d: roc_auc is NaN on every fold (3 NaN folds): nothing was measured (goal 0.900)"]),
        (0.95, 1, ["d: roc_auc NaN on 1 fold(s): a test fold the metric is undefined on (goal 0.900)"]),
    ],
)
def test_missed_floors_fails_on_nan(measured: float, n_nan: int, missed: list[str]) -> None:
    assert missed_floors(_goal_details(measured, n_nan)) == missed


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the project")
def test_fast_benchmark_on_real_data_holds_its_floors(tmp_path: Path) -> None:
    """CI's regression check: every dataset's fast numbers within a few points of its goal."""
    specs = [load_spec(ROOT / "datasets" / f"{name}.yaml") for name in list_specs(ROOT / "datasets")]
    assert {s.name for s in specs} >= {"cresci-2015", "instafake", "social-honeypot", "weibo-s", "tolokers"}
    params = __import__("yaml").safe_load((ROOT / "params.yaml").read_text())
    details = run_benchmark(specs, SHARED, fast_protocol(Protocol()), params["train"], tmp_path)
    assert missed_floors(details) == [], f"margins {FLOOR_MARGINS}"
    assert (tmp_path / "benchmark.md").is_file() and (tmp_path / "benchmark.json").is_file()
    # the report puts the published numbers beside ours
    text = (tmp_path / "benchmark.md").read_text()
    assert "GAT-sep (published)" in text and "FRAUDAR (published)" in text
