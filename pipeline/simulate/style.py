"""How a simulated platform behaves, drawn anew for every seed: two seeds are two platforms.

The difficulty knobs (`SimConfig`: zombie share, farm styles, camouflage ...) say *what* a world
holds; the style says *how* its people and operators behave: how active users are and when they
sleep, how long their sessions run, how operators register and run their accounts, how fast farms
deliver. A detector tuned to one style and tested on another shows whether it learned fakes or
one generator's habits (the `transfer` stage measures exactly that).

Every setting is drawn uniformly from its documented range (`RANGES`, rendered as a table in
docs/simulator.md) by a generator seeded with the world's seed, independently of the streams that
build the world. `simulate.style` in params.yaml pins any of them (an experiment varies one and
holds the rest).
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import ZombieScanError


@dataclass(frozen=True)
class Range:
    """A setting's range, what it means, and where the range comes from."""

    low: float
    high: float
    what: str
    source: str = ""


# name -> range. The sources say what shaped each range; where none is given, the range is a
# judgement within what the cited measurements allow, and is stated as such in docs/simulator.md.
RANGES: dict[str, Range] = {
    # --- genuine users
    "activity_sigma": Range(0.9, 1.4, "log-normal sigma of genuine activity (heavy tail)", "Mislove et al., IMC 2007"),
    "activity_scale": Range(0.75, 1.3, "multiplies the preset's mean actions per genuine account"),
    "lurker_share": Range(0.35, 0.6, "share of genuine users who almost never post", "Nielsen's 90-9-1 rule"),
    "dormant_share": Range(0.06, 0.18, "share of genuine accounts with no action in the window (inactive for years)"),
    "returning_share": Range(0.02, 0.08, "share of genuine accounts dormant for years that come back late in the window"),
    "session_mean": Range(1.5, 5.0, "mean actions per session of a genuine user (log-normal across users)"),
    "session_gap_s": Range(20.0, 240.0, "mean seconds between actions inside a session"),
    "diurnal_peak_shift_h": Range(-2.0, 2.0, "shift of the platform's evening peak, hours"),
    "diurnal_depth": Range(0.4, 1.0, "how quiet nights are: 1 the reference curve, 0 flat"),
    "followback_share": Range(
        0.05, 0.2, "share of genuine users who follow back whoever follows them", "Ghosh et al., WWW 2012 (social capitalists)"
    ),
    "onboarding_follows": Range(10.0, 40.0, "mean suggested accounts a user follows in the minutes after joining or coming back"),
    "friend_share": Range(
        0.4,
        0.7,
        "share of genuine reactions that go to a post of their own circle, however few others see it",
        "Wilson et al., EuroSys 2009",
    ),
    "community_launch_years": Range(2.0, 8.0, "mean years since a community (a region, a language) joined the platform"),
    "signup_wave_share": Range(0.01, 0.04, "share of genuine accounts created in sign-up waves (an event, an ad, a school)"),
    "new_user_share": Range(0.02, 0.06, "share of genuine accounts that joined in the last 6 months"),
    "live_series_per_10k": Range(4.0, 16.0, "recurring live events (a team, a show) per 10,000 accounts"),
    "live_fans_mean": Range(20.0, 80.0, "median fans of one live-event series (log-normal, sigma 1.4)"),
    "live_attend": Range(0.4, 0.8, "chance a fan likes an event's post in the minutes it is live"),
    "live_delay_min": Range(2.0, 20.0, "mean minutes from an event's start to a fan's like"),
    "hunter_share": Range(0.01, 0.04, "share of genuine users who hunt giveaways: they like many small pages, in binges"),
    "hunter_likes": Range(40.0, 200.0, "mean small-page likes of a giveaway hunter in the window (log-normal across hunters)"),
    "empty_profile_share": Range(0.03, 0.09, "share of genuine accounts with no photo, bio, name, place or link"),
    "digit_handle_share": Range(0.05, 0.14, "share of genuine handles from the templates bulk operators use"),
    "paid_verified_share": Range(0.001, 0.006, "share of accounts of any kind that bought a verification badge"),
    # --- zombies
    "zombie_activity_sigma": Range(0.8, 1.3, "log-normal sigma of a zombie's activity (no hard caps)"),
    "follow_spam_mean": Range(40.0, 160.0, "mean follows of a follow-spam zombie in the window"),
    "content_spam_mean": Range(6.0, 30.0, "mean posts and comments of a content-spam zombie in the window"),
    "zombie_alive_share": Range(0.25, 0.6, "share of other zombies that post, share or comment a little to look alive"),
    "zombie_trickle_likes": Range(2.0, 8.0, "mean likes of a zombie outside its work (pages, trending posts)"),
    "farm_background_likes": Range(
        5.0, 40.0, "mean likes a farm account gives other customers' pages in the window", "De Cristofaro et al. 2014"
    ),
    "role_follow_spam": Range(0.2, 0.5, "weight of follow spam among non-farm zombie roles"),
    "role_content_spam": Range(0.15, 0.4, "weight of content spam among non-farm zombie roles"),
    "role_dormant": Range(0.15, 0.4, "weight of dormancy among non-farm zombie roles"),
    "batch_mean": Range(5.0, 50.0, "mean accounts per creation batch", "Thomas et al., USENIX Security 2013"),
    "batch_spacing_s": Range(60.0, 1_800.0, "mean seconds between two registrations of a batch", "Thomas et al. 2013"),
    "batch_in_window_share": Range(0.05, 0.3, "share of batches registered during the window"),
    "storage_years": Range(
        1.5, 5.0, "mean years a batch is stored (aged) before the window", "Thomas et al. 2013: aged accounts sell higher"
    ),
    "namelike_batch_share": Range(
        0.3, 0.6, "share of batches whose operator picks name-like handles", "Cresci et al., WWW 2017 (social spambots)"
    ),
    "zombie_default_photo": Range(0.35, 0.8, "share of fresh zombies with the default photo", "Cresci et al. 2015"),
    "zombie_no_bio": Range(0.5, 0.9, "share of fresh zombies with no bio", "Cresci et al. 2015"),
    "zombie_no_display_name": Range(0.05, 0.3, "share of fresh zombies with no display name"),
    "hijacked_verified_share": Range(0.003, 0.02, "share of aged (bought or hijacked) zombies that kept a verified badge"),
    # --- like farms
    "bursty_minutes_low": Range(3.0, 10.0, "shortest delivery of a bursty farm, minutes", "De Cristofaro et al., IMC 2014"),
    "bursty_minutes_high": Range(45.0, 180.0, "longest delivery of a bursty farm, minutes", "De Cristofaro et al. 2014"),
    "stealthy_days_low": Range(1.5, 3.0, "shortest delivery of a stealthy farm, days", "Ikram et al., ACM TOPS 2017"),
    "stealthy_days_high": Range(7.0, 14.0, "longest delivery of a stealthy farm, days", "Ikram et al. 2017"),
    "adaptive_days_low": Range(10.0, 15.0, "shortest delivery of an adaptive farm, days"),
    "adaptive_days_high": Range(20.0, 40.0, "longest delivery of an adaptive farm, days"),
    "campaign_post_share": Range(0.2, 0.6, "share of bought likes that go to posts rather than pages"),
    "jitter_s": Range(10.0, 600.0, "standard deviation of a farm like's time around its schedule, seconds"),
    "participation_sigma": Range(0.5, 1.2, "log-normal sigma of how much work each farm member takes (heavy tail)"),
    "campaign_scale": Range(0.7, 1.4, "multiplies the preset's campaigns per farm (log-normal across farms, sigma 0.6)"),
    "camouflage_pop_power": Range(1.0, 2.0, "how strongly camouflage likes favour popular pages (weight = popularity^power)"),
}


@dataclass(frozen=True)
class WorldStyle:
    """One draw of every setting in `RANGES` (see there for what each means)."""

    activity_sigma: float
    activity_scale: float
    lurker_share: float
    dormant_share: float
    returning_share: float
    session_mean: float
    session_gap_s: float
    diurnal_peak_shift_h: float
    diurnal_depth: float
    followback_share: float
    onboarding_follows: float
    friend_share: float
    community_launch_years: float
    signup_wave_share: float
    new_user_share: float
    live_series_per_10k: float
    live_fans_mean: float
    live_attend: float
    live_delay_min: float
    hunter_share: float
    hunter_likes: float
    empty_profile_share: float
    digit_handle_share: float
    paid_verified_share: float
    zombie_activity_sigma: float
    follow_spam_mean: float
    content_spam_mean: float
    zombie_alive_share: float
    zombie_trickle_likes: float
    farm_background_likes: float
    role_follow_spam: float
    role_content_spam: float
    role_dormant: float
    batch_mean: float
    batch_spacing_s: float
    batch_in_window_share: float
    storage_years: float
    namelike_batch_share: float
    zombie_default_photo: float
    zombie_no_bio: float
    zombie_no_display_name: float
    hijacked_verified_share: float
    bursty_minutes_low: float
    bursty_minutes_high: float
    stealthy_days_low: float
    stealthy_days_high: float
    adaptive_days_low: float
    adaptive_days_high: float
    campaign_post_share: float
    jitter_s: float
    participation_sigma: float
    campaign_scale: float
    camouflage_pop_power: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def draw_style(seed: int, overrides: dict[str, Any] | None = None) -> WorldStyle:
    """Every setting drawn uniformly from its range with a generator of its own (seeded by `seed`);
    `overrides` pin settings by name (and must lie in their ranges' spirit, not necessarily inside them)."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(RANGES))
    if unknown:
        raise ZombieScanError(f"simulate.style: unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(RANGES)}")
    values: dict[str, float] = {}
    for name, r in RANGES.items():
        # each setting from a stream of its own (seed, name): adding or pinning one changes no other
        rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))
        values[name] = float(rng.uniform(r.low, r.high))
    for name, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ZombieScanError(f"simulate.style.{name} = {value!r}: expected a number")
        if value < 0:
            raise ZombieScanError(f"simulate.style.{name} = {value}: expected a number >= 0")
        values[name] = float(value)
    return WorldStyle(**values)


def ranges_markdown() -> str:
    """The table of docs/simulator.md#style: every setting, its range, what it means, its source."""
    lines = ["| setting | range | what it sets | source |", "|---|---|---|---|"]
    for name, r in RANGES.items():
        lines.append(f"| `{name}` | {r.low:g} – {r.high:g} | {r.what} | {r.source or 'judgement (see the text)'} |")
    return "\n".join(lines) + "\n"
