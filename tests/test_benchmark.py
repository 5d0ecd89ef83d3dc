"""The benchmark protocol (no leakage, groups kept whole), fold statistics, the plan, and the fast real-data run CI holds to floors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import pipeline.benchmark.protocol as protocol_module
from pipeline.benchmark.groups import coengagement_groups
from pipeline.benchmark.protocol import Protocol, Variant, crossfit, evaluate_dataset, outer_runs
from pipeline.benchmark.run import FLOOR_MARGINS, Plan, fast_protocol, missed_floors, plan_from_params, run_benchmark
from pipeline.datasets.spec import list_specs, load_spec
from pipeline.errors import ZombieScanError
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


def test_group_kfold_never_puts_a_group_on_both_sides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outer folds and the inner cross-fitting folds alike keep every group on one side."""
    data = _toy(n=300)
    group_of = {a: i // 6 for i, a in enumerate(data["account_id"])}  # 50 groups of 6
    groups = pl.DataFrame({"account_id": list(group_of), "group": list(group_of.values())})
    y = data["is_zombie"].cast(pl.Int8).to_numpy()
    g = np.array(list(group_of.values()))
    runs = outer_runs(y, Protocol(seeds=2, folds=5, seed_offset=1000), groups=g)
    assert len(runs) == 10
    for _, _, train, test in runs:
        assert not set(g[train]) & set(g[test])
    inner: list[tuple[set[int], set[int]]] = []
    real_fit = protocol_module.fit_task

    def spy(task, p, fit_rows, stop_rows, **kwargs):  # type: ignore[no-untyped-def]
        inner.append(({group_of[a] for a in fit_rows["account_id"]}, {group_of[a] for a in stop_rows["account_id"]}))
        return real_fit(task, p, fit_rows, stop_rows, **kwargs)

    monkeypatch.setattr(protocol_module, "fit_task", spy)
    p = TaskParams(label="is_zombie", num_boost_round=30)
    results = evaluate_dataset(
        "zombie", p, data, Protocol(seeds=1, folds=5, inner_folds=3), [Variant("full", ("profile_", "raw_"))], groups=groups
    )
    assert len(results) == 5 and len(inner) == 15
    assert all(not (fit & stop) for fit, stop in inner)


def test_shipped_train_test_split_crossfits_inside_train(monkeypatch: pytest.MonkeyPatch) -> None:
    """Train and test files, no validation part: the inner cross-fitting on `train` alone, measured once on `test`."""
    data = _toy()
    roles = ["test" if i % 4 == 0 else "train" for i in range(data.height)]
    splits = pl.DataFrame({"account_id": data["account_id"], "split": 0, "role": roles})
    test_ids = set(data.filter(pl.Series(roles) == "test")["account_id"])
    seen: list[set[str]] = []
    real_fit = protocol_module.fit_task

    def spy(task, p, fit_rows, stop_rows, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(set(fit_rows["account_id"]) | set(stop_rows["account_id"]))
        return real_fit(task, p, fit_rows, stop_rows, **kwargs)

    monkeypatch.setattr(protocol_module, "fit_task", spy)
    p = TaskParams(label="is_zombie", num_boost_round=50)
    variants = [Variant("full", ("profile_", "raw_")), Variant("profile_signal", column="profile_signal")]
    results = evaluate_dataset("zombie", p, data, Protocol(seeds=3, inner_folds=3), variants, splits)
    assert [(r.variant, r.fold) for r in results] == [("full", 0), ("profile_signal", 0)]  # one run, not one per seed
    assert len(seen) == 3 and all(rows and not rows & test_ids for rows in seen)  # 3 inner models, never a test row
    assert results[0].metrics["roc_auc"] > 0.75
    # a split whose test part holds no labelled account is an error, not an empty measurement
    no_test = splits.with_columns(role=pl.lit("train"))
    with pytest.raises(ZombieScanError, match="shipped split 0 has no labelled account in its test part"):
        evaluate_dataset("zombie", p, data, Protocol(inner_folds=3), variants, no_test)


def test_seed_offset_gives_other_folds() -> None:
    y = _toy()["is_zombie"].cast(pl.Int8).to_numpy()
    tuning = [test.tolist() for *_, test in outer_runs(y, Protocol(seeds=1))]
    fresh = [test.tolist() for *_, test in outer_runs(y, Protocol(seeds=1, seed_offset=1000))]
    assert tuning == [test.tolist() for *_, test in outer_runs(y, Protocol(seeds=1, seed_offset=0))]  # offset 0: the old folds
    assert tuning != fresh


def _farms() -> tuple[pl.Series, pl.DataFrame]:
    """Two farms of 5 accounts, each liking its own 5 posts; 20 users liking 2 posts each out of a pool of
    30; everyone also likes one viral post; one account with no engagement."""
    rng = np.random.default_rng(0)
    rows = [(f"farm{f}_{i}", f"post{f}_{k}") for f in "ab" for i in range(5) for k in range(5)]
    rows += [(f"user{i}", f"pool{k}") for i in range(20) for k in rng.choice(30, 2, replace=False)]
    accounts = pl.Series("account_id", [*sorted({a for a, _ in rows}), "loner"])
    rows += [(a, "viral") for a in accounts[:-1]]
    engagements = pl.DataFrame(rows, schema=["actor_id", "target_id"], orient="row").with_columns(target_type=pl.lit("post"))
    return accounts, engagements


def test_coengagement_groups_keep_each_farm_whole() -> None:
    accounts, engagements = _farms()
    positives = accounts.str.starts_with("farm").to_numpy()
    groups, stats = coengagement_groups(accounts, engagements, positives=positives)
    group = dict(zip(groups["account_id"], groups["group"], strict=True))
    farm_a = {group[f"farma_{i}"] for i in range(5)}
    farm_b = {group[f"farmb_{i}"] for i in range(5)}
    assert len(farm_a) == 1 and len(farm_b) == 1 and farm_a != farm_b  # each farm whole, and apart
    assert sum(1 for g in group.values() if g == group["loner"]) == 1  # no links: a group of its own
    assert stats["positive_links"] == 20 and stats["positive_links_within_groups"] == 1.0  # 2 x C(5, 2)
    assert stats["most_positives_in_one_group"] == 5 and stats["accounts"] == 31
    # the viral post alone (31 engagers: 1 / log(36) = 0.28 < 0.5) links nobody
    only_viral = engagements.filter(pl.col("target_id") == "viral")
    assert coengagement_groups(accounts, only_viral)[1]["links"] == 0
    # the same on every run (Leiden draws random numbers; a private seeded generator)
    assert groups.equals(coengagement_groups(accounts, engagements, positives=positives)[0])


def test_account_to_account_edges_are_links() -> None:
    accounts = pl.Series("account_id", ["a", "b", "c", "d", "e", "f"])
    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("d", "e"), ("e", "f"), ("d", "f")]  # two triangles
    engagements = pl.DataFrame(edges, schema=["actor_id", "target_id"], orient="row").with_columns(target_type=pl.lit("account"))
    groups, stats = coengagement_groups(accounts, engagements)
    assert stats["links"] == 6 and stats["groups"] == 2 and stats["links_within_groups"] == 1.0
    assert groups["group"].to_list()[:3] == [groups["group"][0]] * 3


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"seed_offset": 1000}, {"headline": (3, 1000), "tuning": None, "grouped": None}),
        (
            {"seed_offset": 1000, "tuning": {"seed_offset": 0, "seeds": 2}, "groups": {"datasets": ["weibo-s"], "seeds": 1}},
            {"headline": (3, 1000), "tuning": (2, 0), "grouped": (1, 1000), "group_datasets": ("weibo-s",)},
        ),
        ({"seed_offset": 1000, "tuning": {"seed_offset": 0}, "fast": True}, {"headline": (1, 1000), "tuning": None, "grouped": None}),
        ({"seed_offset": -1}, "benchmark.seed_offset = -1: expected an integer >= 0"),
        ({"seeds": 0}, "benchmark.seeds = 0: expected an integer >= 1"),
        ({"tuning": {"seed": 0}}, "benchmark.tuning = {'seed': 0}: expected a mapping with some of seed_offset, seeds, or null"),
        ({"groups": {"datasets": "weibo-s"}}, "benchmark.groups.datasets = 'weibo-s': expected a list of dataset names"),
        ({"seed_ofset": 1}, "benchmark: unknown setting(s) seed_ofset"),
    ],
)
def test_plan_from_params(values: dict[str, object], expected: dict[str, object] | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ZombieScanError) as err:
            plan_from_params(values)
        assert expected in str(err.value)
        return
    plan = plan_from_params(values)
    for key in ("headline", "tuning", "grouped"):
        protocol = getattr(plan, key)
        assert (None if protocol is None else (protocol.seeds, protocol.seed_offset)) == expected[key], key
    assert plan.group_datasets == expected.get("group_datasets", ())
    if plan.tuning is not None:
        assert plan.tuning.ablation_seeds == 0  # the tuning folds: the full model only


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


def test_fold_statistics_do_not_move_with_the_last_bits() -> None:
    """A baseline fitted through another CPU's BLAS kernels moves a fold's metric in its last bits:
    the written mean and std stay the same bytes."""
    values = [0.0476171395469688, 0.0491, 0.0463]
    nudged = [np.nextafter(values[0], 1.0), *values[1:]]
    assert float(np.mean(values)) != float(np.mean(nudged))  # the raw mean does move
    assert fold_statistics(values) == fold_statistics(nudged)
    assert fold_statistics(values)["mean"] == pytest.approx(np.mean(values), rel=1e-9)


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
    details = run_benchmark(specs, SHARED, Plan(fast_protocol(Protocol())), params["train"], tmp_path)
    assert missed_floors(details) == [], f"margins {FLOOR_MARGINS}"
    assert (tmp_path / "benchmark.md").is_file() and (tmp_path / "benchmark.json").is_file()
    # the report puts the published numbers beside ours
    text = (tmp_path / "benchmark.md").read_text()
    assert "GAT-sep (published)" in text and "FRAUDAR (published)" in text
