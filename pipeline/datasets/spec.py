"""Dataset specs: a small YAML file that maps a dataset's files onto the data contract (docs/datasets.md).

A spec says where the files are (relative to the data root), their format, and which source
column feeds which contract column, how timestamps and labels are read, and which numeric
columns pass through as `raw_` features. Parsing checks every key, so a typo is an error that
names the spec key, not a silent default.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline import tasks
from pipeline.contract import ACCOUNTS, KINDS, TARGET_TYPES
from pipeline.errors import ZombieScanError
from pipeline.params import parse_utc_time

DATA_ROOT_ENV = "ZOMBIESCAN_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("../shared/data")
SPEC_DIR = Path("datasets")
FORMATS = ("csv", "tsv", "parquet", "json", "jsonl", "npz")
TIME_UNITS = ("iso", "unix_s", "unix_ms", "twitter", "age_days", "age_months")
METRICS = ("f1", "accuracy", "roc_auc", "average_precision")
ROLES = ("train", "valid", "test")  # the roles of a shipped split
TEXT_FORMATS = ("csv", "tsv")  # the formats whose files may lack a header row (a file entry's `columns:`)
# Contract account columns a spec may fill (account_id and created_at have their own keys).
PROFILE_COLUMNS = tuple(c.name for c in ACCOUNTS.columns if c.name not in ("account_id", "created_at"))


def data_root(configured: str | Path | None = None) -> Path:
    """The folder spec paths are relative to: $ZOMBIESCAN_DATA_ROOT, else `configured`, else ../shared/data."""
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env) if env else Path(configured) if configured else DEFAULT_DATA_ROOT


@dataclass(frozen=True)
class FileSpec:
    """One input file. `label` gives every row of the file that label, `split` that role of the
    shipped split ("the file it came from"); `columns` names the columns of a csv/tsv without a header row."""

    path: str
    format: str
    label: bool | None = None
    arrays: dict[str, list[str]] = field(default_factory=dict)  # npz: array name -> column names
    columns: tuple[str, ...] = ()  # csv/tsv without a header row: the names of its columns, in order
    split: str | None = None  # train | valid | test: every account of the file has this role (one split)


@dataclass(frozen=True)
class ValueSpec:
    """How one contract column is read from a source column."""

    column: str
    unit: str = "iso"  # timestamps
    negate: bool = False  # booleans: true in the source means false in the contract
    missing: Any = None  # value used where the source is empty
    map: dict[str, float] = field(default_factory=dict)  # raw_ features: text category -> number


@dataclass(frozen=True)
class LabelSpec:
    """Which source values are positive and negative; any other value is an error."""

    column: str | None  # None: the label comes from the file (FileSpec.label)
    positive: tuple[Any, ...] = (1, True)
    negative: tuple[Any, ...] = (0, False)


@dataclass(frozen=True)
class TableSpec:
    files: tuple[FileSpec, ...]
    id: str | None = None  # accounts: the id column; None: a hash of the file stem and row (adapt.row_id)
    columns: dict[str, ValueSpec] = field(default_factory=dict)
    raw: tuple[ValueSpec, ...] = ()
    # accounts: {from: engagements}: no accounts file; every actor and every account target of the
    # engagements is an account, with its id only (creation time unknown)
    from_engagements: bool = False


@dataclass(frozen=True)
class EngagementSpec:
    files: tuple[FileSpec, ...]
    actor: str
    target: str
    time: ValueSpec | None  # None: untimed (every engagement at the reference time)
    weight: str | None = None
    value: str | None = None  # a rating or review score per engagement (contract column `value`)
    kind: str = "like"
    target_type: str = "post"
    symmetric: bool = False  # an undirected account-account edge list: each edge both ways


@dataclass(frozen=True)
class SplitSpec:
    """Fixed splits shipped with the data, from boolean masks or from a column of the accounts files.

    Masks (`file` set): an npz of boolean arrays, splits x accounts in account row order; `arrays`
    maps a role to its array name. Column (`column` set): one split; `values` maps a role to the
    values of the column that put an account in it. The third form, the file an account came from,
    is `FileSpec.split` on the accounts (or labels) files, with no `splits:` key.
    """

    file: FileSpec | None = None
    arrays: dict[str, str] = field(default_factory=dict)  # masks: role -> array name (valid optional)
    column: str | None = None
    values: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # column: role -> values (valid optional)


@dataclass(frozen=True)
class Published:
    method: str
    metric: str
    value: float
    source: str
    note: str = ""  # how its protocol differs from the benchmark's (required in a spec)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: Path  # the spec file
    task: str
    accounts: TableSpec
    label: LabelSpec
    labels: TableSpec | None = None  # a separate labels file (id column + label column)
    engagements: EngagementSpec | None = None
    splits: SplitSpec | None = None
    reference_time: datetime | None = None
    description: str = ""
    notes: str = ""  # shown under the dataset's heading in the benchmark report
    source: str = ""
    licence: str = ""
    published: tuple[Published, ...] = ()
    goals: dict[str, float] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # overrides of train.<task> for this dataset

    @property
    def label_column(self) -> str:
        return tasks.get(self.task).label

    def files(self) -> list[FileSpec]:
        out = list(self.accounts.files)
        if self.labels:
            out += self.labels.files
        if self.engagements:
            out += self.engagements.files
        if self.splits and self.splits.file:
            out.append(self.splits.file)
        return out

    def split_files(self) -> str | None:
        """Which table's files carry `split:` (accounts or labels), or None."""
        for where, table in (("accounts", self.accounts), ("labels", self.labels)):
            if table is not None and any(f.split for f in table.files):
                return where
        return None


class _Keys:
    """Reads one mapping of the spec; every error names the spec file and the key path."""

    def __init__(self, spec: Path, where: str, value: Any) -> None:
        self.spec, self.where = spec, where
        if not isinstance(value, dict):
            raise self.error(f"expected a mapping, found {type(value).__name__}")
        self.value = value

    def error(self, message: str, key: str | None = None) -> ZombieScanError:
        where = f"{self.where}.{key}" if key and self.where else key or self.where
        return ZombieScanError(f"{self.spec}: {where or 'top level'}: {message}")

    def only(self, *allowed: str) -> None:
        unknown = sorted(set(self.value) - set(allowed))
        if unknown:
            raise self.error(f"unknown key(s) {', '.join(unknown)}; expected some of {', '.join(allowed)}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., choices: tuple[Any, ...] | None = None) -> Any:
        if key not in self.value or self.value[key] is None:
            if default is ...:
                raise self.error("missing", key)
            return default
        value = self.value[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool) and bool not in _tuple(kind)):
            names = " or ".join(k.__name__ for k in _tuple(kind))
            raise self.error(f"expected {names}, found {value!r}", key)
        if choices is not None and value not in choices:
            raise self.error(f"{value!r} is not one of {', '.join(map(str, choices))}", key)
        return value

    def sub(self, key: str) -> _Keys:
        return _Keys(self.spec, f"{self.where}.{key}" if self.where else key, self.value[key])


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def find_spec(name_or_path: str | Path, spec_dir: Path = SPEC_DIR) -> Path:
    """A spec file from a dataset name (datasets/<name>.yaml) or a path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ZombieScanError(f"{path}: dataset spec not found")
        return path
    candidate = spec_dir / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = ", ".join(list_specs(spec_dir)) or "none"
        raise ZombieScanError(f"dataset {name_or_path!r}: no spec {candidate} (known datasets: {known})")
    return candidate


def list_specs(spec_dir: Path = SPEC_DIR) -> list[str]:
    return sorted(p.stem for p in spec_dir.glob("*.yaml")) if spec_dir.is_dir() else []


def load_spec(path: Path | str) -> DatasetSpec:
    """Parse and check a spec file (not the data it points at: see `pipeline.datasets.adapt`)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ZombieScanError(f"{path}: dataset spec not found") from None
    except yaml.YAMLError as exc:
        raise ZombieScanError(f"{path}: not valid YAML: {exc}") from None
    top = _Keys(path, "", raw)
    top.only(
        "name", "description", "notes", "source", "licence", "task", "reference_time", "accounts", "labels", "label",
        "engagements", "splits", "published", "goals", "train",
    )  # fmt: skip
    task = top.get("task", str, choices=tasks.names())
    try:
        reference_time = parse_utc_time(top.value.get("reference_time"), f"{path}: reference_time")
    except ZombieScanError as exc:
        raise ZombieScanError(str(exc)) from None
    accounts = _table(top.sub("accounts"), accounts=True)
    if accounts.from_engagements and top.value.get("engagements") is None:
        raise top.sub("accounts").error("accounts from the engagements: the spec has no `engagements:`", "from")
    created = accounts.columns.get("created_at")
    if created is not None and created.unit in ("age_days", "age_months") and reference_time is None:
        raise top.error(f"missing: accounts.columns.created_at counts back ({created.unit}) from the reference time", "reference_time")
    labels = _table(top.sub("labels"), accounts=False) if top.value.get("labels") is not None else None
    label = _label(top, accounts, labels)
    _refuse_leaks(top, accounts, label, labels)
    engagements = _engagements(top.sub("engagements")) if top.value.get("engagements") is not None else None
    splits = _splits(top.sub("splits"), accounts) if top.value.get("splits") is not None else None
    _check_split_files(top, accounts, labels, splits)
    published = tuple(_published(top, i, item) for i, item in enumerate(top.get("published", list, [])))
    goals = top.get("goals", dict, {})
    for metric, value in goals.items():
        if metric not in METRICS or isinstance(value, bool) or not isinstance(value, int | float):
            raise top.error(f"{metric}: expected one of {', '.join(METRICS)} with a number", "goals")
    name = top.get("name", str, path.stem)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise top.error(f"{name!r}: expected letters, digits, '.', '_' or '-' (it names files)", "name")
    return DatasetSpec(
        name=name,
        path=path,
        task=task,
        accounts=accounts,
        label=label,
        labels=labels,
        engagements=engagements,
        splits=splits,
        reference_time=reference_time,
        description=top.get("description", str, ""),
        notes=top.get("notes", str, ""),
        source=top.get("source", str, ""),
        licence=top.get("licence", str, ""),
        published=published,
        goals={k: float(v) for k, v in goals.items()},
        train=top.get("train", dict, {}),
    )


def _files(keys: _Keys, *, split: bool = False) -> tuple[FileSpec, ...]:
    """The `files:` list of a table; `split`: its entries may carry `split:` (accounts and labels files)."""
    items = keys.get("files", list)
    if not items:
        raise keys.error("expected at least one file", "files")
    out = []
    for i, item in enumerate(items):
        f = _Keys(keys.spec, f"{keys.where}.files[{i}]", {"path": item} if isinstance(item, str) else item)
        f.only("path", "format", "label", "arrays", "columns", "split")
        file_path = f.get("path", str)
        fmt = f.get("format", str, _format_of(file_path), choices=FORMATS)
        arrays = f.get("arrays", dict, {})
        if fmt == "npz" and not arrays:
            raise f.error("an npz file needs `arrays`: {array name: column name or [column names]}", "arrays")
        if "split" in f.value and not split:
            raise f.error("only an accounts or labels file has a role in a shipped split", "split")
        out.append(
            FileSpec(
                path=file_path,
                format=fmt,
                label=f.get("label", bool, None),
                arrays={k: [v] if isinstance(v, str) else list(v) for k, v in arrays.items()},
                columns=_header(f, fmt),
                split=f.get("split", str, None, choices=ROLES),
            )
        )
    return tuple(out)


def _header(f: _Keys, fmt: str) -> tuple[str, ...]:
    """A file entry's `columns:`: the names of a headerless csv/tsv's columns (other formats name their own)."""
    if "columns" not in f.value:
        return ()
    if fmt not in TEXT_FORMATS:
        raise f.error(f"only for a csv or tsv file without a header row; a {fmt} file names its own columns", "columns")
    names = f.get("columns", list)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise f.error(f"expected the file's column names in order, e.g. [rater, ratee, rating, time]; found {names!r}", "columns")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise f.error(f"column name(s) {', '.join(twice)} given more than once", "columns")
    reserved = [n for n in names if n.startswith("__")]
    if reserved:
        raise f.error(f"{', '.join(reserved)}: names starting with '__' are reserved for ZombieScan", "columns")
    return tuple(names)


def _format_of(path: str) -> str:
    ext = Path(path).suffix.lstrip(".").lower()
    if ext in FORMATS:
        return ext
    raise ZombieScanError(f"{path}: cannot tell the format from the file name; add `format:` ({', '.join(FORMATS)})")


def _value(keys: _Keys, key: str, *, timestamp: bool = False) -> ValueSpec:
    raw = keys.value[key]
    if isinstance(raw, str):
        return ValueSpec(column=raw)
    v = keys.sub(key)
    v.only("column", "unit", "negate", "missing")
    unit = v.get("unit", str, "iso", choices=TIME_UNITS) if timestamp else "iso"
    missing = v.get("missing", (bool, int, float, str), None)
    return ValueSpec(column=v.get("column", str), unit=unit, negate=v.get("negate", bool, False), missing=missing)


def _table(keys: _Keys, *, accounts: bool) -> TableSpec:
    if accounts and "from" in keys.value:
        keys.only("from")  # ids only: nothing else to read
        keys.get("from", str, choices=("engagements",))
        return TableSpec(files=(), from_engagements=True)
    keys.only("files", "id", "columns", "raw") if accounts else keys.only("files", "id", "column", "positive", "negative")
    files = _files(keys, split=True)
    columns: dict[str, ValueSpec] = {}
    if accounts and keys.value.get("columns") is not None:
        cols = keys.sub("columns")
        cols.only("created_at", *PROFILE_COLUMNS)
        for name in cols.value:
            columns[name] = _value(cols, name, timestamp=name == "created_at")
    raw = []
    for i, item in enumerate(keys.get("raw", list, []) if accounts else []):
        r = _Keys(keys.spec, f"{keys.where}.raw[{i}]", {"column": item} if isinstance(item, str) else item)
        r.only("column", "map", "missing")
        r.get("missing", (int, float), None)
        mapping = r.get("map", dict, {})
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in mapping.values()):
            raise r.error("expected text -> number, e.g. {none: 0, basic: 1}", "map")
        raw.append(
            ValueSpec(column=r.get("column", str), map={str(k): float(v) for k, v in mapping.items()}, missing=r.value.get("missing"))
        )
    return TableSpec(files=files, id=keys.get("id", str, None), columns=columns, raw=tuple(raw))


def _label(top: _Keys, accounts: TableSpec, labels: TableSpec | None) -> LabelSpec:
    """The label: a column of the labels file, a column of the accounts files, or the file each account came from."""
    if labels is not None:
        keys = top.sub("labels")
        if labels.id is None:
            raise keys.error("missing (the column holding the account id)", "id")
    elif accounts.from_engagements:
        raise top.error("missing: accounts from the engagements have no columns; give the labels in a `labels:` file", "labels")
    elif top.value.get("label") is not None:
        keys = top.sub("label")
        keys.only("column", "positive", "negative")
    else:
        if all(f.label is not None for f in accounts.files):
            return LabelSpec(column=None)
        raise top.error("missing: give `label: {column: ...}`, a `labels:` file, or `label: true|false` on every accounts file", "label")
    column = keys.get("column", str)
    positive = _label_words(keys.get("positive", list, [1, True]))
    negative = _label_words(keys.get("negative", list, [0, False]))
    both = {str(v).lower() for v in positive} & {str(v).lower() for v in negative}
    if both:
        raise keys.error(f"value(s) {', '.join(sorted(both))} are both positive and negative", "negative")
    return LabelSpec(column=column, positive=positive, negative=negative)


def _refuse_leaks(top: _Keys, accounts: TableSpec, label: LabelSpec, labels: TableSpec | None) -> None:
    """No feature may be made from the label or the id column: a `columns:` or `raw:` entry naming one is an error.

    The label is the answer itself. An id is a collection artefact: ids are handed out in the
    order accounts were collected, so the classes often sit in different id ranges (the social
    honeypot's UserID alone gives F1 0.999), and even a text column made from it (username) turns
    its length and digits into features.
    """
    reserved: dict[str, str] = {}
    for key, column in (("accounts.id", accounts.id), ("labels.id", labels.id if labels else None)):
        if column is not None:
            reserved.setdefault(column, f"the id column ({key})")
    if label.column is not None:
        reserved[label.column] = f"the label column ({'labels.column' if labels else 'label.column'})"
    entries = [(f"columns.{name}", value.column) for name, value in accounts.columns.items()]
    entries += [(f"raw[{i}]", value.column) for i, value in enumerate(accounts.raw)]
    files = ", ".join(f.path for f in accounts.files)
    for key, column in entries:
        if column in reserved:
            hint = "; if it is also a real profile field (a handle), copy it into a column of its own" if "id" in reserved[column] else ""
            raise top.sub("accounts").error(
                f"column {column!r} of {files} is {reserved[column]}: a feature made from it would leak what the model "
                f"must not see; remove it{hint}",
                key,
            )


def _label_words(values: list[Any]) -> tuple[Any, ...]:
    """YAML reads an unquoted yes/no as a boolean: a boolean stands for all its spellings."""
    out: list[Any] = []
    for v in values:
        out += (["true", "yes", "y", "t", "1"] if v else ["false", "no", "n", "f", "0"]) if isinstance(v, bool) else [v]
    return tuple(dict.fromkeys(out))


def _engagements(keys: _Keys) -> EngagementSpec:
    keys.only("files", "actor", "target", "time", "weight", "value", "kind", "target_type", "symmetric")
    return EngagementSpec(
        files=_files(keys),
        actor=keys.get("actor", str),
        target=keys.get("target", str),
        time=_value(keys, "time", timestamp=True) if keys.value.get("time") is not None else None,
        weight=keys.get("weight", str, None),
        value=keys.get("value", str, None),
        kind=keys.get("kind", str, "like", choices=KINDS),
        target_type=keys.get("target_type", str, "post", choices=TARGET_TYPES),
        symmetric=keys.get("symmetric", bool, False),
    )


def _splits(keys: _Keys, accounts: TableSpec) -> SplitSpec:
    """`splits:` as npz masks ({path, train, valid, test}: array names) or a column ({column, train, valid, test}: values)."""
    if "column" in keys.value:
        keys.only("column", *ROLES)
        if accounts.from_engagements:
            raise keys.error("accounts from the engagements have no columns; put `split:` on the labels files instead", "column")
        values = {role: _label_words(keys.get(role, list)) for role in ROLES if role != "valid" or keys.value.get(role) is not None}
        for role, vs in values.items():
            if not vs or not all(isinstance(v, str | int | float) for v in vs):
                raise keys.error(f"expected a list of the column's values that put an account in {role}, found {vs!r}", role)
        seen: dict[str, str] = {}
        for role, vs in values.items():
            for v in vs:
                word = str(v).lower()
                if word in seen and seen[word] != role:
                    raise keys.error(f"value {v!r} is in both {seen[word]} and {role}", role)
                seen[word] = role
        return SplitSpec(column=keys.get("column", str), values=values)
    keys.only("path", "format", *ROLES)
    path = keys.get("path", str)
    arrays = {role: keys.get(role, str) for role in ROLES if role != "valid" or keys.value.get(role) is not None}
    fmt = keys.get("format", str, _format_of(path), choices=("npz",))
    return SplitSpec(file=FileSpec(path=path, format=fmt, arrays={a: [a] for a in arrays.values()}), arrays=arrays)


def _check_split_files(top: _Keys, accounts: TableSpec, labels: TableSpec | None, splits: SplitSpec | None) -> None:
    """`split:` on files: on every file of one table (accounts or labels), a train and a test file, and no `splits:` beside it."""
    tables = [(name, t) for name, t in (("accounts", accounts), ("labels", labels)) if t is not None and any(f.split for f in t.files)]
    if not tables:
        return
    name, table = tables[0]
    if len(tables) > 1:
        raise top.sub("labels").error("`split:` is on the accounts files already; give it on one table's files", "files")
    if splits is not None:
        raise top.error(f"{name}.files carry `split:` already; give the split one way", "splits")
    for i, f in enumerate(table.files):
        if f.split is None:
            raise top.sub(name).error(
                "missing: the other files have `split:`, so every file needs one (train, valid or test)", f"files[{i}].split"
            )
    roles = {f.split for f in table.files}
    for role in ("train", "test"):
        if role not in roles:
            raise top.sub(name).error(f"no file has `split: {role}`: a shipped split needs a train and a test part", "files")


def _published(top: _Keys, i: int, item: Any) -> Published:
    keys = _Keys(top.spec, f"published[{i}]", item)
    keys.only("method", "metric", "value", "source", "note")
    return Published(
        method=keys.get("method", str),
        metric=keys.get("metric", str, choices=METRICS),
        value=float(keys.get("value", (int, float))),
        source=keys.get("source", str, ""),
        note=_protocol_note(keys),
    )


def _protocol_note(keys: _Keys) -> str:
    """A published result's `note`: required, because a number from another protocol is not ours to beat."""
    if not str(keys.value.get("note") or "").strip():
        raise keys.error(
            "missing: say how its protocol differs from the benchmark's (another subset, another split, unsupervised on all "
            "users, ...) or that it is the same",
            "note",
        )
    return str(keys.get("note", str))
