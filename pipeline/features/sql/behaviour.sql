-- beh_ features: one row per account, from its own engagements up to $ref (docs/features.md).
-- Tables: accounts, engagements (with weight), targets (may be empty). Parameters: $ref, $young_hours.
-- A script of steps, each a temp table, so every step scans 20M+ rows once.

CREATE OR REPLACE TEMP TABLE beh_acc AS
SELECT account_id, created_at FROM accounts WHERE created_at <= $ref::TIMESTAMPTZ;

CREATE OR REPLACE TEMP TABLE beh_ev AS
SELECT e.actor_id AS account_id, e.target_id, e.kind::VARCHAR AS kind, e.ts, coalesce(e.weight, 1) AS w, epoch(e.ts) AS t
FROM engagements e SEMI JOIN beh_acc a ON a.account_id = e.actor_id
WHERE e.ts <= $ref::TIMESTAMPTZ;

CREATE OR REPLACE TEMP TABLE beh_counts AS
SELECT account_id,
       sum(w) AS n_actions,
       sum(w) FILTER (WHERE kind = 'like') AS n_like,
       sum(w) FILTER (WHERE kind = 'follow') AS n_follow,
       sum(w) FILTER (WHERE kind = 'share') AS n_share,
       sum(w) FILTER (WHERE kind = 'comment') AS n_comment,
       sum(w) FILTER (WHERE kind = 'post') AS n_post,
       min(ts) AS first_ts
FROM beh_ev GROUP BY account_id;

CREATE OR REPLACE TEMP TABLE beh_distinct AS
SELECT account_id, count(*) AS distinct_targets
FROM (SELECT DISTINCT account_id, target_id FROM beh_ev) GROUP BY account_id;

CREATE OR REPLACE TEMP TABLE beh_days AS
SELECT account_id, count(*) AS active_days
FROM (SELECT DISTINCT account_id, CAST(ts AS DATE) AS d FROM beh_ev) GROUP BY account_id;

-- Gaps between consecutive actions. A lag() window over 20M+ rows in 1M partitions spills
-- tens of GB in DuckDB; sorting each account's times into a list is a single cheap pass.
CREATE OR REPLACE TEMP TABLE beh_gaps AS
SELECT account_id, list_median(d) AS gap_median, list_avg(d) AS gap_mean, list_stddev_pop(d) AS gap_std
FROM (
    SELECT account_id, list_transform(range(1, len(ts)), lambda i: ts[i + 1] - ts[i]) AS d
    FROM (SELECT account_id, list(t ORDER BY t) AS ts FROM beh_ev GROUP BY account_id)
)
WHERE len(d) > 0;

CREATE OR REPLACE TEMP TABLE beh_hours AS
SELECT account_id, hour(ts) AS h, count(*) AS n FROM beh_ev GROUP BY account_id, hour(ts);

-- modal hour: the busiest, the earliest of equally busy ones (deterministic)
CREATE OR REPLACE TEMP TABLE beh_hour_stats AS
SELECT account_id,
       -sum((n / total) * log2(n / total)) AS hour_entropy,
       min(h) FILTER (WHERE n = top) AS modal_hour,
       -- the account's own clock: its busiest hour is taken as 20:00 local, night is 01:00-05:59
       sum(n) FILTER (WHERE ((h - modal + 20 + 24) % 24) BETWEEN 1 AND 5) / total AS night_share
FROM (
    SELECT *, min(h) FILTER (WHERE n = top) OVER (PARTITION BY account_id) AS modal
    FROM (SELECT *, sum(n) OVER (PARTITION BY account_id) AS total, max(n) OVER (PARTITION BY account_id) AS top FROM beh_hours)
)
GROUP BY account_id, total;

CREATE OR REPLACE TEMP TABLE beh_peaks AS
SELECT h.account_id, h.busiest_hour, m.busiest_minute
FROM (SELECT account_id, max(n) AS busiest_hour FROM (SELECT account_id, count(*) AS n FROM beh_ev GROUP BY account_id, floor(t / 3600)) GROUP BY 1) h
JOIN (SELECT account_id, max(n) AS busiest_minute FROM (SELECT account_id, count(*) AS n FROM beh_ev GROUP BY account_id, floor(t / 60)) GROUP BY 1) m
USING (account_id);

CREATE OR REPLACE TEMP TABLE beh_young AS
SELECT ev.account_id,
       avg(CASE WHEN date_diff('second', tg.created_at, ev.ts) <= $young_hours * 3600 THEN 1.0 ELSE 0.0 END) AS young_share
FROM beh_ev ev JOIN targets tg ON tg.target_id = ev.target_id
WHERE ev.kind = 'like' AND tg.created_at IS NOT NULL
GROUP BY ev.account_id;

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
    date_diff('second', a.created_at, c.first_ts) / 86400.0 AS beh_first_action_delay_days,
    coalesce(c.n_like, 0) / nullif(ad.active_days, 0) AS beh_likes_per_active_day,
    y.young_share AS beh_young_target_like_share,
    coalesce(hs.night_share, CASE WHEN hs.account_id IS NOT NULL THEN 0.0 END) AS beh_night_share
FROM beh_acc a
LEFT JOIN beh_counts c USING (account_id)
LEFT JOIN beh_distinct d USING (account_id)
LEFT JOIN beh_days ad USING (account_id)
LEFT JOIN beh_gaps g USING (account_id)
LEFT JOIN beh_hour_stats hs USING (account_id)
LEFT JOIN beh_peaks p USING (account_id)
LEFT JOIN beh_young y USING (account_id)
ORDER BY a.account_id
