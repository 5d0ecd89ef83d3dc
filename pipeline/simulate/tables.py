"""Turn a simulated world into contract tables: profiles, random ids, shuffled rows."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.io import atomic_path
from pipeline.simulate import vocab
from pipeline.simulate.config import SimConfig
from pipeline.simulate.style import WorldStyle, draw_style
from pipeline.simulate.world import (
    FOLLOW,
    KIND_NAMES,
    POST,
    STYLE_NAMES,
    TTYPE_NAMES,
    World,
    build_world,
)

UTC_US = pl.Datetime("us", "UTC")
_ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)


def _ts(seconds: np.ndarray) -> pl.Series:
    return pl.Series(seconds.astype(np.int64) * 1_000_000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _random_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct random 12-digit ids: they carry no order and no class."""
    ids = rng.integers(10**11, 10**12, n)
    while True:
        _, first = np.unique(ids, return_index=True)
        if len(first) == n:
            return ids
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        ids[dup] = rng.integers(10**11, 10**12, int(dup.sum()))


def _pick(rng: np.random.Generator, words: list[str] | tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(words)[rng.integers(0, len(words), n)]


def _keep(values: np.ndarray | pl.Series, keep: np.ndarray) -> pl.Series:
    """`values` where `keep`, null elsewhere."""
    return pl.select(pl.when(pl.Series(keep)).then(pl.Series(values))).to_series()


def _random_strings(rng: np.random.Generator, n: int, width: int = 12) -> np.ndarray:
    codes = _ALPHABET[rng.integers(0, len(_ALPHABET), (n, width))]
    return np.ascontiguousarray(codes).view(f"S{width}").ravel().astype(str)


def _usernames(rng: np.random.Generator, pattern: np.ndarray) -> pl.Series:
    """Usernames by pattern: genuine 0-5, zombie-batch 6-8 (digit suffixes, random strings)."""
    n = len(pattern)
    df = pl.DataFrame(
        {
            "p": pattern,
            "first": _pick(rng, vocab.FIRST_NAMES, n),
            "last": _pick(rng, vocab.LAST_NAMES, n),
            "word": _pick(rng, vocab.WORDS, n),
            "d2": rng.integers(1, 1000, n),
            "year": rng.integers(1965, 2010, n),
            "d5": rng.integers(1_000, 1_000_000, n),
            "rand": _random_strings(rng, n),
            "rlen": rng.integers(8, 13, n),
        }
    )
    c = pl.col
    expr = (
        pl.when(c.p == 0)
        .then(pl.concat_str(c.first, c.last))
        .when(c.p == 1)
        .then(pl.concat_str(c.first, pl.lit("_"), c.last))
        .when(c.p == 2)
        .then(pl.concat_str(c.first, c.d2.cast(pl.String)))
        .when(c.p == 3)
        .then(pl.concat_str(c.word, c.first))
        .when(c.p == 4)
        .then(pl.concat_str(c.first, c.year.cast(pl.String)))
        .when(c.p == 5)
        .then(pl.concat_str(c.first, pl.lit("."), c.last))
        .when(c.p == 6)
        .then(pl.concat_str(c.first, c.d5.cast(pl.String)))
        .when(c.p == 7)
        .then(c.rand.str.slice(0, c.rlen))
        .otherwise(pl.concat_str(c.first, pl.lit("_"), c.last, c.d2.cast(pl.String)))
    )
    return df.select(expr.alias("username")).to_series()


def _profiles(world: World, rng: np.random.Generator) -> pl.DataFrame:
    """Profile fields. Aged zombies get genuine-looking profiles; fresh zombies their batch's template.

    Every trait occurs in both classes at its own rate (docs/simulator.md#traits): empty profiles,
    missing names, template handles and verification badges included.
    """
    n = world.n_accounts
    st = world.style
    fresh = world.is_zombie & ~world.is_aged
    empty = world.empty_profile
    engaged = 1.0 / (1.0 + np.exp(-np.log(np.maximum(world.activity, 1e-3))))  # 0..1, genuine only
    engaged = np.where(world.is_aged, 0.6, engaged)

    # Genuine users mostly pick name-like handles, but some also use long digit suffixes, random
    # strings or first_last+digits, so no username pattern is exclusive to zombies.
    namelike = np.array([0.23, 0.14, 0.19, 0.14, 0.09, 0.12])
    template = np.array([0.45, 0.25, 0.30])
    p = np.r_[namelike / namelike.sum() * (1 - st.digit_handle_share), template * st.digit_handle_share]
    pattern = rng.choice(9, size=n, p=p)
    # One operator, one template: every zombie in a batch shares its username pattern; careful
    # operators pick name-like handles (generated from the same name lists people use).
    n_batches = int(world.batch.max()) + 2
    batch_pattern = np.where(
        rng.random(n_batches) < st.namelike_batch_share,
        rng.choice(6, size=n_batches, p=namelike / namelike.sum()),
        rng.choice([6, 7, 8], size=n_batches, p=[0.45, 0.35, 0.2]),
    )
    pattern = np.where(fresh, batch_pattern[np.maximum(world.batch, 0)], pattern)
    username = _usernames(rng, pattern)

    first = pl.Series(_pick(rng, vocab.FIRST_NAMES, n)).str.to_titlecase()
    last = pl.Series(_pick(rng, vocab.LAST_NAMES, n)).str.to_titlecase()
    name_style = rng.random(n)
    no_name = np.where(fresh, rng.random(n) < st.zombie_no_display_name, empty | (rng.random(n) < 0.03))
    display = (
        pl.DataFrame({"f": first, "l": last, "u": username, "s": name_style, "z": fresh, "none": no_name})
        .select(
            pl.when(pl.col.none)
            .then(pl.lit(None, pl.String))
            .when(pl.col.s < 0.12)
            .then(pl.col.f)
            .when((pl.col.z & (pl.col.s > 0.7)) | (pl.col.s > 0.96))  # some people show their handle too
            .then(pl.col.u)
            .otherwise(pl.concat_str(pl.col.f, pl.lit(" "), pl.col.l))
        )
        .to_series()
    )

    parts = [_pick(rng, vocab.BIO_PARTS, n) for _ in range(3)]
    n_parts = rng.integers(1, 4, n)
    bio_text = (
        pl.DataFrame({"a": parts[0], "b": parts[1], "c": parts[2], "k": n_parts})
        .select(
            pl.when(pl.col.k == 1)
            .then(pl.col.a)
            .when(pl.col.k == 2)
            .then(pl.concat_str(pl.col.a, pl.lit(" · "), pl.col.b))
            .otherwise(pl.concat_str(pl.col.a, pl.lit(" · "), pl.col.b, pl.lit(" · "), pl.col.c))
        )
        .to_series()
        .to_numpy()
    )
    spam_bio = _pick(rng, vocab.ZOMBIE_BIOS, n)
    # ...and some genuine users write the same stock lines ("just me", "follow for follow").
    bio_text = np.where(rng.random(n) < 0.03, spam_bio, bio_text)
    has_bio = np.where(fresh, rng.random(n) >= st.zombie_no_bio, (rng.random(n) < 0.45 + 0.35 * engaged) & ~empty)
    bio = _keep(np.where(fresh & (rng.random(n) < 0.7), spam_bio, bio_text), has_bio)

    photo = np.where(fresh, rng.random(n) >= st.zombie_default_photo, (rng.random(n) < 0.70 + 0.25 * engaged) & ~empty)
    # Badges: the most popular genuine-looking accounts (a bought or hijacked old account keeps
    # its badge), a badge bought by anyone, zombies included.
    looks_genuine = ~fresh
    top = world.popularity >= np.quantile(world.popularity[looks_genuine], 0.998)
    verified = top & looks_genuine & (rng.random(n) < 0.7)
    verified |= rng.random(n) < st.paid_verified_share
    verified |= world.is_aged & (rng.random(n) < st.hijacked_verified_share)

    region = world.comm_region[world.community]
    langs = np.array([r[0] for r in vocab.REGIONS])[region]
    lang = np.where(rng.random(n) < 0.1, "en", langs)
    city_idx = rng.integers(0, 1_000, n)
    cities = np.array([r[2][i % len(r[2])] for r in vocab.REGIONS for i in range(4)]).reshape(len(vocab.REGIONS), 4)
    location = _keep(cities[region, city_idx % 4], (rng.random(n) >= np.where(fresh, 0.75, 0.35)) & ~empty)
    url_kind = rng.random(n)
    url_parts = pl.DataFrame({"w": _pick(rng, vocab.WORDS, n), "l": _pick(rng, vocab.LAST_NAMES, n), "r": _random_strings(rng, n, 7)})
    site, short = url_parts.select(
        pl.concat_str(pl.lit("https://"), pl.col.w, pl.col.l, pl.lit(".com")),
        pl.concat_str(pl.lit("https://bit.ly/"), pl.col.r).alias("short"),
    ).get_columns()
    url = _keep(np.where(url_kind < 0.7, site.to_numpy(), short.to_numpy()), (rng.random(n) < np.where(fresh, 0.08, 0.12)) & ~empty)

    return pl.DataFrame(
        {
            "username": username,
            "display_name": display,
            "bio": bio,
            "has_profile_photo": photo,
            "is_verified": verified,
            "lang": lang,
            "location": location,
            "url": url,
        }
    )


def _snapshot_counts(world: World, rng: np.random.Generator) -> dict[str, pl.Series]:
    """Platform-reported lifetime counts: the window's activity scaled by account age, with noise."""
    n = world.n_accounts
    a = world.actions
    end = int(world.config.end.timestamp())
    age_years = (end - world.created) / (365.0 * 86_400)
    life = (1.0 + 1.5 * age_years) * rng.lognormal(0.0, 0.3, n)
    follows = a.kind == FOLLOW
    followers = np.bincount(a.target[follows], minlength=n)[:n]
    following = np.bincount(a.actor[follows], minlength=n)
    posts = np.bincount(a.actor[a.kind == POST], minlength=n)
    # Aged zombies are bought accounts with a past: their counts are a real account's history.
    aged = np.flatnonzero(world.is_aged)
    donor = rng.choice(np.flatnonzero(~world.is_zombie), size=len(aged))
    out = {}
    for name, x in (("followers_count", followers), ("following_count", following), ("posts_count", posts)):
        value = rng.poisson(x * life + 0.5).astype(np.int64)
        value[aged] = np.round(value[donor] * rng.uniform(0.5, 1.2, len(aged))).astype(np.int64)
        # Some API snapshots miss a count: every class alike.
        out[name] = pl.Series(name, value).scatter(np.flatnonzero(rng.random(n) < 0.03), None)
    return out


def simulate(cfg: SimConfig, style: WorldStyle | None = None) -> dict[str, pl.DataFrame]:
    """Simulate a world and return its contract tables (accounts, engagements, targets, labels, campaigns).

    `style` (how its people and operators behave) defaults to the draw of `cfg.seed`.
    """
    world = build_world(cfg, style or draw_style(cfg.seed))
    rng = np.random.default_rng([cfg.seed, 7])
    n, n_p = world.n_accounts, world.n_pages
    n_obj = n + n_p + len(world.post_owner)
    ids = pl.Series(_random_ids(rng, n_obj)).cast(pl.String)

    profiles = _profiles(world, rng)
    accounts = pl.concat(
        [
            pl.DataFrame({"account_id": ids[:n], "created_at": _ts(world.created)}),
            profiles.select("username", "display_name", "bio", "has_profile_photo", "is_verified"),
            pl.DataFrame(_snapshot_counts(world, rng)),
            profiles.select("lang", "location", "url"),
        ],
        how="horizontal",
    )

    a = world.actions
    eng = pl.DataFrame({"actor": a.actor, "target": a.target, "ttype": a.ttype, "kind": a.kind, "ts": a.ts})
    # A user likes or follows a thing once; comments and shares may repeat, but not in the same
    # second (the contract reads such rows as one row sent twice and ingest drops the copy).
    once = pl.col.kind.is_in([0, 1])
    eng = pl.concat(
        [
            eng.filter(once).sort("actor", "target", "kind", "ts").unique(["actor", "target", "kind"], keep="first", maintain_order=True),
            eng.filter(~once).sort("actor", "target", "kind", "ts").unique(maintain_order=True),
        ]
    )
    eng = eng[rng.permutation(eng.height)]
    kinds = pl.Series(KIND_NAMES)
    ttypes = pl.Series(TTYPE_NAMES)
    engagements = pl.DataFrame(
        {
            "actor_id": ids.gather(eng["actor"]),
            "target_id": ids.gather(eng["target"]),
            "target_type": ttypes.gather(eng["ttype"]),
            "kind": kinds.gather(eng["kind"]),
            "ts": _ts(eng["ts"].to_numpy()),
        }
    )

    post_ids = np.arange(n + n_p, n_obj)
    targets = pl.DataFrame(
        {
            "target_id": ids.gather(np.concatenate([np.arange(n, n + n_p), post_ids])),
            "target_type": ["page"] * n_p + ["post"] * len(post_ids),
            "owner_id": ids.gather(np.concatenate([world.page_owner, world.post_owner])),
            "created_at": _ts(np.concatenate([world.page_created, world.post_created])),
        }
    )
    targets = targets[rng.permutation(targets.height)]

    perm = rng.permutation(n)
    accounts = accounts[perm]
    farm_names = pl.Series([f"farm-{i:04d}" for i in range(cfg.farm_count)])
    labels = pl.DataFrame(
        {
            "account_id": ids[:n],
            "is_zombie": world.is_zombie,
            "is_like_farm": world.farm >= 0,
            "farm_id": farm_names.gather(np.maximum(world.farm, 0)).scatter(np.flatnonzero(world.farm < 0), None),
            "batch_id": pl.Series([f"batch-{b:05d}" if b >= 0 else None for b in world.batch.tolist()], dtype=pl.String),
            "segment": _segments(world),
        }
    )[perm]
    c = world.campaigns
    campaigns = pl.DataFrame(
        {
            "target_id": ids.gather(c["target"]),
            "campaign_id": c["campaign"].map_elements(lambda i: f"camp-{i:05d}", return_dtype=pl.String),
            "bought_likes": c["bought_likes"],
            "farm_id": farm_names.gather(c["farm"]),
            "style": c["style"],
            "starts_at": _ts(c["starts_at"].to_numpy()),
            "ends_at": _ts(c["ends_at"].to_numpy()),
        }
    )
    # A target bought twice in one campaign is one row with the likes summed.
    campaigns = (
        campaigns.group_by("campaign_id", "target_id", maintain_order=True)
        .agg(pl.col.bought_likes.sum(), pl.exclude("bought_likes").first())
        .select("target_id", "campaign_id", "bought_likes", "farm_id", "style", "starts_at", "ends_at")
    )
    return {"accounts": accounts, "engagements": engagements, "targets": targets, "labels": labels, "campaigns": campaigns}


def _segments(world: World) -> pl.Series:
    """Evaluation subgroup of each account: how it was made (never a feature; see docs/simulator.md)."""
    names = np.array([f"{name}_farm" for name in STYLE_NAMES] + [""], dtype=object)
    farm_style = names[np.where(world.farm >= 0, world.farm_style[np.maximum(world.farm, 0)], len(STYLE_NAMES))]
    zombie = np.where(world.is_aged, "aged_zombie", np.where(world.is_zombie, "fresh_zombie", ""))
    both = [("+".join(x for x in (z, f) if x) or "genuine") for z, f in zip(zombie.tolist(), farm_style.tolist(), strict=True)]
    return pl.Series(both, dtype=pl.String)


def _is_simulator_output(folder: Path) -> bool:
    return (folder / "simulation.json").is_file() or not any(folder.iterdir())


def write_contract(tables: dict[str, pl.DataFrame], out: Path | str, cfg: SimConfig, preset: str, style: WorldStyle | None = None) -> None:
    """Write the tables as `<name>.parquet` plus `simulation.json` into `out`, atomically.

    An existing `out` is replaced only if it is empty or an earlier simulator output (it holds
    `simulation.json`); any other folder is refused, so a mistyped `--out` cannot wipe data.
    """
    with atomic_path(Path(out), replaceable_dir=_is_simulator_output) as tmp:
        tmp.mkdir()
        for name, df in tables.items():
            df.write_parquet(tmp / f"{name}.parquet", compression="zstd", statistics=True)
        manifest = {
            "preset": preset,
            "config": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in asdict(cfg).items()},
            "style": (style or draw_style(cfg.seed)).as_dict(),
            "rows": {name: df.height for name, df in tables.items()},
        }
        (tmp / "simulation.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
