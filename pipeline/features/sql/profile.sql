-- profile_ features: one row per account, from the accounts table alone (docs/features.md).
-- Parameter $ref: the reference time. Plain SQL over contract columns, in DuckDB's dialect and
-- written so that sqlglot transpiles it to Spark SQL with the same values (pipeline.spark): fractions
-- are DOUBLE (a literal like 1.0 is a DECIMAL in Spark), characters are taken by position.
WITH base AS (
    SELECT
        account_id,
        created_at,
        coalesce(username, '') AS username,
        coalesce(display_name, '') AS display_name,
        bio, url, has_profile_photo, is_verified,
        followers_count, following_count, posts_count,
        -- null where the creation time is unknown (greatest() would skip the null and give 0)
        CASE WHEN created_at IS NOT NULL
             THEN greatest(date_diff('second', created_at, $ref::TIMESTAMPTZ) / CAST(86400 AS DOUBLE), CAST(0 AS DOUBLE)) END AS age_days
    FROM accounts
    WHERE created_at IS NULL OR created_at <= $ref::TIMESTAMPTZ
),
entropy AS (
    -- the count of each character of the username (string_split by '': one per code point, as
    -- length counts them), each term rounded to an exact decimal and the terms summed in decimals:
    -- the same value whatever their order (Spark lists the counts in another order) and from run
    -- to run. The lambdas capture only the integer n: a lambda that captures a text column copies
    -- it for every element (a 2M-character username ran for minutes)
    SELECT account_id,
           -CAST(list_reduce(
               list_transform(map_values(list_histogram(chars)), lambda c: CAST((c / n) * log2(c / n) AS DECIMAL(20, 12))),
               lambda acc, x: CAST(acc + x AS DECIMAL(20, 12)),
               CAST(0 AS DECIMAL(20, 12))) AS DOUBLE) AS e
    FROM (SELECT account_id, string_split(username, '') AS chars, length(username) AS n FROM base WHERE length(username) > 0)
),
names AS (
    SELECT account_id,
           lower(regexp_replace(username, '[^A-Za-z0-9]', '', 'g')) AS u,
           lower(regexp_replace(display_name, '[^A-Za-z0-9]', '', 'g')) AS d
    FROM base
)
SELECT
    b.account_id,
    b.age_days AS profile_age_days,
    CAST(length(b.username) AS BIGINT) AS profile_username_len,  -- BIGINT on both engines (Spark: INT)
    CASE WHEN length(b.username) > 0
         THEN length(regexp_replace(b.username, '[^0-9]', '', 'g')) / length(b.username) END AS profile_username_digit_share,
    coalesce(e.e, 0.0) AS profile_username_entropy,
    CAST(length(regexp_extract(b.username, '[0-9]+$')) AS BIGINT) AS profile_username_trailing_digits,
    CASE WHEN greatest(length(n.u), length(n.d)) > 0
         THEN 1.0 - levenshtein(n.u, n.d) / greatest(length(n.u), length(n.d)) END AS profile_name_similarity,
    CAST(NOT b.has_profile_photo AS INTEGER) AS profile_default_photo,
    CAST(coalesce(length(b.bio), 0) AS BIGINT) AS profile_bio_len,
    CAST(b.url IS NOT NULL AS INTEGER) AS profile_has_url,
    ln(1 + b.followers_count::DOUBLE) AS profile_followers_log,
    ln(1 + b.following_count::DOUBLE) AS profile_following_log,
    ln(1 + b.following_count::DOUBLE) - ln(1 + b.followers_count::DOUBLE) AS profile_follow_ratio_log,
    CASE WHEN b.age_days IS NOT NULL THEN b.posts_count / greatest(b.age_days, 1.0) END AS profile_posts_per_day,
    CAST(b.is_verified AS INTEGER) AS profile_verified
FROM base b
LEFT JOIN entropy e USING (account_id)
LEFT JOIN names n USING (account_id)
ORDER BY b.account_id
