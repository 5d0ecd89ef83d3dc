"""The library limit of each step of `zombiescan score`: the same work done bare, by the library alone.

`python -m perf.run --presets large --stages score_cli limits --repeats 3 --work DIR` times both in
one run and prints each step's seconds beside its limit's. A limit is what the library takes for
the core of the step written the shortest way, on the same Parquet files, in a fresh process with
DuckDB's default settings: no checks, no error messages, no features beyond the core ones. A ratio
near 1 means the step is as fast as its library allows; far above, the step does work it need
not (or more work than its limit, which the table's "what" says).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

# step of `zombiescan score` (its JSON summary's `steps`) -> what its limit does
WHAT = {
    "validating and loading the input": "Parquet -> DuckDB: every column of accounts, engagements and targets read once into "
    "DuckDB tables (no checks)",
    "features: profile": "one DuckDB pass over the accounts Parquet computing the same profile features per row (username "
    "entropy from each name's character histogram, Levenshtein name distance, digit shares, logs, age)",
    "features: behaviour": "one DuckDB group-by per account over the engagements: count, distinct targets, gap median/mean/std "
    "(each account's sorted times), hour-of-day entropy",
    "features: lockstep": "the bucketed self-join: likes in (target, hour) cells of 3 to 1,000 accounts, every two accounts of a "
    "cell, the pairs on >= 3 distinct targets (one grid, one window; ids as integers)",
    "features: graph": "igraph: the follow graph read from Parquet (ids numbered in DuckDB), degrees, PageRank, k-core, local "
    "clustering; DuckDB: each account's targets' popularity (mean, median, max, min, small-target share). Not in it: the step's "
    "reciprocity, 1- and 2-hop neighbour means and co-engager means of other families' features",
    "scoring": "LightGBM Booster.predict of both models on the same feature matrices (every account)",
    "scoring: reasons": "LightGBM pred_contrib on the same flagged rows (the step computes the same values by TreeSHAP)",
    "pages": "DuckDB: the step's own query (the same SQL text) on the bare Parquet files; its core alone (likes per target "
    "with the flagged like sellers joined in, one group-by) is in the limits row's note",
}
# no library does the step's work: FRAUDAR-style greedy peeling has no package on the registry
NO_LIMIT = {"features: dense_block": "no library implements FRAUDAR's greedy peeling (no package on the registry)"}


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # no bar drawn on the log
    return con


def validation(src: Path) -> float:
    con = _con()

    def run() -> None:
        for table in ("accounts", "engagements", "targets"):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet('{src / table}.parquet')")

    try:
        return _timed(run)
    finally:
        con.close()


def profile(src: Path) -> float:
    con = _con()
    age = "date_diff('second', created_at, TIMESTAMPTZ '2026-01-01') / 86400.0"
    letters = "lower(regexp_replace({}, '[^A-Za-z0-9]', '', 'g'))"
    try:
        return _timed(
            lambda: con.execute(
                f"""
                CREATE TABLE p AS
                SELECT account_id, {age} AS age, length(username) AS n,
                       length(regexp_replace(username, '[^0-9]', '', 'g')) / length(username) AS digit_share,
                       length(regexp_extract(username, '[0-9]+$')) AS trailing_digits,
                       list_sum(list_transform(map_values(list_histogram(string_split(username, ''))),
                                               lambda c: -(c / length(username)) * log2(c / length(username)))) AS entropy,
                       levenshtein({letters.format("username")}, {letters.format("coalesce(display_name, '')")}) AS name_distance,
                       length(bio) AS bio_len, url IS NOT NULL AS has_url, ln(1 + followers_count) AS followers,
                       ln(1 + following_count) AS following, posts_count / greatest({age}, 1) AS posts_per_day,
                       has_profile_photo, is_verified
                FROM read_parquet('{src / "accounts.parquet"}')
                """
            )
        )
    finally:
        con.close()


def behaviour(src: Path) -> float:
    con = _con()

    def run() -> None:
        con.execute(
            f"""
            CREATE TABLE per AS
            SELECT actor_id, count(*) AS n, count(DISTINCT target_id) AS distinct_targets, list(epoch(ts) ORDER BY ts) AS t
            FROM read_parquet('{src / "engagements.parquet"}') GROUP BY actor_id
            """
        )
        con.execute(
            """
            CREATE TABLE gaps AS
            SELECT actor_id, list_median(d) AS median, list_avg(d) AS mean, list_stddev_pop(d) AS std
            FROM (SELECT actor_id, list_transform(range(1, len(t)), lambda i: t[i + 1] - t[i]) AS d FROM per)
            """
        )
        con.execute(
            f"""
            CREATE TABLE entropy AS
            SELECT actor_id, -sum(n / total * log2(n / total)) AS hour_entropy
            FROM (SELECT *, sum(n) OVER (PARTITION BY actor_id) AS total
                  FROM (SELECT actor_id, hour(ts) AS h, count(*) AS n FROM read_parquet('{src / "engagements.parquet"}') GROUP BY ALL))
            GROUP BY actor_id
            """
        )

    try:
        return _timed(run)
    finally:
        con.close()


def lockstep(src: Path) -> tuple[float, int]:
    con = _con()

    def run() -> None:
        con.execute(
            f"""
            CREATE TABLE likes AS
            SELECT dense_rank() OVER (ORDER BY actor_id) AS a, dense_rank() OVER (ORDER BY target_id) AS g, epoch(ts)::BIGINT // 3600 AS b
            FROM read_parquet('{src / "engagements.parquet"}') WHERE kind = 'like'
            """
        )
        con.execute("CREATE TABLE cells AS SELECT g, b FROM likes GROUP BY ALL HAVING count(*) BETWEEN 3 AND 1000")
        con.execute(
            """
            CREATE TABLE pairs AS
            SELECT x.a AS u, y.a AS v, count(DISTINCT x.g) AS common
            FROM (SELECT * FROM likes SEMI JOIN cells USING (g, b)) x JOIN likes y ON x.g = y.g AND x.b = y.b AND x.a < y.a
            GROUP BY ALL HAVING count(DISTINCT x.g) >= 3
            """
        )

    try:
        seconds = _timed(run)
        return seconds, int(con.execute("SELECT count(*) FROM pairs").fetchall()[0][0])
    finally:
        con.close()


def graph(src: Path) -> float:
    import igraph as ig

    con = _con()

    def run() -> None:
        n = con.execute(f"SELECT count(*) FROM read_parquet('{src / 'accounts.parquet'}')").fetchall()[0][0]
        edges = con.execute(
            f"""
            WITH ix AS (SELECT account_id, row_number() OVER () - 1 AS i FROM read_parquet('{src / "accounts.parquet"}'))
            SELECT s.i AS src, d.i AS dst
            FROM read_parquet('{src / "engagements.parquet"}') e
            JOIN ix s ON s.account_id = e.actor_id JOIN ix d ON d.account_id = e.target_id
            WHERE e.kind = 'follow' AND e.target_type = 'account'
            """
        ).fetchnumpy()
        g = ig.Graph(n=n, edges=np.column_stack([edges["src"], edges["dst"]]), directed=True)
        g.indegree(), g.outdegree(), g.pagerank()
        undirected = g.as_undirected(mode="collapse")
        undirected.coreness(), undirected.transitivity_local_undirected(mode="zero")
        # the bipartite half: how popular each account's targets are (one group-by per side)
        con.execute(
            f"""
            CREATE TABLE popularity AS
            WITH bp AS (SELECT actor_id, target_id FROM read_parquet('{src / "engagements.parquet"}') GROUP BY ALL),
                 deg AS (SELECT target_id, count(*) AS degree FROM bp GROUP BY 1)
            SELECT actor_id, avg(ln(1 + degree)) AS mean, median(ln(1 + degree)) AS median, max(degree) AS top, min(degree) AS bottom,
                   avg((degree <= 5)::DOUBLE) AS small_share
            FROM bp JOIN deg USING (target_id) GROUP BY actor_id
            """
        )

    try:
        return _timed(run)
    finally:
        con.close()


def models(features: Path, scores: Path, model_dir: Path) -> tuple[float, float, int]:
    """Seconds of Booster.predict (both tasks, every row) and of pred_contrib (the flagged rows), and the flagged count."""
    import polars as pl

    from pipeline.models.train import to_matrix
    from pipeline.scoring import load_models

    loaded, _ = load_models(model_dir)
    frame = pl.read_parquet(features).sort("account_id")
    flags = pl.read_parquet(scores).sort("account_id")
    if flags["account_id"].to_list() != frame["account_id"].to_list():
        raise SystemExit(f"{features} and {scores}: not the same accounts; run score_cli and limits on one world")
    predict = contrib = 0.0
    flagged = 0
    for task, model in loaded.items():
        booster = model.booster
        assert booster is not None
        x = to_matrix(frame, model.features)
        predict += _timed(lambda: booster.predict(x))  # noqa: B023 (called at once)
        rows = x[flags[f"flagged_{task}"].to_numpy()]
        flagged += len(rows)
        contrib += _timed(lambda: booster.predict(rows, pred_contrib=True))  # noqa: B023
    return predict, contrib, flagged


def pages(src: Path, scores: Path) -> tuple[float, float]:
    """The pages report's query (pipeline/scoring/pages.py's PAGES_SQL, the same text) bare on the
    Parquet files, and its core alone: likes per target with the flagged like sellers joined in."""
    from pipeline.scoring.pages import PAGES_SQL

    con = _con()
    engagements = f"read_parquet('{src / 'engagements.parquet'}')"
    weight = "weight" if "weight" in [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {engagements}").fetchall()] else "1 AS weight"
    con.execute(f"CREATE VIEW engagements AS SELECT actor_id, target_id, target_type, kind, ts, {weight} FROM {engagements}")
    con.execute(f"CREATE VIEW scores_in AS SELECT account_id, flagged_like_farm AS farm, lockstep_group FROM read_parquet('{scores}')")

    def same() -> None:
        con.execute("CREATE TABLE pages AS " + PAGES_SQL, {"until": None})

    def core() -> None:
        con.execute(
            """
            CREATE TABLE pages_core AS
            SELECT e.target_id, count(*) FILTER (WHERE s.farm) AS farm_likes, count(*) AS all_likes
            FROM engagements e JOIN scores_in s ON s.account_id = e.actor_id
            WHERE e.kind = 'like' GROUP BY e.target_id
            """
        )

    try:
        return _timed(same), _timed(core)
    finally:
        con.close()


def measure(src: Path, features: Path, scores: Path, model_dir: Path) -> dict[str, Any]:
    """Every step's limit, in seconds, keyed by the step's name in `zombiescan score`'s summary."""
    seconds: dict[str, float] = {}
    seconds["validating and loading the input"] = validation(src)
    seconds["features: profile"] = profile(src)
    seconds["features: behaviour"] = behaviour(src)
    seconds["features: lockstep"], pairs = lockstep(src)
    seconds["features: graph"] = graph(src)
    seconds["scoring"], seconds["scoring: reasons"], flagged = models(features, scores, model_dir)
    seconds["pages"], pages_core = pages(src, scores)
    return {"seconds": seconds, "lockstep_pairs": pairs, "flagged": flagged, "pages_core": pages_core}


def ratio_table(steps: dict[str, float], limits: dict[str, float]) -> list[str]:
    """Markdown rows: step, its seconds, its limit's, the ratio, what the limit does."""
    rows = ["| step | seconds | library limit (s) | ratio | the limit |", "|---|---:|---:|---:|---|"]
    for step, seconds in steps.items():
        if step in limits:
            rows.append(f"| {step} | {seconds:.1f} | {limits[step]:.1f} | {seconds / max(limits[step], 1e-9):.2f}x | {WHAT[step]} |")
        else:
            rows.append(f"| {step} | {seconds:.1f} | | | {NO_LIMIT.get(step, '')} |")
    return rows
