-- rate_ statistics: one row per account, from the ratings up to $ref (docs/features.md#rate_).
-- A rating is an engagement with a value (any kind, typically `rate`; its weight is not a count).
-- Given side: the account as rater, on any target. Received side: the account as the target of
-- ratings whose target_type is 'account'. Tables: accounts, engagements (with value). Parameter: $ref.
-- Means and deviations go through lists sorted by value (list_avg, list_stddev_pop): each is
-- added in one fixed order, so the same input gives the same bytes whatever the thread order,
-- and Spark adds in the same order (pipeline/spark/sql.py).

-- t: seconds since 1970 (UTC), as in behaviour.sql
CREATE OR REPLACE TEMP TABLE rate_ev AS
SELECT actor_id AS rater, target_type::VARCHAR AS target_type, target_id, value, epoch(ts) AS t
FROM engagements
WHERE value IS NOT NULL AND ts <= $ref::TIMESTAMPTZ;

-- The ends of the scale seen in the data: a rating at either end is "extreme" (scale-free: a
-- 1-5 star site and a -10..10 trust network alike)
CREATE OR REPLACE TEMP TABLE rate_scale AS
SELECT min(value) AS lo, max(value) AS hi FROM rate_ev;

CREATE OR REPLACE TEMP TABLE rate_side AS
SELECT 'given' AS side, rater AS account_id, value, t FROM rate_ev
UNION ALL
SELECT 'received' AS side, target_id AS account_id, value, t FROM rate_ev WHERE target_type = 'account';

CREATE OR REPLACE TEMP TABLE rate_lists AS
SELECT r.side, r.account_id, count(*) AS n,
       count(*) FILTER (WHERE r.value < 0) AS n_negative,
       count(*) FILTER (WHERE r.value <= s.lo OR r.value >= s.hi) AS n_extreme,
       (max(r.t) - min(r.t)) / CAST(86400 AS DOUBLE) AS span_days,
       list(r.value ORDER BY r.value) AS vs,
       list(r.t ORDER BY r.t) AS ts
FROM rate_side r CROSS JOIN rate_scale s
GROUP BY r.side, r.account_id;

-- gaps between consecutive ratings, for the burstiness (as beh_burstiness)
CREATE OR REPLACE TEMP TABLE rate_stats AS
SELECT side, account_id, n, n_negative / n AS negative_share, n_extreme / n AS extreme_share, span_days,
       list_avg(vs) AS mean, list_stddev_pop(vs) AS std,
       CASE WHEN array_length(d) > 0 THEN list_avg(d) END AS gap_mean,
       CASE WHEN array_length(d) > 0 THEN list_stddev_pop(d) END AS gap_std
FROM (
    SELECT *, list_transform(range(1, array_length(ts)), lambda i: ts[i + 1] - ts[i]) AS d FROM rate_lists
);

-- consensus: the mean rating each target receives (every target type; a target id is only
-- unique within its type)
CREATE OR REPLACE TEMP TABLE rate_consensus AS
SELECT target_type, target_id, list_avg(vs) AS consensus
FROM (SELECT target_type, target_id, list(value ORDER BY value) AS vs FROM rate_ev GROUP BY target_type, target_id);

CREATE OR REPLACE TEMP TABLE rate_deviation AS
SELECT rater, list_avg(ds) AS deviation, list_avg(abs_ds) AS abs_deviation
FROM (
    SELECT rater, list(d ORDER BY d) AS ds, list(abs_d ORDER BY abs_d) AS abs_ds
    FROM (
        SELECT e.rater, e.value - c.consensus AS d, abs(e.value - c.consensus) AS abs_d
        FROM rate_ev e JOIN rate_consensus c ON c.target_type = e.target_type AND c.target_id = e.target_id
    )
    GROUP BY rater
);

-- Reciprocity over distinct rated accounts (a rating of itself is no pair); a pair's value is
-- the mean of its ratings in that direction.
CREATE OR REPLACE TEMP TABLE rate_pairs AS
SELECT rater, ratee, list_avg(vs) AS v
FROM (
    SELECT rater, target_id AS ratee, list(value ORDER BY value) AS vs
    FROM rate_ev WHERE target_type = 'account' AND rater <> target_id
    GROUP BY rater, target_id
);

CREATE OR REPLACE TEMP TABLE rate_reciprocity AS
SELECT p.rater, count(*) AS rated, count(b.rater) AS rated_back
FROM rate_pairs p LEFT JOIN rate_pairs b ON b.rater = p.ratee AND b.ratee = p.rater
GROUP BY p.rater;

CREATE OR REPLACE TEMP TABLE rate_reciprocal_gap AS
SELECT rater, list_avg(gaps) AS gap
FROM (
    SELECT rater, list(gap ORDER BY gap) AS gaps
    FROM (
        SELECT p.rater, abs(p.v - b.v) AS gap
        FROM rate_pairs p JOIN rate_pairs b ON b.rater = p.ratee AND b.ratee = p.rater
    )
    GROUP BY rater
);

SELECT
    a.account_id,
    coalesce(g.n, 0) AS rate_given_n,
    g.mean AS rate_given_mean,
    g.std AS rate_given_std,
    g.negative_share AS rate_given_negative_share,
    g.extreme_share AS rate_given_extreme_share,
    g.span_days AS rate_given_span_days,
    (g.gap_std - g.gap_mean) / nullif(g.gap_std + g.gap_mean, 0) AS rate_given_burstiness,
    coalesce(r.n, 0) AS rate_received_n,
    r.mean AS rate_received_mean,
    r.std AS rate_received_std,
    r.negative_share AS rate_received_negative_share,
    r.extreme_share AS rate_received_extreme_share,
    r.span_days AS rate_received_span_days,
    (r.gap_std - r.gap_mean) / nullif(r.gap_std + r.gap_mean, 0) AS rate_received_burstiness,
    rc.rated_back / rc.rated AS rate_reciprocity,
    rg.gap AS rate_reciprocal_gap,
    d.deviation AS rate_deviation,
    d.abs_deviation AS rate_abs_deviation
FROM accounts a
LEFT JOIN rate_stats g ON g.side = 'given' AND g.account_id = a.account_id
LEFT JOIN rate_stats r ON r.side = 'received' AND r.account_id = a.account_id
LEFT JOIN rate_reciprocity rc ON rc.rater = a.account_id
LEFT JOIN rate_reciprocal_gap rg ON rg.rater = a.account_id
LEFT JOIN rate_deviation d ON d.rater = a.account_id
ORDER BY a.account_id
