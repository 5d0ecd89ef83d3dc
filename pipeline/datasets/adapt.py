"""Turn a dataset spec and its files into contract tables, `raw_` features and fixed splits.

Every value is converted explicitly, as the spec says; a value that does not fit is an error
naming the file, the source column, the spec key and the row. The result goes into a DuckDB
warehouse through the same ingest (and contract checks) as any other source.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline import tasks
from pipeline.contract import ACCOUNTS, Column
from pipeline.datasets.read import ROW, read_file, read_masks
from pipeline.datasets.spec import ROLES, DatasetSpec, EngagementSpec, FileSpec, TableSpec, ValueSpec
from pipeline.db import connect as db_connect
from pipeline.errors import ContractError, ZombieScanError
from pipeline.ingest import IngestReport, ingest
from pipeline.ingest.read import BOOL_WORDS, conversion
from pipeline.io import scratch_dir
from pipeline.warehouse import warehouse_output

FILE = "__file"
FILE_LABEL = "__file_label"  # the spec's `label:` of the file a row came from
FILE_SPLIT = "__file_split"  # the spec's `split:` of the file a row came from
# Where a dataset has no time at all (untimed engagements, no creation times), the engagements
# are placed at this instant; the time-derived features are then dropped (build.dataset_columns).
# An unknown creation time is never placed anywhere: it stays null.
UNKNOWN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"  # Fri Apr 06 10:58:22 +0000 2012
DAYS_PER_MONTH = 30.4375
INT_RE = r"^[+-]?[0-9]+(\.0*)?$"
NUM_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


@dataclass
class Dataset:
    """A dataset in the contract's terms.

    Attributes:
        accounts: Contract accounts (account_id, created_at, profile columns the data has).
        engagements: Contract engagements, or None for a profile-only dataset.
        labels: account_id and one column per task (pipeline.tasks): the spec's task's label; the others unknown.
        raw: account_id and the `raw_` pass-through features.
        splits: account_id, split, role (train|valid|test) for data that ships fixed splits (npz masks: one
            split per mask row; a split column or `split:` files: split 0).
        reference_time: The features' "now".
        timed: Whether engagements carry real times.
        created_known: Whether accounts carry real creation times.
    """

    spec: DatasetSpec
    root: Path
    accounts: pl.DataFrame
    engagements: pl.DataFrame | None
    labels: pl.DataFrame
    raw: pl.DataFrame
    splits: pl.DataFrame | None
    reference_time: datetime
    timed: bool
    created_known: bool

    def info(self) -> dict[str, Any]:
        y = self.labels[self.spec.label_column]
        return {
            "name": self.spec.name,
            "spec": str(self.spec.path),
            "root": str(self.root),
            "task": self.spec.task,
            "accounts": self.accounts.height,
            "engagements": self.engagements.height if self.engagements is not None else 0,
            "positives": int(y.sum()),
            "negatives": int((~y).sum()),
            "unlabelled": int(y.null_count()),
            "raw_features": [c for c in self.raw.columns if c != "account_id"],
            "fixed_splits": self.splits["split"].n_unique() if self.splits is not None else 0,
            "timed": self.timed,
            "created_known": self.created_known,
            "reference_time": self.reference_time.isoformat(),
        }


def load_dataset(spec: DatasetSpec, root: Path, *, now: datetime | None = None) -> Dataset:
    """Read and convert every file of `spec` (paths relative to `root`)."""
    now = now or datetime.now(UTC)
    engagements, eng_frame, timed = None, None, False
    if spec.engagements is not None:
        engagements, eng_frame, timed = _engagements(root, spec.engagements, spec.reference_time, now)
    if spec.accounts.from_engagements:
        assert eng_frame is not None and spec.engagements is not None
        acc_frame = _accounts_from_engagements(eng_frame)
    else:
        acc_frame = _read_all(root, spec.accounts.files, "accounts")
        ids = _ids(acc_frame, spec.accounts.id, "accounts")
        acc_frame = acc_frame.with_columns(account_id=ids)
        _check_unique(acc_frame, "account_id", spec.accounts.id or "(row number)", "accounts.id")

    created = spec.accounts.columns.get("created_at")
    created_known = created is not None
    reference_time = spec.reference_time
    if reference_time is None and timed and engagements is not None:
        reference_time = engagements["ts"].max()  # type: ignore[assignment]
    if reference_time is None and created is not None and created.unit not in ("age_days", "age_months"):
        reference_time = _timestamps(acc_frame, created, "accounts.columns.created_at", None).max()  # type: ignore[assignment]
    if reference_time is None:
        reference_time = UNKNOWN_TIME
    if engagements is not None and not timed:
        engagements = engagements.with_columns(ts=pl.lit(reference_time, pl.Datetime("us", "UTC")))

    accounts = _accounts(acc_frame, spec.accounts, reference_time)
    later = f"a time not in the future (now {now:%Y-%m-%dT%H:%M:%SZ})"
    if created is not None:
        _fail(acc_frame, accounts["created_at"] > now, created.column, "accounts.columns.created_at", later)

    lab_frame = _read_labels(root, spec, acc_frame)
    return Dataset(
        spec=spec,
        root=root,
        accounts=accounts,
        engagements=engagements,
        labels=_labels(spec, acc_frame, lab_frame),
        raw=_raw(acc_frame, spec.accounts),
        splits=_splits(root, spec, acc_frame, lab_frame),
        reference_time=reference_time,
        timed=timed,
        created_known=created_known,
    )


def _read_all(root: Path, files: tuple[FileSpec, ...], where: str) -> pl.DataFrame:
    frames = []
    for i, f in enumerate(files):
        frame = read_file(root, f, f"{where}.files[{i}]").with_columns(pl.lit(str(root / f.path)).alias(FILE))
        if f.label is not None:
            frame = frame.with_columns(pl.lit(f.label).alias(FILE_LABEL))
        if f.split is not None:
            frame = frame.with_columns(pl.lit(f.split).alias(FILE_SPLIT))
        frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def _column(frame: pl.DataFrame, column: str, key: str) -> pl.Series:
    if column not in frame.columns:
        files = ", ".join(frame[FILE].unique(maintain_order=True).to_list())
        names = [c for c in frame.columns if not c.startswith("__")]
        raise ZombieScanError(f"{files}: no column '{column}' (spec key {key}); the file has: {', '.join(names[:30])}")
    return frame[column]


def _fail(frame: pl.DataFrame, bad: pl.Series, column: str, key: str, expected: str) -> None:
    """Raise for the first row where `bad` is true, naming file, column, spec key, row and value."""
    if not bad.any():
        return
    i = int(bad.arg_true()[0])
    row = frame.row(i, named=True)
    n = int(bad.sum())
    more = f" ({n - 1} more row(s) like it)" if n > 1 else ""
    raise ZombieScanError(
        f"{row[FILE]}: column '{column}' (spec key {key}), row {row[ROW]}: expected {expected}, found {row.get(column)!r}{more}"
    )


def row_id(stem: str, row: int) -> str:
    """The id of an account from a file without an id column: a stable hash of the file's stem and the row.

    Never `<stem>-<row>`: where each class has a file of its own (fakeAccountData.json), such an
    id would name the label to anyone, or anything, that reads it. The hash is stable across runs
    and machines; it hides nothing from someone who has the files.
    """
    return hashlib.blake2b(f"{stem}\x00{row}".encode(), digest_size=8).hexdigest()


def _ids(frame: pl.DataFrame, column: str | None, where: str) -> pl.Series:
    if column is None:  # no id column: the file and the row name the account, hashed (row_id)
        return pl.Series("account_id", [row_id(Path(f).stem, r) for f, r in zip(frame[FILE], frame[ROW], strict=True)], pl.String)
    values = _column(frame, column, f"{where}.id")
    if values.dtype in (pl.Float32, pl.Float64):
        ok = values.is_finite() & (values == values.floor()) & (values.abs() < 2**53)
        _fail(frame, values.is_not_null() & ~ok.fill_null(False), column, f"{where}.id", "an integer or text id")
        values = values.cast(pl.Int64, strict=False)
    text = values.cast(pl.String).str.strip_chars()
    _fail(frame, text.is_null() | (text == ""), column, f"{where}.id", "an id (not empty)")
    return text.alias("account_id")


def _check_unique(frame: pl.DataFrame, name: str, column: str, key: str) -> None:
    dup = frame[name].is_duplicated()
    if dup.any():
        first = frame.filter(dup).row(0, named=True)
        rows = frame.filter(pl.col(name) == first[name])
        where = ", ".join(f"{Path(f).name} row {r}" for f, r in rows.select(FILE, ROW).iter_rows())
        raise ZombieScanError(f"{first[FILE]}: column '{column}' (spec key {key}): id {first[name]!r} appears more than once ({where})")


def _text(series: pl.Series) -> pl.Series:
    return series.cast(pl.String).str.strip_chars() if series.dtype != pl.String else series.str.strip_chars()


def _integers(frame: pl.DataFrame, spec: ValueSpec, key: str, *, minimum: int | None = 0) -> pl.Series:
    s = _column(frame, spec.column, key)
    if s.dtype == pl.Boolean:
        _fail(frame, s.is_not_null(), spec.column, key, "an integer")
    if s.dtype.is_integer():
        out = s.cast(pl.Int64)
    elif s.dtype.is_float():
        ok = (s.is_finite() & (s == s.floor()) & (s.abs() < 2**62)).fill_null(False)
        _fail(frame, s.is_not_null() & ~ok, spec.column, key, "a whole number")
        out = s.cast(pl.Int64, strict=False)
    else:
        t = _text(s).replace("", None)
        out = t.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)
        _fail(frame, t.is_not_null() & (~t.str.contains(INT_RE) | out.is_null()), spec.column, key, "an integer (64-bit)")
    if spec.missing is not None:
        out = out.fill_null(spec.missing)
    if minimum is not None:
        _fail(frame, out.is_not_null() & (out < minimum), spec.column, key, f"an integer >= {minimum}")
    return out


def _numbers(frame: pl.DataFrame, column: str, key: str) -> pl.Series:
    s = _column(frame, column, key)
    if s.dtype == pl.Boolean or s.dtype.is_numeric():
        return s.cast(pl.Float64)
    t = _text(s).replace("", None)
    words = t.str.to_lowercase().replace_strict({"true": "1", "false": "0"}, default=t)
    _fail(frame, words.is_not_null() & ~words.str.contains(NUM_RE), column, key, "a number (or true/false)")
    return words.cast(pl.Float64)


def _booleans(frame: pl.DataFrame, spec: ValueSpec, key: str) -> pl.Series:
    s = _column(frame, spec.column, key)
    if s.dtype == pl.Boolean:
        out = s
    elif s.dtype.is_numeric():
        _fail(frame, s.is_not_null() & ~s.is_in([0, 1]), spec.column, key, "a boolean (0/1, true/false)")
        out = s == 1
    else:
        t = _text(s).str.to_lowercase().replace("", None)
        _fail(frame, t.is_not_null() & ~t.is_in(list(BOOL_WORDS)), spec.column, key, "a boolean (true/false, 1/0, yes/no)")
        out = t.replace_strict(BOOL_WORDS, default=None, return_dtype=pl.Boolean)
    if spec.missing is not None:
        out = out.fill_null(_bool_word(spec.missing, key))
    return ~out if spec.negate else out


def _bool_word(value: Any, key: str) -> bool:
    """A spec's `missing:` for a boolean column: a YAML boolean or one of the boolean words."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word not in BOOL_WORDS:
        raise ZombieScanError(f"spec key {key}.missing: {value!r} is not a boolean (true/false, yes/no, 1/0)")
    return BOOL_WORDS[word]


def _timestamps(frame: pl.DataFrame, spec: ValueSpec, key: str, reference: datetime | None) -> pl.Series:
    s = _column(frame, spec.column, key)
    utc = pl.Datetime("us", "UTC")
    if spec.unit in ("unix_s", "unix_ms", "age_days", "age_months"):
        x = _numbers(frame, spec.column, key)
        if spec.unit in ("age_days", "age_months"):
            if reference is None:
                raise ZombieScanError(f"spec key {key}: unit {spec.unit} counts back from the dataset's reference_time; set reference_time")
            days = x * (DAYS_PER_MONTH if spec.unit == "age_months" else 1.0)
            _fail(
                frame,
                x.is_not_null() & ~(x.is_finite() & (days >= 0) & (days < 36_500)).fill_null(False),
                spec.column,
                key,
                "an age between 0 and 100 years",
            )
            micros = (days * 86_400e6).round().cast(pl.Int64)
            return pl.select(pl.lit(reference, utc) - pl.duration(microseconds=pl.lit(micros))).to_series().alias(spec.column)
        scale = 1_000_000 if spec.unit == "unix_s" else 1_000
        # 1970..2100: a value outside is a unit mistake (milliseconds given as seconds), not a date
        limit = 4_102_444_800 * (1 if spec.unit == "unix_s" else 1000)
        ok = (x.is_finite() & (x >= 0) & (x < limit)).fill_null(False)
        other = "unix_ms" if spec.unit == "unix_s" else "unix_s"
        _fail(frame, x.is_not_null() & ~ok, spec.column, key, f"{spec.unit} between 1970 and 2100 (is the unit {other}?)")
        return (x * scale).round().cast(pl.Int64, strict=False).cast(utc)
    if s.dtype == utc:
        return s
    if isinstance(s.dtype, pl.Datetime):
        return s.dt.replace_time_zone("UTC") if s.dtype.time_zone is None else s.dt.convert_time_zone("UTC")
    t = _text(s).replace("", None)
    if spec.unit == "twitter":
        out = t.str.strptime(utc, TWITTER_TIME, strict=False)
        expected = "a Twitter timestamp such as 'Fri Apr 06 10:58:22 +0000 2012'"
    else:
        out = _iso(t)
        expected = "an ISO 8601 timestamp such as 2024-05-01T13:45:00Z"
    _fail(frame, t.is_not_null() & out.is_null(), spec.column, key, expected)
    return out


def _iso(text: pl.Series) -> pl.Series:
    """ISO 8601 text (with an offset or Z; without one it is read as UTC) as UTC datetimes; null where it is not."""
    con = db_connect()
    try:
        con.register("iso_in", pl.DataFrame({"x": text}))
        # the ingest's own text -> timestamp rule (it refuses words DuckDB would read, such as 'epoch')
        expr, _ = conversion(Column("x", "timestamp"), "VARCHAR", "x")
        out = con.sql(f"SELECT {expr} AS x FROM iso_in").pl()
    finally:
        con.close()
    return out["x"].cast(pl.Datetime("us", "UTC"))


def _accounts(frame: pl.DataFrame, spec: TableSpec, reference: datetime) -> pl.DataFrame:
    columns: dict[str, pl.Series] = {"account_id": frame["account_id"]}
    for col in ACCOUNTS.columns[1:]:
        value = spec.columns.get(col.name)
        key = f"accounts.columns.{col.name}"
        if value is None:
            continue
        if col.dtype == "timestamp":
            series = _timestamps(frame, value, key, reference)
            _fail(frame, series.is_null(), value.column, key, "a creation time (not empty)")
        elif col.dtype == "int":
            series = _integers(frame, value, key, minimum=col.minimum)
        elif col.dtype == "bool":
            series = _booleans(frame, value, key)
        else:
            series = _column(frame, value.column, key).cast(pl.String)
        columns[col.name] = series.alias(col.name)
    if "created_at" not in columns:  # unknown: null, never a made-up instant (the ingest then skips the checks that need it)
        columns["created_at"] = pl.Series("created_at", [None] * frame.height, pl.Datetime("us", "UTC"))
    return pl.DataFrame(columns).select([c for c in ACCOUNTS.column_names if c in columns])


def _snake(name: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])|[^A-Za-z0-9]", "_", name)).strip("_").lower()


def _raw(frame: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    out = {"account_id": frame["account_id"]}
    for i, value in enumerate(spec.raw):
        key = f"accounts.raw[{i}]"
        if value.map:
            text = _text(_column(frame, value.column, key)).replace("", None)
            _fail(frame, text.is_not_null() & ~text.is_in(list(value.map)), value.column, key, f"one of {', '.join(value.map)}")
            numbers = text.replace_strict(value.map, default=None, return_dtype=pl.Float64)
        else:
            numbers = _numbers(frame, value.column, key)
        if value.missing is not None:
            numbers = numbers.fill_null(value.missing)
        name = f"raw_{_snake(value.column)}"
        if name in out:
            raise ZombieScanError(f"spec key {key}: column {value.column!r} makes feature {name}, as an earlier raw column does")
        out[name] = numbers
    return pl.DataFrame(out)


def _classes(frame: pl.DataFrame, column: str, key: str, classes: dict[str, tuple[Any, ...]], empty: str) -> pl.Series:
    """Each row's class (a key of `classes`) by the value in `column`, null where it is empty; a value in
    no class is an error. Values match as text, case-insensitively; a whole float (1.0) reads as 1."""
    s = _column(frame, column, key)
    if s.dtype.is_float():  # 1.0 reads as 1; NaN is unknown, like empty
        whole = s.is_finite() & (s == s.floor()) & (s.abs() < 2**53)
        s = pl.select(
            pl.when(s.is_nan()).then(None).when(whole).then(s.cast(pl.Int64, strict=False).cast(pl.String)).otherwise(s.cast(pl.String))
        ).to_series()
    text = _text(s).str.to_lowercase().replace("", None)
    lookup = {str(v).lower(): name for name, values in classes.items() for v in values}
    named = " or ".join(f"{', '.join(map(str, values))} ({name})" for name, values in classes.items())
    _fail(frame, text.is_not_null() & ~text.is_in(list(lookup)), column, key, f"one of {named}, or empty ({empty})")
    return text.replace_strict(lookup, default=None, return_dtype=pl.String)


def _label_values(frame: pl.DataFrame, column: str, key: str, positive: tuple[Any, ...], negative: tuple[Any, ...]) -> pl.Series:
    named = _classes(frame, column, key, {"positive": positive, "negative": negative}, "unknown")
    return pl.select(pl.when(named.is_null()).then(None).otherwise(named == "positive")).to_series()


def _read_labels(root: Path, spec: DatasetSpec, accounts: pl.DataFrame) -> pl.DataFrame | None:
    """The labels files (spec key `labels`) with account_id; every row must name a known account, once."""
    if spec.labels is None:
        return None
    frame = _read_all(root, spec.labels.files, "labels")
    frame = frame.with_columns(account_id=_ids(frame, spec.labels.id, "labels"))
    _check_unique(frame, "account_id", spec.labels.id or "", "labels.id")
    unknown = ~frame["account_id"].is_in(accounts["account_id"].implode())
    known = "in the engagements (accounts.from)" if spec.accounts.from_engagements else "in the accounts files"
    _fail(frame, unknown, spec.labels.id or "", "labels.id", f"the id of an account {known}")
    return frame


def _labels(spec: DatasetSpec, accounts: pl.DataFrame, frame: pl.DataFrame | None) -> pl.DataFrame:
    lab = spec.label
    if frame is not None:
        assert lab.column is not None
        given = frame.select("account_id", _label_values(frame, lab.column, "labels.column", lab.positive, lab.negative).alias("y"))
        y = accounts.select("account_id").join(given, on="account_id", how="left", maintain_order="left")["y"]
    elif lab.column is not None:
        y = _label_values(accounts, lab.column, "label.column", lab.positive, lab.negative)
    else:
        y = accounts[FILE_LABEL].cast(pl.Boolean)
    # the spec labels one task; every other task's label is unknown
    return pl.DataFrame({"account_id": accounts["account_id"]}).with_columns(
        [(y if column == spec.label_column else pl.lit(None, pl.Boolean)).alias(column) for column in tasks.label_columns()]
    )


def _engagements(root: Path, spec: EngagementSpec, reference: datetime | None, now: datetime) -> tuple[pl.DataFrame, pl.DataFrame, bool]:
    """The contract engagements, the same rows with the file and row each came from (for
    `accounts: {from: engagements}`), and whether they carry real times."""
    frame = _read_all(root, spec.files, "engagements")
    actor = _ids(frame, spec.actor, "engagements.actor").alias("actor_id")
    target = _ids(frame, spec.target, "engagements.target").alias("target_id")
    columns = {"actor_id": actor, "target_id": target}
    timed = spec.time is not None
    if spec.time is not None:
        ts = _timestamps(frame, spec.time, "engagements.time", reference)
        _fail(frame, ts.is_null(), spec.time.column, "engagements.time", "a time (not empty)")
        _fail(frame, ts > now, spec.time.column, "engagements.time", f"a time not in the future (now {now:%Y-%m-%dT%H:%M:%SZ})")
        columns["ts"] = ts.alias("ts")
    else:
        columns["ts"] = pl.Series("ts", [None] * frame.height, pl.Datetime("us", "UTC"))
    columns["weight"] = (
        _integers(frame, ValueSpec(spec.weight), "engagements.weight", minimum=1)
        if spec.weight
        else pl.Series("weight", np.ones(frame.height, np.int64))
    )
    if spec.value is not None:  # a rating: any finite number, negative too; empty = the engagement carries none
        value = _numbers(frame, spec.value, "engagements.value")
        _fail(frame, value.is_not_null() & ~value.is_finite(), spec.value, "engagements.value", "a finite number")
        columns["value"] = value.alias("value")
    out = pl.DataFrame(columns).with_columns(
        target_type=pl.lit(spec.target_type), kind=pl.lit(spec.kind), **{FILE: frame[FILE], ROW: frame[ROW]}
    )
    if spec.symmetric:
        out = pl.concat([out, out.with_columns(actor_id=pl.col("target_id"), target_id=pl.col("actor_id"))])
    if timed:
        timed = out["ts"].min() != out["ts"].max()
    contract = ["actor_id", "target_id", "target_type", "kind", "ts", "weight", *(["value"] if spec.value is not None else [])]
    return out.select(contract), out, timed


def _accounts_from_engagements(engagements: pl.DataFrame) -> pl.DataFrame:
    """`accounts: {from: engagements}`: every actor and every account target, ids only, in order of first appearance.

    Each account keeps the engagements file and row it first appears in, for messages.
    """
    rows = engagements.with_row_index("__at")
    sides = [rows.select("__at", pl.lit(0).alias("__side"), pl.col("actor_id").alias("account_id"), FILE, ROW)]
    sides.append(
        rows.filter(pl.col("target_type") == "account").select(
            "__at", pl.lit(1).alias("__side"), pl.col("target_id").alias("account_id"), FILE, ROW
        )
    )
    ids = pl.concat(sides).sort("__at", "__side").unique("account_id", keep="first", maintain_order=True)
    return ids.select("account_id", FILE, ROW)


def _splits(root: Path, spec: DatasetSpec, accounts: pl.DataFrame, labels: pl.DataFrame | None) -> pl.DataFrame | None:
    """account_id, split, role of the shipped splits: npz masks, a split column, or the files' `split:`."""
    s = spec.splits
    by_file = spec.split_files()
    if s is None and by_file is None:
        return None
    if s is not None and s.file is not None:
        return _mask_splits(root, s.file, s.arrays, accounts["account_id"])
    if s is not None:
        assert s.column is not None
        frame, key = accounts, "splits.column"
        role = _classes(accounts, s.column, key, dict(s.values), "in no split")
    else:  # the file each account (or label) came from; the spec checked there is a train and a test file
        frame = accounts if by_file == "accounts" or labels is None else labels
        role, key = frame[FILE_SPLIT], f"{by_file}.files[].split"
    out = pl.DataFrame(
        {"account_id": frame["account_id"], "split": 0, "role": role}, schema_overrides={"split": pl.Int64, "role": pl.String}
    )
    for needed in ("train", "test"):
        if not (out["role"] == needed).any():
            files = ", ".join(frame[FILE].unique(maintain_order=True).to_list())
            where = f"column '{s.column}' of {files}" if s is not None else files
            raise ZombieScanError(
                f"{where}: no account in the {needed} part of the shipped split (spec key {key}): it needs a train and a test part"
            )
    return out.filter(pl.col("role").is_not_null())


def _mask_splits(root: Path, file: FileSpec, arrays: dict[str, str], account_ids: pl.Series) -> pl.DataFrame:
    masks = read_masks(root, file, arrays, "splits")
    n_splits, n = next(iter(masks.values())).shape
    if n != len(account_ids):
        raise ZombieScanError(f"{root / file.path}: masks cover {n} rows, the accounts files have {len(account_ids)} (spec key splits)")
    frames = []
    for k in range(n_splits):
        role = np.full(n, None, dtype=object)
        for name in ROLES:
            if name not in masks:
                continue
            m = masks[name][k]
            if (m & (role != None)).any():  # noqa: E711 (element-wise)
                raise ZombieScanError(f"{root / file.path}: split {k}: an account is in two roles (spec key splits.{name})")
            role[m] = name
        frames.append(pl.DataFrame({"account_id": account_ids, "split": k, "role": role}, schema_overrides={"role": pl.String}))
    return pl.concat(frames).filter(pl.col("role").is_not_null()).with_columns(pl.col("split").cast(pl.Int64))


def write_warehouse(dataset: Dataset, db: Path, *, now: datetime | None = None) -> IngestReport:
    """Load the dataset into a DuckDB warehouse through the contract ingest, plus tables
    `raw_features`, `fixed_splits` (if any) and `dataset_info`; atomically, nothing half-written."""
    with scratch_dir("zombiescan-dataset-") as scratch:
        folder = scratch / dataset.spec.name
        folder.mkdir()
        dataset.accounts.write_parquet(folder / "accounts.parquet")
        dataset.labels.write_parquet(folder / "labels.parquet")
        if dataset.engagements is not None:
            dataset.engagements.write_parquet(folder / "engagements.parquet")
        with warehouse_output(db) as tmp:
            try:
                report = ingest(folder, tmp, now=now, require=("accounts",))
            except ContractError as exc:
                # The converted tables live in a scratch folder: say which dataset they came from.
                raise ContractError([p.replace(str(folder), f"dataset {dataset.spec.name} (converted)") for p in exc.problems]) from None
            con = db_connect(tmp)
            try:
                con.register("raw_in", dataset.raw)
                con.execute("CREATE TABLE raw_features AS SELECT * FROM raw_in ORDER BY account_id")
                if dataset.splits is not None:
                    con.register("splits_in", dataset.splits)
                    con.execute("CREATE TABLE fixed_splits AS SELECT * FROM splits_in")
                con.execute("CREATE TABLE dataset_info (info JSON)")
                con.execute("INSERT INTO dataset_info VALUES (?)", [json.dumps(dataset.info())])
                con.execute("CHECKPOINT")
            finally:
                con.close()
    return report
