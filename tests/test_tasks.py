"""A third model task is a registry entry plus params and dvc.yaml entries: nothing else in pipeline/ changes.

The toy task `dormant` (the 30% of the tiny world's active accounts quiet the longest) is registered here, its
label derived into the tiny world's labels table, and the same stages and commands a `dvc repro`
runs (ingest, featurize, split, train, evaluate, score, report) handle it beside the built-in tasks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from pipeline import tasks
from pipeline.cli import main
from pipeline.errors import ZombieScanError
from pipeline.ingest import ingest
from pipeline.params import DEFAULT_PARAMS
from pipeline.stages import evaluate as evaluate_stage
from pipeline.stages import featurize as featurize_stage
from pipeline.stages import split as split_stage
from pipeline.stages import train as train_stage
from pipeline.warehouse import connect

ROOT = Path(__file__).resolve().parents[1]
DORMANT = tasks.Task(
    name="dormant",
    label="is_dormant",
    title="Dormant accounts",
    registry_name="zombiescan-dormant",
    purpose="ranks accounts by how likely they have gone quiet",
    positive="dormant",
    negative="active",
    colour="#55A868",
)


@pytest.fixture(scope="module")
def dormant_run(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dormant")
    source = root / "sim"
    shutil.copytree(tiny_dir, source)
    last = pl.read_parquet(source / "engagements.parquet").group_by("actor_id").agg(last=pl.col("ts").max())
    quiet = last.filter(pl.col("last") < last["last"].quantile(0.3))["actor_id"]  # the 30% quiet longest
    labels = pl.read_parquet(source / "labels.parquet")
    # quiet longest of the accounts that ever engaged; an account that never engaged has no label (null)
    dormant = pl.when(pl.col("account_id").is_in(last["actor_id"].implode())).then(pl.col("account_id").is_in(quiet.implode()))
    labels.with_columns(is_dormant=dormant).write_parquet(source / "labels.parquet")

    params = yaml.safe_load(DEFAULT_PARAMS.read_text())
    params["ingest"]["db"] = str(root / "w.duckdb")
    params["featurize"].update(out=str(root / "features"), report=str(root / "featurize.json"))
    params["split"].update(out=str(root / "split.parquet"), folds=3)
    params["train"]["models"] = str(root / "models")
    params["train"]["dormant"] = {**params["train"]["zombie"], "quality_bars": {}}  # the params entry (the label is the task's)
    params["evaluate"].update(metrics=str(root / "metrics"), reports=str(root / "reports"), predictions=str(root / "pred"), bootstrap=20)
    params["evaluate"]["guard"]["enforce"] = False  # as in the tiny_run fixture: the tiny world is for mechanics
    params["report"]["out"] = str(root / "summary.html")
    for name in ("transfer", "robustness"):
        params[name]["out"] = str(root / f"{name}.json")
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))

    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.chdir(root)
    try:
        with tasks.registered(DORMANT):  # the registry entry
            ingest(source, root / "w.duckdb")
            for stage in (featurize_stage, split_stage):
                assert stage.main(["--params", str(path)]) == 0
            for task in ("zombie", "like_farm", "dormant"):
                assert train_stage.main(["--params", str(path), "--task", task]) == 0
                assert evaluate_stage.main(["--params", str(path), "--task", task]) == 0
    finally:
        mp.undo()
    return {"root": root, "params": params, "path": path}


def test_the_toy_task_trains_and_evaluates_through_the_stages(dormant_run: dict[str, Any]) -> None:
    """(The registration ends with the fixture: each test that needs the task registers it again.)"""
    root = dormant_run["root"]
    con = connect(root / "w.duckdb")
    try:
        counts = con.execute("SELECT count(*) FILTER (WHERE is_dormant), count(*) FILTER (WHERE NOT is_dormant) FROM labels").fetchall()
    finally:
        con.close()
    assert min(counts[0]) > 0
    split = pl.read_parquet(root / "split.parquet")
    assert "is_dormant" in split.columns
    info = json.loads((root / "models" / "dormant" / "model.json").read_text())
    assert info["task"] == "dormant" and info["label"] == "is_dormant"
    metrics = json.loads((root / "metrics" / "dormant.json").read_text())
    assert metrics["task"] == "dormant" and metrics["variants"]["full"]["average_precision"]["mean"] > 0.5
    card = (root / "models" / "dormant" / "MODEL_CARD.md").read_text()
    assert DORMANT.purpose in card
    assert pl.read_parquet(root / "pred" / "dormant.parquet").height > 0


def test_score_gives_the_toy_task_its_columns(dormant_run: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    root = dormant_run["root"]
    out = tmp_path / "scores.parquet"
    with tasks.registered(DORMANT):
        code = main(["score", "--accounts", str(root / "w.duckdb"), "--model-dir", str(root / "models"), "--out", str(out), "--quiet"])
    assert code == 0
    scores = pl.read_parquet(out)
    for task in ("zombie", "like_farm", "dormant"):
        assert {f"p_{task}", f"flagged_{task}", f"{task}_reasons"} <= set(scores.columns)
    assert json.loads(capsys.readouterr().out)["flagged"]["dormant"] == int(scores["flagged_dormant"].sum())
    # the scores are the evaluate stage's predictions of the shipped model
    stage = pl.read_parquet(root / "pred" / "dormant.parquet").join(scores, on="account_id")
    assert stage.height > 0 and (stage["p"] - stage["p_dormant"]).abs().max() < 1e-9  # type: ignore[operator]


def test_the_report_has_a_section_and_classes_for_the_toy_task(dormant_run: dict[str, Any]) -> None:
    root = dormant_run["root"]
    with tasks.registered(DORMANT):
        assert main(["report", "--params", str(dormant_run["path"])]) == 0
    page = (root / "summary.html").read_text()
    assert '<h2 id="dormant">Dormant accounts</h2>' in page
    assert ">Zombie profiles</h2>" in page and "Pages that bought likes" in page
    assert "accounts: dormant" in page  # the data overview counts the new class


def test_an_unregistered_task_is_refused_by_name(dormant_run: dict[str, Any], capsys: Any) -> None:
    with pytest.raises(SystemExit) as stop:  # argparse's usage error: not registered outside the fixture
        train_stage.main(["--params", str(dormant_run["path"]), "--task", "dormant"])
    assert stop.value.code == 2
    assert "invalid choice: 'dormant'" in capsys.readouterr().err
    with pytest.raises(ZombieScanError, match="task 'dormant': unknown; the tasks are zombie, like_farm"):
        tasks.get("dormant")


def test_the_registry_refuses_clashes() -> None:
    with pytest.raises(ZombieScanError, match="already registered"):
        tasks.register(tasks.get("zombie"))
    with pytest.raises(ZombieScanError, match="already belongs to zombie"):
        tasks.register(DORMANT.__class__(**{**DORMANT.__dict__, "label": "is_zombie"}))
    with pytest.raises(ZombieScanError, match="built in"):
        tasks.unregister("like_farm")


def test_dvc_yaml_names_the_built_in_tasks_in_each_foreach() -> None:
    """dvc.yaml's per-task stages list exactly the registry's tasks: a new one is added in both places."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train", "evaluate"):
        assert stages[name]["foreach"] == list(tasks.names()), f"dvc.yaml {name}: foreach must list pipeline.tasks.names()"


def test_the_label_column_is_the_tasks_not_a_second_setting() -> None:
    from pipeline.models.train import TaskParams

    assert TaskParams.from_params("like_farm", {}).label == "is_like_farm"
    with pytest.raises(ZombieScanError, match=r"train\.zombie\.label: 'is_like_farm', but the task reads 'is_zombie'"):
        TaskParams.from_params("zombie", {"label": "is_like_farm"})


def test_data_without_the_new_tasks_labels_still_runs(tiny_dir: Path, tmp_path: Path) -> None:
    """The simulator (and any source) knows nothing of a registered task: its label reads as
    unknown, the split works, and the task is skipped as untrainable rather than failing the run."""
    from pipeline.models.inputs import untrainable
    from pipeline.models.split import SplitParams, make_split

    with tasks.registered(DORMANT):
        ingest(tiny_dir, tmp_path / "w.duckdb")
        con = connect(tmp_path / "w.duckdb")
        try:
            labels = con.sql("SELECT * FROM labels").pl()
            accounts = con.sql("SELECT account_id, created_at FROM accounts").pl()
        finally:
            con.close()
        assert labels["is_dormant"].null_count() == labels.height
        split = make_split(labels, accounts, SplitParams(folds=3))
        split.write_parquet(tmp_path / "split.parquet")
        assert untrainable({"split": {"out": str(tmp_path / "split.parquet")}}, "is_dormant") == "the data has no is_dormant labels"
