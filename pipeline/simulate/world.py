"""A seeded, vectorised simulator of a social platform with zombies and like farms.

The world is built on integer indices with numpy (one row per account, page, post and action)
and only turned into contract tables (random string ids, shuffled rows, UTC timestamps) at the
end. docs/simulator.md explains every behaviour, its rate in each class and the literature
behind it.

No trait belongs to one class: zombies post a little, comment spam and reshare; some genuine
users never post, keep empty profiles, sign up in waves, sleep for years, or like an event's post
in the same minutes as hundreds of other fans. Activity is heavy-tailed in every class (no class
has a hard ceiling). How people and operators behave is drawn per seed (`style.py`).

Object indices share one space: accounts are [0, n), pages [n, n + P), posts after that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.simulate import vocab
from pipeline.simulate.config import SimConfig
from pipeline.simulate.style import WorldStyle, draw_style

DAY = 86_400
HOUR = 3_600

# Integer codes used while building; mapped to contract strings at the end.
KIND_NAMES = ("like", "follow", "share", "comment", "post")
LIKE, FOLLOW, SHARE, COMMENT, POST = range(5)
TTYPE_NAMES = ("post", "page", "account")
T_POST, T_PAGE, T_ACCOUNT = range(3)
STYLE_NAMES = ("bursty", "stealthy", "heavy", "adaptive")
BURSTY, STEALTHY, HEAVY, ADAPTIVE = range(4)
# What a zombie does besides (or instead of) farm work.
ROLE_NAMES = ("farm", "follow_spam", "content_spam", "dormant")
ROLE_FARM, ROLE_FOLLOW_SPAM, ROLE_CONTENT_SPAM, ROLE_DORMANT = range(4)

_FLAT = np.full(24, 1.0 / 24)


@dataclass
class Actions:
    """A batch of actions as parallel arrays (the engagements table before ids are assigned)."""

    actor: np.ndarray  # int64 account index
    target: np.ndarray  # int64 object index
    ttype: np.ndarray  # int8 target type code
    kind: np.ndarray  # int8 kind code
    ts: np.ndarray  # int64 seconds since the epoch, UTC

    @staticmethod
    def make(actor: np.ndarray, target: np.ndarray, ttype: int | np.ndarray, kind: int | np.ndarray, ts: np.ndarray) -> Actions:
        n = len(actor)
        return Actions(
            np.asarray(actor).astype(np.int64),
            np.asarray(target).astype(np.int64),
            np.broadcast_to(np.asarray(ttype, dtype=np.int8), (n,)).copy(),
            np.broadcast_to(np.asarray(kind, dtype=np.int8), (n,)).copy(),
            np.asarray(ts).astype(np.int64),
        )

    @staticmethod
    def empty() -> Actions:
        z = np.zeros(0, np.int64)
        return Actions.make(z, z, T_PAGE, LIKE, z)

    def where(self, keep: np.ndarray) -> Actions:
        return Actions(self.actor[keep], self.target[keep], self.ttype[keep], self.kind[keep], self.ts[keep])

    @staticmethod
    def concat(parts: list[Actions]) -> Actions:
        parts = [p for p in parts if len(p.actor)] or [Actions.empty()]
        return Actions(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("actor", "target", "ttype", "kind", "ts")))


class Picker:
    """Draw items with probability proportional to weight, within a group or from all groups.

    Items are sorted by group once; each draw is a binary search in the cumulative weights,
    so a million draws cost a million log-time look-ups and no Python loop.
    """

    def __init__(self, items: np.ndarray, groups: np.ndarray, weights: np.ndarray, n_groups: int) -> None:
        order = np.lexsort((items, groups))
        self.items = items[order]
        g = groups[order]
        self.cum = np.concatenate([[0.0], np.cumsum(weights[order], dtype=np.float64)])
        self.start = np.searchsorted(g, np.arange(n_groups), "left")
        self.stop = np.searchsorted(g, np.arange(n_groups), "right")

    def pick(self, rng: np.random.Generator, groups: np.ndarray, homophily: float) -> np.ndarray:
        n = len(groups)
        if len(self.items) == 0:
            return np.zeros(n, dtype=np.int64)
        local = (rng.random(n) < homophily) & (self.stop[groups] > self.start[groups])
        lo = np.where(local, self.cum[self.start[groups]], 0.0)
        hi = np.where(local, self.cum[self.stop[groups]], self.cum[-1])
        u = lo + rng.random(n) * (hi - lo)
        idx = np.clip(np.searchsorted(self.cum, u, side="right") - 1, 0, len(self.items) - 1)
        return self.items[idx]


def platform_curve(style: WorldStyle | None = None) -> np.ndarray:
    """Share of a day's activity per local hour: the reference curve, shifted and flattened by the style."""
    base = np.asarray(vocab.DIURNAL, dtype=np.float64)
    base /= base.sum()
    if style is None:
        return base
    shifted = np.roll(base, round(style.diurnal_peak_shift_h))
    curve = style.diurnal_depth * shifted + (1.0 - style.diurnal_depth) * _FLAT
    return curve / curve.sum()


def diurnal_times(
    rng: np.random.Generator,
    lo: np.ndarray,
    hi: np.ndarray,
    tz_hours: np.ndarray,
    shift_hours: np.ndarray | float = 0.0,
    curve: np.ndarray | None = None,
) -> np.ndarray:
    """Times in [lo, hi] on a random day, at an hour drawn from the local daily `curve`."""
    n = len(lo)
    p = platform_curve() if curve is None else curve
    lo = lo.astype(np.float64)
    hi = np.maximum(hi.astype(np.float64), lo)
    t = lo + rng.random(n) * (hi - lo)
    tz = tz_hours * HOUR
    day = np.floor((t + tz) / DAY)
    hour = rng.choice(24, size=n, p=p) + rng.random(n) + shift_hours
    ts = day * DAY + hour * HOUR - tz
    ts = np.where(ts < lo, ts + DAY, ts)
    ts = np.where(ts > hi, ts - DAY, ts)
    return np.clip(ts, lo, hi).astype(np.int64)


def _pareto(rng: np.random.Generator, alpha: float, n: int) -> np.ndarray:
    return rng.pareto(alpha, n) + 1.0


def _lognormal_mean1(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    """Log-normal draws scaled to mean 1: a heavy tail, no ceiling."""
    return rng.lognormal(-0.5 * sigma**2, sigma, n)


@dataclass
class World:
    """The simulated platform as integer-indexed arrays plus ground truth."""

    config: SimConfig
    style: WorldStyle
    n_accounts: int
    n_pages: int
    created: np.ndarray  # account created_at, seconds
    community: np.ndarray
    comm_region: np.ndarray  # region index of each community (vocab.REGIONS)
    tz: np.ndarray  # account UTC offset, hours
    popularity: np.ndarray
    activity: np.ndarray
    is_zombie: np.ndarray
    is_aged: np.ndarray
    batch: np.ndarray  # zombie creation batch, -1 for others
    farm: np.ndarray  # farm index, -1 for non-members
    farm_style: np.ndarray  # style of each farm (STYLE_NAMES)
    role: np.ndarray  # zombie role (ROLE_NAMES), -1 for genuine
    dormant: np.ndarray  # genuine accounts with no action in the window
    empty_profile: np.ndarray  # genuine accounts that never filled in their profile
    page_owner: np.ndarray
    page_created: np.ndarray
    post_owner: np.ndarray
    post_created: np.ndarray
    actions: Actions
    campaigns: pl.DataFrame  # integer-indexed campaigns


def build_world(cfg: SimConfig, style: WorldStyle | None = None) -> World:
    """Generate the whole world for `cfg` (and its style, drawn from the seed unless given). Deterministic."""
    style = style or draw_style(cfg.seed)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(12)]
    r_acc, r_zmb, r_pages, r_gen, r_farm, r_zact, r_follow, r_live, r_wave, r_hunt, r_idle, _ = streams
    curve = platform_curve(style)
    end = int(cfg.end.timestamp())
    ws = end - cfg.window_days * DAY
    n = cfg.accounts
    n_z = round(cfg.zombie_share * n)
    n_g = n - n_z
    is_zombie = np.zeros(n, dtype=bool)
    is_zombie[n_g:] = True

    # --- communities: Zipf-like sizes, each in a region (time zone, language, places).
    n_c = cfg.communities
    comm_weight = 1.0 / np.arange(1, n_c + 1) ** 0.8
    comm_region = r_acc.integers(0, len(vocab.REGIONS), n_c)
    region_tz = np.array([r[1] for r in vocab.REGIONS])
    community = r_acc.choice(n_c, size=n, p=comm_weight / comm_weight.sum())

    # --- genuine accounts: ages over years, heavy-tailed activity and popularity.
    age = np.clip(r_acc.gamma(2.0, 2.2, n) * 365.0, 3.0, 17 * 365.0)
    # A community (a region, a language) joined the platform at some point: nobody in it is older.
    launched = np.clip(r_acc.exponential(style.community_launch_years * 365.0, n_c), 180.0, 17 * 365.0)
    # Someone "older" than their community joined at some point of its life since (uniformly): a
    # clip to the launch date would pile thousands of accounts into its first weeks.
    launch = launched[community]
    age = np.where(age > launch, 3.0 + r_acc.random(n) * (launch - 3.0), age)
    age = np.where(r_acc.random(n) < style.new_user_share, r_acc.uniform(3.0, 180.0, n), age)  # the platform grows
    created = (end - age * DAY).astype(np.int64)
    activity = _lognormal_mean1(r_acc, style.activity_sigma, n)
    popularity = _pareto(r_acc, 1.3, n) * activity**0.4
    night_owl = r_acc.normal(0.0, 1.5, n)
    # Sign-up waves: a TV ad, a school, an event brings many people of one community in hours.
    _signup_waves(r_wave, created, community, n_g, style.signup_wave_share, ws, end)
    tz = region_tz[comm_region[community]]
    age_days = (end - created) / DAY
    # Dormant for years (older accounts more often) or back late in the window after years away.
    g_idx = np.arange(n_g)
    old = np.clip(age_days[:n_g] / (age_days[:n_g].mean()), 0.2, 3.0)
    u = r_acc.random(n_g)
    dormant = np.zeros(n, dtype=bool)
    dormant[:n_g] = u < style.dormant_share * old
    returning = np.zeros(n, dtype=bool)
    returning[:n_g] = ~dormant[:n_g] & (r_acc.random(n_g) < style.returning_share * old) & (age_days[:n_g] > 400)
    empty_profile = np.zeros(n, dtype=bool)
    empty_profile[:n_g] = r_acc.random(n_g) < style.empty_profile_share

    # --- zombies: created in batches, a share aged to look genuine.
    z_idx = np.arange(n_g, n)
    is_aged = np.zeros(n, dtype=bool)
    is_aged[z_idx[r_zmb.random(n_z) < cfg.aged_zombie_share]] = True
    batch = np.full(n, -1, dtype=np.int64)
    fresh = z_idx[~is_aged[z_idx]]
    mean_batch = max(3.0, min(style.batch_mean, n_z / 8.0))
    sizes = np.maximum(2, r_zmb.poisson(mean_batch, size=len(fresh) // 2 + 1))
    batch_of = np.repeat(np.arange(len(sizes)), sizes)[: len(fresh)]
    if len(fresh) > 1 and (batch_of == batch_of[-1]).sum() == 1:
        batch_of[-1] = batch_of[-2]  # the cut-off last batch joins the one before: a batch has 2+ accounts
    batch[fresh] = batch_of
    n_batches = int(batch_of.max()) + 1 if len(fresh) else 0
    # Batch start: registered, then stored (aged) for months or years before use; some during
    # the window's first half.
    in_window = r_zmb.random(n_batches) < style.batch_in_window_share
    stored = np.minimum(r_zmb.exponential(style.storage_years * 365.0, n_batches), 12 * 365.0)
    batch_t0 = np.where(
        in_window,
        ws + r_zmb.random(n_batches) * cfg.window_days * DAY / 2,
        ws - stored * DAY,
    ).astype(np.int64)
    # Within a batch accounts appear minutes apart (one operator, one script), at an operator's pace.
    pace = style.batch_spacing_s * r_zmb.lognormal(0.0, 0.5, max(n_batches, 1))
    gaps = r_zmb.exponential(1.0, len(fresh)) * pace[batch_of]
    first_of_batch = np.r_[True, batch_of[1:] != batch_of[:-1]] if len(fresh) else np.zeros(0, bool)
    offsets = np.cumsum(gaps) - np.maximum.accumulate(np.where(first_of_batch, np.cumsum(gaps) - gaps, 0.0))
    created[fresh] = batch_t0[batch_of] + offsets.astype(np.int64)
    batch_comm = r_zmb.integers(0, n_c, max(n_batches, 1))
    community[fresh] = batch_comm[batch_of]
    tz[fresh] = region_tz[comm_region[community[fresh]]]
    activity[z_idx] = 0.0
    popularity[fresh] *= 0.03
    popularity[is_aged] *= 0.4
    intensity = np.zeros(n)
    intensity[z_idx] = _lognormal_mean1(r_zmb, style.zombie_activity_sigma, n_z)

    # --- farms: members are zombies (batches stay together) plus real-looking accounts.
    farm, farm_style, f_sizes = _farm_members(cfg, r_farm, n, n_g, z_idx, is_aged, batch, n_batches)
    farm_tz = region_tz[r_farm.integers(0, len(vocab.REGIONS), cfg.farm_count)]
    # Some farm accounts rest through the window: on the books, not used (a hijacked one keeps its own life).
    idle = (farm >= 0) & (r_idle.random(n) < 0.05)

    role = np.full(n, -1, dtype=np.int64)
    weights = np.array([style.role_follow_spam, style.role_content_spam, style.role_dormant])
    role[z_idx] = 1 + r_zmb.choice(3, size=n_z, p=weights / weights.sum())
    role[z_idx[farm[z_idx] >= 0]] = ROLE_FARM

    # --- pages: owned by popular genuine accounts, created before the window mostly.
    n_p = max(20, int(cfg.pages_per_account * n))
    owner_picker = Picker(g_idx, community[:n_g], popularity[:n_g], n_c)
    page_owner = owner_picker.pick(r_pages, r_pages.integers(0, n_c, n_p), 1.0)
    page_comm = community[page_owner]
    page_created = (created[page_owner] + r_pages.random(n_p) * np.maximum(ws - created[page_owner], HOUR)).astype(np.int64)
    page_created = np.minimum(page_created, end - HOUR)
    page_pop = _pareto(r_pages, 1.1, n_p) * (popularity[page_owner] ** 0.3)
    page_ids = n + np.arange(n_p)
    page_picker = Picker(page_ids, page_comm, page_pop, n_c)
    popular_pages = Picker(page_ids, np.zeros(n_p, dtype=np.int64), page_pop**style.camouflage_pop_power, 1)

    active = ~dormant
    lo_acc = np.maximum(created, ws) + 60
    lo_acc[returning] = np.maximum(lo_acc[returning], end - (r_acc.uniform(0.1, 0.35, int(returning.sum())) * cfg.window_days * DAY))
    genuine, posts = _genuine_actions(
        cfg, style, curve, r_gen, n_g, n_p, lo_acc, active, community, tz, activity, popularity, night_owl, page_picker, end
    )
    post_owner, post_created, post_pop = posts
    live, live_posts = _live_events(
        cfg, style, curve, r_live, n_g, n + n_p + len(post_owner), lo_acc, active, community, tz, activity, popularity, ws, end
    )
    post_owner = np.r_[post_owner, live_posts[0]]
    post_created = np.r_[post_created, live_posts[1]]
    post_pop = np.r_[post_pop, np.zeros(len(live_posts[0]))]
    hunters = _giveaway_hunters(style, curve, r_hunt, n_g, n, lo_acc, active, tz, activity, night_owl, page_pop, page_created, ws, end)
    farm_actions, campaigns = _farm_actions(
        cfg,
        style,
        r_farm,
        n,
        n_p,
        lo_acc,
        np.where(idle, -1, farm),
        farm_style,
        farm_tz,
        tz,
        f_sizes,
        page_pop,
        post_created,
        page_created,
        popular_pages,
        curve,
        ws,
        end,
    )
    zombie_actions, zombie_posts = _zombie_actions(
        cfg, style, r_zact, n_g, created, lo_acc, community, tz, farm_tz, farm, role, batch, intensity, popularity,
        page_picker, popular_pages, post_created, post_pop, n + n_p, curve, end,
    )  # fmt: skip
    post_owner = np.r_[post_owner, zombie_posts[0]]
    post_created = np.r_[post_created, zombie_posts[1]]
    actions = Actions.concat([genuine, live, hunters, farm_actions, zombie_actions])
    actions = Actions.concat([actions, _follow_backs(r_follow, actions, n_g, style, popularity, cfg.reciprocity)])
    # Nobody acts before their account exists or after the end of the window; reactions come
    # after the post (a live event's post exists from its start).
    obj_created = np.r_[created, page_created, post_created]
    keep = (actions.ts >= created[actions.actor]) & (actions.ts <= end) & (actions.actor != actions.target)
    keep &= actions.ts >= obj_created[actions.target]
    keep &= ~(idle & is_zombie)[actions.actor]  # a resting farm zombie does nothing at all
    actions = actions.where(keep)
    return World(
        config=cfg,
        style=style,
        n_accounts=n,
        n_pages=n_p,
        created=created,
        community=community,
        comm_region=comm_region,
        tz=tz,
        popularity=popularity,
        activity=activity,
        is_zombie=is_zombie,
        is_aged=is_aged,
        batch=batch,
        farm=farm,
        farm_style=farm_style,
        role=role,
        dormant=dormant,
        empty_profile=empty_profile,
        page_owner=page_owner,
        page_created=page_created,
        post_owner=post_owner,
        post_created=post_created,
        actions=actions,
        campaigns=campaigns.with_columns(style=pl.Series(np.array(STYLE_NAMES)[farm_style[campaigns["farm"].to_numpy()]], dtype=pl.String)),
    )


def _signup_waves(rng: np.random.Generator, created: np.ndarray, community: np.ndarray, n_g: int, share: float, ws: int, end: int) -> None:
    """Move a share of genuine accounts into sign-up waves: a community's people joining within hours (in place)."""
    n_wave = int(share * n_g)
    if n_wave < 10:
        return
    who = rng.choice(n_g, size=n_wave, replace=False)
    sizes = np.maximum(5, rng.poisson(60, n_wave // 20 + 1))
    wave_of = np.repeat(np.arange(len(sizes)), sizes)[:n_wave]
    n_waves = int(wave_of.max()) + 1
    t0 = (end - rng.gamma(1.5, 1.5, n_waves) * 365 * DAY).astype(np.int64)
    t0 = np.where(rng.random(n_waves) < 0.1, ws + (rng.random(n_waves) * (end - ws - DAY)).astype(np.int64), t0)
    created[who] = np.maximum(t0[wave_of] + (rng.exponential(3 * HOUR, n_wave)).astype(np.int64), end - 17 * 365 * DAY)
    created[who] = np.minimum(created[who], end - 3 * DAY)
    community[who] = rng.integers(0, community.max() + 1, n_waves)[wave_of]


def _farm_members(
    cfg: SimConfig, rng: np.random.Generator, n: int, n_g: int, z_idx: np.ndarray, is_aged: np.ndarray, batch: np.ndarray, n_batches: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Farm of every account (-1: none), style of every farm, farm sizes."""
    n_z = len(z_idx)
    farm = np.full(n, -1, dtype=np.int64)
    f_sizes = np.maximum(6, np.round(rng.lognormal(np.log(cfg.farm_size), 0.5, cfg.farm_count))).astype(np.int64)
    n_real = np.round(f_sizes * cfg.farm_real_share).astype(np.int64)
    n_zm = f_sizes - n_real
    max_farm_zombies = int(0.6 * n_z)
    if n_zm.sum() > max_farm_zombies:
        n_zm = np.floor(n_zm * max_farm_zombies / n_zm.sum()).astype(np.int64)
    # Order zombies by batch with random tie-breaks, aged ones scattered: farms take runs.
    order_key = np.where(batch[z_idx] >= 0, batch[z_idx].astype(np.float64), rng.random(n_z) * max(n_batches, 1))
    z_order = z_idx[np.lexsort((rng.random(n_z), order_key))]
    offset = rng.integers(0, max(1, n_z - n_zm.sum()))
    z_members = z_order[offset : offset + n_zm.sum()]
    farm[z_members] = np.repeat(np.arange(cfg.farm_count), n_zm)
    # One batch, one operator, one farm: a run boundary that cuts a batch moves the whole batch
    # to the farm of its first member (so farms can be kept apart when splitting data).
    fresh_members = z_members[batch[z_members] >= 0]
    if len(fresh_members):
        batch_ids, first = np.unique(batch[fresh_members], return_index=True)
        lookup = np.full(int(batch_ids.max()) + 1, -1, dtype=np.int64)
        lookup[batch_ids] = farm[fresh_members[first]]
        farm[fresh_members] = lookup[batch[fresh_members]]
    genuine_pool = rng.permutation(n_g)[: n_real.sum()]
    farm[genuine_pool] = np.repeat(np.arange(cfg.farm_count), n_real)[: len(genuine_pool)]
    bursty = max(0.0, 1.0 - cfg.stealth_share - cfg.heavy_share - cfg.adaptive_share)
    p = np.array([bursty, cfg.stealth_share, cfg.heavy_share, cfg.adaptive_share])
    farm_style = rng.permutation(np.repeat(np.arange(4), _counts(p / p.sum(), cfg.farm_count)))
    return farm, farm_style, f_sizes


def _counts(shares: np.ndarray, n: int) -> np.ndarray:
    """`n` split by `shares` as closely as whole numbers allow (largest remainder): a knob of 0.4
    is 40% of the farms, not a draw around it (ten farms drawn at 0.6 and at 0.8 stealthy once
    came out the same world)."""
    exact = shares * n
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]] += 1
    return counts


def _sessions(rng: np.random.Generator, actor: np.ndarray, mean_len: np.ndarray) -> np.ndarray:
    """Session number of each action (actions of one actor, in order): geometric lengths with mean `mean_len` (per action)."""
    if len(actor) == 0:
        return np.zeros(0, dtype=np.int64)
    new = rng.random(len(actor)) < 1.0 / np.maximum(mean_len, 1.0)
    new[0] = True
    new[1:] |= actor[1:] != actor[:-1]
    return np.cumsum(new) - 1


def _genuine_actions(
    cfg: SimConfig,
    style: WorldStyle,
    curve: np.ndarray,
    rng: np.random.Generator,
    n_g: int,
    n_p: int,
    lo_acc: np.ndarray,
    active: np.ndarray,
    community: np.ndarray,
    tz: np.ndarray,
    activity: np.ndarray,
    popularity: np.ndarray,
    night_owl: np.ndarray,
    page_picker: Picker,
    end: int,
) -> tuple[Actions, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Posts, likes, comments, shares and follows of genuine users, in sessions, with diurnal rhythms."""
    n = len(lo_acc)
    alive = np.clip((end - lo_acc[:n_g]) / (cfg.window_days * DAY), 0.0, 1.0)
    rate = activity[:n_g] * cfg.actions_per_account * style.activity_scale * alive * active[:n_g]
    counts = rng.poisson(rate)
    # kinds: like page, like post, comment, share, follow, post. The platform has its mix, and each
    # user their own around it: some mostly like pages, some mostly comment, some mostly follow.
    mix = rng.dirichlet(np.array([0.20, 0.38, 0.08, 0.05, 0.12, 0.17]) * 60)
    own_mix = rng.dirichlet(mix * 4.0, size=n_g)
    per_kind = rng.multinomial(counts, own_mix)
    actor = np.repeat(np.arange(n_g), counts)
    what = np.repeat(np.tile(np.arange(6), n_g), per_kind.ravel())
    what = what[np.lexsort((rng.random(len(what)), actor))]  # actors stay in order, kinds mixed within each
    # Most users rarely post (the 90-9-1 rule): lurkers turn almost every post into a like.
    lurker = rng.random(n_g) < style.lurker_share
    what = np.where((what == 5) & lurker[actor] & (rng.random(len(actor)) < 0.95), 1, what)
    # How much of a user's reacting goes to their own circle rather than to what is popular.
    circle_bias = rng.beta(3.0 * style.friend_share, 3.0 * (1.0 - style.friend_share), n_g)
    # Sessions: a user opens the app at a local hour and does a few things minutes apart (some
    # users binge: session lengths are heavy-tailed across users).
    session_len = style.session_mean * _lognormal_mean1(rng, 1.0, n_g) * activity[:n_g] ** 0.25
    session = _sessions(rng, actor, session_len[actor])
    s_actor = actor[np.r_[0, np.flatnonzero(np.diff(session)) + 1]] if len(actor) else actor
    s_start = diurnal_times(rng, lo_acc[s_actor], np.full(len(s_actor), end), tz[s_actor], night_owl[s_actor], curve)
    step = rng.exponential(style.session_gap_s, len(actor))
    first = np.r_[True, session[1:] != session[:-1]] if len(actor) else np.zeros(0, bool)
    step[first] = 0.0
    csum = np.cumsum(step)
    within = csum - np.maximum.accumulate(np.where(first, csum, 0.0))
    session_ts = np.minimum(s_start[session] + within.astype(np.int64), end)

    # posts first: they are the targets of likes, comments and shares.
    authors = actor[what == 5]
    post_ts = session_ts[what == 5]
    n_posts = len(authors)
    post_ids = n + n_p + np.arange(n_posts)
    post_pop = popularity[authors] * rng.lognormal(0.0, 1.3, n_posts)  # a few posts go far
    parts = [Actions.make(authors, post_ids, T_POST, POST, post_ts)]

    sel = what == 0
    a = actor[sel]
    parts.append(Actions.make(a, page_picker.pick(rng, community[a], cfg.homophily), T_PAGE, LIKE, session_ts[sel]))

    if n_posts:
        post_picker = Picker(np.arange(n_posts), community[authors], post_pop, cfg.communities)
        # the circle: posts of one's own community, however few others see them
        circle = Picker(np.arange(n_posts), community[authors], np.ones(n_posts), cfg.communities)
        for code, kind in ((1, LIKE), (2, COMMENT), (3, SHARE)):
            a = actor[what == code]
            p = np.where(
                rng.random(len(a)) < circle_bias[a],
                circle.pick(rng, community[a], 1.0),
                post_picker.pick(rng, community[a], cfg.homophily),
            )
            # React a few hours to days after the post, at an hour the reader is awake.
            delay = rng.exponential(1.2 * DAY, len(a))
            ts = diurnal_times(rng, post_ts[p] + delay, post_ts[p] + delay + DAY, tz[a], night_owl[a], curve)
            ts = np.where(ts <= post_ts[p], ts + DAY, ts)
            parts.append(Actions.make(a, post_ids[p], T_POST, kind, ts))

    sel = what == 4
    a = actor[sel]
    acct_picker = Picker(np.arange(n), community, popularity, cfg.communities)
    followee = acct_picker.pick(rng, community[a], cfg.homophily)
    f_ts = session_ts[sel]
    parts.append(Actions.make(a, followee, T_ACCOUNT, FOLLOW, f_ts))
    # Reciprocal follows: likelier toward friends than toward celebrities.
    back = (followee < n_g) & (rng.random(len(a)) < cfg.reciprocity / np.sqrt(np.maximum(popularity[a], 1.0)))
    back_ts = f_ts[back] + rng.exponential(10 * HOUR, back.sum()).astype(np.int64)
    parts.append(Actions.make(followee[back], a[back], T_ACCOUNT, FOLLOW, back_ts))
    # Sign-up (or come-back) spree: the platform suggests popular accounts and a new user follows
    # a screenful of them in a minute or two, then behaves like anyone else.
    ws = end - cfg.window_days * DAY
    joiners = np.flatnonzero((lo_acc[:n_g] > ws + 60) & active[:n_g])
    k = rng.poisson(style.onboarding_follows * _lognormal_mean1(rng, 0.6, len(joiners)))
    a = np.repeat(joiners, k)
    stars = Picker(np.arange(n_g), np.zeros(n_g, np.int64), popularity[:n_g] ** 1.5, 1)
    step = rng.exponential(15.0, len(a))
    first = np.r_[True, a[1:] != a[:-1]] if len(a) else np.zeros(0, bool)
    csum = np.cumsum(step)
    within = csum - np.maximum.accumulate(np.where(first, csum - step, 0.0))
    parts.append(Actions.make(a, stars.pick(rng, np.zeros(len(a), np.int64), 0.0), T_ACCOUNT, FOLLOW, lo_acc[a] + within.astype(np.int64)))
    return Actions.concat(parts), (authors, post_ts, post_pop)


def _live_events(
    cfg: SimConfig,
    style: WorldStyle,
    curve: np.ndarray,
    rng: np.random.Generator,
    n_g: int,
    first_post_id: int,
    lo_acc: np.ndarray,
    active: np.ndarray,
    community: np.ndarray,
    tz: np.ndarray,
    activity: np.ndarray,
    popularity: np.ndarray,
    ws: int,
    end: int,
) -> tuple[Actions, tuple[np.ndarray, np.ndarray]]:
    """Recurring live events (a team's matches, a weekly show): fans like each event's post within minutes.

    Genuine lockstep: the same fans, the same posts, the same hour, week after week, which is what
    makes coordination detectors raise false alarms on real platforms (SynchroTrap's authors
    whitelisted such events by hand).
    """
    n_series = round(style.live_series_per_10k * cfg.accounts / 10_000)
    if n_series == 0:
        return Actions.empty(), (np.zeros(0, np.int64), np.zeros(0, np.int64))
    pool = np.flatnonzero(active[:n_g])
    fans_picker = Picker(pool, community[pool], activity[pool] + 0.05, cfg.communities)
    hosts = Picker(np.arange(n_g), community[:n_g], popularity[:n_g] ** 1.5, cfg.communities)
    series_comm = rng.choice(community[pool], size=n_series)
    host = hosts.pick(rng, series_comm, 1.0)
    n_fans = np.maximum(3, rng.poisson(style.live_fans_mean * rng.lognormal(0.0, 1.4, n_series)))
    n_events = 1 + rng.poisson(cfg.window_days / 10.0, n_series)
    likes, comments = [], []
    posts_owner, posts_ts = [], []
    next_id = first_post_id
    for s in range(n_series):
        fans = np.unique(fans_picker.pick(rng, np.full(n_fans[s], series_comm[s]), 0.9))
        # events at the same local evening hour, on different days of the window
        days = np.sort(rng.choice(max(cfg.window_days - 1, 1), size=min(n_events[s], max(cfg.window_days - 1, 1)), replace=False))
        hour = 17 + rng.integers(0, 5)
        starts = ws + days * DAY + (hour - tz[host[s]]) * HOUR
        starts = starts[(starts > ws) & (starts < end - HOUR)]
        for t0 in starts.astype(np.int64):
            come = fans[(rng.random(len(fans)) < style.live_attend) & (lo_acc[fans] <= t0)]
            ts = t0 + rng.exponential(style.live_delay_min * 60.0, len(come)).astype(np.int64)
            likes.append(Actions.make(come, np.full(len(come), next_id), T_POST, LIKE, ts))
            talk = come[rng.random(len(come)) < 0.15]
            comments.append(Actions.make(talk, np.full(len(talk), next_id), T_POST, COMMENT, t0 + rng.exponential(1800.0, len(talk))))
            posts_owner.append(host[s])
            posts_ts.append(t0)
            next_id += 1
    owners = np.asarray(posts_owner, dtype=np.int64)
    created_at = np.asarray(posts_ts, dtype=np.int64)
    post_rows = Actions.make(owners, first_post_id + np.arange(len(owners)), T_POST, POST, created_at)
    return Actions.concat([*likes, *comments, post_rows]), (owners, created_at)


def small_page_weights(page_pop: np.ndarray, page_created: np.ndarray, ws: int) -> np.ndarray:
    """Cumulative pick weights of small pages (weight 1 / popularity, pages older than the window):
    the pages that buy likes, and the small businesses that run giveaways."""
    w = np.where(page_created < ws, 1.0 / page_pop, 0.0)
    return np.cumsum(w / w.sum())


def _giveaway_hunters(
    style: WorldStyle,
    curve: np.ndarray,
    rng: np.random.Generator,
    n_g: int,
    n: int,
    lo_acc: np.ndarray,
    active: np.ndarray,
    tz: np.ndarray,
    activity: np.ndarray,
    night_owl: np.ndarray,
    page_pop: np.ndarray,
    page_created: np.ndarray,
    ws: int,
    end: int,
) -> Actions:
    """Genuine users who enter giveaways: they like many small pages (the same kind farms are paid
    for), several at a time, minutes apart. The like-farm task's honest confuser."""
    hunters = np.flatnonzero(active[:n_g] & (rng.random(n_g) < style.hunter_share))
    k = rng.poisson(style.hunter_likes * _lognormal_mean1(rng, 0.8, len(hunters)))
    a = np.repeat(hunters, k)
    cdf = small_page_weights(page_pop, page_created, ws)
    pages = np.minimum(np.searchsorted(cdf, rng.random(len(a)), side="right"), len(page_pop) - 1)
    session = _sessions(rng, a, np.full(len(a), 12.0))
    starts = np.r_[0, np.flatnonzero(np.diff(session)) + 1] if len(a) else np.zeros(0, np.int64)
    s_start = diurnal_times(rng, lo_acc[a[starts]], np.full(len(starts), end), tz[a[starts]], night_owl[a[starts]], curve)
    step = rng.exponential(45.0, len(a))
    first = np.zeros(len(a), dtype=bool)
    first[starts] = True
    step[first] = 0.0
    csum = np.cumsum(step)
    within = csum - np.maximum.accumulate(np.where(first, csum, 0.0))
    ts = np.minimum(s_start[session] + within.astype(np.int64), end)
    return Actions.make(a, n + pages, T_PAGE, LIKE, ts)


def _farm_actions(
    cfg: SimConfig,
    style: WorldStyle,
    rng: np.random.Generator,
    n: int,
    n_p: int,
    lo_acc: np.ndarray,
    farm: np.ndarray,
    farm_style: np.ndarray,
    farm_tz: np.ndarray,
    tz: np.ndarray,
    f_sizes: np.ndarray,
    page_pop: np.ndarray,
    post_created: np.ndarray,
    page_created: np.ndarray,
    popular_pages: Picker,
    curve: np.ndarray,
    ws: int,
    end: int,
) -> tuple[Actions, pl.DataFrame]:
    """Campaigns bought from farms and the likes that deliver them (plus camouflage)."""
    members_sorted = np.argsort(farm, kind="stable")
    members_sorted = members_sorted[farm[members_sorted] >= 0]
    bounds = np.searchsorted(farm[members_sorted], np.arange(cfg.farm_count + 1))
    # How much work each member takes: a few do most of it (a heavy tail, no ceiling).
    diligence = _lognormal_mean1(rng, style.participation_sigma, n)
    # Customers are small pages and posts: pick targets with weight falling with popularity.
    small_page_cdf = small_page_weights(page_pop, page_created, ws)
    post_order = np.argsort(post_created, kind="stable")
    sorted_post_ts = post_created[post_order]

    rows: list[tuple[int, int, int, int, int, int, int]] = []
    likes: list[Actions] = []
    campaign = 0
    for f in range(cfg.farm_count):
        members = members_sorted[bounds[f] : bounds[f + 1]]
        if len(members) == 0:
            continue
        s = farm_style[f]
        weight = diligence[members] / diligence[members].sum()
        busy = cfg.campaigns_per_farm * style.campaign_scale * (3 if s == HEAVY else 1) * rng.lognormal(-0.18, 0.6)
        n_camp = max(1, rng.poisson(busy))
        for _ in range(n_camp):
            if s == BURSTY:
                dur = int(rng.uniform(style.bursty_minutes_low, style.bursty_minutes_high) * 60)
            elif s == STEALTHY:
                dur = int(rng.uniform(style.stealthy_days_low, style.stealthy_days_high) * DAY)
            elif s == ADAPTIVE:
                dur = int(rng.uniform(style.adaptive_days_low, style.adaptive_days_high) * DAY)
            else:
                dur = int(rng.uniform(6, 48) * HOUR)
            start = int(ws + rng.random() * max(end - ws - dur, HOUR))
            n_targets = int(rng.integers(5, 26)) if s == HEAVY else int(rng.integers(1, 4))
            for _ in range(n_targets):
                # likes are bought for a post just published (in the last two days, if any)
                k_post = np.searchsorted(sorted_post_ts, start - 600)
                k_recent = np.searchsorted(sorted_post_ts, start - 2 * DAY)
                if rng.random() < style.campaign_post_share and k_post > 0:
                    lo_k = k_recent if k_post > k_recent else 0
                    target, ttype = n + n_p + int(post_order[rng.integers(lo_k, k_post)]), T_POST
                else:
                    page = min(int(np.searchsorted(small_page_cdf, rng.random(), side="right")), n_p - 1)
                    target, ttype = n + page, T_PAGE
                bought = max(5, round(len(members) * rng.uniform(0.15, 0.9)))
                k = min(len(members), round(bought * rng.uniform(0.85, 1.0)))
                who = rng.choice(members, size=k, replace=False, p=weight)
                stop = min(start + dur, end)
                if s == ADAPTIVE:
                    # Knows the published windows: spread over weeks, at the hours real users of
                    # each member's own region are awake, so no hour or 3-day cell stands out.
                    ts = diurnal_times(rng, np.full(k, start), np.full(k, stop), tz[who], 0.0, curve)
                else:
                    if s == BURSTY:
                        frac = rng.beta(1.0, 3.0, k)
                    elif s == STEALTHY:
                        frac = rng.random(k)
                    else:
                        frac = rng.beta(1.5, 1.5, k)
                    ts = np.clip(start + frac * (stop - start) + rng.normal(0, style.jitter_s, k), start, stop).astype(np.int64)
                ts = np.maximum(ts, lo_acc[who])
                likes.append(Actions.make(who, np.full(k, target), ttype, LIKE, ts))
                rows.append((target, campaign, bought, f, start, stop, ttype))
            campaign += 1
    farm_likes = Actions.concat(likes)
    # Work for other customers (most of a farm account's likes, IMC 2014): small pages mostly, and
    # pages of every size, a heavy tail across accounts and no ceiling.
    workers = np.flatnonzero(farm >= 0)
    n_work = rng.poisson(style.farm_background_likes * diligence[workers] * rng.lognormal(-0.32, 0.8, len(workers)))
    worker = np.repeat(workers, n_work)
    small = np.minimum(np.searchsorted(small_page_cdf, rng.random(len(worker)), side="right"), n_p - 1)
    pages = n + np.where(rng.random(len(worker)) < 0.5, small, rng.integers(0, n_p, len(worker)))
    when = diurnal_times(rng, lo_acc[worker], np.full(len(worker), end), farm_tz[farm[worker]], 0.0, curve)
    # posts published in the day before the like (customers buy likes for new posts)
    newest = np.searchsorted(sorted_post_ts, when)
    day_old = np.searchsorted(sorted_post_ts, when - DAY)
    first = np.where(newest > day_old, day_old, 0)
    on_post = (rng.random(len(worker)) < style.campaign_post_share) & (newest > 0)
    post = post_order[np.minimum(first + (rng.random(len(worker)) * (newest - first)).astype(np.int64), len(post_order) - 1)]
    background = Actions.make(worker, np.where(on_post, n + n_p + post, pages), np.where(on_post, T_POST, T_PAGE), LIKE, when)
    # Stealthy and adaptive farms hide their work among likes of popular pages (camouflage).
    hides = np.isin(farm_style[np.maximum(farm[farm_likes.actor], 0)], [STEALTHY, ADAPTIVE])
    per_member = np.bincount(farm_likes.actor[hides], minlength=n)
    n_cam = rng.poisson(per_member * cfg.camouflage_rate / (1.0 - cfg.camouflage_rate))
    cam_actor = np.repeat(np.arange(n), n_cam)
    own_clock = farm_style[farm[cam_actor]] == ADAPTIVE
    cam_tz = np.where(own_clock, tz[cam_actor], farm_tz[farm[cam_actor]])
    cam_ts = diurnal_times(rng, lo_acc[cam_actor], np.full(len(cam_actor), end), cam_tz, 0.0, curve)
    camo = Actions.make(cam_actor, popular_pages.pick(rng, np.zeros(len(cam_actor), np.int64), 0.0), T_PAGE, LIKE, cam_ts)
    camp = pl.DataFrame(rows, schema=["target", "campaign", "bought_likes", "farm", "starts_at", "ends_at", "ttype"], orient="row").cast(
        pl.Int64
    )
    return Actions.concat([farm_likes, background, camo]), camp


def _zombie_actions(
    cfg: SimConfig,
    style: WorldStyle,
    rng: np.random.Generator,
    n_g: int,
    created: np.ndarray,
    lo_acc: np.ndarray,
    community: np.ndarray,
    tz: np.ndarray,
    farm_tz: np.ndarray,
    farm: np.ndarray,
    role: np.ndarray,
    batch: np.ndarray,
    intensity: np.ndarray,
    popularity: np.ndarray,
    page_picker: Picker,
    popular_pages: Picker,
    post_created: np.ndarray,
    post_pop: np.ndarray,
    first_post: int,
    curve: np.ndarray,
    end: int,
) -> tuple[Actions, tuple[np.ndarray, np.ndarray]]:
    """What zombies do besides farming: follow spam, content spam, a little life, batch-mate follows, likes.

    Also returns the zombies' own posts (owner, created), numbered after the `len(post_created)`
    posts that exist (ids from `first_post`).
    """
    n = len(created)
    z = np.arange(n_g, n)
    # Zombies act at their operator's hours (the farm's clock, or the claimed region's for others).
    clock = np.where(farm[z] >= 0, farm_tz[np.maximum(farm[z], 0)], tz[z])
    z_clock = np.zeros(n)
    z_clock[z] = clock
    parts = []
    # Follow spam: sold followers for "customer" accounts, plus celebrities to look normal.
    spam = z[role[z] == ROLE_FOLLOW_SPAM]
    k = rng.poisson(style.follow_spam_mean * intensity[spam])
    a = np.repeat(spam, k)
    n_cust = max(3, n // 2_000)
    customers = rng.choice(n_g, size=n_cust, replace=False)
    celeb = Picker(np.arange(n_g), np.zeros(n_g, np.int64), popularity[:n_g] ** 1.5, 1)
    buys = rng.random(len(a)) < 0.6
    target = np.where(buys, customers[rng.integers(0, n_cust, len(a))], celeb.pick(rng, np.zeros(len(a), np.int64), 0.0))
    # Each spammer works in a few sessions: follows arrive minutes apart within a session.
    n_sessions = 1 + rng.poisson(2.0, len(spam))
    spammer = np.repeat(np.arange(len(spam)), k)
    session = (rng.random(len(a)) * n_sessions[spammer]).astype(np.int64)
    session_at = rng.random((len(spam), int(n_sessions.max()) if len(spam) else 1))[spammer, session]
    ts = lo_acc[a] + session_at * (end - lo_acc[a]) + rng.exponential(600, len(a))
    parts.append(Actions.make(a, target, T_ACCOUNT, FOLLOW, ts.astype(np.int64)))

    # Content spam: posts with a link, comments and likes on popular fresh posts, minutes after them.
    n_posts = len(post_created)
    hot = Picker(np.arange(n_posts), np.zeros(n_posts, np.int64), post_pop + 1e-3, 1)
    spam = z[role[z] == ROLE_CONTENT_SPAM]
    k_post = rng.poisson(0.4 * style.content_spam_mean * intensity[spam])
    a = np.repeat(spam, k_post)
    own = [_own_posts(rng, a, lo_acc, z_clock, curve, end, first_post + n_posts)]
    parts.append(own[-1])
    k_reply = rng.poisson(0.6 * style.content_spam_mean * intensity[spam])
    a = np.repeat(spam, k_reply)
    if n_posts and len(a):
        p = hot.pick(rng, np.zeros(len(a), np.int64), 0.0)
        ts = post_created[p] + rng.exponential(1_800.0, len(a))
        parts.append(Actions.make(a, first_post + p, T_POST, COMMENT, ts))
        liked = rng.random(len(a)) < 0.7
        parts.append(Actions.make(a[liked], first_post + p[liked], T_POST, LIKE, ts[liked] - 5))

    # A little life: some zombies post, share, comment or follow now and then, as people do.
    others = z[(role[z] != ROLE_CONTENT_SPAM) & (rng.random(len(z)) < style.zombie_alive_share)]
    k = rng.poisson(1.0 + 3.0 * intensity[others])
    a = np.repeat(others, k)
    what = rng.choice(4, size=len(a), p=[0.3, 0.25, 0.2, 0.25])
    b = a[what == 3]
    local = Picker(np.arange(n_g), community[:n_g], popularity[:n_g] ** 0.5, cfg.communities)
    followee = local.pick(rng, community[b], cfg.homophily)
    ts = diurnal_times(rng, lo_acc[b], np.full(len(b), end), z_clock[b], 0.0, curve)
    parts.append(Actions.make(b, followee, T_ACCOUNT, FOLLOW, ts))
    own.append(_own_posts(rng, a[what == 0], lo_acc, z_clock, curve, end, first_post + n_posts + len(own[0].actor)))
    parts.append(own[-1])
    if n_posts:
        for code, kind in ((1, SHARE), (2, COMMENT)):
            b = a[what == code]
            p = hot.pick(rng, np.zeros(len(b), np.int64), 0.0)
            ts = np.maximum(post_created[p] + rng.exponential(DAY, len(b)), lo_acc[b])
            parts.append(Actions.make(b, first_post + p, T_POST, kind, ts))

    # Batch-mates follow each other (a fake social graph), farm zombies and spammers alike.
    fresh = z[batch[z] >= 0]
    if len(fresh):
        order = np.argsort(batch[fresh], kind="stable")
        fb = fresh[order]
        bnd = np.searchsorted(batch[fb], batch[fb], "left")
        size = np.searchsorted(batch[fb], batch[fb], "right") - bnd
        k = rng.poisson(3, len(fb))
        src = np.repeat(np.arange(len(fb)), k)
        dst = bnd[src] + rng.integers(0, 1 << 30, len(src)) % size[src]
        ts = diurnal_times(rng, lo_acc[fb[src]], np.full(len(src), end), z_clock[fb[src]], 0.0, curve)
        parts.append(Actions.make(fb[src], fb[dst], T_ACCOUNT, FOLLOW, ts))
        # the script makes many of them mutual, as friends would be (a Sybil region is dense)
        mutual = rng.random(len(src)) < 0.5
        back_ts = ts[mutual] + rng.exponential(HOUR, int(mutual.sum())).astype(np.int64)
        parts.append(Actions.make(fb[dst[mutual]], fb[src[mutual]], T_ACCOUNT, FOLLOW, back_ts))
    # Everyone: a trickle of likes on popular and local pages, and on what is trending in the
    # feed, soon after it is posted (dormant ones: a fifth of it).
    scale = np.where(role[z] == ROLE_DORMANT, 0.2, 1.0) * intensity[z]
    k = rng.poisson(style.zombie_trickle_likes * scale)
    a = np.repeat(z, k)
    where = rng.choice(3, size=len(a), p=[0.35, 0.35, 0.3])
    pages = np.where(
        where == 0,
        popular_pages.pick(rng, np.zeros(len(a), np.int64), 0.0),
        page_picker.pick(rng, community[a], cfg.homophily),
    )
    ts = diurnal_times(rng, lo_acc[a], np.full(len(a), end), z_clock[a], 0.0, curve)
    paged = where < 2
    parts.append(Actions.make(a[paged], pages[paged], T_PAGE, LIKE, ts[paged]))
    if n_posts:
        b = a[~paged]
        p = hot.pick(rng, np.zeros(len(b), np.int64), 0.0)
        ts = np.maximum(post_created[p] + rng.exponential(4 * HOUR, len(b)), lo_acc[b])
        parts.append(Actions.make(b, first_post + p, T_POST, LIKE, ts))
    posts = Actions.concat(own)
    return Actions.concat(parts), (posts.actor, posts.ts)


def _own_posts(
    rng: np.random.Generator, actor: np.ndarray, lo_acc: np.ndarray, clock: np.ndarray, curve: np.ndarray, end: int, first_id: int
) -> Actions:
    """Posts by `actor` (one row each), numbered from `first_id`."""
    ts = diurnal_times(rng, lo_acc[actor], np.full(len(actor), end), clock[actor], 0.0, curve)
    return Actions.make(actor, first_id + np.arange(len(actor)), T_POST, POST, ts)


def _follow_backs(
    rng: np.random.Generator, actions: Actions, n_g: int, style: WorldStyle, popularity: np.ndarray, reciprocity: float
) -> Actions:
    """Some genuine users follow back whoever follows them (zombies included): "follow for follow"."""
    n = len(popularity)
    followback = np.zeros(n, dtype=bool)
    followback[:n_g] = rng.random(n_g) < style.followback_share
    f = (actions.kind == FOLLOW) & (actions.ttype == T_ACCOUNT) & (actions.target < n)
    src, dst, ts = actions.actor[f], actions.target[f], actions.ts[f]
    back = followback[np.minimum(dst, n - 1)] & (rng.random(len(src)) < 0.8)
    return Actions.make(dst[back], src[back], T_ACCOUNT, FOLLOW, ts[back] + rng.exponential(6 * HOUR, int(back.sum())).astype(np.int64))
