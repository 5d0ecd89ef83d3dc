"""P3 models: splits without leakage, reproducible training, saved models, evaluation, MLflow."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from sklearn.metrics import average_precision_score

from pipeline.errors import ZombieScanError
from pipeline.models.guard import GuardLimits, giveaway_guard
from pipeline.models.guard import check as guard_check
from pipeline.models.split import SplitParams, groups_of, make_split, roles
from pipeline.models.tracking import rows_hash
from pipeline.models.train import Calibration, TaskModel, TaskParams, choose_threshold, fit_task
from pipeline.params import DEFAULT_PARAMS
from pipeline.stages import evaluate as evaluate_stage
from pipeline.stages import split as split_stage
from pipeline.stages import train as train_stage

# --- splits ---------------------------------------------------------------------------------


def test_farms_and_batches_never_straddle_folds(tiny_tables: dict[str, pl.DataFrame]) -> None:
    split = make_split(tiny_tables["labels"], tiny_tables["accounts"], SplitParams(method="group", folds=3))
    labels = tiny_tables["labels"].join(split.select("account_id", "fold"), on="account_id")
    for column in ("farm_id", "batch_id"):
        per_group = labels.drop_nulls(column).group_by(column).agg(pl.col("fold").n_unique())
        assert per_group["fold"].max() == 1, column
    # every fold holds positives of both tasks (the tiny world has 8 farms), roughly a third of the accounts
    per_fold = labels.group_by("fold").agg(pl.len(), pl.col("is_zombie").sum(), pl.col("is_like_farm").sum())
    assert per_fold.height == 3 and (per_fold["is_zombie"] > 0).all() and (per_fold["is_like_farm"] > 0).all()
    assert per_fold["len"].min() > 0.25 * labels.height


def test_groups_are_linked_through_farms_and_batches() -> None:
    labels = pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e"],
            "farm_id": ["f1", None, "f1", None, None],
            "batch_id": [None, "b1", "b1", None, "b2"],
        }
    )
    assert groups_of(labels).to_list() == ["a", "a", "a", "d", "e"]  # a-c by farm, b-c by batch


def test_cohort_split_tests_on_groups_that_started_after_the_cutoff(tiny_tables: dict[str, pl.DataFrame]) -> None:
    accounts = tiny_tables["accounts"]
    cutoff = accounts["created_at"].quantile(0.7, "nearest")
    split = make_split(tiny_tables["labels"], accounts, SplitParams(method="cohort", folds=4, cohort_cutoff=cutoff))
    joined = split.join(accounts.select("account_id", "created_at"), on="account_id")
    first = joined.group_by("group").agg(pl.col("created_at").min(), pl.col("fold").n_unique().alias("folds"))
    assert first["folds"].max() == 1
    test_groups = set(joined.filter(pl.col("fold") == 0)["group"])
    assert all(row["created_at"] >= cutoff for row in first.iter_rows(named=True) if row["group"] in test_groups)
    assert all(row["created_at"] < cutoff for row in first.iter_rows(named=True) if row["group"] not in test_groups)


def test_roles_put_validation_on_the_next_fold() -> None:
    split = pl.DataFrame({"fold": [0, 1, 2, 3, 1, 0]})
    assert roles(split, 0).tolist() == ["test", "valid", "train", "train", "valid", "test"]
    assert roles(split, 3).tolist() == ["valid", "train", "train", "test", "train", "valid"]


def test_unknown_split_method_is_refused(tiny_tables: dict[str, pl.DataFrame]) -> None:
    with pytest.raises(ZombieScanError, match=r"split\.method"):
        make_split(tiny_tables["labels"], tiny_tables["accounts"], SplitParams(method="random"))


# --- calibration and threshold ---------------------------------------------------------------


def test_isotonic_calibration_is_monotone_and_stored_as_numbers() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-3 * scores))).astype(int)
    cal = Calibration.fit("isotonic", scores, y)
    p = cal.apply(np.sort(scores))
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1
    assert json.loads(json.dumps(cal.__dict__))["method"] == "isotonic"
    platt = Calibration.fit("platt", scores, y)
    assert platt.a == pytest.approx(3, rel=0.2)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [("max_f1", 0.6), ("precision", 0.8)],
)
def test_threshold_rules(rule: str, expected: float) -> None:
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 0, 1, 1])
    threshold, _ = choose_threshold(p, y, rule, target_precision=0.99)
    assert threshold == pytest.approx(expected)


# --- the pipeline on a tiny world ------------------------------------------------------------


def test_saved_model_is_text_and_reproducible(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    root = tiny_run["root"]
    folder = root / "models" / "zombie"
    assert (folder / "model.txt").read_text().startswith("tree")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["params"]["deterministic"] and meta["params"]["force_row_wise"]
    assert meta["features"][0]["name"].startswith("profile_") and "dtype" in meta["features"][0]
    assert meta["best_iteration"] < meta["params"]["num_boost_round"]  # early stopping stopped it
    # the same data and params give the same model, byte for byte
    data, _, _ = train_stage.load_data(tiny_run["params"])
    role = roles(data, 0)
    p = train_stage.task_params(tiny_run["params"], "zombie")
    again = fit_task("zombie", p, data.filter(pl.Series(role == "train")), data.filter(pl.Series(role == "valid")))
    again.save(tmp_path)
    assert (tmp_path / "model.txt").read_text() == (folder / "model.txt").read_text()


def test_model_refuses_features_that_do_not_match(tiny_run: dict[str, Any]) -> None:
    model = TaskModel.load(tiny_run["root"] / "models" / "like_farm")
    features = pl.read_parquet(tiny_run["root"] / "features" / "features.parquet")
    assert model.predict(features).shape == (features.height,)
    with pytest.raises(ZombieScanError, match="lack 1 column"):
        model.predict(features.drop(model.features[3]))
    with pytest.raises(ZombieScanError, match="has type String"):
        model.predict(features.with_columns(pl.col(model.features[0]).cast(pl.String)))


def test_evaluation_reports_variants_segments_and_plots(tiny_run: dict[str, Any]) -> None:
    root = tiny_run["root"]
    report = json.loads((root / "metrics" / "like_farm.json").read_text())
    variants = report["variants"]
    assert {"full", "profile", "profile+beh", "profile+beh+graph", "profile+beh+lock", "logreg_profile", "dense_block_score"} <= set(
        variants
    )
    for metric in ("roc_auc", "average_precision", "f1", "precision", "recall", "recall_at_1pct_fpr", "brier"):
        assert variants["full"][metric]["n_folds"] == 3
    assert variants["full"]["roc_auc"]["mean"] > 0.8
    assert any(s.endswith("_farm") for s in report["segments"])
    assert "full" in (root / "reports" / "like_farm-comparison.md").read_text()
    card = (root / "models" / "like_farm" / "MODEL_CARD.md").read_text()
    for heading in ("Intended use", "Metrics", "Threshold", "Known failure modes", "Ethical notes"):
        assert f"## {heading}" in card
    for plot in ("roc", "pr", "calibration", "importance", "scores"):
        assert pl.read_csv(root / "reports" / "plots" / "like_farm" / f"{plot}.csv").height > 0


def test_predictions_are_the_saved_models(tiny_run: dict[str, Any]) -> None:
    root = tiny_run["root"]
    predictions = pl.read_parquet(root / "pred" / "zombie.parquet")
    model = TaskModel.load(root / "models" / "zombie")
    features = pl.read_parquet(root / "features" / "features.parquet")
    rows = predictions.select("account_id").join(features, on="account_id", how="left")
    np.testing.assert_allclose(model.predict(rows), predictions["p"].to_numpy(), rtol=0, atol=1e-12)


def test_every_run_is_tracked_and_champion_moves_only_on_improvement(tiny_run: dict[str, Any]) -> None:
    root = tiny_run["root"]
    db = sqlite3.connect(root / "mlflow.db")
    runs = dict(db.execute("SELECT name, status FROM runs").fetchall())
    assert {"train-zombie", "evaluate-zombie", "train-like_farm", "evaluate-like_farm"} <= set(runs)
    tags = dict(db.execute("SELECT key, value FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid WHERE r.name = 'train-zombie'").fetchall())
    assert "git_commit" in tags and "data_hash" in tags
    aliases = dict(db.execute("SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'").fetchall())
    assert set(aliases) == {"zombiescan-zombie", "zombiescan-like-farm"}
    # the same model evaluated again is not better: a new version, the alias stays
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.chdir(root)
    try:
        assert evaluate_stage.main(["--params", str(tiny_run["path"]), "--task", "zombie"]) == 0
    finally:
        mp.undo()
    versions = db.execute("SELECT max(version) FROM model_versions WHERE name = 'zombiescan-zombie'").fetchall()[0][0]
    after = dict(db.execute("SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'").fetchall())
    assert versions == aliases["zombiescan-zombie"] + 1
    assert after == aliases


def test_a_broken_tracking_store_warns_and_keeps_the_model(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    params = dict(tiny_run["params"])
    params["train"] = {**params["train"], "models": str(tmp_path / "models")}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    (tmp_path / "store").write_text("not a folder")  # the store cannot be created
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"file://{tmp_path / 'store' / 'mlruns'}")
    mp.chdir(tmp_path)
    try:
        with pytest.warns(RuntimeWarning, match="MLflow tracking failed"):
            assert train_stage.main(["--params", str(path), "--task", "zombie"]) == 0
    finally:
        mp.undo()
    assert TaskModel.load(tmp_path / "models" / "zombie").booster is not None


# --- directional tests in domain words -------------------------------------------------------


def _with_planted(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The world plus hand-made accounts, each described in words by its id."""
    accounts, eng = tables["accounts"], tables["engagements"]
    ref = eng["ts"].max()
    pages = tables["targets"].filter(pl.col("target_type") == "page")["target_id"].head(300).to_list()
    others = accounts["account_id"].head(2000).to_list()
    template = accounts.head(1)
    rows_a: list[pl.DataFrame] = []
    rows_e: list[dict[str, Any]] = []

    def account(account_id: str, age_days: float, username: str, photo: bool, following: int, followers: int) -> None:
        rows_a.append(
            template.with_columns(
                account_id=pl.lit(account_id),
                created_at=pl.lit(ref - timedelta(days=age_days)).cast(template.schema["created_at"]),
                username=pl.lit(username),
                display_name=pl.lit("Jordan Smith"),
                has_profile_photo=pl.lit(photo),
                following_count=pl.lit(following).cast(template.schema["following_count"]),
                followers_count=pl.lit(followers).cast(template.schema["followers_count"]),
            )
        )

    def act(actor: str, target: str, kind: str, ttype: str, ts: Any) -> None:
        rows_e.append({"actor_id": actor, "target_id": target, "target_type": ttype, "kind": kind, "ts": ts})

    # like farm: 51 accounts like the same 300 pages within two minutes, several times a month
    for m in range(51):
        account(f"farm{m}", 400, f"user{m}x", True, 150, 140)
        for i, page in enumerate(pages):
            act(f"farm{m}", page, "like", "page", ref - timedelta(days=3 * (i % 4) + 1, seconds=120 - (m * 7 + i) % 120))
    # a person with 5 likes spread over a week
    account("calm_liker", 900, "jordan.smith", True, 150, 140)
    for d in range(5):
        act("calm_liker", pages[d * 40], "like", "page", ref - timedelta(days=7 - d * 1.5, hours=d * 3))
    # fresh, default photo, digit-suffix name, following 2,000 accounts
    account("fresh_follower", 1, "jsmith84721", False, 2000, 3)
    for i, other in enumerate(others):
        act("fresh_follower", other, "follow", "account", ref - timedelta(hours=20, seconds=i * 20))
    # ten years old, 300 mutual follows
    account("old_friend", 3650, "jordan.smith.real", True, 300, 310)
    for i, other in enumerate(others[:300]):
        t = ref - timedelta(days=3000 - i * 5)
        act("old_friend", other, "follow", "account", t)
        act(other, "old_friend", "follow", "account", t + timedelta(days=1))
    planted = pl.DataFrame(rows_e).with_columns(pl.col("ts").cast(eng.schema["ts"]))
    planted = planted.with_columns(pl.col(c).cast(eng.schema[c]) for c in ("target_type", "kind"))
    for column in eng.columns:
        if column not in planted.columns:
            planted = planted.with_columns(pl.lit(None).cast(eng.schema[column]).alias(column))
    return pl.concat([accounts, *rows_a], how="vertical_relaxed"), pl.concat([eng, planted.select(eng.columns)], how="vertical_relaxed")


@pytest.fixture(scope="module")
def default_models(default_tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, dict[str, TaskModel]]:
    """Both models trained on the default world, and features of that world with planted accounts."""
    from pipeline.features.build import build_features

    accounts, eng = _with_planted(default_tables)
    features, _, _ = build_features(accounts, eng, default_tables["targets"])
    split = make_split(default_tables["labels"], default_tables["accounts"], SplitParams(folds=5))
    data = split.join(features, on="account_id")
    role = roles(data, 0)
    params = yaml.safe_load(DEFAULT_PARAMS.read_text())["train"]
    models = {
        task: fit_task(
            task,
            TaskParams.from_params(task, params[task]),
            data.filter(pl.Series(role == "train")),
            data.filter(pl.Series(role == "valid")),
        )
        for task in ("zombie", "like_farm")
    }
    return features, models


def _p(features: pl.DataFrame, model: TaskModel, account_id: str) -> float:
    return float(model.predict(features.filter(pl.col("account_id") == account_id))[0])


def test_lockstep_liker_scores_higher_on_like_farm_than_a_calm_liker(default_models: tuple[pl.DataFrame, dict[str, TaskModel]]) -> None:
    features, models = default_models
    assert _p(features, models["like_farm"], "farm0") > _p(features, models["like_farm"], "calm_liker")
    assert features.filter(pl.col("account_id") == "farm0")["lock_group_size"][0] >= 51


def test_fresh_mass_follower_scores_higher_on_zombie_than_an_old_friend(default_models: tuple[pl.DataFrame, dict[str, TaskModel]]) -> None:
    features, models = default_models
    assert _p(features, models["zombie"], "fresh_follower") > _p(features, models["zombie"], "old_friend")


def test_cohort_split_spreads_over_seeds(tiny_run: dict[str, Any]) -> None:
    from pipeline.models.evaluate import comparison_variants, evaluate_task, summarise

    features = pl.read_parquet(tiny_run["root"] / "features" / "features.parquet")
    tables = {"labels": pl.read_parquet(tiny_run["root"] / "split.parquet")}
    accounts = features.select("account_id").join(
        pl.DataFrame({"account_id": features["account_id"], "created_at": features["profile_age_days"]}), on="account_id"
    )
    # older accounts (larger age) first: the youngest 30% are "the future"
    accounts = accounts.with_columns(created_at=-pl.col("created_at"))
    cutoff = accounts["created_at"].quantile(0.7)
    split = make_split(tables["labels"], accounts, SplitParams(method="cohort", folds=3, cohort_cutoff=cutoff))
    data = split.join(features, on="account_id")
    p = train_stage.task_params(tiny_run["params"], "zombie")
    results, predictions = evaluate_task("zombie", p, data, "cohort", variants=(comparison_variants()[0],))
    assert summarise(results)["full"]["roc_auc"]["n_folds"] == 3
    assert predictions.height == (split["fold"] == 0).sum()


def test_dvc_lock_hashes_are_read_for_the_runs_inputs(tmp_path: Path) -> None:
    from pipeline.models.tracking import dvc_lock_hashes

    lock = tmp_path / "dvc.lock"
    lock.write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "featurize": {"outs": [{"path": "data/features", "md5": "abc.dir"}]},
                    "split": {"outs": [{"path": "data/split/split.parquet", "md5": "def"}]},
                },
            }
        )
    )
    got = dvc_lock_hashes(Path("data/features"), Path("data/split/split.parquet"), lock=lock)
    assert got == {"dvc_md5.data/features": "abc.dir", "dvc_md5.data/split/split.parquet": "def"}
    assert dvc_lock_hashes(Path("x"), lock=tmp_path / "missing.lock") == {}


def test_recall_at_fpr_sees_every_threshold_even_with_ties() -> None:
    from pipeline.models.evaluate import recall_at_fpr

    rng = np.random.default_rng(5)
    y = (rng.random(3000) < 0.1).astype(int)
    p = np.round(np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1), 1)  # heavy ties
    negatives, positives = (y == 0).sum(), (y == 1).sum()
    best = max(
        ((p[y == 1] >= t).sum() / positives for t in np.unique(p) if (p[y == 0] >= t).sum() / negatives <= 0.01),
        default=0.0,
    )
    assert recall_at_fpr(y, p) == pytest.approx(best)


def test_split_needs_three_folds_and_a_time_zone(tiny_tables: dict[str, pl.DataFrame]) -> None:
    from datetime import datetime

    from pipeline.params import parse_utc_time

    with pytest.raises(ZombieScanError, match="at least 3"):
        make_split(tiny_tables["labels"], tiny_tables["accounts"], SplitParams(folds=2))
    with pytest.raises(ZombieScanError, match="time zone"):
        parse_utc_time(datetime(2026, 1, 5), "split.cohort_cutoff")


def test_a_model_txt_from_another_training_is_refused(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    shutil.copy(tiny_run["root"] / "models" / "zombie" / "model.json", tmp_path / "model.json")
    shutil.copy(tiny_run["root"] / "models" / "like_farm" / "model.txt", tmp_path / "model.txt")
    with pytest.raises(ZombieScanError, match="do not belong together"):
        TaskModel.load(tmp_path)


def test_unknown_labels_are_left_out_not_fatal(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    split = pl.read_parquet(tiny_run["root"] / "split.parquet")
    # a source that does not know the zombie label of every tenth account
    split = split.with_columns(is_zombie=pl.when(pl.int_range(pl.len()) % 10 == 0).then(None).otherwise(pl.col("is_zombie")))
    split.write_parquet(tmp_path / "split.parquet")
    params = {**tiny_run["params"]}
    params["split"] = {**params["split"], "out": str(tmp_path / "split.parquet")}
    params["train"] = {**params["train"], "models": str(tmp_path / "models")}
    outputs = {"metrics": str(tmp_path / "m"), "reports": str(tmp_path / "r"), "predictions": str(tmp_path / "p")}
    params["evaluate"] = {**params["evaluate"], **outputs}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mp.chdir(tmp_path)
    try:
        assert train_stage.main(["--params", str(path), "--task", "zombie"]) == 0
        assert evaluate_stage.main(["--params", str(path), "--task", "zombie"]) == 0
    finally:
        mp.undo()
    predictions = pl.read_parquet(tmp_path / "p" / "zombie.parquet")
    assert predictions["is_zombie"].null_count() == 0


# --- the giveaway guard ------------------------------------------------------------------------


def _guard_frame(n: int = 2_000, seed: int = 0) -> pl.DataFrame:
    """Two classes that overlap on every feature: no shallow rule separates them."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.1
    return pl.DataFrame(
        {
            "account_id": [f"a{i:05d}" for i in range(n)],
            "is_zombie": y,
            "fold": rng.integers(0, 5, n),
            "profile_a": rng.normal(0.5 * y, 1.0),
            "beh_b": rng.poisson(3 + y, n).astype(np.float64),
            "graph_c": np.where(rng.random(n) < 0.3, 0.0, rng.normal(0, 1, n)),
        }
    )


def test_guard_passes_overlapping_classes() -> None:
    guard = giveaway_guard(_guard_frame(), "is_zombie", GuardLimits(max_tree_auc={1: 0.8, 2: 0.8}), seed=1)
    assert guard["flagged"] == [] and guard["violations"] == []
    assert 0.5 < guard["trees"]["2"]["roc_auc"] < 0.8
    assert guard["presence"]["beh_b"]["negatives"] > 0.9


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        # zombies never post: absent in one class, present in most of the other
        (lambda y, rng: np.where(y, 0.0, rng.poisson(2.0, len(y)) + 1.0), "feature beh_planted is non-zero in 0.0% of positives"),
        # a one-question rule: a creation hour only zombies use
        (lambda y, rng: np.where(y, 3.0, rng.uniform(5, 24, len(y))), "a depth-2 decision tree reaches ROC-AUC 1.000"),
    ],
)
def test_guard_flags_a_planted_giveaway(plant: Any, expected: str) -> None:
    frame = _guard_frame()
    y = frame["is_zombie"].to_numpy()
    frame = frame.with_columns(beh_planted=pl.Series(plant(y, np.random.default_rng(2))))
    guard = giveaway_guard(frame, "is_zombie", GuardLimits(max_tree_auc={2: 0.9}), seed=1)
    assert any(v.startswith(expected) for v in guard["violations"]), guard["violations"]
    with pytest.raises(ZombieScanError, match="giveaway guard failed"):
        guard_check("zombie", guard, "a planted world")


def test_guard_fails_the_evaluate_stage_on_a_planted_giveaway(tiny_run: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    """A simulator change that lets zombies never post must turn `dvc repro` red, naming the feature."""
    root = tiny_run["root"]
    features = pl.read_parquet(root / "features" / "features.parquet")
    labels = pl.read_parquet(root / "split.parquet").select("account_id", "is_zombie")
    planted = features.join(labels, on="account_id", how="left").with_columns(
        beh_n_post=pl.when(pl.col("is_zombie")).then(0).otherwise(pl.col("beh_n_post") + 1)
    )
    (tmp_path / "features").mkdir()
    planted.drop("is_zombie").write_parquet(tmp_path / "features" / "features.parquet")
    params = json.loads(json.dumps(tiny_run["params"]))
    params["featurize"]["out"] = str(tmp_path / "features")
    params["train"]["models"] = str(tmp_path / "models")
    params["evaluate"].update(metrics=str(tmp_path / "metrics"), reports=str(tmp_path / "reports"), predictions=str(tmp_path / "pred"))
    params["evaluate"]["guard"] = {"max_tree_auc": {"zombie": {2: 0.999}}, "enforce": True}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mp.chdir(tmp_path)
    try:
        assert train_stage.main(["--params", str(path), "--task", "zombie"]) == 0
        assert evaluate_stage.main(["--params", str(path), "--task", "zombie"]) == 1
    finally:
        mp.undo()
    err = capsys.readouterr().err
    assert "giveaway guard failed" in err and "feature beh_n_post is non-zero in 0.0% of positives" in err
    written = json.loads((tmp_path / "metrics" / "zombie.json").read_text())
    assert "beh_n_post" in written["guard"]["flagged"]  # the numbers are there to read


def test_the_old_time_split_is_refused_with_its_new_name(tiny_tables: dict[str, pl.DataFrame]) -> None:
    """`time` promised an out-of-time split that the features never delivered: it is a cohort split now, and says why."""
    with pytest.raises(ZombieScanError, match=r"'time' is now 'cohort'.*not out of time"):
        make_split(tiny_tables["labels"], tiny_tables["accounts"], SplitParams(method="time"))
    with pytest.raises(ZombieScanError, match=r"split\.time_cutoff: renamed split\.cohort_cutoff"):
        split_stage.split_params({"method": "cohort", "time_cutoff": None})


def test_the_champion_is_chosen_on_validation_rows_not_on_the_test_fold(tiny_run: dict[str, Any]) -> None:
    """The registry tags each version with the metric on the shipped model's validation fold (the rows its
    choice may look at) and the hash of those rows; the reported test fold plays no part in the choice."""
    root = tiny_run["root"]
    db = sqlite3.connect(root / "mlflow.db")
    tags = dict(
        db.execute(
            "SELECT t.key, t.value FROM model_version_tags t WHERE t.name = 'zombiescan-zombie' AND t.version = "
            "(SELECT min(version) FROM model_versions WHERE name = 'zombiescan-zombie')"
        ).fetchall()
    )
    data, _, _ = train_stage.load_data(tiny_run["params"], "is_zombie")
    role = roles(data, 0)
    valid, test = data.filter(pl.Series(role == "valid")), data.filter(pl.Series(role == "test"))
    model = TaskModel.load(root / "models" / "zombie")
    on_valid = average_precision_score(valid["is_zombie"].cast(pl.Int8).to_numpy(), model.predict(valid))
    on_test = average_precision_score(test["is_zombie"].cast(pl.Int8).to_numpy(), model.predict(test))
    assert float(tags["average_precision"]) == pytest.approx(on_valid, abs=1e-6)
    assert abs(on_valid - on_test) > 1e-6  # the two differ, so the check above tells them apart
    assert tags["validation_rows"] == rows_hash(valid, "is_zombie")
