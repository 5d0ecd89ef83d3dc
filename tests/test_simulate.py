"""Simulator properties: ground truth is consistent, behaviours are present, nothing gives the class away."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.errors import ZombieScanError
from pipeline.simulate import RANGES, draw_style, from_params, make_config, simulate, vocab, write_contract
from pipeline.simulate.traits import TRAITS, trait_rates
from pipeline.simulate.world import build_world, diurnal_times

Tables = dict[str, pl.DataFrame]


def _labelled_accounts(t: Tables) -> pl.DataFrame:
    return t["accounts"].join(t["labels"], on="account_id", how="inner", validate="1:1")


@pytest.mark.parametrize("world", ["tiny_tables", "default_tables"])
def test_a_world_passes_ingest_untouched(world: str, request: pytest.FixtureRequest) -> None:
    """No exact duplicate rows (ingest would drop the copy, and features from the simulator's
    frames would differ from features from the warehouse): seed 7's tiny world once had two
    identical comments in one second."""
    tables = request.getfixturevalue(world)
    assert not tables["engagements"].is_duplicated().any()
    assert not tables["accounts"]["account_id"].is_duplicated().any()


def test_labels_are_consistent(tiny_tables: Tables) -> None:
    acc, lab = tiny_tables["accounts"], tiny_tables["labels"]
    assert set(acc["account_id"]) == set(lab["account_id"])
    assert acc["account_id"].n_unique() == acc.height
    # farm_id is set exactly for like-farm accounts
    assert lab.filter(pl.col.is_like_farm != pl.col.farm_id.is_not_null()).height == 0
    zombie_share = lab["is_zombie"].mean()
    assert zombie_share == pytest.approx(make_config("tiny").zombie_share, abs=0.005)


def test_labels_overlap_but_differ(default_tables: Tables) -> None:
    lab = default_tables["labels"]
    counts = lab.group_by("is_zombie", "is_like_farm").len().sort("is_zombie", "is_like_farm")
    by = {(z, f): n for z, f, n in counts.iter_rows()}
    assert by[(True, True)] > 0  # zombies farming likes
    assert by[(False, True)] > 0  # real-looking (hijacked or paid) farm members
    assert by[(True, False)] > 0  # zombies doing something else (follow spam, dormant)
    farm = lab.filter(pl.col.is_like_farm)
    assert 0.05 < (~farm["is_zombie"]).mean() < 0.4


def test_every_action_is_after_creation_and_inside_the_window(tiny_tables: Tables) -> None:
    cfg = make_config("tiny", seed=7)
    eng = tiny_tables["engagements"].join(
        tiny_tables["accounts"].select(pl.col.account_id.alias("actor_id"), "created_at"), on="actor_id", how="left"
    )
    assert eng["created_at"].null_count() == 0
    assert eng.filter(pl.col.ts < pl.col.created_at).height == 0
    assert eng["ts"].max() <= cfg.end
    assert eng["ts"].min() >= cfg.end - timedelta(days=cfg.window_days)


def test_campaigns_are_delivered_by_their_farm_within_their_window(default_tables: Tables) -> None:
    t = default_tables
    members = t["labels"].filter(pl.col.is_like_farm).select(pl.col.account_id.alias("actor_id"), "farm_id")
    likes = t["engagements"].filter(pl.col.kind == "like").join(members, on="actor_id")
    camp = t["campaigns"]
    # A target may be bought more than once from the same farm: compare per (target, farm).
    windows = camp.select("target_id", "farm_id", "starts_at", "ends_at")
    inside = (
        likes.join(windows, on=["target_id", "farm_id"])
        .group_by("actor_id", "target_id", "farm_id")
        .agg(pl.col.ts.is_between(pl.col.starts_at, pl.col.ends_at).any().alias("inside"))
    )
    bought = camp.group_by("target_id", "farm_id").agg(pl.col.bought_likes.sum())
    per = bought.join(inside.group_by("target_id", "farm_id").agg(pl.col.inside.sum(), pl.len().alias("all")), on=["target_id", "farm_id"])
    # Farms never over-deliver, deliver most of what was bought, and deliver inside the window.
    # (a member may also like a bought page on its own, hence the small slack)
    assert (per["inside"] <= per["bought_likes"] + 2).all()
    assert per["inside"].sum() <= per["bought_likes"].sum()
    assert per["inside"].sum() > 0.7 * per["bought_likes"].sum()
    # the rest: members' own likes and their background work for the farm's other customers
    assert per["inside"].sum() > 0.9 * per["all"].sum()
    # Bursty campaigns last minutes; stealthy ones days.
    dur = camp.with_columns(hours=(pl.col.ends_at - pl.col.starts_at).dt.total_seconds() / 3600)
    by_style = dict(dur.group_by("style").agg(pl.col.hours.median()).iter_rows())
    assert by_style["bursty"] < 2
    assert by_style["stealthy"] > 24


def test_heavy_farm_members_like_far_more_pages(default_tables: Tables) -> None:
    t = default_tables
    style = t["campaigns"].select("farm_id", "style").unique()
    page_likes = (
        t["engagements"]
        .filter((pl.col.kind == "like") & (pl.col.target_type == "page"))
        .group_by(pl.col.actor_id.alias("account_id"))
        .len()
    )
    lab = t["labels"].join(style, on="farm_id", how="left").join(page_likes, on="account_id", how="left").fill_null(0)
    genuine = lab.filter(~pl.col.is_zombie & ~pl.col.is_like_farm)["len"].median()
    heavy = lab.filter(pl.col.style == "heavy")["len"].median()
    assert heavy > 10 * genuine


def test_heavy_tails(default_tables: Tables) -> None:
    acc = default_tables["accounts"]
    followers = acc["followers_count"].drop_nulls()
    assert followers.max() > 50 * followers.median()
    per_actor = default_tables["engagements"].group_by("actor_id").len()["len"].sort(descending=True)
    top1 = per_actor.head(len(per_actor) // 100).sum() / per_actor.sum()
    assert top1 > 0.08  # the most active 1% do far more than 1% of the actions


def test_zombies_are_created_in_batches(default_tables: Tables) -> None:
    acc = _labelled_accounts(default_tables).sort("created_at")

    def median_gap_to_same_class(is_zombie: bool) -> float:
        ts = acc.filter(pl.col.is_zombie == is_zombie)["created_at"].dt.epoch("s").to_numpy()
        return float(np.median(np.diff(ts)))

    # Zombies are 8% of accounts, so without batches their gaps would be ~11x the genuine ones.
    assert median_gap_to_same_class(True) < median_gap_to_same_class(False)


def test_genuine_users_sleep() -> None:
    """Genuine activity follows a diurnal rhythm on the users' own clocks (every world, however flat its style)."""
    cfg = make_config("tiny", seed=11)
    world = build_world(cfg, draw_style(11, {"diurnal_depth": 0.4}))  # the flattest curve the style draws
    a = world.actions
    genuine = ~world.is_zombie[a.actor] & (world.farm[a.actor] < 0)
    local = ((a.ts[genuine] + world.tz[a.actor[genuine]] * 3600) // 3600 % 24).astype(int)
    hours = np.bincount(local, minlength=24)
    assert hours.max() > 1.5 * hours.min()


def test_follows_are_reciprocated_sometimes(tiny_tables: Tables) -> None:
    f = tiny_tables["engagements"].filter(pl.col.kind == "follow").select("actor_id", "target_id")
    back = f.join(f, left_on=["actor_id", "target_id"], right_on=["target_id", "actor_id"])
    assert 0.02 < back.height / f.height < 0.6


def test_no_single_column_reveals_the_class(default_tables: Tables) -> None:
    acc = _labelled_accounts(default_tables).with_row_index("position")
    signals = acc.select(
        position=pl.col.position,
        id=pl.col.account_id.cast(pl.Int64),
        created=pl.col.created_at.dt.epoch("s"),
        photo=pl.col.has_profile_photo.cast(pl.Int8),
        empty_bio=pl.col.bio.is_null().cast(pl.Int8),
        digits=pl.col.username.str.count_matches(r"\d"),
        followers=pl.col.followers_count.fill_null(-1),
        following=pl.col.following_count.fill_null(-1),
        posts=pl.col.posts_count.fill_null(-1),
        ratio=(pl.col.following_count.fill_null(0) + 1) / (pl.col.followers_count.fill_null(0) + 1),
    )
    for label in ("is_zombie", "is_like_farm"):
        y = acc[label].to_numpy()
        for name in signals.columns:
            auc = roc_auc_score(y, signals[name].to_numpy())
            limit = 0.56 if name in {"position", "id"} else 0.9
            assert max(auc, 1 - auc) < limit, f"{name} alone separates {label}: AUC {auc:.3f}"
    # ...but usernames still carry some information: operators' templates (5+ digits) are far more
    # common among fresh zombies than among genuine users, though careful operators pick name-like
    # handles (seed 42: 22% against 4%; over all zombies the digit count alone is near chance).
    kind = (
        pl.when(pl.col.segment.str.starts_with("fresh_zombie"))
        .then(pl.lit("fresh"))
        .when(pl.col.segment == "genuine")
        .then(pl.lit("genuine"))
    )
    long_digits = acc.group_by(kind.alias("kind")).agg((pl.col.username.str.count_matches(r"\d") >= 5).mean().alias("share"))
    share = dict(long_digits.rows())
    assert share["fresh"] > 2 * share["genuine"], share


def test_same_seed_same_bytes_other_seed_other_world(tmp_path: Path) -> None:
    def digest(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        cfg = make_config("tiny", seed=seed)
        write_contract(simulate(cfg), tmp_path / name, cfg, "tiny")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["engagements.parquet"] != digest(tmp_path / "c")["engagements.parquet"]


@pytest.mark.parametrize(("stealth", "expected"), [(0.6, 6), (0.8, 8)])
def test_farm_style_shares_are_counts_not_draws(stealth: float, expected: int) -> None:
    """Ten farms at stealth_share 0.6 and 0.8: six and eight stealthy farms (a random draw per farm
    once gave both worlds the same styles, and the robustness curve two equal points)."""
    cfg = make_config("tiny", seed=1, farm_count=10, stealth_share=stealth, heavy_share=0.1, adaptive_share=0.1)
    labels = simulate(cfg)["labels"].filter(pl.col.farm_id.is_not_null())
    farms = labels.select("farm_id", style=pl.col.segment.str.extract(r"(\w+)_farm$")).unique()
    assert farms["farm_id"].n_unique() == farms.height == 10
    assert dict(farms["style"].value_counts().rows())["stealthy"] == expected


def test_knobs_change_the_world() -> None:
    base = simulate(make_config("tiny", seed=1))["labels"]
    more = simulate(make_config("tiny", seed=1, zombie_share=0.2))["labels"]
    assert more["is_zombie"].sum() > 2 * base["is_zombie"].sum()


def test_accounts_override_scales_the_world() -> None:
    cfg = make_config("default", accounts=5_000)
    assert cfg.accounts == 5_000
    assert cfg.farm_count == 4
    t = simulate(make_config("tiny", accounts=3_000))
    assert t["accounts"].height == 3_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"zombie_share": 1.5}, "knob 'zombie_share' = 1.5: expected a share between 0 and 1"),
        ({"stealth_share": 0.7, "heavy_share": 0.5}, "stealth_share \\+ heavy_share \\+ adaptive_share must not exceed 1"),
        ({"accounts": 10}, "accounts = 10: expected at least 200"),
        ({"colour": "red"}, "unknown knob\\(s\\) colour"),
        ({"end": "tomorrow"}, "end = 'tomorrow': expected an ISO 8601 timestamp"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ZombieScanError, match=message):
        make_config(**kwargs)  # type: ignore[arg-type]


def test_no_profile_rule_is_exclusive_to_zombies(default_tables: Tables) -> None:
    """Each tell-tale sign also shows up on genuine accounts, so no rule of thumb is a detector."""
    acc = _labelled_accounts(default_tables)
    rules = {
        "stock bio": pl.col.bio.is_in(list(vocab.ZOMBIE_BIOS)),
        "display name is the handle": pl.col.display_name == pl.col.username,
        "digit inside the handle": pl.col.username.str.contains(r"\d[a-z]"),
        "5+ trailing digits": pl.col.username.str.contains(r"[a-z]\d{5,}$"),
        "default photo and no bio": ~pl.col.has_profile_photo & pl.col.bio.is_null(),
    }
    for name, rule in rules.items():
        hit = acc.filter(rule.fill_null(False))
        assert hit["is_zombie"].sum() > 0, f"{name}: never seen on a zombie"
        assert hit["is_zombie"].mean() < 0.8, f"{name}: {hit['is_zombie'].mean():.0%} of matches are zombies"


def test_diurnal_times_follow_the_local_clock() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    lo = np.full(n, 1_700_000_000)
    ts = diurnal_times(rng, lo, lo + 30 * 86_400, np.full(n, 5.5))
    local_hour = ((ts + 5.5 * 3600) // 3600 % 24).astype(int)
    share = np.bincount(local_hour, minlength=24) / n
    expected = np.asarray(vocab.DIURNAL) / np.sum(vocab.DIURNAL)
    assert np.abs(share - expected).max() < 0.01
    assert share[3] < share[20] / 5  # asleep at 3 am, online at 8 pm
    assert ((ts >= lo) & (ts <= lo + 30 * 86_400)).all()


def test_segments_and_batches_agree_with_the_labels(tiny_tables: dict[str, pl.DataFrame]) -> None:
    labels = tiny_tables["labels"]
    seg = labels["segment"]
    assert not seg.is_null().any()
    assert (seg.str.contains("zombie") == labels["is_zombie"]).all()
    assert (seg.str.contains("_farm") == labels["is_like_farm"]).all()
    assert set(seg.str.extract(r"(\w+)_farm").drop_nulls().unique()) <= {"bursty", "stealthy", "heavy", "adaptive"}
    # batches: fresh zombies only, several accounts each
    batched = labels.filter(pl.col("batch_id").is_not_null())
    assert batched["segment"].str.starts_with("fresh_zombie").all()
    assert batched.group_by("batch_id").len()["len"].min() >= 2


# --- no trait belongs to one class; worlds differ by seed (P7) ----------------------------------


def test_every_trait_occurs_in_both_classes(default_tables: Tables) -> None:
    """A trait one class shows must show up in the other at a real rate: zombies post and get
    followed back, genuine users keep empty profiles, binge, sign up in waves and join crowds."""
    t = default_tables
    rates = {r["trait"]: r for r in trait_rates(t["accounts"], t["engagements"], t["labels"]).iter_rows(named=True)}
    for trait in TRAITS:
        r = rates[trait]
        for cls in ("zombie", "farm member"):
            high, low = max(r[cls], r["genuine"]), min(r[cls], r["genuine"])
            if high >= 0.02:
                assert low >= 0.1 * high or low >= 0.01, f"{trait}: {cls} {r[cls]:.1%} vs genuine {r['genuine']:.1%}"


def test_activity_has_no_ceiling_in_any_class(default_tables: Tables) -> None:
    """Heavy tails everywhere: the busiest accounts of every class go well past the class's 99th percentile."""
    t = default_tables
    rates = {r["trait"]: r for r in trait_rates(t["accounts"], t["engagements"], t["labels"]).iter_rows(named=True)}
    for cls in ("genuine", "zombie", "farm member"):
        assert rates["actions_max"][cls] > 1.4 * rates["actions_p99"][cls], cls
        assert rates["actions_p99"][cls] > 3 * rates["actions_p50"][cls], cls


def test_two_seeds_are_two_platforms(tmp_path: Path) -> None:
    """Each seed draws its own style from the documented ranges; a pin changes that setting and nothing else."""
    one, two = draw_style(1), draw_style(2)
    for name, r in RANGES.items():
        assert r.low <= getattr(one, name) <= r.high, name
        assert getattr(one, name) != getattr(two, name), name
    pinned = draw_style(1, {"activity_sigma": 1.25})
    assert pinned.activity_sigma == 1.25
    assert {k: v for k, v in pinned.as_dict().items() if k != "activity_sigma"} == {
        k: v for k, v in one.as_dict().items() if k != "activity_sigma"
    }
    with pytest.raises(ZombieScanError, match="unknown setting\\(s\\) colour"):
        draw_style(1, {"colour": 1})
    preset, cfg, style = from_params({"preset": "tiny", "seed": 5, "style": {"session_mean": 4.0}})
    write_contract(simulate(cfg, style), tmp_path / "w", cfg, preset, style)
    manifest = (tmp_path / "w" / "simulation.json").read_text()
    assert '"session_mean": 4.0' in manifest and '"seed": 5' in manifest


def test_adaptive_farms_spread_past_the_lockstep_windows() -> None:
    """Adaptive campaigns run for weeks, and their likes follow the members' own waking hours."""
    cfg = make_config("tiny", seed=3, stealth_share=0.0, heavy_share=0.0, adaptive_share=1.0)
    world = build_world(cfg, draw_style(3, {"diurnal_depth": 1.0, "diurnal_peak_shift_h": 0.0}))
    c = world.campaigns
    assert (c["style"] == "adaptive").all()
    assert ((c["ends_at"] - c["starts_at"]) >= 10 * 86_400).all()
    a = world.actions
    campaign = np.isin(a.target, c["target"].to_numpy()) & (world.farm[a.actor] >= 0)
    local = ((a.ts[campaign] + world.tz[a.actor[campaign]] * 3600) // 3600 % 24).astype(int)
    hours = np.bincount(local, minlength=24)
    assert hours[2:5].sum() < hours[18:21].sum() / 2  # asleep at night, like the people they imitate


def test_trait_rates_on_a_hand_made_world() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    accounts = pl.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "created_at": [t0, t0 + timedelta(minutes=5), t0 - timedelta(days=400)],
            "username": ["ann123", "bob", "cat"],
            "display_name": [None, "Bob", "Cat"],
            "bio": [None, "hi", None],
            "has_profile_photo": [False, True, True],
            "is_verified": [False, False, True],
        }
    )
    engagements = pl.DataFrame(
        {
            "actor_id": ["a", "b", "c", "a"],
            "target_id": ["b", "a", "p1", "p1"],
            "kind": ["follow", "follow", "post", "like"],
            "ts": [t0 + timedelta(days=d) for d in (1, 2, 3, 4)],
        }
    )
    labels = pl.DataFrame({"account_id": ["a", "b", "c"], "is_zombie": [True, False, False], "is_like_farm": [False, False, False]})
    r = {row["trait"]: row for row in trait_rates(accounts, engagements, labels).iter_rows(named=True)}
    assert r["empty_profile"]["zombie"] == 1.0 and r["empty_profile"]["genuine"] == 0.0
    assert r["followed_back"]["zombie"] == 1.0 and r["followed_back"]["genuine"] == 0.5
    assert r["posts"]["genuine"] == 0.5 and r["digit_handle"]["zombie"] == 1.0
    assert r["created_within_10min"]["zombie"] == 1.0 and r["created_within_10min"]["genuine"] == 0.5
    assert r["young_90d"]["genuine"] == 0.5 and r["verified"]["genuine"] == 0.5
    assert r["accounts"]["farm member"] == 0.0
