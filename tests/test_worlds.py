"""Beyond one world: the transfer stage (other seeds' worlds -> this one) and the robustness sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from pipeline.stages import robustness as robustness_stage
from pipeline.stages import transfer as transfer_stage
from pipeline.stages.robustness import knobs_with


def _params(tiny_run: dict[str, Any], tmp_path: Path, **sections: dict[str, Any]) -> Path:
    params = json.loads(json.dumps(tiny_run["params"]))
    for name, values in sections.items():
        params[name] = {**params[name], **values}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_transfer_sets_other_worlds_beside_this_one(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    path = _params(
        tiny_run,
        tmp_path,
        simulate={"preset": "tiny", "seed": 7},
        transfer={"train_seeds": [1, 2], "out": str(tmp_path / "transfer.json"), "report": str(tmp_path / "transfer.md")},
    )
    assert transfer_stage.main(["--params", str(path)]) == 0
    result = json.loads((tmp_path / "transfer.json").read_text())
    assert result["train_seeds"] == [1, 2] and result["test_seed"] == 7
    for task in ("zombie", "like_farm"):
        r = result["tasks"][task]
        metrics = json.loads((tiny_run["root"] / "metrics" / f"{task}.json").read_text())
        assert r["in_world_average_precision"] == metrics["variants"]["full"]["average_precision"]["mean"]
        assert 0.0 < r["transfer_average_precision"] <= 1.0
        assert r["gap"] == pytest.approx(r["in_world_average_precision"] - r["transfer_average_precision"])
        assert r["folds"] == 3 and r["met"] == (r["gap"] <= 0.03)
    assert "| zombie |" in (tmp_path / "transfer.md").read_text()


def test_transfer_refuses_to_train_on_the_world_it_tests(tiny_run: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    path = _params(tiny_run, tmp_path, simulate={"seed": 7}, transfer={"train_seeds": [3, 7], "out": str(tmp_path / "t.json")})
    assert transfer_stage.main(["--params", str(path)]) == 1
    assert "holds simulate.seed 7: the test world must be another seed" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(
    ("knob", "value", "expected"),
    [
        # the other farm styles keep their mix in what is left
        ("stealth_share", 0.8, {"stealth_share": 0.8, "heavy_share": 0.2 * 0.2 / 0.6, "adaptive_share": 0.2 * 0.2 / 0.6}),
        ("adaptive_share", 0.0, {"stealth_share": 0.4 * 1.0 / 0.8, "heavy_share": 0.2 * 1.0 / 0.8, "adaptive_share": 0.0}),
        # any other knob changes alone
        ("aged_zombie_share", 0.9, {"stealth_share": 0.4, "heavy_share": 0.2, "adaptive_share": 0.2, "aged_zombie_share": 0.9}),
    ],
)
def test_a_swept_farm_style_leaves_the_others_in_proportion(knob: str, value: float, expected: dict[str, float]) -> None:
    knobs = knobs_with({"stealth_share": 0.4, "heavy_share": 0.2, "adaptive_share": 0.2, "aged_zombie_share": 0.3}, knob, value)
    for name, want in expected.items():
        assert knobs[name] == pytest.approx(want)
    assert knobs["stealth_share"] + knobs["heavy_share"] + knobs["adaptive_share"] <= 1.0 + 1e-12


def test_robustness_draws_one_curve_per_knob_and_task(tiny_run: dict[str, Any], tmp_path: Path) -> None:
    path = _params(
        tiny_run,
        tmp_path,
        robustness={
            "preset": "tiny",
            "accounts": None,
            "knobs": {"farm_count": 9},
            "folds": 3,
            "sweep": {"adaptive_share": [0.0, 0.6], "camouflage_rate": [0.2]},
            "out": str(tmp_path / "robustness.json"),
            "reports": str(tmp_path / "robustness"),
        },
    )
    assert robustness_stage.main(["--params", str(path)]) == 0
    result = json.loads((tmp_path / "robustness.json").read_text())
    assert [pt["value"] for pt in result["curves"]["adaptive_share"]] == [0.0, 0.6]
    for point in result["curves"]["adaptive_share"]:
        for task in ("zombie", "like_farm"):
            assert 0.0 < point[task]["average_precision"]["mean"] <= 1.0
    families = result["adaptive_families"]
    assert families["adaptive_share"] == 0.6 and families["best_family"] in families["families"]
    assert set(families["families"]) <= {"profile", "beh", "graph", "lock"}
    curve = pl.read_csv(tmp_path / "robustness" / "plots" / "adaptive_share.csv")
    assert curve.columns == ["adaptive_share", "zombie_ap", "like_farm_ap", "zombie_ap_std", "like_farm_ap_std"]
    assert "Best alone on adaptive farms" in (tmp_path / "robustness" / "robustness.md").read_text()


def test_robustness_refuses_an_unknown_knob(tiny_run: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    path = _params(tiny_run, tmp_path, robustness={"sweep": {"stealthiness": [0.1]}, "out": str(tmp_path / "r.json")})
    assert robustness_stage.main(["--params", str(path)]) == 1
    assert "robustness.sweep: unknown knob(s) stealthiness" in capsys.readouterr().err
