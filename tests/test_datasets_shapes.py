"""Dataset shapes beyond a CSV of accounts: headerless rating files, accounts known only from their
engagements, unknown creation times, and shipped train/test files (issue P11)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml

from pipeline.cli import main
from pipeline.datasets.adapt import UNKNOWN_TIME, load_dataset, write_warehouse
from pipeline.datasets.spec import load_spec
from pipeline.db import connect
from pipeline.errors import ZombieScanError
from pipeline.features.build import AGE_COLUMNS, TIMED_COLUMNS, warehouse_features

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
T0 = 1_600_000_000

# --- a rating platform: headerless files, accounts from the ratings, labels in a file of their own --

# rater, ratee, rating (-10..10), time (unix seconds, fractional): two fraudsters (7, 8) rate each
# other up and are rated down by everyone else
RATINGS = [
    (1, 2, 4, T0 + 0.5),
    (2, 1, 5, T0 + 3600.25),
    (1, 3, 2, T0 + 7200),
    (3, 1, 3, T0 + 86_400),
    (7, 8, 10, T0 + 90_000),
    (8, 7, 10, T0 + 90_010),
    (1, 7, -10, T0 + 100_000),
    (2, 8, -9, T0 + 110_000),
    (3, 4, 1, T0 + 120_000),
    (4, 3, 1, T0 + 130_000),
    (5, 1, 2, T0 + 140_000),
    (6, 2, 1, T0 + 150_000),
]
GROUND_TRUTH = [(1, 1), (2, 1), (3, 1), (7, -1), (8, -1)]  # user, label: 1 trusted, -1 fraudulent; others unlabelled


def _csv(rows: list[tuple[object, ...]]) -> str:
    return "".join(",".join(str(v) for v in row) + "\n" for row in rows)


def _rating_files(folder: Path, ratings: str | None = None, truth: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(_csv(RATINGS) if ratings is None else ratings)
    (folder / "truth.csv").write_text(_csv(GROUND_TRUTH) if truth is None else truth)


def _rating_spec(path: Path, **changes: object) -> Path:
    spec: dict[str, object] = {
        "name": "my-ratings",
        "task": "zombie",
        "accounts": {"from": "engagements"},
        "engagements": {
            "files": [{"path": "ratings.csv", "columns": ["rater", "ratee", "rating", "time"]}],
            "actor": "rater",
            "target": "ratee",
            "target_type": "account",
            "kind": "rate",
            "value": "rating",
            "time": {"column": "time", "unit": "unix_s"},
        },
        "labels": {
            "files": [{"path": "truth.csv", "columns": ["user", "label"]}],
            "id": "user",
            "column": "label",
            "positive": [-1],
            "negative": [1],
        },
    }
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_headerless_ratings_become_accounts_engagements_and_labels(tmp_path: Path) -> None:
    _rating_files(tmp_path / "data")
    dataset = load_dataset(load_spec(_rating_spec(tmp_path / "spec.yaml")), tmp_path / "data", now=NOW)
    # every rater and every rated user, in order of first appearance; ids only, creation time unknown
    assert dataset.accounts["account_id"].to_list() == ["1", "2", "3", "7", "8", "4", "5", "6"]
    assert dataset.accounts["created_at"].null_count() == 8 and not dataset.created_known
    assert dataset.timed and dataset.reference_time == datetime.fromtimestamp(T0 + 150_000, UTC)
    eng = dataset.engagements
    assert eng is not None and eng.columns == ["actor_id", "target_id", "target_type", "kind", "ts", "weight", "value"]
    assert eng["value"].to_list() == [float(r[2]) for r in RATINGS]
    assert eng["ts"][1] == datetime(2020, 9, 13, 13, 26, 40, 250_000, tzinfo=UTC)  # fractional seconds kept
    assert set(eng["kind"]) == {"rate"} and set(eng["target_type"]) == {"account"}
    labels = dict(zip(dataset.labels["account_id"], dataset.labels["is_zombie"], strict=True))
    assert labels == {"1": False, "2": False, "3": False, "7": True, "8": True, "4": None, "5": None, "6": None}

    db = tmp_path / "wh.duckdb"
    write_warehouse(dataset, db, now=NOW)
    con = connect(db)
    try:
        assert con.sql("SELECT count(*), sum(value), min(value) FROM engagements").fetchall() == [(12, 20.0, -10.0)]
        assert con.sql("SELECT count(*), count(created_at) FROM accounts").fetchall() == [(8, 0)]
    finally:
        con.close()
    features, _, _ = warehouse_features(db)
    assert features.height == 8
    assert not [c for c in features.columns if any(a in c for a in AGE_COLUMNS)]


def test_ids_only_accounts_with_timed_engagements_keep_creation_unknown(tmp_path: Path) -> None:
    """Part 2 of P11: no `created_at` mapping means unknown (null), not the reference time, so the
    contract's "engagement before the account was created" check does not fire, and only the
    age-derived features are dropped: the time-derived ones stay."""
    data = tmp_path / "data"
    data.mkdir()
    users = [f"u{i}" for i in range(12)]
    (data / "users.csv").write_text("id,bad\n" + "".join(f"{u},{'yes' if i % 3 == 0 else 'no'}\n" for i, u in enumerate(users)))
    rows = ["who,what,when"]
    for i, u in enumerate(users):
        for k in range(4 + i % 5):  # spread over hours and days, so the time features vary
            rows.append(f"{u},post{(i + k) % 7},{T0 + 3_600 * (5 * i + 7 * k) + 60 * i * k}")
    (data / "likes.csv").write_text("\n".join(rows) + "\n")
    spec = {
        "task": "zombie",
        "accounts": {"files": ["users.csv"], "id": "id"},
        "label": {"column": "bad", "positive": ["yes"], "negative": ["no"]},
        "engagements": {"files": ["likes.csv"], "actor": "who", "target": "what", "time": {"column": "when", "unit": "unix_s"}},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    dataset = load_dataset(load_spec(tmp_path / "s.yaml"), data, now=NOW)
    assert dataset.accounts["created_at"].null_count() == 12 and dataset.timed and not dataset.created_known
    db = tmp_path / "wh.duckdb"
    report = write_warehouse(dataset, db, now=NOW)  # was: "engagement before the account was created" on every row
    assert report.tables["engagements"].rows_loaded == len(rows) - 1
    features, _, _ = warehouse_features(db)
    assert "profile_age_days" not in features.columns and "profile_posts_per_day" not in features.columns
    assert "beh_first_action_delay_days" not in features.columns
    assert {"beh_hour_entropy", "beh_gap_median_s", "beh_active_days"} <= set(features.columns)


def test_untimed_ids_only_data_is_placed_at_the_unknown_time(tmp_path: Path) -> None:
    """No time at all: the engagements sit at the placeholder instant, creation times stay null,
    and neither time- nor age-derived features are kept."""
    _rating_files(tmp_path / "data")
    engagements = {
        "files": [{"path": "ratings.csv", "columns": ["rater", "ratee", "rating", "time"]}],
        "actor": "rater",
        "target": "ratee",
        "target_type": "account",
        "kind": "follow",
    }
    dataset = load_dataset(load_spec(_rating_spec(tmp_path / "s.yaml", engagements=engagements)), tmp_path / "data", now=NOW)
    assert dataset.engagements is not None and "value" not in dataset.engagements.columns
    assert not dataset.timed and dataset.reference_time == UNKNOWN_TIME
    assert set(dataset.engagements["ts"]) == {UNKNOWN_TIME} and dataset.accounts["created_at"].null_count() == 8
    db = tmp_path / "wh.duckdb"
    write_warehouse(dataset, db, now=NOW)
    features, _, _ = warehouse_features(db)
    assert not set(TIMED_COLUMNS) & set(features.columns)
    assert not [c for c in features.columns if any(a in c for a in AGE_COLUMNS)]


RATINGS_CSV = _csv(RATINGS)


@pytest.mark.parametrize(
    ("change", "ratings", "truth", "expected"),
    [
        (  # a headerless record with a field too few
            {},
            RATINGS_CSV.replace("1,3,2,", "1,3,", 1),
            None,
            ["ratings.csv", "row 3 has 3 field(s)", "names 4 column(s) (rater, ratee, rating, time)", "engagements.files[0].columns"],
        ),
        (  # ... and one too many, in the labels file
            {},
            None,
            "1,1\n2,1,extra\n",
            ["truth.csv", "row 2 has 3 field(s)", "names 2 column(s)", "labels.files[0].columns"],
        ),
        (  # a rating that is not a number
            {},
            RATINGS_CSV.replace("2,1,5,", "2,1,good,", 1),
            None,
            ["ratings.csv", "column 'rating'", "engagements.value", "row 2", "expected a number", "'good'"],
        ),
        (
            {},
            RATINGS_CSV.replace("2,1,5,", "2,1,1e999,", 1),
            None,
            ["ratings.csv", "column 'rating'", "engagements.value", "row 2", "a finite number", "'1e999'"],
        ),
        (  # a label of a user who never rated nor was rated
            {},
            None,
            "1,1\n99,-1\n",
            ["truth.csv", "column 'user'", "labels.id", "row 2", "an account in the engagements (accounts.from)", "'99'"],
        ),
        (
            {},
            None,
            "1,1\n7,0\n",
            ["truth.csv", "column 'label'", "labels.column", "row 2", "-1 (positive) or 1 (negative)", "'0'"],
        ),
        (  # the value column is not among the file's named columns
            {
                "engagements": {
                    "files": [{"path": "ratings.csv", "columns": ["a", "b", "c", "d"]}],
                    "actor": "a",
                    "target": "b",
                    "value": "score",
                }
            },
            None,
            None,
            ["ratings.csv", "no column 'score'", "engagements.value", "a, b, c, d"],
        ),
        ({"accounts": {"from": "targets"}}, None, None, ["spec.yaml", "accounts.from", "'targets' is not one of engagements"]),
        ({"accounts": {"from": "engagements", "id": "rater"}}, None, None, ["spec.yaml", "accounts", "unknown key(s) id"]),
        ({"engagements": None}, None, None, ["spec.yaml", "accounts.from", "the spec has no `engagements:`"]),
        (
            {"labels": None, "label": {"column": "label"}},
            None,
            None,
            ["spec.yaml", "labels", "accounts from the engagements have no columns"],
        ),
        (
            {"labels": {"files": [{"path": "truth.json", "columns": ["user", "label"]}], "id": "user", "column": "label"}},
            None,
            None,
            ["spec.yaml", "labels.files[0].columns", "only for a csv or tsv file without a header row; a json file names its own"],
        ),
        (
            {"labels": {"files": [{"path": "truth.csv", "columns": ["user", "user"]}], "id": "user", "column": "label"}},
            None,
            None,
            ["spec.yaml", "labels.files[0].columns", "user given more than once"],
        ),
        (
            {"labels": {"files": [{"path": "truth.csv", "columns": "user,label"}], "id": "user", "column": "label"}},
            None,
            None,
            ["spec.yaml", "labels.files[0].columns", "expected list"],
        ),
    ],
)
def test_rating_data_errors_name_key_file_column_and_row(
    tmp_path: Path, change: dict[str, object], ratings: str | None, truth: str | None, expected: list[str]
) -> None:
    _rating_files(tmp_path / "data", ratings, truth)
    spec_path = _rating_spec(tmp_path / "spec.yaml", **change)
    _assert_refused(tmp_path, spec_path, expected)


def _assert_refused(tmp_path: Path, spec_path: Path, expected: list[str]) -> None:
    """The error names what it should, and neither the library nor the command line writes anything."""
    with pytest.raises(ZombieScanError) as err:
        dataset = load_dataset(load_spec(spec_path), tmp_path / "data", now=NOW)
        write_warehouse(dataset, tmp_path / "wh.duckdb", now=NOW)
    for text in expected:
        assert text in str(err.value), str(err.value)
    out = tmp_path / "report"
    assert main(["benchmark", "--spec", str(spec_path), "--fast", "--data-root", str(tmp_path / "data"), "--out", str(out)]) == 1
    assert not out.exists() and not (tmp_path / "wh.duckdb").exists()


# --- shipped splits: train/test files, a split column, npz masks --------------------------------

HEADER = "profile pic,#posts,#followers,#follows,private,fold,fake\n"


def _profiles(n: int, offset: int = 0, fold: int | None = None) -> str:
    """n made-up profiles; the fakes have no picture, few posts and followers, and follow many."""
    lines = []
    for i in range(offset, offset + n):
        fake = i % 2
        lines.append(
            f"{0 if fake else 1},{i % 3 if fake else 40 + i % 50},{5 + i % 7 if fake else 200 + i % 90},"
            f"{900 + i % 40 if fake else 150 + i % 60},{i % 2},{fold if fold is not None else i % 5 + 1},{fake}"
        )
    return HEADER + "\n".join(lines) + "\n"


def _kaggle_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(_profiles(160))
    (folder / "test.csv").write_text(_profiles(60, offset=1000))


def _kaggle_spec(path: Path, files: list[object] | None = None, **changes: object) -> Path:
    spec: dict[str, object] = {
        "name": "my-kaggle",
        "task": "zombie",
        "accounts": {
            "files": files if files is not None else [{"path": "train.csv", "split": "train"}, {"path": "test.csv", "split": "test"}],
            "columns": {"has_profile_photo": "profile pic", "posts_count": "#posts", "followers_count": "#followers"},
            "raw": ["#follows", "private"],
        },
        "label": {"column": "fake", "positive": [1], "negative": [0]},
        "goals": {"roc_auc": 0.9},
    }
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_split_from_the_file_an_account_came_from(tmp_path: Path) -> None:
    _kaggle_files(tmp_path / "data")
    dataset = load_dataset(load_spec(_kaggle_spec(tmp_path / "spec.yaml")), tmp_path / "data", now=NOW)
    splits = dataset.splits
    assert splits is not None and splits.columns == ["account_id", "split", "role"]
    assert splits["split"].unique().to_list() == [0] and dataset.info()["fixed_splits"] == 1
    assert splits["role"].value_counts(sort=True).rows() == [("train", 160), ("test", 60)]
    assert splits["account_id"].to_list() == dataset.accounts["account_id"].to_list()  # in the accounts' order


def test_split_from_a_column(tmp_path: Path) -> None:
    _kaggle_files(tmp_path / "data")
    splits = {"column": "fold", "train": [1, 2, 3], "valid": [4], "test": [5]}
    spec = _kaggle_spec(tmp_path / "spec.yaml", files=["train.csv"], splits=splits)
    dataset = load_dataset(load_spec(spec), tmp_path / "data", now=NOW)
    assert dataset.splits is not None
    assert dict(dataset.splits["role"].value_counts().rows()) == {"train": 96, "valid": 32, "test": 32}
    # an empty fold: the account is in no part of the split (it stays in the data)
    (tmp_path / "data" / "train.csv").write_text(_profiles(160).replace(",3,1\n", ",,1\n"))
    dataset = load_dataset(load_spec(spec), tmp_path / "data", now=NOW)
    assert dataset.splits is not None and dataset.splits.height == 160 - 16 and dataset.accounts.height == 160


def test_split_from_labels_files_of_accounts_known_from_engagements(tmp_path: Path) -> None:
    _rating_files(tmp_path / "data", truth="1,1\n7,-1\n3,1\n")
    (tmp_path / "data" / "truth-test.csv").write_text("2,1\n8,-1\n")
    labels = {
        "files": [
            {"path": "truth.csv", "columns": ["user", "label"], "split": "train"},
            {"path": "truth-test.csv", "columns": ["user", "label"], "split": "test"},
        ],
        "id": "user",
        "column": "label",
        "positive": [-1],
        "negative": [1],
    }
    dataset = load_dataset(load_spec(_rating_spec(tmp_path / "spec.yaml", labels=labels)), tmp_path / "data", now=NOW)
    assert dataset.splits is not None
    assert dataset.splits.select("account_id", "role").rows() == [
        ("1", "train"),
        ("7", "train"),
        ("3", "train"),
        ("2", "test"),
        ("8", "test"),
    ]


@pytest.mark.parametrize(
    ("files", "change", "expected"),
    [
        (  # a fold value the spec puts in no part
            ["train.csv"],
            {"splits": {"column": "fold", "train": [1, 2, 3], "test": [4]}},
            ["train.csv", "column 'fold'", "splits.column", "row 5", "1, 2, 3 (train) or 4 (test), or empty (in no split)", "'5'"],
        ),
        (
            ["train.csv"],
            {"splits": {"column": "fold", "train": [1, 2, 3, 4, 5], "test": [6]}},
            ["column 'fold' of", "train.csv", "no account in the test part", "splits.column"],
        ),
        (
            ["train.csv"],
            {"splits": {"column": "fold", "train": [1, 2], "test": [2, 3]}},
            ["spec.yaml", "splits.test", "value 2 is in both train and test"],
        ),
        (["train.csv"], {"splits": {"column": "fold", "train": [1]}}, ["spec.yaml", "splits.test", "missing"]),
        (
            [{"path": "train.csv", "split": "train"}, "test.csv"],
            {},
            ["spec.yaml", "accounts.files[1].split", "missing: the other files have `split:`"],
        ),
        (
            [{"path": "train.csv", "split": "train"}, {"path": "test.csv", "split": "valid"}],
            {},
            ["spec.yaml", "accounts.files", "no file has `split: test`"],
        ),
        (
            [{"path": "train.csv", "split": "train"}, {"path": "test.csv", "split": "holdout"}],
            {},
            ["spec.yaml", "accounts.files[1].split", "'holdout' is not one of train, valid, test"],
        ),
        (
            None,
            {"splits": {"column": "fold", "train": [1], "test": [2]}},
            ["spec.yaml", "splits", "accounts.files carry `split:` already"],
        ),
    ],
)
def test_split_errors_name_key_file_column_and_row(
    tmp_path: Path, files: list[object] | None, change: dict[str, object], expected: list[str]
) -> None:
    _kaggle_files(tmp_path / "data")
    _assert_refused(tmp_path, _kaggle_spec(tmp_path / "spec.yaml", files=files, **change), expected)


def test_an_account_in_the_train_and_the_test_file_is_refused(tmp_path: Path) -> None:
    _kaggle_files(tmp_path / "data")
    for name in ("train.csv", "test.csv"):  # an id column; the second row of each file is account x
        lines = (tmp_path / "data" / name).read_text().splitlines()
        rows = [lines[0] + ",id"] + [line + (",x" if i == 2 else f",{name}{i}") for i, line in enumerate(lines[1:], start=1)]
        (tmp_path / "data" / name).write_text("\n".join(rows) + "\n")
    spec = _kaggle_spec(tmp_path / "spec.yaml")
    spec.write_text(spec.read_text().replace("  columns:", "  id: id\n  columns:", 1))
    expected = ["train.csv", "column 'id'", "accounts.id", "id 'x' appears more than once (train.csv row 2, test.csv row 2)"]
    _assert_refused(tmp_path, spec, expected)


def test_split_on_an_engagements_file_is_refused(tmp_path: Path) -> None:
    _rating_files(tmp_path / "data")
    engagements = {"files": [{"path": "ratings.csv", "columns": ["a", "b", "c", "d"], "split": "train"}], "actor": "a", "target": "b"}
    with pytest.raises(ZombieScanError, match=r"engagements\.files\[0\]\.split: only an accounts or labels file"):
        load_spec(_rating_spec(tmp_path / "spec.yaml", engagements=engagements))


def test_a_split_file_naming_an_unknown_account_is_refused(tmp_path: Path) -> None:
    _rating_files(tmp_path / "data", truth="1,1\n7,-1\n")
    (tmp_path / "data" / "truth-test.csv").write_text("2,1\n42,-1\n")
    labels = {
        "files": [
            {"path": "truth.csv", "columns": ["user", "label"], "split": "train"},
            {"path": "truth-test.csv", "columns": ["user", "label"], "split": "test"},
        ],
        "id": "user",
        "column": "label",
        "positive": [-1],
        "negative": [1],
    }
    expected = ["truth-test.csv", "column 'user'", "labels.id", "row 2", "'42'"]
    _assert_refused(tmp_path, _rating_spec(tmp_path / "spec.yaml", labels=labels), expected)


def test_train_test_files_run_through_the_benchmark(tmp_path: Path) -> None:
    """Trained on train.csv (cross-fitting inside it), measured once on test.csv; the report says so."""
    _kaggle_files(tmp_path / "data")
    spec = _kaggle_spec(tmp_path / "spec.yaml")
    out = tmp_path / "report"
    assert main(["benchmark", "--spec", str(spec), "--fast", "--data-root", str(tmp_path / "data"), "--out", str(out)]) == 0
    summary = json.loads((out / "benchmark.json").read_text())["my-kaggle"]
    assert summary["roc_auc"]["n_folds"] == 1 and summary["roc_auc"]["mean"] > 0.9 and summary["roc_auc"]["n_nan"] == 0
    details = json.loads((out / "benchmark-details.json").read_text())["my-kaggle"]
    assert details["protocol"].startswith("the shipped train / test split: trained on `train` with 2-fold cross-fitting")
    assert "One test set: there is no spread over folds" in details["headline"]
    assert "Data with shipped splits (my-kaggle) is measured on the shipped test part only" in (out / "benchmark.md").read_text()


def test_datasets_check_reports_a_train_test_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _kaggle_files(tmp_path / "data")
    assert main(["datasets", "check", str(_kaggle_spec(tmp_path / "spec.yaml")), "--data-root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "1 shipped train/test split\n" in out and "creation times unknown" in out


def test_the_readme_examples_load() -> None:
    """The README's bring-your-own-data examples: the train/test files ship in datasets/examples."""
    dataset = load_dataset(load_spec(ROOT / "datasets" / "examples" / "my-kaggle.yaml"), ROOT / "datasets" / "examples", now=NOW)
    assert dataset.splits is not None
    assert dict(dataset.splits["role"].value_counts().rows()) == {"train": 400, "test": 120}
    assert dataset.info()["positives"] == 260 and dataset.accounts["posts_count"].null_count() == 0


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the project")
def test_bitcoin_otc_loads_as_the_readme_says() -> None:
    dataset = load_dataset(load_spec(ROOT / "datasets" / "bitcoin-otc.yaml"), SHARED, now=NOW)
    info = dataset.info()
    assert (info["accounts"], info["engagements"], info["positives"], info["negatives"]) == (5881, 35592, 180, 136)
    assert info["timed"] and not info["created_known"]
    assert dataset.engagements is not None and dataset.engagements["value"].is_between(-10, 10).all()
    assert set(dataset.engagements["kind"]) == {"rate"}
    assert dataset.labels.filter(pl.col("is_zombie").is_not_null()).height == 316
