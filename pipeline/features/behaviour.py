"""beh_ features: how an account acts, from its own engagements (docs/features.md#behaviour)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numba
import numpy as np
import polars as pl

from pipeline.features.duckdb_math import round_away, trunc_div
from pipeline.features.family import Context, Family, count, share
from pipeline.features.query import Frame, Replacement, query

EMPTY_TARGETS = pl.DataFrame(schema={"target_id": pl.String, "target_type": pl.String, "created_at": pl.Datetime("us", "UTC")})


YOUNG_HOURS = 24.0  # a like on a target younger than this counts as early


def behavioural_features(
    accounts: Frame | None = None,
    engagements: Frame | None = None,
    *,
    reference_time: datetime,
    targets: Frame | None = None,
    young_hours: float = YOUNG_HOURS,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """One row per account created by `reference_time`, columns `beh_*`.

    Uses only the account's own engagements at or before `reference_time`, so the values for an
    account do not change when other accounts are added or removed.

    Args:
        accounts: Contract accounts (account_id, created_at are used).
        engagements: Contract engagements; `weight` is optional (default 1).
        reference_time: Nothing after it is used.
        targets: Contract targets, for `beh_young_target_like_share` (null without them).
        young_hours: A like on a target younger than this counts as "early".
        con: Instead of the frames, a connection that shows accounts, engagements (with weight)
            and targets by name.
    """
    params = {"ref": reference_time, "young_hours": young_hours}
    if con is not None:
        return query("behaviour.sql", params, con=con, replace=CLOCK)
    if accounts is None or engagements is None:
        raise TypeError("behavioural_features needs accounts and engagements, or con")
    eng = engagements.collect() if isinstance(engagements, pl.LazyFrame) else engagements
    if "weight" not in eng.columns:
        eng = eng.with_columns(weight=pl.lit(1, pl.Int64))
    return query(
        "behaviour.sql",
        params,
        replace=CLOCK,
        accounts=accounts,
        engagements=eng,
        targets=targets if targets is not None else EMPTY_TARGETS,
    )


# Rows of (account, time) read from DuckDB at a time by `clock_tables`.
CLOCK_BATCH = 1 << 20


def clock_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """behaviour.sql's gap and clock tables (beh_gaps, beh_peaks, beh_days, beh_hour_stats) from
    `beh_ev`, with the same columns and values, in one pass over each account's sorted times.

    The script builds them in seven steps, each a group-by over 20M+ rows or a table derived from
    one; here DuckDB sorts (account, time) once and streams it, and
    `_clock_stats` computes every value of an account from its run of times, as the SQL defines
    it: DuckDB's integer division and remainder (towards zero), its median interpolation,
    mean, Welford variance, and the entropy's exact decimal sum (each term rounded half away
    from zero to 12 places). Spark runs the script's own steps; tests compare the two.
    Python holds one batch and the per-account results."""
    reader = con.sql("SELECT k, t FROM beh_ev ORDER BY k, t").to_arrow_reader(CLOCK_BATCH)
    parts: list[tuple[np.ndarray, ...]] = []
    keys, times = np.zeros(0, np.int64), np.zeros(0)
    for batch in reader:
        keys = np.concatenate([keys, batch.column(0).to_numpy().astype(np.int64, copy=False)])
        times = np.concatenate([times, batch.column(1).to_numpy().astype(np.float64, copy=False)])
        if len(keys):  # the last account may go on in the next batch: it waits
            cut = int(np.searchsorted(keys, keys[-1]))
            parts.append(_clock_stats(keys[:cut], times[:cut]))
            keys, times = keys[cut:], times[cut:]
    parts.append(_clock_stats(keys, times))
    k, n, median, mean, std, hour, minute, days, entropy, night = (np.concatenate(column) for column in zip(*parts, strict=True))
    frame = pl.DataFrame(
        {"k": k, "n": n, "gap_median": median, "gap_mean": mean, "gap_std": std, "busiest_hour": hour, "busiest_minute": minute,
         "active_days": days, "hour_entropy": entropy, "night_share": night}
    ).with_columns(pl.col("night_share").fill_nan(None))  # fmt: skip
    con.register("beh_clock_df", frame)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE beh_gaps AS SELECT k, gap_median, gap_mean, gap_std FROM beh_clock_df WHERE n > 1")
        con.execute("CREATE OR REPLACE TEMP TABLE beh_peaks AS SELECT k, busiest_hour, busiest_minute FROM beh_clock_df")
        con.execute("CREATE OR REPLACE TEMP TABLE beh_days AS SELECT k, active_days FROM beh_clock_df")
        con.execute("CREATE OR REPLACE TEMP TABLE beh_hour_stats AS SELECT k, hour_entropy, night_share FROM beh_clock_df")
    finally:
        con.unregister("beh_clock_df")
    return ["beh_gaps", "beh_peaks", "beh_days", "beh_hour_stats"]


# behaviour.sql's statements that `clock_tables` does on DuckDB (the ones it reads and the intermediates)
CLOCK: Replacement = (
    ("beh_gaps", "beh_minutes", "beh_clock_hours", "beh_peaks", "beh_days", "beh_hours", "beh_hour_stats"),
    clock_tables,
)


@numba.njit(cache=True)
def _clock_stats(k: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per account of (k, t) sorted by (k, t): events, gap median/mean/std (n > 1), busiest clock hour and
    minute, active days, hour-of-day entropy and night share (NaN for SQL's null), as behaviour.sql."""
    n = len(k)
    accounts = 0
    for i in range(n):
        if i == 0 or k[i] != k[i - 1]:
            accounts += 1
    out_k = np.empty(accounts, np.int64)
    out_n = np.empty(accounts, np.int64)
    median, mean, std = np.zeros(accounts), np.zeros(accounts), np.zeros(accounts)
    hour_peak, minute_peak, days = np.empty(accounts, np.int64), np.empty(accounts, np.int64), np.empty(accounts, np.int64)
    entropy, night = np.empty(accounts), np.empty(accounts)
    gaps = np.empty(max(n, 1))
    hist = np.zeros(47, np.int64)  # hours of the day -23 .. 23 (before 1970 the remainder is negative)
    a = 0
    start = 0
    while start < n:
        end = start
        while end < n and k[end] == k[start]:
            end += 1
        m = end - start
        out_k[a], out_n[a] = k[start], m
        # gaps between consecutive times: list_median, list_avg, list_stddev_pop
        if m > 1:
            total = 0.0
            w_mean, w_sq = 0.0, 0.0
            for j in range(m - 1):
                d = t[start + j + 1] - t[start + j]
                gaps[j] = d
                total += d
                diff = (d - w_mean) / (j + 1)
                new_mean = w_mean + diff
                w_sq += (d - new_mean) * (d - w_mean)
                w_mean = new_mean
            mean[a] = total / (m - 1)
            std[a] = np.sqrt(w_sq / (m - 1)) if m - 1 > 1 else 0.0
            ordered = np.sort(gaps[: m - 1])
            rn = (m - 2) * 0.5  # DuckDB's continuous quantile: position (count - 1) q, interpolated
            lo, hi, frac = ordered[int(np.floor(rn))], ordered[int(np.ceil(rn))], rn - np.floor(rn)
            median[a] = lo if frac == 0 else lo * (1.0 - frac) + hi * frac
        # clock minutes, hours and days: runs, the times being sorted
        best_m = best_h = run_m = run_h = 0
        n_days = 0
        prev_m = prev_h = prev_d = 0
        for j in range(m):
            minute = int(np.floor(t[start + j] / 60.0))
            hour = trunc_div(minute, 60)
            day = trunc_div(hour, 24)
            run_m = run_m + 1 if j > 0 and minute == prev_m else 1
            run_h = run_h + 1 if j > 0 and hour == prev_h else 1
            if j == 0 or day != prev_d:
                n_days += 1
            best_m, best_h = max(best_m, run_m), max(best_h, run_h)
            prev_m, prev_h, prev_d = minute, hour, day
            hist[hour - 24 * trunc_div(hour, 24) + 23] += 1
        minute_peak[a], hour_peak[a], days[a] = best_m, best_h, n_days
        # hours of the day: entropy (terms rounded to 12 places, summed exactly), modal hour, night share
        top = 0
        for h in range(47):
            top = max(top, hist[h])
        modal = 0
        for h in range(47):
            if hist[h] == top:
                modal = h - 23
                break
        scaled = np.int64(0)
        at_night = np.int64(0)
        for h in range(47):
            if hist[h] > 0:
                p = hist[h] / m
                scaled += np.int64(round_away(p * np.log2(p) * 1e12))
                shifted = h - 23 - modal + 44
                if 1 <= shifted - 24 * trunc_div(shifted, 24) <= 5:
                    at_night += hist[h]
                hist[h] = 0
        entropy[a] = -(scaled / 1e12)
        night[a] = at_night / m if at_night > 0 else np.nan
        a += 1
        start = end
    return out_k, out_n, median, mean, std, hour_peak, minute_peak, days, entropy, night


def compute(ctx: Context) -> pl.DataFrame:
    return ctx.timed("behaviour", behavioural_features, reference_time=ctx.reference_time, con=ctx.con)


# How an analyst reads each value (the reasons of `zombiescan score`).
DESCRIBE = {
    "beh_n_actions": lambda v: f"{count(v)} actions in total",
    "beh_n_like": lambda v: f"{count(v)} likes",
    "beh_n_follow": lambda v: f"{count(v)} follows",
    "beh_n_post": lambda v: f"{count(v)} posts of its own",
    "beh_distinct_targets": lambda v: f"engaged with {count(v)} distinct targets",
    "beh_like_share": lambda v: f"{share(v)} of its actions are likes",
    "beh_gap_median_s": lambda v: f"median {v:,.0f} s between actions",
    "beh_burstiness": lambda v: f"acts in bursts (burstiness {v:.2f})",
    "beh_hour_entropy": lambda v: f"activity spread over the day: {v:.1f} bits",
    "beh_busiest_hour_share": lambda v: f"{share(v)} of its actions fell in one hour",
    "beh_busiest_minute_share": lambda v: f"{share(v)} of its actions fell in one minute",
    "beh_active_days": lambda v: f"active on {count(v)} days",
    "beh_first_action_delay_days": lambda v: f"first action {v:,.1f} days after joining",
    "beh_likes_per_active_day": lambda v: f"{v:,.0f} likes per active day",
    "beh_young_target_like_share": lambda v: f"{share(v)} of its likes went to posts under a day old",
    "beh_night_share": lambda v: f"{share(v)} of its actions at night (UTC)",
}

FAMILY = Family("beh_", "behaviour", compute, DESCRIBE, role="own", spark="pipeline.spark.features:behaviour")
