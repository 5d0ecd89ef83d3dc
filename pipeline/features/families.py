"""The feature families, in column order: the one list everything else reads.

`build` computes them (the featurize stage, `zombiescan features` and `score`), the models select
their columns by these prefixes (`prefixes`), the evaluate stage's ablations are generated from
their roles (`ablations`), the benchmark leaves each out in turn, and `describe` words a value
for the reasons of a score. A new family is a module with its `Family` and one entry here
(docs/features.md#a-new-family).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import polars as pl

from pipeline.features import behaviour, graph, lockstep, profile, rating
from pipeline.features.family import Context, Family


def _raw(ctx: Context) -> pl.DataFrame:
    assert ctx.raw is not None
    return ctx.raw.select("account_id", *[c for c in ctx.raw.columns if c.startswith("raw_")])


RAW = Family("raw_", "raw", _raw, role="passthrough", engagements=False)  # a dataset's own columns (datasets/*.yaml `raw:`)

# Column order: the account's own profile and behaviour, then what its ratings say (rate_: only
# on data with engagement values; absent elsewhere, so no other column moves), a dataset's own
# raw_ columns, then the graph and lockstep families. Dependencies do not set the order: each
# family is computed after the ones it `needs` (`in_order`).
FAMILIES: tuple[Family, ...] = (profile.FAMILY, behaviour.FAMILY, rating.FAMILY, RAW, graph.FAMILY, lockstep.FAMILY)


def prefixes() -> tuple[str, ...]:
    return tuple(f.prefix for f in FAMILIES)


def family_of(column: str) -> Family | None:
    return next((f for f in FAMILIES if column.startswith(f.prefix)), None)


def present(columns: list[str]) -> list[Family]:
    """The families that have at least one column among `columns`, in column order."""
    return [f for f in FAMILIES if any(c.startswith(f.prefix) for c in columns)]


def supported(*, engagements: bool, values: bool, raw: bool) -> list[Family]:
    """The families a world's data supports, in column order (both engines ask here): without
    engagements (profile-only data) none that needs them, without engagement values none that
    needs values (rate_), and the pass-through raw_ only for a dataset that brings its columns."""
    return [f for f in FAMILIES if (engagements or not f.engagements) and (values or not f.values) and (raw or f.role != "passthrough")]


def ablated() -> tuple[list[Family], list[Family]]:
    """The own and the relational families of the ablations, in column order.

    Families that need engagement values (rate_) have no ablation step: the evaluate stage's
    variants are one list for every world, and where there are no values (the simulator's) the
    step would only repeat the one before it. The benchmark's rows per dataset ("rate only",
    "without rate") are made from the columns present instead."""
    own = [f for f in FAMILIES if f.role == "own" and not f.values]
    return own, [f for f in FAMILIES if f.role == "relational" and not f.values]


def ablations() -> list[tuple[str, tuple[str, ...], str]]:
    """(name, prefixes, what) of each ablation: the account's own families added one at a time
    ("profile", "profile+beh"), then each relational family added to all of them
    ("profile+beh+graph", "profile+beh+lock"). Pass-through families are in the full model only,
    and so are the families that need engagement values (`ablated`)."""
    own, relational = ablated()
    out = []
    for i, family in enumerate(own):
        steps = own[: i + 1]
        what = f"ablation: {family.title} only" if i == 0 else "ablation: " + " + ".join(f.title for f in steps)
        out.append(("+".join(f.name for f in steps), tuple(f.prefix for f in steps), what))
    for family in relational:
        out.append(
            ("+".join([*(f.name for f in own), family.name]), (*(f.prefix for f in own), family.prefix), f"ablation: + {family.title}")
        )
    return out


def describe(feature: str, value: float | None) -> str:
    """One feature's value in an analyst's words (the family's wording; a generic line without one)."""
    return wording(feature)(value)


def wording(feature: str) -> Callable[[float | None], str]:
    """`describe` for one feature, its family looked up once: scoring words many values of few features."""
    family = family_of(feature)
    fn = family.describe.get(feature) if family is not None else None

    def words(value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return f"{feature} unknown"
        if fn is not None:
            try:
                return fn(float(value))
            except (OverflowError, ValueError):
                pass
        return f"{feature} = {value:,.3g}"

    return words


def build(ctx: Context, wanted: list[Family]) -> str:
    """Compute the `wanted` families (each after the families it `needs`), each kept in the
    connection (`Context.keep`); returns the SQL that joins them in column order, sorted by account_id."""
    in_order(ctx.computed, wanted, lambda family: ctx.keep(family.prefix, family.compute(ctx)))
    return ctx.features_sql([f.prefix for f in FAMILIES if f.prefix in ctx.computed])


T = TypeVar("T")


def in_order(done: dict[str, T], wanted: list[Family], compute: Callable[[Family], T]) -> list[T]:
    """Run `compute` on each of the `wanted` families not in `done` yet, each after the families it
    `needs`, keeping the results in `done` by prefix; returns them in column order. One loop for both
    engines: the Spark engine's `compute` returns a Spark DataFrame."""

    def run(family: Family) -> None:
        if family.prefix in done:
            return
        for prefix in family.needs:
            need = next((f for f in wanted if f.prefix == prefix), None)
            if need is not None:
                run(need)
        done[family.prefix] = compute(family)

    for family in wanted:
        run(family)
    return [done[f.prefix] for f in FAMILIES if f.prefix in done]
