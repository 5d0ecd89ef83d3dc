"""What a feature family is: its column prefix, how it is computed, and how an analyst reads its values.

Each family module (profile, behaviour, rating, graph, lockstep) defines one `Family` beside its SQL or
code and its wording; `pipeline.features.families.FAMILIES` lists them in column order. The
feature builder, the models' feature selection, the ablation variants, the benchmark and the
reasons printed by `zombiescan score` all read that list (docs/features.md#a-new-family).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from pipeline.db import quote

log = logging.getLogger(__name__)

Describe = Callable[[float], str]
"""One feature's value in an analyst's words ("account is 3 days old")."""


@dataclass
class Context:
    """What a family's `compute` reads: a connection that shows `accounts`, `engagements` and
    `targets` cut at the reference time, the settings, and the families computed before it.

    Each family's result is kept in the connection as a temp table (`keep`), not in Python: DuckDB
    holds them within its memory limit and spills them past it, so the Python side does not grow
    with the accounts as the families pile up. `so_far` and `features_sql` join them back.
    """

    con: duckdb.DuckDBPyConnection
    reference_time: datetime
    settings: Any  # LockstepParams (the only settings a family takes today)
    raw: pl.DataFrame | None = None  # account_id + raw_ columns of a dataset (None: the simulator)
    progress: Callable[[str, int, int], None] | None = None
    computed: dict[str, list[str]] = field(default_factory=dict)  # prefix -> its columns (account_id not included), in `table(prefix)`
    outputs: dict[str, Any] = field(default_factory=dict)  # side results (the lockstep groups, ...)
    seconds: dict[str, float] = field(default_factory=dict)  # per timed step; logged, never written

    @property
    def dataset(self) -> bool:
        """Features for a real dataset (raw_ columns given), not the simulator's worlds."""
        return self.raw is not None

    @staticmethod
    def table(prefix: str) -> str:
        """The temp table that holds a computed family ("family_beh")."""
        return f"family_{prefix.rstrip('_')}"

    def keep(self, prefix: str, frame: pl.DataFrame) -> list[str]:
        """Store a family's frame (account_id + its columns) as its temp table; returns its columns."""
        self.con.register("family_in", frame)
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {self.table(prefix)} AS SELECT * FROM family_in")
        finally:
            self.con.unregister("family_in")
        self.computed[prefix] = frame.columns[1:]
        return self.computed[prefix]

    def accounts(self) -> pl.DataFrame:
        """The accounts described (the profile family's rows: created by the reference time), sorted."""
        return self.con.sql(f"SELECT account_id FROM {self.table('profile_')} ORDER BY account_id").pl()

    def so_far(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """Every family computed so far, joined on account_id and sorted by it; only `columns` of them
        when given (a family reading a few columns should not hold a copy of all of them: at a
        million accounts that copy is hundreds of MB)."""
        return self.con.sql(self.features_sql(list(self.computed), columns)).pl()

    def columns(self) -> list[str]:
        """The columns of every family computed so far (account_id not included), in the order `so_far` gives."""
        return [c for columns in self.computed.values() for c in columns]

    def features_sql(self, prefixes: Sequence[str], columns: Sequence[str] | None = None) -> str:
        """SQL for the families of `prefixes` (the first gives the rows: the profile family's), each
        left-joined on account_id, in that order and sorted by account_id; only `columns` when given."""
        wanted = None if columns is None else set(columns)
        select, joins = ["f0.account_id"], []
        for i, prefix in enumerate(prefixes):
            picked = [c for c in self.computed[prefix] if wanted is None or c in wanted]
            if i and not picked:
                continue
            select += [f"f{i}.{quote(c)}" for c in picked]
            joins.append(
                f"{self.table(prefix)} f{i}" if not i else f"LEFT JOIN {self.table(prefix)} f{i} ON f{i}.account_id = f0.account_id"
            )
        return f"SELECT {', '.join(select)} FROM {' '.join(joins)} ORDER BY f0.account_id"

    def timed(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one step, report it to `progress` ("features: NAME") and record its seconds."""
        if self.progress is not None:
            self.progress(f"features: {name}", len(self.seconds), 0)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("%s: %.1f s", name, self.seconds[name])
        return result


@dataclass(frozen=True)
class Family:
    """One feature family.

    Attributes:
        prefix: Every column of the family starts with it ("beh_").
        title: Its name in tables and ablation variants ("behaviour").
        compute: Context -> frame (account_id + the family's columns).
        describe: The analyst wording of each feature, for the reasons of a score.
        role: "own" (what the account's own data says: the ablations add these one by one),
            "relational" (what other accounts say: each is added to all own families), or
            "passthrough" (a dataset's own columns, computed only when it brings them: only in the full model).
        needs: Families whose columns `compute` reads: computed before it whatever the column order.
        engagements: Needs engagements (left out for profile-only data).
        values: Needs engagement values, ratings (left out unless some engagement at the reference
            time carries a `value`: the simulator's worlds have none, so their features stay as they were).
        spark: "module:function" computing the same columns on Spark (pipeline/spark/features.py);
            None only for a pass-through family, whose columns a dataset brings.
    """

    prefix: str
    title: str
    compute: Callable[[Context], pl.DataFrame]
    describe: Mapping[str, Describe] = field(default_factory=dict)
    role: str = "own"
    needs: tuple[str, ...] = ()
    engagements: bool = True
    values: bool = False
    spark: str | None = None

    @property
    def name(self) -> str:
        """The short name ("beh"): the prefix without its underscore."""
        return self.prefix.rstrip("_")


# Wording helpers for the families' `describe` entries.
def count(v: float) -> str:
    return f"{v:,.0f}"


def share(v: float) -> str:
    return f"{100 * v:.0f}%"


def from_log1p(v: float) -> str:
    """A count stored as ln(1 + n)."""
    return count(math.expm1(v))
