-- beh_ features: one row per account, from its own engagements up to $ref (docs/features.md).
-- Tables: accounts, engagements (with weight), targets (may be empty). Parameters: $ref, $young_hours.
-- A script of steps, each a temp table, so every step scans 20M+ rows once.

-- Accounts get a dense integer key k: every step groups 20M+ rows by account, and grouping on
-- an integer is several times cheaper than on a VARCHAR id. A null created_at is unknown.
CREATE OR REPLACE TEMP TABLE beh_acc AS
SELECT account_id, created_at, row_number() OVER (ORDER BY account_id) AS k
FROM accounts WHERE created_at IS NULL OR created_at <= $ref::TIMESTAMPTZ;

-- t: seconds since 1970 (UTC); hours, days and minutes below are UTC clock buckets of t.
-- young: for a like of a target whose creation time is known, 1.0 if the target was at most
-- $young_hours old, else 0.0; null otherwise.
CREATE OR REPLACE TEMP TABLE beh_ev AS
SELECT a.k, e.target_id, e.kind::VARCHAR AS kind, e.ts, coalesce(e.weight, 1) AS w, epoch(e.ts) AS t,
       CASE WHEN e.kind::VARCHAR = 'like' AND tg.created_at IS NOT NULL
            THEN (date_diff('second', tg.created_at, e.ts) <= $young_hours * 3600)::DOUBLE END AS young
FROM engagements e JOIN beh_acc a ON a.account_id = e.actor_id
LEFT JOIN targets tg ON tg.target_id = e.target_id
WHERE e.ts <= $ref::TIMESTAMPTZ;

CREATE OR REPLACE TEMP TABLE beh_counts AS
SELECT k,
       CAST(sum(w) AS BIGINT) AS n_actions,
       CAST(sum(w) FILTER (WHERE kind = 'like') AS BIGINT) AS n_like,
       CAST(sum(w) FILTER (WHERE kind = 'follow') AS BIGINT) AS n_follow,
       CAST(sum(w) FILTER (WHERE kind = 'share') AS BIGINT) AS n_share,
       CAST(sum(w) FILTER (WHERE kind = 'comment') AS BIGINT) AS n_comment,
       CAST(sum(w) FILTER (WHERE kind = 'post') AS BIGINT) AS n_post,
       min(ts) AS first_ts,
       avg(young) AS young_share
FROM beh_ev GROUP BY k;

CREATE OR REPLACE TEMP TABLE beh_distinct AS
SELECT k, count(*) AS distinct_targets
FROM (SELECT DISTINCT k, target_id FROM beh_ev) GROUP BY k;

-- Gaps between consecutive actions. A lag() window over 20M+ rows in 1M partitions spills
-- tens of GB in DuckDB; sorting each account's times into a list is a single cheap pass.
CREATE OR REPLACE TEMP TABLE beh_gaps AS
SELECT k, list_median(d) AS gap_median, list_avg(d) AS gap_mean, list_stddev_pop(d) AS gap_std
FROM (
    SELECT k, list_transform(range(1, array_length(ts)), lambda i: ts[i + 1] - ts[i]) AS d
    FROM (SELECT k, list(t ORDER BY t) AS ts FROM beh_ev GROUP BY k)
)
WHERE array_length(d) > 0;

-- Actions per clock minute; hours, hours of the day and days are rolled up from it, so the
-- 20M+ events are grouped once for all four.
CREATE OR REPLACE TEMP TABLE beh_minutes AS
SELECT k, floor(t / 60)::BIGINT AS m, count(*) AS n FROM beh_ev GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE beh_clock_hours AS
SELECT k, m // 60 AS ch, sum(n) AS n FROM beh_minutes GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE beh_peaks AS
SELECT k, h.busiest_hour, m.busiest_minute
FROM (SELECT k, max(n) AS busiest_hour FROM beh_clock_hours GROUP BY k) h
JOIN (SELECT k, max(n) AS busiest_minute FROM beh_minutes GROUP BY k) m USING (k);

CREATE OR REPLACE TEMP TABLE beh_days AS
SELECT k, count(DISTINCT ch // 24) AS active_days FROM beh_clock_hours GROUP BY k;

CREATE OR REPLACE TEMP TABLE beh_hours AS
SELECT k, ch % 24 AS h, sum(n) AS n FROM beh_clock_hours GROUP BY ALL;

-- modal hour: the busiest, the earliest of equally busy ones (deterministic)
CREATE OR REPLACE TEMP TABLE beh_hour_stats AS
SELECT k,
       -- an exact decimal sum: the same input gives the same bytes, whatever the thread order
       -CAST(sum(CAST((n / total) * log2(n / total) AS DECIMAL(38, 12))) AS DOUBLE) AS hour_entropy,
       min(h) FILTER (WHERE n = top) AS modal_hour,
       -- the account's own clock: its busiest hour is taken as 20:00 local, night is 01:00-05:59
       sum(n) FILTER (WHERE ((h - modal + 20 + 24) % 24) BETWEEN 1 AND 5) / total AS night_share
FROM (
    SELECT *, min(h) FILTER (WHERE n = top) OVER (PARTITION BY k) AS modal
    FROM (SELECT *, sum(n) OVER (PARTITION BY k) AS total, max(n) OVER (PARTITION BY k) AS top FROM beh_hours)
)
GROUP BY k, total;

SELECT
    a.account_id,
    coalesce(c.n_actions, 0) AS beh_n_actions,
    coalesce(c.n_like, 0) AS beh_n_like,
    coalesce(c.n_follow, 0) AS beh_n_follow,
    coalesce(c.n_share, 0) AS beh_n_share,
    coalesce(c.n_comment, 0) AS beh_n_comment,
    coalesce(c.n_post, 0) AS beh_n_post,
    coalesce(d.distinct_targets, 0) AS beh_distinct_targets,
    coalesce(c.n_like, 0) / nullif(c.n_actions, 0) AS beh_like_share,
    g.gap_median AS beh_gap_median_s,
    g.gap_std / nullif(g.gap_mean, 0) AS beh_gap_cv,
    (g.gap_std - g.gap_mean) / nullif(g.gap_std + g.gap_mean, 0) AS beh_burstiness,
    hs.hour_entropy AS beh_hour_entropy,
    p.busiest_hour / nullif(c.n_actions, 0) AS beh_busiest_hour_share,
    p.busiest_minute / nullif(c.n_actions, 0) AS beh_busiest_minute_share,
    coalesce(ad.active_days, 0) AS beh_active_days,
    date_diff('second', a.created_at, c.first_ts) / CAST(86400 AS DOUBLE) AS beh_first_action_delay_days,
    coalesce(c.n_like, 0) / nullif(ad.active_days, 0) AS beh_likes_per_active_day,
    c.young_share AS beh_young_target_like_share,
    coalesce(hs.night_share, CASE WHEN hs.k IS NOT NULL THEN 0.0 END) AS beh_night_share
FROM beh_acc a
LEFT JOIN beh_counts c USING (k)
LEFT JOIN beh_distinct d USING (k)
LEFT JOIN beh_days ad USING (k)
LEFT JOIN beh_gaps g USING (k)
LEFT JOIN beh_hour_stats hs USING (k)
LEFT JOIN beh_peaks p USING (k)
ORDER BY a.account_id
