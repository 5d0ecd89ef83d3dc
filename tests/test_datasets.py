"""Dataset specs: the five real datasets, a user's own CSVs, and every spec error a user can make."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml

from pipeline.cli import main
from pipeline.datasets.adapt import load_dataset, row_id, write_warehouse
from pipeline.datasets.spec import DATA_ROOT_ENV, data_root, load_spec
from pipeline.errors import ContractError, ZombieScanError
from pipeline.features.build import warehouse_features
from pipeline.stages import featurize as featurize_stage
from pipeline.stages import ingest as ingest_stage

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the project")


# --- the five real datasets -------------------------------------------------------------------

REAL = {
    # name: accounts, positives, engagements, fixed splits (counts from ../shared/data/README.md)
    "cresci-2015": (2818, 1337, 0, 0),
    "instafake": (1194, 200, 0, 0),
    "social-honeypot": (39853, 20645, 0, 0),
    "weibo-s": (8405, 868, 145496, 0),
    "tolokers": (11758, 2566, 2 * 519000, 10),
}


@needs_shared
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_dataset_loads_as_the_readme_says(name: str) -> None:
    accounts, positives, engagements, splits = REAL[name]
    dataset = load_dataset(load_spec(ROOT / "datasets" / f"{name}.yaml"), SHARED, now=NOW)
    info = dataset.info()
    assert (info["accounts"], info["positives"], info["engagements"], info["fixed_splits"]) == (accounts, positives, engagements, splits)
    assert info["unlabelled"] == 0
    assert dataset.accounts["account_id"].is_unique().all()


@needs_shared
def test_cresci_profile_fields_are_mapped() -> None:
    dataset = load_dataset(load_spec(ROOT / "datasets" / "cresci-2015.yaml"), SHARED, now=NOW)
    first = dataset.accounts.filter(pl.col("account_id") == "3610511").row(0, named=True)
    # "Fri Apr 06 10:58:22 +0000 2007", screen_name braddd, default_profile_image empty (= false)
    assert first["created_at"] == datetime(2007, 4, 6, 10, 58, 22, tzinfo=UTC)
    assert first["username"] == "braddd"
    assert first["has_profile_photo"] is True
    assert first["is_verified"] is False
    labels = dataset.labels.join(dataset.accounts.select("account_id"), on="account_id")
    assert labels["is_zombie"].sum() == 1337 and labels["is_like_farm"].null_count() == labels.height


@needs_shared
def test_datasets_check_reports_rows_labels_and_balance(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "check", "tolokers", "--data-root", str(SHARED)]) == 0
    out = capsys.readouterr().out
    assert "2,566 positive, 9,192 negative" in out
    assert "10 shipped train/valid/test splits" in out
    assert "contract    ok" in out


def test_datasets_list_names_every_spec(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for name in REAL:
        assert name in out


def test_data_root_env_overrides_params(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert data_root("elsewhere") == tmp_path
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert data_root("elsewhere") == Path("elsewhere")
    assert data_root(None) == Path("../shared/data")


# --- bring your own data: a made-up CSV with unusual column names and unix-second times ---------

USERS = """Member Handle,Joined (unix),Fans,Follows,Posts Made,Has Avatar,Karma,Flag
alice,1600000000,120,80,45,yes,3.5,no
bob,1600086400,5,900,0,no,0.1,yes
carol,1600172800,300,150,220,yes,7.25,no
dave,1600259200,2,1200,1,no,0.0,yes
erin,1600345600,80,60,30,yes,2.0,no
frank,1600432000,1,1500,0,no,0.2,yes
"""


def _byo_files(folder: Path, users: str = USERS) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "members.csv").write_text(users)
    rows = ["who,what,when"]
    t0 = 1_700_000_000
    for i, who in enumerate(["alice", "carol", "erin"] * 5):
        rows.append(f"{who},page-{i % 4},{t0 + 3600 * i}")
    for i, who in enumerate(["bob", "dave", "frank"] * 6):  # the farm likes the same pages within seconds
        rows.append(f"{who},promo-{i // 3},{t0 + 50_000 + 10 * (i // 3) * 3600 + i}")
    (folder / "likes.csv").write_text("\n".join(rows) + "\n")


def _byo_spec(path: Path, **changes: object) -> Path:
    spec: dict[str, object] = {
        "name": "my-platform",
        "task": "zombie",
        "accounts": {
            "files": ["members.csv"],
            "id": "Member Handle",
            "columns": {
                "created_at": {"column": "Joined (unix)", "unit": "unix_s"},
                "followers_count": "Fans",
                "following_count": "Follows",
                "posts_count": "Posts Made",
                "has_profile_photo": "Has Avatar",
            },
            "raw": ["Karma"],
        },
        "label": {"column": "Flag", "positive": ["yes"], "negative": ["no"]},
        "engagements": {"files": ["likes.csv"], "actor": "who", "target": "what", "time": {"column": "when", "unit": "unix_s"}},
        "goals": {"roc_auc": 0.5},
    }
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_own_csv_with_unusual_names_maps_onto_the_contract(tmp_path: Path) -> None:
    _byo_files(tmp_path / "data")
    spec = load_spec(_byo_spec(tmp_path / "my.yaml"))
    dataset = load_dataset(spec, tmp_path / "data", now=NOW)
    bob = dataset.accounts.filter(pl.col("account_id") == "bob").row(0, named=True)
    assert bob["created_at"] == datetime(2020, 9, 14, 12, 26, 40, tzinfo=UTC)  # 1600086400
    assert (bob["followers_count"], bob["following_count"], bob["has_profile_photo"]) == (5, 900, False)
    assert dataset.raw.columns == ["account_id", "raw_karma"]
    assert dataset.labels.filter(pl.col("is_zombie"))["account_id"].sort().to_list() == ["bob", "dave", "frank"]
    assert dataset.timed and dataset.engagements is not None and dataset.engagements.height == 33
    assert dataset.reference_time == dataset.engagements["ts"].max()

    db = tmp_path / "wh.duckdb"
    write_warehouse(dataset, db, now=NOW)
    features, _, _ = warehouse_features(db)
    assert "raw_karma" in features.columns and "beh_n_like" in features.columns and "profile_age_days" in features.columns


def test_own_spec_runs_through_the_benchmark(tmp_path: Path) -> None:
    _byo_files(tmp_path / "data")
    # enough accounts for 5 stratified folds and trees with min_child_samples 20
    lines = [USERS.splitlines()[0]]
    for i in range(200):
        zombie = i % 2 == 1
        lines.append(
            f"user{i},{1_600_000_000 + 86_400 * i},{2 if zombie else 100 + i},{1000 + i if zombie else 80},"
            f"{0 if zombie else 40},{'no' if zombie else 'yes'},{0.1 if zombie else 3.0},{'yes' if zombie else 'no'}"
        )
    (tmp_path / "data" / "members.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "data" / "likes.csv").write_text(
        "who,what,when\n" + "\n".join(f"user{i},page-{i % 5},{1_700_000_000 + 60 * i}" for i in range(200)) + "\n"
    )
    spec = _byo_spec(tmp_path / "my.yaml")
    out = tmp_path / "report"
    code = main(["benchmark", "--spec", str(spec), "--fast", "--data-root", str(tmp_path / "data"), "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "benchmark.json").read_text())
    assert set(summary["my-platform"]) == {"f1", "accuracy", "roc_auc", "average_precision"}
    assert summary["my-platform"]["roc_auc"]["n_folds"] == 5
    assert summary["my-platform"]["roc_auc"]["mean"] > 0.9  # the classes differ in every column
    assert summary["my-platform"]["roc_auc"]["n_nan"] == 0
    assert "## my-platform" in (out / "benchmark.md").read_text()
    # the written files hold no timings: a rerun with the same inputs rewrites them byte for byte
    again = tmp_path / "again"
    assert main(["benchmark", "--spec", str(spec), "--fast", "--data-root", str(tmp_path / "data"), "--out", str(again)]) == 0
    for name in ("benchmark.json", "benchmark-details.json", "benchmark.md"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert "seconds" not in (out / "benchmark-details.json").read_text()


def test_ingest_stage_trains_on_a_spec_instead_of_the_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _byo_files(tmp_path / "data")
    spec = _byo_spec(tmp_path / "my.yaml")
    monkeypatch.chdir(tmp_path)
    params = {
        "data": {"spec": str(spec), "root": str(tmp_path / "data")},
        "ingest": {"source": "unused", "db": "wh.duckdb", "report": "ingest.json"},
        "featurize": {"out": "features", "report": "featurize.json"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert ingest_stage.main(["--params", "params.yaml"]) == 0
    assert featurize_stage.main(["--params", "params.yaml"]) == 0
    features = pl.read_parquet(tmp_path / "features" / "features.parquet")
    assert features.height == 6 and "raw_karma" in features.columns


# --- spec errors: a clear message naming the spec key and the file; nothing written -------------


@pytest.mark.parametrize(
    ("change", "users", "expected"),
    [
        ({"accounts": {"files": ["nope.csv"], "id": "Member Handle"}}, USERS, ["nope.csv", "file not found", "accounts.files[0].path"]),
        (
            {"accounts": {"files": ["members.csv"], "id": "Handle"}},
            USERS,
            ["members.csv", "no column 'Handle'", "accounts.id", "Member Handle"],
        ),
        (
            {},
            USERS.replace("1600086400", "yesterday"),
            ["members.csv", "column 'Joined (unix)'", "accounts.columns.created_at", "row 2", "expected a number", "'yesterday'"],
        ),
        ({}, USERS.replace("yes\n", "maybe\n", 1), ["members.csv", "column 'Flag'", "label.column", "row 2", "'maybe'"]),
        ({}, USERS.replace("carol,", "alice,"), ["members.csv", "id 'alice' appears more than once", "row 1", "row 3"]),
        ({}, USERS.replace("1600172800", "4000000000"), ["members.csv", "accounts.columns.created_at", "row 3", "not in the future"]),
        ({"labels_typo": 1}, USERS, ["my.yaml", "unknown key(s) labels_typo"]),
        ({"task": "spam"}, USERS, ["my.yaml", "task", "'spam' is not one of zombie, like_farm"]),
        ({"name": "../evil"}, USERS, ["my.yaml", "name", "expected letters, digits"]),
        (
            {},
            USERS.replace("1600086400", "1600086400000"),
            ["members.csv", "column 'Joined (unix)'", "row 2", "unix_s between 1970 and 2100 (is the unit unix_ms?)"],
        ),
        (
            {
                "accounts": {
                    "files": ["members.csv"],
                    "id": "Member Handle",
                    "columns": {"created_at": {"column": "Joined (unix)", "unit": "age_days"}},
                }
            },
            USERS,
            ["my.yaml", "reference_time", "counts back (age_days)"],
        ),
        (
            {"accounts": {"files": ["members.csv"], "id": "Member Handle", "raw": ["Karma", "karma"]}},
            USERS.replace("Karma,Flag", "Karma,karma,Flag").replace(",no\n", ",1,no\n").replace(",yes\n", ",1,yes\n"),
            ["accounts.raw[1]", "makes feature raw_karma"],
        ),
        (
            {"published": [{"method": "X", "metric": "f1", "value": 0.9}]},
            USERS,
            ["my.yaml", "published[0].note", "missing: say how its protocol differs"],
        ),
        (
            {"engagements": {"files": ["likes.csv"], "actor": "who", "target": "what", "time": {"column": "when", "unit": "fortnights"}}},
            USERS,
            ["my.yaml", "engagements.time.unit", "'fortnights' is not one of"],
        ),
    ],
)
def test_spec_errors_name_key_file_and_row(tmp_path: Path, change: dict[str, object], users: str, expected: list[str]) -> None:
    _byo_files(tmp_path / "data", users)
    spec_path = _byo_spec(tmp_path / "my.yaml", **change)
    out = tmp_path / "report"
    with pytest.raises(ZombieScanError) as err:
        dataset = load_dataset(load_spec(spec_path), tmp_path / "data", now=NOW)
        write_warehouse(dataset, tmp_path / "wh.duckdb", now=NOW)
    for text in expected:
        assert text in str(err.value), str(err.value)
    # the command line says the same, exits non-zero and writes nothing
    code = main(["benchmark", "--spec", str(spec_path), "--fast", "--data-root", str(tmp_path / "data"), "--out", str(out)])
    assert code == 1
    assert not out.exists() and not (tmp_path / "wh.duckdb").exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"raw": ["Karma", "Flag"]},
            ["my.yaml", "accounts.raw[1]", "column 'Flag' of members.csv", "the label column (label.column)", "leak"],
        ),
        (
            {"raw": [{"column": "Member Handle", "map": {"alice": 1}}]},
            ["my.yaml", "accounts.raw[0]", "column 'Member Handle' of members.csv", "the id column (accounts.id)"],
        ),
        (
            {"columns": {"username": "Member Handle"}},
            ["my.yaml", "accounts.columns.username", "column 'Member Handle'", "the id column (accounts.id)", "a column of its own"],
        ),
        (
            {"columns": {"is_verified": "Flag"}},
            ["my.yaml", "accounts.columns.is_verified", "column 'Flag' of members.csv", "the label column"],
        ),
        (
            {"labels": {"files": ["labels.csv"], "id": "Member Handle", "column": "Flag", "positive": ["yes"], "negative": ["no"]}},
            ["my.yaml", "accounts.columns.posts_count", "column 'Flag' of members.csv", "the label column (labels.column)"],
        ),
    ],
)
def test_spec_refuses_a_feature_made_from_the_label_or_the_id(tmp_path: Path, change: dict[str, object], expected: list[str]) -> None:
    """A `raw:` or `columns:` entry that is the label or the id column is refused before any file is read."""
    accounts: dict[str, object] = {"files": ["members.csv"], "id": "Member Handle", "columns": {"followers_count": "Fans"}}
    if "labels" in change:
        accounts["columns"] = {"posts_count": "Flag"}
        spec_path = _byo_spec(tmp_path / "my.yaml", accounts=accounts, label=None, **change)
    else:
        accounts.update(change)
        spec_path = _byo_spec(tmp_path / "my.yaml", accounts=accounts)
    with pytest.raises(ZombieScanError) as err:
        load_spec(spec_path)
    for text in expected:
        assert text in str(err.value), str(err.value)


def test_ids_made_from_file_rows_do_not_name_the_file(tmp_path: Path) -> None:
    """Without an id column each class's file would name its accounts (fakeAccountData-17): the ids are hashed."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "fakeAccounts.json").write_text(json.dumps([{"n": 1, "isFake": 1}, {"n": 2, "isFake": 1}]))
    (data / "realAccounts.json").write_text(json.dumps([{"n": 3, "isFake": 0}]))
    spec = {
        "task": "zombie",
        "accounts": {"files": ["fakeAccounts.json", "realAccounts.json"], "raw": ["n"]},
        "label": {"column": "isFake"},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    dataset = load_dataset(load_spec(tmp_path / "s.yaml"), data, now=NOW)
    ids = dataset.accounts["account_id"].to_list()
    assert ids == [row_id("fakeAccounts", 1), row_id("fakeAccounts", 2), row_id("realAccounts", 1)]
    assert all(len(i) == 16 and "Accounts" not in i and "-" not in i for i in ids)
    assert len(set(ids)) == 3
    # stable across runs and machines: a fixed value (blake2b of stem, NUL, row), not only self-consistent
    assert row_id("fakeAccountData", 17) == "7cc75c7adbc62318" != row_id("realAccountData", 17)


def test_missing_words_and_yaml_booleans_mean_what_they_say(tmp_path: Path) -> None:
    """`missing: "no"` is false, and an unquoted yes/no in positive/negative (YAML booleans) still matches the text."""
    _byo_files(tmp_path / "data", USERS.replace("bob,1600086400,5,900,0,no", "bob,1600086400,5,900,0,"))
    spec = _byo_spec(
        tmp_path / "my.yaml",
        label={"column": "Flag", "positive": [True], "negative": [False]},
    )
    text = spec.read_text().replace("has_profile_photo: Has Avatar", "has_profile_photo: {column: Has Avatar, missing: 'no'}")
    spec.write_text(text)
    dataset = load_dataset(load_spec(spec), tmp_path / "data", now=NOW)
    bob = dataset.accounts.filter(pl.col("account_id") == "bob").row(0, named=True)
    assert bob["has_profile_photo"] is False
    assert dataset.labels["is_zombie"].sum() == 3


def test_contract_violation_after_mapping_names_the_dataset(tmp_path: Path) -> None:
    """An engagement by an account that is not in the accounts file: caught by the contract ingest."""
    _byo_files(tmp_path / "data")
    with (tmp_path / "data" / "likes.csv").open("a") as fh:
        fh.write("mallory,page-1,1700000000\n")
    dataset = load_dataset(load_spec(_byo_spec(tmp_path / "my.yaml")), tmp_path / "data", now=NOW)
    with pytest.raises(ContractError) as err:
        write_warehouse(dataset, tmp_path / "wh.duckdb", now=NOW)
    assert "dataset my-platform (converted)" in str(err.value) and "mallory" in str(err.value)
    assert not (tmp_path / "wh.duckdb").exists()
