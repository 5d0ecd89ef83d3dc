"""A seeded, vectorised simulator of a social platform with zombies and like farms.

The world is built on integer indices with numpy (one row per account, page, post and action)
and only turned into contract tables (random string ids, shuffled rows, UTC timestamps) at the
end. docs/simulator.md explains every behaviour and the literature behind it.

Object indices share one space: accounts are [0, n), pages [n, n + P), posts after that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.simulate import vocab
from pipeline.simulate.config import SimConfig

DAY = 86_400
HOUR = 3_600

# Integer codes used while building; mapped to contract strings at the end.
KIND_NAMES = ("like", "follow", "share", "comment", "post")
LIKE, FOLLOW, SHARE, COMMENT, POST = range(5)
TTYPE_NAMES = ("post", "page", "account")
T_POST, T_PAGE, T_ACCOUNT = range(3)
STYLE_NAMES = ("bursty", "stealthy", "heavy")
BURSTY, STEALTHY, HEAVY = range(3)
# Roles of zombies outside farms.
ROLE_FARM, ROLE_FOLLOW_SPAM, ROLE_DORMANT = range(3)

_DIURNAL = np.asarray(vocab.DIURNAL) / np.sum(vocab.DIURNAL)


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
            actor.astype(np.int64),
            target.astype(np.int64),
            np.broadcast_to(np.asarray(ttype, dtype=np.int8), (n,)).copy(),
            np.broadcast_to(np.asarray(kind, dtype=np.int8), (n,)).copy(),
            ts.astype(np.int64),
        )

    def where(self, keep: np.ndarray) -> Actions:
        return Actions(self.actor[keep], self.target[keep], self.ttype[keep], self.kind[keep], self.ts[keep])

    @staticmethod
    def concat(parts: list[Actions]) -> Actions:
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
        local = (rng.random(n) < homophily) & (self.stop[groups] > self.start[groups])
        lo = np.where(local, self.cum[self.start[groups]], 0.0)
        hi = np.where(local, self.cum[self.stop[groups]], self.cum[-1])
        u = lo + rng.random(n) * (hi - lo)
        idx = np.clip(np.searchsorted(self.cum, u, side="right") - 1, 0, len(self.items) - 1)
        return self.items[idx]


def diurnal_times(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, tz_hours: np.ndarray, shift_hours: np.ndarray | float = 0.0
) -> np.ndarray:
    """Times in [lo, hi] on a random day, at an hour drawn from the local diurnal rhythm."""
    n = len(lo)
    lo = lo.astype(np.float64)
    hi = np.maximum(hi.astype(np.float64), lo)
    t = lo + rng.random(n) * (hi - lo)
    tz = tz_hours * HOUR
    day = np.floor((t + tz) / DAY)
    hour = rng.choice(24, size=n, p=_DIURNAL) + rng.random(n) + shift_hours
    ts = day * DAY + hour * HOUR - tz
    ts = np.where(ts < lo, ts + DAY, ts)
    ts = np.where(ts > hi, ts - DAY, ts)
    return np.clip(ts, lo, hi).astype(np.int64)


def _pareto(rng: np.random.Generator, alpha: float, n: int) -> np.ndarray:
    return rng.pareto(alpha, n) + 1.0


@dataclass
class World:
    """The simulated platform as integer-indexed arrays plus ground truth."""

    config: SimConfig
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
    role: np.ndarray  # zombie role, -1 for genuine
    page_owner: np.ndarray
    page_created: np.ndarray
    post_owner: np.ndarray
    post_created: np.ndarray
    actions: Actions
    campaigns: pl.DataFrame  # integer-indexed campaigns


def build_world(cfg: SimConfig) -> World:
    """Generate the whole world for `cfg`. Deterministic for a given config."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(8)]
    r_acc, r_zmb, r_pages, r_gen, r_farm, r_zact, r_follow, _ = streams
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
    tz = region_tz[comm_region[community]]

    # --- genuine accounts: ages over years, heavy-tailed activity and popularity.
    age_days = np.clip(r_acc.gamma(2.0, 2.2, n) * 365.0, 3.0, 17 * 365.0)
    created = (end - age_days * DAY).astype(np.int64)
    activity = r_acc.lognormal(0.0, 1.1, n)
    activity /= activity.mean()
    popularity = _pareto(r_acc, 1.3, n) * activity**0.4
    night_owl = r_acc.normal(0.0, 1.5, n)

    # --- zombies: created in batches, a share aged to look genuine.
    z_idx = np.arange(n_g, n)
    is_aged = np.zeros(n, dtype=bool)
    is_aged[z_idx[r_zmb.random(n_z) < cfg.aged_zombie_share]] = True
    batch = np.full(n, -1, dtype=np.int64)
    fresh = z_idx[~is_aged[z_idx]]
    mean_batch = max(5.0, min(60.0, n_z / 25.0))
    sizes = np.maximum(2, r_zmb.poisson(mean_batch, size=len(fresh) // 2 + 1))
    batch_of = np.repeat(np.arange(len(sizes)), sizes)[: len(fresh)]
    batch[fresh] = batch_of
    n_batches = int(batch_of.max()) + 1 if len(fresh) else 0
    # Batch start: mostly in the 30 months before the window, some fresh during its first half.
    in_window = r_zmb.random(n_batches) < 0.15
    batch_t0 = np.where(
        in_window,
        ws + r_zmb.random(n_batches) * cfg.window_days * DAY / 2,
        ws - r_zmb.random(n_batches) * 900 * DAY,
    ).astype(np.int64)
    # Within a batch accounts appear minutes apart (one operator, one script).
    created[fresh] = batch_t0[batch_of] + np.cumsum(r_zmb.exponential(240.0, len(fresh))).astype(np.int64) % (6 * HOUR)
    batch_comm = r_zmb.integers(0, n_c, max(n_batches, 1))
    community[fresh] = batch_comm[batch_of]
    tz[fresh] = region_tz[comm_region[community[fresh]]]
    activity[z_idx] = 0.0
    popularity[fresh] *= 0.03
    popularity[is_aged] *= 0.4

    # --- farms: members are zombies (batches stay together) plus real-looking accounts.
    farm = np.full(n, -1, dtype=np.int64)
    f_sizes = np.maximum(6, np.round(r_farm.lognormal(np.log(cfg.farm_size), 0.5, cfg.farm_count))).astype(np.int64)
    n_real = np.round(f_sizes * cfg.farm_real_share).astype(np.int64)
    n_zm = f_sizes - n_real
    max_farm_zombies = int(0.6 * n_z)
    if n_zm.sum() > max_farm_zombies:
        n_zm = np.floor(n_zm * max_farm_zombies / n_zm.sum()).astype(np.int64)
    # Order zombies by batch with random tie-breaks, aged ones scattered: farms take runs.
    order_key = np.where(batch[z_idx] >= 0, batch[z_idx].astype(np.float64), r_zmb.random(n_z) * max(n_batches, 1))
    z_order = z_idx[np.lexsort((r_farm.random(n_z), order_key))]
    offset = r_farm.integers(0, max(1, n_z - n_zm.sum()))
    z_members = z_order[offset : offset + n_zm.sum()]
    farm[z_members] = np.repeat(np.arange(cfg.farm_count), n_zm)
    # One batch, one operator, one farm: a run boundary that cuts a batch moves the whole batch
    # to the farm of its first member (so farms can be kept apart when splitting data).
    fresh_members = z_members[batch[z_members] >= 0]
    batch_ids, first = np.unique(batch[fresh_members], return_index=True)
    farm_of_batch = dict(zip(batch_ids.tolist(), farm[fresh_members[first]].tolist(), strict=True))
    farm[fresh_members] = np.array([farm_of_batch[b] for b in batch[fresh_members].tolist()], dtype=farm.dtype)
    genuine_pool = r_farm.permutation(n_g)[: n_real.sum()]
    farm[genuine_pool] = np.repeat(np.arange(cfg.farm_count), n_real)[: len(genuine_pool)]
    style = r_farm.choice(3, size=cfg.farm_count, p=[1 - cfg.stealth_share - cfg.heavy_share, cfg.stealth_share, cfg.heavy_share])
    farm_tz = region_tz[r_farm.integers(0, len(vocab.REGIONS), cfg.farm_count)]

    role = np.full(n, -1, dtype=np.int64)
    role[z_idx] = np.where(r_zmb.random(n_z) < 0.55, ROLE_FOLLOW_SPAM, ROLE_DORMANT)
    role[z_idx[farm[z_idx] >= 0]] = ROLE_FARM

    # --- pages: owned by popular genuine accounts, created before the window mostly.
    n_p = max(20, int(cfg.pages_per_account * n))
    owner_picker = Picker(np.arange(n_g), community[:n_g], popularity[:n_g], n_c)
    page_owner = owner_picker.pick(r_pages, r_pages.integers(0, n_c, n_p), 1.0)
    page_comm = community[page_owner]
    page_created = (created[page_owner] + r_pages.random(n_p) * np.maximum(ws - created[page_owner], HOUR)).astype(np.int64)
    page_created = np.minimum(page_created, end - HOUR)
    page_pop = _pareto(r_pages, 1.1, n_p) * (popularity[page_owner] ** 0.3)
    page_ids = n + np.arange(n_p)
    page_picker = Picker(page_ids, page_comm, page_pop, n_c)
    popular_pages = Picker(page_ids, np.zeros(n_p, dtype=np.int64), page_pop**1.5, 1)

    genuine, posts = _genuine_actions(
        cfg, r_gen, r_follow, n_g, n_p, created, community, tz, activity, popularity, night_owl, page_picker, ws, end
    )
    post_owner, post_created = posts
    farm_actions, campaigns = _farm_actions(
        cfg, r_farm, n, n_p, created, farm, style, farm_tz, f_sizes, page_pop, post_created, page_created, popular_pages, ws, end
    )
    zombie_actions = _zombie_actions(
        cfg, r_zact, n_g, created, community, tz, farm, role, batch, popularity, page_picker, popular_pages, ws, end
    )
    actions = Actions.concat([genuine, farm_actions, zombie_actions])
    # Nobody acts before their account exists or after the end of the window.
    actions = actions.where((actions.ts >= created[actions.actor]) & (actions.ts <= end) & (actions.actor != actions.target))
    return World(
        config=cfg,
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
        role=role,
        page_owner=page_owner,
        page_created=page_created,
        post_owner=post_owner,
        post_created=post_created,
        actions=actions,
        campaigns=campaigns.with_columns(style=pl.Series(np.array(STYLE_NAMES)[style[campaigns["farm"].to_numpy()]], dtype=pl.String)),
    )


def _genuine_actions(
    cfg: SimConfig,
    rng: np.random.Generator,
    r_follow: np.random.Generator,
    n_g: int,
    n_p: int,
    created: np.ndarray,
    community: np.ndarray,
    tz: np.ndarray,
    activity: np.ndarray,
    popularity: np.ndarray,
    night_owl: np.ndarray,
    page_picker: Picker,
    ws: int,
    end: int,
) -> tuple[Actions, tuple[np.ndarray, np.ndarray]]:
    """Posts, likes, comments, shares and follows of genuine users, with diurnal rhythms."""
    n = len(created)
    lo_acc = np.maximum(created[:n_g], ws) + 60
    alive = np.clip((end - lo_acc) / (end - ws), 0.0, 1.0)
    counts = rng.poisson(activity[:n_g] * cfg.actions_per_account * alive)
    actor = np.repeat(np.arange(n_g), counts)
    # kinds: like page, like post, comment, share, follow, post
    mix = np.array([0.20, 0.38, 0.08, 0.05, 0.12, 0.17])
    what = rng.choice(6, size=len(actor), p=mix)
    # Most users rarely post (the 90-9-1 rule): lurkers turn almost every post into a like.
    lurker = rng.random(n_g) < 0.45
    what = np.where((what == 5) & lurker[actor] & (rng.random(len(actor)) < 0.95), 1, what)

    def times(a: np.ndarray, r: np.random.Generator = rng) -> np.ndarray:
        return diurnal_times(r, lo_acc[a], np.full(len(a), end), tz[a], night_owl[a])

    # posts first: they are the targets of likes, comments and shares.
    authors = actor[what == 5]
    post_ts = times(authors)
    n_posts = len(authors)
    post_ids = n + n_p + np.arange(n_posts)
    post_pop = popularity[authors] ** 0.8 * rng.lognormal(0.0, 1.0, n_posts)
    parts = [Actions.make(authors, post_ids, T_POST, POST, post_ts)]

    a = actor[what == 0]
    parts.append(Actions.make(a, page_picker.pick(rng, community[a], cfg.homophily), T_PAGE, LIKE, times(a)))

    if n_posts:
        post_picker = Picker(np.arange(n_posts), community[authors], post_pop, cfg.communities)
        for code, kind in ((1, LIKE), (2, COMMENT), (3, SHARE)):
            a = actor[what == code]
            p = post_picker.pick(rng, community[a], cfg.homophily)
            # React a few hours to days after the post, at an hour the reader is awake.
            delay = rng.exponential(1.2 * DAY, len(a))
            ts = diurnal_times(rng, post_ts[p] + delay, post_ts[p] + delay + DAY, tz[a], night_owl[a])
            ts = np.where(ts <= post_ts[p], ts + DAY, ts)
            parts.append(Actions.make(a, post_ids[p], T_POST, kind, ts))

    a = actor[what == 4]
    acct_picker = Picker(np.arange(n), community, popularity, cfg.communities)
    followee = acct_picker.pick(rng, community[a], cfg.homophily)
    f_ts = times(a)
    parts.append(Actions.make(a, followee, T_ACCOUNT, FOLLOW, f_ts))
    # Reciprocal follows: likelier toward friends than toward celebrities.
    back = (followee < n_g) & (r_follow.random(len(a)) < cfg.reciprocity / np.sqrt(np.maximum(popularity[a], 1.0)))
    back_ts = f_ts[back] + r_follow.exponential(10 * HOUR, back.sum()).astype(np.int64)
    parts.append(Actions.make(followee[back], a[back], T_ACCOUNT, FOLLOW, back_ts))
    return Actions.concat(parts), (authors, post_ts)


def _farm_actions(
    cfg: SimConfig,
    rng: np.random.Generator,
    n: int,
    n_p: int,
    created: np.ndarray,
    farm: np.ndarray,
    style: np.ndarray,
    farm_tz: np.ndarray,
    f_sizes: np.ndarray,
    page_pop: np.ndarray,
    post_created: np.ndarray,
    page_created: np.ndarray,
    popular_pages: Picker,
    ws: int,
    end: int,
) -> tuple[Actions, pl.DataFrame]:
    """Campaigns bought from farms and the likes that deliver them (plus camouflage)."""
    members_sorted = np.argsort(farm, kind="stable")
    members_sorted = members_sorted[farm[members_sorted] >= 0]
    bounds = np.searchsorted(farm[members_sorted], np.arange(cfg.farm_count + 1))
    # Customers are small pages and posts: pick targets with weight falling with popularity.
    small_page_w = np.where(page_created < ws, 1.0 / page_pop, 0.0)
    small_page_cdf = np.cumsum(small_page_w / small_page_w.sum())
    post_order = np.argsort(post_created, kind="stable")
    sorted_post_ts = post_created[post_order]

    rows: list[tuple[int, int, int, int, int, int, int]] = []
    likes: list[Actions] = []
    campaign = 0
    for f in range(cfg.farm_count):
        members = members_sorted[bounds[f] : bounds[f + 1]]
        if len(members) == 0:
            continue
        s = style[f]
        n_camp = max(1, rng.poisson(cfg.campaigns_per_farm * (3 if s == HEAVY else 1)))
        for _ in range(n_camp):
            if s == BURSTY:
                dur = int(rng.uniform(5, 90) * 60)
            elif s == STEALTHY:
                dur = int(rng.uniform(2, 10) * DAY)
            else:
                dur = int(rng.uniform(6, 48) * HOUR)
            start = int(ws + rng.random() * max(end - ws - dur, HOUR))
            n_targets = int(rng.integers(5, 26)) if s == HEAVY else int(rng.integers(1, 4))
            for _ in range(n_targets):
                k_post = np.searchsorted(sorted_post_ts, start - HOUR)
                if rng.random() < 0.3 and k_post > 0:
                    target, ttype = n + n_p + int(post_order[rng.integers(0, k_post)]), T_POST
                else:
                    page = min(int(np.searchsorted(small_page_cdf, rng.random(), side="right")), n_p - 1)
                    target, ttype = n + page, T_PAGE
                bought = max(5, round(len(members) * rng.uniform(0.25, 1.1)))
                k = min(len(members), round(bought * rng.uniform(0.85, 1.0)))
                who = rng.choice(members, size=k, replace=False)
                if s == BURSTY:
                    frac = rng.beta(1.0, 3.0, k)
                elif s == STEALTHY:
                    frac = rng.random(k)
                else:
                    frac = rng.beta(1.5, 1.5, k)
                stop = min(start + dur, end)
                ts = np.clip(start + frac * (stop - start) + rng.normal(0, 30, k), start, stop).astype(np.int64)
                likes.append(Actions.make(who, np.full(k, target), ttype, LIKE, ts))
                rows.append((target, campaign, bought, f, start, stop, ttype))
            campaign += 1
    farm_likes = Actions.concat(likes) if likes else Actions.make(*(np.zeros(0, np.int64),) * 2, T_PAGE, LIKE, np.zeros(0, np.int64))
    # Stealthy farms hide their work among likes of popular pages (camouflage).
    stealthy_member = style[np.maximum(farm[farm_likes.actor], 0)] == STEALTHY
    per_member = np.bincount(farm_likes.actor[stealthy_member], minlength=n)
    n_cam = rng.poisson(per_member * cfg.camouflage_rate / (1.0 - cfg.camouflage_rate))
    cam_actor = np.repeat(np.arange(n), n_cam)
    cam_ts = diurnal_times(rng, np.full(len(cam_actor), ws), np.full(len(cam_actor), end), farm_tz[farm[cam_actor]])
    camo = Actions.make(cam_actor, popular_pages.pick(rng, np.zeros(len(cam_actor), np.int64), 0.0), T_PAGE, LIKE, cam_ts)
    camp = pl.DataFrame(rows, schema=["target", "campaign", "bought_likes", "farm", "starts_at", "ends_at", "ttype"], orient="row")
    return Actions.concat([farm_likes, camo]), camp


def _zombie_actions(
    cfg: SimConfig,
    rng: np.random.Generator,
    n_g: int,
    created: np.ndarray,
    community: np.ndarray,
    tz: np.ndarray,
    farm: np.ndarray,
    role: np.ndarray,
    batch: np.ndarray,
    popularity: np.ndarray,
    page_picker: Picker,
    popular_pages: Picker,
    ws: int,
    end: int,
) -> Actions:
    """What zombies do besides farming: follow spam, batch-mate follows, a trickle of likes."""
    n = len(created)
    z = np.arange(n_g, n)
    lo = np.maximum(created, ws)
    parts = []
    # Follow spam: sold followers for "customer" accounts, plus celebrities to look normal.
    spam = z[role[z] == ROLE_FOLLOW_SPAM]
    k = rng.poisson(100, len(spam))
    a = np.repeat(spam, k)
    n_cust = max(3, n // 2_000)
    customers = rng.choice(n_g, size=n_cust, replace=False)
    celeb = Picker(np.arange(n_g), np.zeros(n_g, np.int64), popularity[:n_g] ** 1.5, 1)
    buys = rng.random(len(a)) < 0.6
    target = np.where(buys, customers[rng.integers(0, n_cust, len(a))], celeb.pick(rng, np.zeros(len(a), np.int64), 0.0))
    # Each spammer works in three sessions: follows arrive minutes apart within a session.
    spammer = np.repeat(np.arange(len(spam)), k)
    session_at = rng.random((len(spam), 3))[spammer, rng.integers(0, 3, len(a))]
    ts = lo[a] + session_at * (end - lo[a]) + rng.exponential(600, len(a))
    parts.append(Actions.make(a, target, T_ACCOUNT, FOLLOW, ts.astype(np.int64)))
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
        ts = diurnal_times(rng, lo[fb[src]], np.full(len(src), end), tz[fb[src]])
        parts.append(Actions.make(fb[src], fb[dst], T_ACCOUNT, FOLLOW, ts))
    # Everyone else: a trickle of likes on popular and local pages (dormant: almost nothing).
    k = np.where(role[z] == ROLE_DORMANT, rng.poisson(1.0, len(z)), rng.poisson(4.0, len(z)))
    a = np.repeat(z, k)
    pages = np.where(
        rng.random(len(a)) < 0.5,
        popular_pages.pick(rng, np.zeros(len(a), np.int64), 0.0),
        page_picker.pick(rng, community[a], cfg.homophily),
    )
    ts = diurnal_times(rng, lo[a], np.full(len(a), end), tz[a])
    parts.append(Actions.make(a, pages, T_PAGE, LIKE, ts))
    return Actions.concat(parts)
