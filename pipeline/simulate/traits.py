"""How often each trait occurs in each class of a world: the check that no trait belongs to one class.

Measured on the contract tables (what a detector sees), not on the generator's internals, so the
same function measures any labelled contract folder. The simulate stage writes the table to
`metrics/simulate.json`; docs/simulator.md#traits quotes it for the `default` world.

Run on a folder: `python -m pipeline.simulate.traits data/raw/sim` prints the Markdown table.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.errors import ZombieScanError

CLASSES = ("genuine", "zombie", "farm member")

# trait -> what it means (the column is the share of a class's accounts with the trait)
TRAITS: dict[str, str] = {
    "posts": "posted at least once in the window",
    "comments": "commented at least once",
    "shares": "shared at least once",
    "posts_comments_or_shares": "posted, commented or shared at least once",
    "inactive": "no action at all in the window",
    "follows_100": "followed 100 or more accounts in the window",
    "followed_back": "at least one of its follows was returned",
    "burst_hour": "20 or more actions inside one clock hour",
    "crowd_like": "liked a post within 10 minutes of 50+ other accounts liking it",
    "verified": "verification badge",
    "no_display_name": "no display name",
    "no_bio": "no bio",
    "default_photo": "default profile photo",
    "empty_profile": "no photo, no bio and no display name",
    "digit_handle": "handle ends in 3 or more digits",
    "created_within_10min": "another account was created within 10 minutes of it",
    "young_90d": "account younger than 90 days at the end of the window",
}
QUANTILES = (0.5, 0.9, 0.99, 0.999)


def account_traits(accounts: pl.DataFrame, engagements: pl.DataFrame) -> pl.DataFrame:
    """One row per account: a boolean column per trait in `TRAITS`, plus `actions` (its count in the window)."""
    end = engagements["ts"].max()
    e = engagements.select("actor_id", "target_id", "kind", "ts")
    per_kind = e.group_by("actor_id").agg(
        actions=pl.len(),
        posts=(pl.col("kind") == "post").sum(),
        comments=(pl.col("kind") == "comment").sum(),
        shares=(pl.col("kind") == "share").sum(),
        follows=(pl.col("kind") == "follow").sum(),
    )
    hourly = e.group_by("actor_id", pl.col("ts").dt.truncate("1h")).len().group_by("actor_id").agg(top_hour=pl.col("len").max())
    follows = e.filter(pl.col("kind") == "follow").select("actor_id", "target_id")
    returned = (
        follows.join(follows.rename({"actor_id": "target_id", "target_id": "actor_id"}), on=["actor_id", "target_id"], how="semi")
        .select("actor_id")
        .unique()
        .with_columns(followed_back=pl.lit(True))
    )
    # a like among 50+ likes of the same post inside 10 minutes (a live moment, or a farm's burst)
    likes = e.filter(pl.col("kind") == "like").with_columns(slot=pl.col("ts").dt.truncate("10m"))
    crowded = likes.group_by("target_id", "slot").len().filter(pl.col("len") >= 50).select("target_id", "slot")
    in_crowd = likes.join(crowded, on=["target_id", "slot"], how="semi").select("actor_id").unique().with_columns(crowd=pl.lit(True))
    created = accounts.select("account_id", "created_at").sort("created_at", "account_id")
    gap = pl.min_horizontal(
        (pl.col("created_at") - pl.col("created_at").shift(1)).dt.total_seconds(),
        (pl.col("created_at").shift(-1) - pl.col("created_at")).dt.total_seconds(),
    )
    near = created.with_columns(near=gap.fill_null(10**9) <= 600).select("account_id", "near")
    a = accounts.join(per_kind, left_on="account_id", right_on="actor_id", how="left")
    a = a.join(hourly, left_on="account_id", right_on="actor_id", how="left")
    a = a.join(returned, left_on="account_id", right_on="actor_id", how="left")
    a = a.join(in_crowd, left_on="account_id", right_on="actor_id", how="left")
    a = a.join(near, on="account_id", how="left")
    n = pl.col
    return a.select(
        "account_id",
        actions=n("actions").fill_null(0),
        posts=n("posts").fill_null(0) > 0,
        comments=n("comments").fill_null(0) > 0,
        shares=n("shares").fill_null(0) > 0,
        posts_comments_or_shares=(n("posts").fill_null(0) + n("comments").fill_null(0) + n("shares").fill_null(0)) > 0,
        inactive=n("actions").is_null(),
        follows_100=n("follows").fill_null(0) >= 100,
        followed_back=n("followed_back").fill_null(False),
        burst_hour=n("top_hour").fill_null(0) >= 20,
        crowd_like=n("crowd").fill_null(False),
        verified=n("is_verified").fill_null(False),
        no_display_name=n("display_name").is_null(),
        no_bio=n("bio").is_null(),
        default_photo=~n("has_profile_photo").fill_null(False),
        empty_profile=n("display_name").is_null() & n("bio").is_null() & ~n("has_profile_photo").fill_null(False),
        digit_handle=n("username").fill_null("").str.contains(r"[0-9]{3}$"),
        created_within_10min=n("near").fill_null(False),
        young_90d=(pl.lit(end) - n("created_at")).dt.total_days() < 90,
    )


def trait_rates(accounts: pl.DataFrame, engagements: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Share of each class with each trait (rows: traits, then action-count quantiles; columns: CLASSES).

    Classes: `genuine` (neither label), `zombie`, `farm member` (the two overlap).
    """
    missing = [c for c in ("account_id", "is_zombie", "is_like_farm") if c not in labels.columns]
    if missing:
        raise ZombieScanError(f"labels: missing column(s) {', '.join(missing)}; trait rates need both labels")
    t = account_traits(accounts, engagements).join(labels.select("account_id", "is_zombie", "is_like_farm"), on="account_id")
    masks = {
        "genuine": ~pl.col("is_zombie") & ~pl.col("is_like_farm"),
        "zombie": pl.col("is_zombie"),
        "farm member": pl.col("is_like_farm"),
    }
    rows = []
    for trait in TRAITS:
        rows.append({"trait": trait, **{c: _number(t.filter(m)[trait].cast(pl.Float64).mean()) for c, m in masks.items()}})
    for q in QUANTILES:
        rows.append(
            {"trait": f"actions_p{q * 100:g}", **{c: _number(t.filter(m)["actions"].quantile(q, "nearest")) for c, m in masks.items()}}
        )
    rows.append({"trait": "actions_max", **{c: _number(t.filter(m)["actions"].max()) for c, m in masks.items()}})
    rows.append({"trait": "accounts", **{c: float(t.filter(m).height) for c, m in masks.items()}})
    return pl.DataFrame(rows, schema={"trait": pl.String, **{c: pl.Float64 for c in CLASSES}})


def _number(value: Any) -> float:
    """A polars aggregate as a float; an empty class counts as 0."""
    return float(value) if value is not None else 0.0


def rates_markdown(rates: pl.DataFrame) -> str:
    """The table docs/simulator.md quotes."""
    lines = ["| trait | " + " | ".join(CLASSES) + " |", "|---|" + "---:|" * len(CLASSES)]
    for row in rates.iter_rows(named=True):
        trait = row["trait"]
        counts = trait.startswith("actions") or trait == "accounts"
        cells = [f"{row[c]:,.0f}" if counts else f"{row[c]:.1%}" for c in CLASSES]
        label = TRAITS.get(trait, trait.replace("_", " "))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def folder_rates(folder: Path) -> pl.DataFrame:
    """`trait_rates` of a contract folder written by `zombiescan simulate`."""
    tables = {name: pl.read_parquet(folder / f"{name}.parquet") for name in ("accounts", "engagements", "labels")}
    return trait_rates(tables["accounts"], tables["engagements"], tables["labels"])


if __name__ == "__main__":
    print(rates_markdown(folder_rates(Path(sys.argv[1] if len(sys.argv) > 1 else "data/raw/sim"))), end="")
