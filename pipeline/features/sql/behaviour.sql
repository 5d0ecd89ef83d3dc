-- beh_ features: one row per account, from its own engagements up to $ref (docs/features.md).
-- Tables: accounts, engagements, targets (may be empty). Parameters: $ref, $young_hours.
WITH acc AS (
    SELECT account_id, created_at FROM accounts WHERE created_at <= $ref::TIMESTAMPTZ
),
ev AS (
    SELECT e.actor_id AS account_id, e.target_id, e.kind::VARCHAR AS kind, e.ts, coalesce(e.weight, 1) AS w,
           epoch(e.ts) AS t
    FROM engagements e JOIN acc a ON a.account_id = e.actor_id
    WHERE e.ts <= $ref::TIMESTAMPTZ
),
counts AS (
    SELECT account_id,
           sum(w) AS n_actions,
           sum(w) FILTER (WHERE kind = 'like') AS n_like,
           sum(w) FILTER (WHERE kind = 'follow') AS n_follow,
           sum(w) FILTER (WHERE kind = 'share') AS n_share,
           sum(w) FILTER (WHERE kind = 'comment') AS n_comment,
           sum(w) FILTER (WHERE kind = 'post') AS n_post,
           count(DISTINCT target_id) AS distinct_targets,
           count(DISTINCT CAST(ts AS DATE)) AS active_days,
           min(ts) AS first_ts
    FROM ev GROUP BY account_id
),
gaps AS (
    SELECT account_id, t - lag(t) OVER (PARTITION BY account_id ORDER BY t) AS gap FROM ev
),
gap_stats AS (
    SELECT account_id, median(gap) AS gap_median, avg(gap) AS gap_mean, stddev_pop(gap) AS gap_std
    FROM gaps WHERE gap IS NOT NULL GROUP BY account_id
),
hours AS (
    SELECT account_id, hour(ts) AS h, count(*) AS n FROM ev GROUP BY account_id, hour(ts)
),
hour_stats AS (
    -- modal hour: the busiest, the earliest of equally busy ones (deterministic)
    SELECT account_id,
           -sum((n / total) * log2(n / total)) AS hour_entropy,
           min(h) FILTER (WHERE n = top) AS modal_hour
    FROM (SELECT *, sum(n) OVER (PARTITION BY account_id) AS total, max(n) OVER (PARTITION BY account_id) AS top FROM hours)
    GROUP BY account_id
),
night AS (
    -- The account's own clock: its busiest hour is taken as 20:00 local, night is 01:00-05:59.
    SELECT h.account_id, sum(h.n) FILTER (WHERE ((h.h - s.modal_hour + 20 + 24) % 24) BETWEEN 1 AND 5) / sum(h.n) AS night_share
    FROM hours h JOIN hour_stats s USING (account_id) GROUP BY h.account_id
),
peaks AS (
    SELECT account_id,
           max(n) FILTER (WHERE grain = 'hour') AS busiest_hour,
           max(n) FILTER (WHERE grain = 'minute') AS busiest_minute
    FROM (
        SELECT account_id, 'hour' AS grain, count(*) AS n FROM ev GROUP BY account_id, floor(t / 3600)
        UNION ALL
        SELECT account_id, 'minute' AS grain, count(*) AS n FROM ev GROUP BY account_id, floor(t / 60)
    ) GROUP BY account_id
),
young AS (
    SELECT ev.account_id,
           avg(CASE WHEN date_diff('second', tg.created_at, ev.ts) <= $young_hours * 3600 THEN 1.0 ELSE 0.0 END) AS young_share
    FROM ev JOIN targets tg ON tg.target_id = ev.target_id
    WHERE ev.kind = 'like' AND tg.created_at IS NOT NULL
    GROUP BY ev.account_id
)
SELECT
    a.account_id,
    coalesce(c.n_actions, 0) AS beh_n_actions,
    coalesce(c.n_like, 0) AS beh_n_like,
    coalesce(c.n_follow, 0) AS beh_n_follow,
    coalesce(c.n_share, 0) AS beh_n_share,
    coalesce(c.n_comment, 0) AS beh_n_comment,
    coalesce(c.n_post, 0) AS beh_n_post,
    coalesce(c.distinct_targets, 0) AS beh_distinct_targets,
    coalesce(c.n_like, 0) / nullif(c.n_actions, 0) AS beh_like_share,
    g.gap_median AS beh_gap_median_s,
    g.gap_std / nullif(g.gap_mean, 0) AS beh_gap_cv,
    (g.gap_std - g.gap_mean) / nullif(g.gap_std + g.gap_mean, 0) AS beh_burstiness,
    hs.hour_entropy AS beh_hour_entropy,
    p.busiest_hour / nullif(c.n_actions, 0) AS beh_busiest_hour_share,
    p.busiest_minute / nullif(c.n_actions, 0) AS beh_busiest_minute_share,
    coalesce(c.active_days, 0) AS beh_active_days,
    date_diff('second', a.created_at, c.first_ts) / 86400.0 AS beh_first_action_delay_days,
    coalesce(c.n_like, 0) / nullif(c.active_days, 0) AS beh_likes_per_active_day,
    y.young_share AS beh_young_target_like_share,
    nt.night_share AS beh_night_share
FROM acc a
LEFT JOIN counts c USING (account_id)
LEFT JOIN gap_stats g USING (account_id)
LEFT JOIN hour_stats hs USING (account_id)
LEFT JOIN peaks p USING (account_id)
LEFT JOIN young y USING (account_id)
LEFT JOIN night nt USING (account_id)
ORDER BY a.account_id
