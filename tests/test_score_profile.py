"""Profile-only scoring: `zombiescan score --accounts profiles.parquet --out s.parquet`, without engagements.

The train stage (run by the `tiny_run` fixture) trains each task twice: on every family
(`models/<task>/`) and on the profile features alone (`models/<task>-profile/`). Without
engagements, scoring uses the second and says so on every row.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from pipeline import tasks
from pipeline.cli import main
from pipeline.errors import ZombieScanError
from pipeline.features.families import FAMILIES
from pipeline.features.profile import profile_features
from pipeline.models.split import roles
from pipeline.models.train import PROFILE, TaskModel, feature_columns, feature_set_prefixes, fit_task, untrained_reason
from pipeline.scoring import load_models
from pipeline.stages import train as train_stage

PROFILE_PREFIX = next(f.prefix for f in FAMILIES if f.role == "own" and not f.engagements)


def _score(*args: str | Path) -> list[str]:
    return ["score", "--quiet", *(str(a) for a in args)]


def _summary(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# --- training -----------------------------------------------------------------------------------


def test_the_profile_model_reads_profile_features_only(tiny_run: dict[str, Any]) -> None:
    root = tiny_run["root"]
    for task in tasks.names():
        full = json.loads((root / "models" / task / "model.json").read_text())
        meta = json.loads((root / "models" / f"{task}-profile" / "model.json").read_text())
        assert (meta["feature_set"], full["feature_set"]) == ("profile", "full")
        names = [f["name"] for f in meta["features"]]
        assert names and all(n.startswith(PROFILE_PREFIX) for n in names)
        assert names == [f["name"] for f in full["features"] if f["name"].startswith(PROFILE_PREFIX)]
        # the same training as the full model: split, params, data, calibration method, threshold rule
        assert meta["params"] == full["params"] and meta["split"] == full["split"] and meta["data_hash"] == full["data_hash"]
        assert meta["calibration"]["method"] == full["calibration"]["method"]
        assert meta["threshold_note"] == full["threshold_note"]
        assert meta["best_iteration"] < meta["params"]["num_boost_round"]  # early stopping stopped it


def test_the_profile_model_is_fit_task_on_the_profile_columns(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    data, _, _ = train_stage.load_data(tiny_run["params"], "is_zombie")
    role = roles(data, 0)
    train, valid = data.filter(pl.Series(role == "train")), data.filter(pl.Series(role == "valid"))
    p = train_stage.task_params(tiny_run["params"], "zombie")
    again = fit_task("zombie", p, train, valid, features=feature_columns(train, feature_set_prefixes(PROFILE)))
    again.save(tmp_path)
    assert (tmp_path / "model.txt").read_text() == (tiny_run["root"] / "models" / "zombie-profile" / "model.txt").read_text()


def test_the_profile_model_has_a_card_and_an_mlflow_run(tiny_run: dict[str, Any]) -> None:
    root = tiny_run["root"]
    card = (root / "models" / "like_farm-profile" / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: ZombieScan `like_farm` (profile features only)")
    for heading in ("Intended use", "Metrics", "Threshold", "Known failure modes", "Ethical notes"):
        assert f"## {heading}" in card
    assert f"columns of the {PROFILE_PREFIX} family" in card and "lockstep" not in card
    # its metrics are the profile ablation's, on the same test folds
    ablation = json.loads((root / "metrics" / "like_farm.json").read_text())["variants"]["profile"]
    assert f"| average_precision | {ablation['average_precision']['mean']:.3f} ± {ablation['average_precision']['std']:.3f} |" in card
    # the full model's card is unchanged in kind: all four families, lockstep caveat
    full_card = (root / "models" / "like_farm" / "MODEL_CARD.md").read_text()
    assert "profile features only" not in full_card and "profile_, beh_, graph_ and lock_ families" in full_card
    db = sqlite3.connect(root / "mlflow.db")
    runs = {name for (name,) in db.execute("SELECT name FROM runs").fetchall()}
    assert {"train-zombie-profile", "train-like_farm-profile"} <= runs


def test_an_untrainable_task_marks_its_profile_model_too(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    """A dataset with zombie labels only: both like_farm folders say why, and profile scoring uses the zombie model alone."""
    split = pl.read_parquet(tiny_run["root"] / "split.parquet").with_columns(pl.lit(None, pl.Boolean).alias("is_like_farm"))
    split.write_parquet(tmp_path / "split.parquet")
    params = {**tiny_run["params"]}
    params["split"] = {**params["split"], "out": str(tmp_path / "split.parquet")}
    params["train"] = {**params["train"], "models": str(tmp_path / "models")}
    train_stage.run(params, "like_farm")
    for folder in ("like_farm", "like_farm-profile"):
        assert untrained_reason(tmp_path / "models" / folder) == "the data has no is_like_farm labels"
    assert json.loads((tmp_path / "models" / "like_farm-profile" / "model.json").read_text())["feature_set"] == "profile"
    for folder in ("zombie", "zombie-profile"):
        shutil.copytree(tiny_run["root"] / "models" / folder, tmp_path / "models" / folder)
    models, versions = load_models(tmp_path / "models", PROFILE)
    assert list(models) == ["zombie"] and versions["zombie"].startswith(str(tmp_path / "models" / "zombie-profile") + "#")


# --- scoring ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def profile_scores(tiny_run: dict[str, Any], tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`zombiescan score --accounts profiles.parquet --out s.parquet` on the tiny world's accounts, and the summary."""
    out = tmp_path_factory.mktemp("profile-scores") / "s.parquet"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_run["root"])  # the default --model-dir, models/, is the tiny run's
        capture: list[str] = []
        mp.setattr("typer.echo", lambda text, *a, **k: capture.append(str(text)))
        assert main(_score("--accounts", tiny_dir / "accounts.parquet", "--out", out)) == 0
    return {"scores": pl.read_parquet(out), "summary": json.loads(capture[-1])}


def test_a_profile_export_is_scored_by_the_profile_models(profile_scores: dict[str, Any], tiny_run: dict[str, Any], tiny_dir: Path) -> None:
    scores, summary = profile_scores["scores"], profile_scores["summary"]
    accounts = pl.read_parquet(tiny_dir / "accounts.parquet")
    assert scores.height == accounts.height == summary["accounts"] == summary["no_engagements"]
    assert summary["created_after_reference_time"] == 0  # the default reference time is the last account's creation
    assert not scores["has_engagements"].any() and scores["lockstep_group"].is_null().all()
    for task in tasks.names():
        # the default --model-dir, relative as given: the folder and the MD5 of its model.txt
        text = (tiny_run["root"] / "models" / f"{task}-profile" / "model.txt").read_bytes()
        version = f"models/{task}-profile#{hashlib.md5(text, usedforsecurity=False).hexdigest()[:12]}"
        assert (scores[f"{task}_model_version"] == version).all()
        assert summary["models"][task] == version
        assert summary["flagged"][task] == scores[f"flagged_{task}"].sum()
    assert summary["flagged"]["zombie"] > 0  # the profile alone finds zombies
    flagged = scores.filter(pl.col("flagged_zombie"))
    assert all(r["feature"].startswith(PROFILE_PREFIX) for rs in flagged["zombie_reasons"].to_list() for r in rs)


def test_profile_scores_are_the_profile_models_predictions(
    profile_scores: dict[str, Any], tiny_run: dict[str, Any], tiny_dir: Path
) -> None:
    """Computed independently: profile_features on the accounts frame as of the last creation, then model.predict."""
    scores = profile_scores["scores"]
    accounts = pl.read_parquet(tiny_dir / "accounts.parquet")
    features = profile_features(accounts, reference_time=accounts["created_at"].max())
    for task in tasks.names():
        model = TaskModel.load(tiny_run["root"] / "models" / f"{task}-profile")
        both = features.select("account_id").with_columns(p=pl.Series(model.predict(features))).join(scores, on="account_id")
        assert both.height == scores.height
        np.testing.assert_allclose(both[f"p_{task}"].to_numpy(), both["p"].to_numpy(), rtol=0, atol=1e-12)
        assert (both[f"flagged_{task}"] == (both["p"] >= model.threshold)).all()


def test_at_the_pipelines_reference_time_the_features_are_the_pipelines(
    tiny_run: dict[str, Any], tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--reference-time at the featurize stage's: the profile model's predictions on features.parquet."""
    root = tiny_run["root"]
    when = json.loads((root / "features" / "report.json").read_text())["reference_time"]
    out = tmp_path / "s.parquet"
    args = _score("--accounts", tiny_dir / "accounts.parquet", "--model-dir", root / "models", "--out", out, "--reference-time", when)
    assert main(args) == 0
    summary = _summary(capsys)
    scores = pl.read_parquet(out)
    features = pl.read_parquet(root / "features" / "features.parquet")
    assert scores["account_id"].to_list() == features["account_id"].to_list()
    assert summary["created_after_reference_time"] == pl.read_parquet(tiny_dir / "accounts.parquet").height - features.height
    model = TaskModel.load(root / "models" / "like_farm-profile")
    np.testing.assert_allclose(scores["p_like_farm"].to_numpy(), model.predict(features), rtol=0, atol=1e-12)


def test_with_engagements_the_full_models_score_every_account(
    profile_scores: dict[str, Any], tiny_run: dict[str, Any], tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accounts with and without engagements alike: the full model, its version on every row, its predictions on the
    pipeline's features; and the output has the profile-only run's columns and types, in the same order."""
    root = tiny_run["root"]
    out = tmp_path / "full.parquet"
    args = [
        "--accounts",
        tiny_dir / "accounts.parquet",
        "--engagements",
        tiny_dir / "engagements.parquet",
        "--targets",
        tiny_dir / "targets.parquet",
    ]
    assert main(_score(*args, "--model-dir", root / "models", "--out", out)) == 0
    capsys.readouterr()
    scores = pl.read_parquet(out)
    assert scores.schema == profile_scores["scores"].schema
    assert scores["has_engagements"].any() and not scores["has_engagements"].all()
    _, versions = load_models(root / "models")
    features = pl.read_parquet(root / "features" / "features.parquet")
    both = features.join(scores, on="account_id")
    assert both.height == features.height == scores.height
    for task in tasks.names():
        assert (scores[f"{task}_model_version"] == versions[task]).all() and "-profile" not in versions[task]
        model = TaskModel.load(root / "models" / task)
        np.testing.assert_allclose(both[f"p_{task}"].to_numpy(), model.predict(both), rtol=0, atol=1e-12)


def test_the_command_says_which_models_scored(
    tiny_run: dict[str, Any], tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tiny_run["root"]
    args = [
        "score",
        "--accounts",
        str(tiny_dir / "accounts.parquet"),
        "--model-dir",
        str(root / "models"),
        "--out",
        str(tmp_path / "s.parquet"),
    ]
    assert main(args) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "note: no --engagements: scored from the profile alone by" in err
    assert f"{root / 'models' / 'zombie-profile'}#" in err and "has_engagements = false" in err


@pytest.mark.parametrize("case", ["pages_out", "targets", "old_model_folder", "registered_full_models", "spark", "duplicate_ids"])
def test_bad_profile_only_requests_say_why_and_write_nothing(
    case: str, tiny_run: dict[str, Any], tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tiny_run["root"]
    out, pages = tmp_path / "s.parquet", tmp_path / "pages.parquet"
    accounts = tiny_dir / "accounts.parquet"
    models = ["--model-dir", root / "models"]
    extra: list[str | Path] = []
    if case == "pages_out":
        extra, expected = ["--pages-out", pages], "--pages-out: needs --engagements"
    elif case == "targets":
        extra, expected = ["--targets", tiny_dir / "targets.parquet"], "give --engagements too, or drop --targets"
    elif case == "old_model_folder":  # trained before the profile models existed
        for task in tasks.names():
            shutil.copytree(root / "models" / task, tmp_path / "old" / task)
        models = ["--model-dir", tmp_path / "old"]
        expected = f"{tmp_path / 'old' / 'zombie-profile'}: missing (a model folder from before the profile-only models); "
        expected += "run `dvc repro` to train them, or give --engagements"
    elif case == "registered_full_models":  # the registry holds the full models (the evaluate stage registers them)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        monkeypatch.chdir(root)
        models = ["--model-uri", "models:/zombiescan-zombie@champion"]
        expected = "feature(s) beyond the profile"
    elif case == "spark":
        extra, expected = ["--engine", "spark"], "the Spark engine scores with engagements only"
    else:
        frame = pl.read_parquet(accounts)
        accounts = tmp_path / "accounts.csv"
        pl.concat([frame, frame.head(1)]).write_csv(accounts)
        expected = str(accounts)
    assert main(_score("--accounts", accounts, *models, "--out", out, *extra)) == 1
    err = capsys.readouterr().err
    message = " ".join(err.split())
    assert expected in message, message
    if case == "duplicate_ids":  # the contract's own check, as with engagements: a list of problems
        assert "1 problem in the input" in message and "column 'account_id', row 1501: expected unique account_id" in message
    else:  # one message, wrapped at 80 columns, no traceback
        assert err.count("error:") == 1 and len(err.strip().splitlines()) <= 3, err
    assert not out.exists() and not pages.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".s.", ".pages"))]  # no temporary or lock left behind


def test_a_folder_that_holds_a_full_model_as_the_profile_one_is_refused(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    for task in tasks.names():
        shutil.copytree(tiny_run["root"] / "models" / task, tmp_path / task)
        shutil.copytree(tiny_run["root"] / "models" / task, tmp_path / f"{task}-profile")
    with pytest.raises(ZombieScanError, match="feature_set is 'full', expected 'profile'"):
        load_models(tmp_path, PROFILE)


def test_dvc_yaml_declares_the_profile_models() -> None:
    dvc = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"]
    train_outs = dvc["train"]["do"]["outs"]
    assert {"${train.models}/${item}-profile/model.txt", "${train.models}/${item}-profile/model.json"} <= set(train_outs)
    evaluate = dvc["evaluate"]["do"]
    assert "${train.models}/${item}-profile/model.txt" in evaluate["deps"]
    assert any(isinstance(o, dict) and "${train.models}/${item}-profile/MODEL_CARD.md" in o for o in evaluate["outs"])
