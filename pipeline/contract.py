"""The data contract: the canonical tables every source is mapped onto (docs/data-contract.md).

This module only *describes* the tables; `pipeline.ingest.read` (file structure, type conversion)
and `pipeline.ingest.load` (row rules, loading) enforce it. Column names here are the names used
everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import tasks
from pipeline.db import literal
from pipeline.errors import ZombieScanError

TARGET_TYPES = ("post", "page", "account")
KINDS = ("like", "follow", "share", "comment", "post", "rate")
FORMATS = (".parquet", ".csv", ".jsonl", ".csv.gz", ".jsonl.gz")  # text formats may be gzip-compressed

# Logical type -> DuckDB type used in the warehouse.
SQL_TYPES = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "bool": "BOOLEAN",
    "int": "BIGINT",
    "number": "DOUBLE",
}
# How a logical type is named in error messages.
EXPECTED = {
    "string": "a string",
    "timestamp": "a UTC timestamp (ISO 8601, e.g. 2024-05-01T13:45:00Z)",
    "bool": "a boolean (true/false)",
    "int": "an integer",
    "number": "a finite number (e.g. -2.5 or 10)",
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    Attributes:
        name: Column name, fixed by the contract.
        dtype: Logical type: string, timestamp, bool, int or number (a finite real number).
        nullable: Whether nulls are allowed.
        required: Whether the column must be present (optional columns get `default`).
        allowed: The only values allowed, if restricted.
        default: SQL literal used when an optional column is absent.
        minimum: Smallest allowed value for an int column.
    """

    name: str
    dtype: str
    nullable: bool = False
    required: bool = True
    allowed: tuple[str, ...] | None = None
    default: str = "NULL"
    minimum: int | None = None

    @property
    def sql_type(self) -> str:
        if self.allowed is not None:
            return f"ENUM({', '.join(literal(v) for v in self.allowed)})"
        return SQL_TYPES[self.dtype]


@dataclass(frozen=True)
class Table:
    """One contract table.

    Attributes:
        name: Table name, also the file stem in a contract folder.
        columns: The columns, in canonical order.
        key: Columns whose combination must be unique.
        required: Whether a contract folder must contain this table.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    required: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


ACCOUNTS = Table(
    "accounts",
    (
        Column("account_id", "string"),
        # null = unknown (a research dataset of ids only): the features that need it are null
        Column("created_at", "timestamp", nullable=True),
        Column("username", "string", nullable=True, required=False),
        Column("display_name", "string", nullable=True, required=False),
        Column("bio", "string", nullable=True, required=False),
        Column("has_profile_photo", "bool", nullable=True, required=False),
        Column("is_verified", "bool", nullable=True, required=False),
        Column("followers_count", "int", nullable=True, required=False, minimum=0),
        Column("following_count", "int", nullable=True, required=False, minimum=0),
        Column("posts_count", "int", nullable=True, required=False, minimum=0),
        Column("lang", "string", nullable=True, required=False),
        Column("location", "string", nullable=True, required=False),
        Column("url", "string", nullable=True, required=False),
    ),
    key=("account_id",),
    required=True,
)

ENGAGEMENTS = Table(
    "engagements",
    (
        Column("actor_id", "string"),
        Column("target_id", "string"),
        Column("target_type", "string", allowed=TARGET_TYPES),
        Column("kind", "string", allowed=KINDS),
        Column("ts", "timestamp"),
        Column("weight", "int", required=False, default="1", minimum=1),
        # a rating or review score (may be negative); null = the engagement carries none
        Column("value", "number", nullable=True, required=False),
    ),
    required=True,
)

TARGETS = Table(
    "targets",
    (
        Column("target_id", "string"),
        Column("target_type", "string", allowed=TARGET_TYPES),
        Column("owner_id", "string", nullable=True, required=False),
        Column("created_at", "timestamp", nullable=True, required=False),
    ),
    key=("target_id",),
)


def labels_table() -> Table:
    """The labels table: one nullable bool column per task (pipeline.tasks; a built-in task's must
    be present, a registered task's may be absent and then reads as unknown), then the optional
    grouping columns the split keeps whole (farm_id, batch_id) and the simulator's segment."""
    return Table(
        "labels",
        (
            Column("account_id", "string"),
            *(Column(t.label, "bool", nullable=True, required=t in tasks.BUILT_IN) for t in tasks.all_tasks()),
            Column("farm_id", "string", nullable=True, required=False),
            Column("batch_id", "string", nullable=True, required=False),
            Column("segment", "string", nullable=True, required=False),
        ),
        key=("account_id",),
    )


CAMPAIGNS = Table(
    "campaigns",
    (
        Column("target_id", "string"),
        Column("campaign_id", "string"),
        Column("bought_likes", "int", minimum=0),
        Column("farm_id", "string", nullable=True, required=False),
        Column("starts_at", "timestamp", nullable=True, required=False),
        Column("ends_at", "timestamp", nullable=True, required=False),
    ),
    key=("campaign_id", "target_id"),
)


# Load order matters: a table is checked against the tables before it (engagements against
# the accounts that passed, and so on).
def tables() -> tuple[Table, ...]:
    """Every contract table, in load order (the labels' columns follow the registered tasks)."""
    return (ACCOUNTS, ENGAGEMENTS, TARGETS, labels_table(), CAMPAIGNS)


def table_by_name(name: str) -> Table:
    return next(t for t in tables() if t.name == name)


def file_format(path: Path | str) -> str:
    """'.parquet', '.csv' or '.jsonl' for a contract file (`.csv.gz` is '.csv'); '' for anything else."""
    name = Path(path).name.lower()
    for ext in (".parquet", ".csv", ".jsonl", ".csv.gz", ".jsonl.gz"):
        if name.endswith(ext):
            return ext.removesuffix(".gz")
    return ""


def find_table_files(folder: Path, require: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Map each contract table present in `folder` to its file.

    `require` names the tables that must be present (default: accounts and engagements; a
    profile-only dataset passes `("accounts",)`).

    Raises:
        ZombieScanError: if the folder is missing, a required table is missing, or a table is
            present in two formats (we would not know which one is meant).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ZombieScanError(
            f"{folder}: contract folder not found (expected a folder holding accounts.parquet|csv and engagements.parquet|csv)"
        )
    if require is None:
        require = tuple(t.name for t in tables() if t.required)
    found: dict[str, Path] = {}
    for table in tables():
        candidates = [folder / f"{table.name}{ext}" for ext in FORMATS if (folder / f"{table.name}{ext}").is_file()]
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise ZombieScanError(f"{folder}: table '{table.name}' is given twice ({names}); keep exactly one file per table")
        if candidates:
            found[table.name] = candidates[0]
        elif table.name in require:
            exts = "|".join(e.lstrip(".") for e in FORMATS)
            raise ZombieScanError(f"{folder / table.name}.{{{exts}}}: required table '{table.name}' not found")
    return found
