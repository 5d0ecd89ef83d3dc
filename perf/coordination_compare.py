"""Compare `zombiescan coordination` with coordination-network-toolkit on the same likes: time and
peak memory of each, agreement of their edge and node sets, node precision/recall against the farm labels.

    python -m perf.coordination_compare --db data/interim/warehouse --window 60 --min-weight 2 --out /tmp/cc
    python -m perf.run --presets default default@24000 --stages simulate ingest coordination_compare

The toolkit (pinned in perf/requirements-toolkit.txt) lives in its own venv, perf/.toolkit-venv, never
among ZombieScan's dependencies; make it with the two commands at the top of that file.

What the toolkit computes (coordination_network_toolkit 1.5.2; file and function named so every
difference below can be traced):

- It has no co-like network. A like is fed to it as a repost: its own like reader
  (`preprocess.py: preprocess_twitter_v2_likes_retweets`) writes one `edge` row per like with
  message_id `{liked item}_{liker}`, user_id the liker, repost_id the liked item, and says the only
  network for such data is `co_retweet`. `write_likes_csv` writes the same rows as the CSV that
  `preprocess.py: preprocess_csv_files` reads (message_id, user_id, username, repost_id, reply_id,
  message, timestamp, urls; header row; timestamp in seconds, parsed with float()).
- Ingest (`preprocess.py: preprocess_data`, `database.py: initialise_db`): `insert or ignore` into
  the SQLite table `edge` keyed by message_id, so a second like of one item by one account is
  dropped (the first row in file order stays; the CSV is sorted by time, so it is the earliest).
- Network (`compute_networks.py: compute_co_retweet_parallel`, run per batch of users by
  `parallise_query_by_user_id` / `_run_query` in a process pool of `--n_cpus`): a self-join of
  `edge` on the same repost_id (the same item) with `e_2.timestamp between e_1.timestamp - w and
  e_1.timestamp + w` (inclusive at both ends); weight = `count(distinct e_1.message_id)`, i.e. the
  number of user_1's likes that have a like of user_2 on the same item within w; kept when weight
  >= min_edge_weight. With one like per (account, item) that is the number of distinct items the two
  liked within w of each other: ZombieScan's `shared_targets`. Every user is user_1 in some batch,
  so both directions are stored; user_1 = user_2 is joined too (each like with itself) and stored as
  a self-loop, which the export drops (`graph.py: get_edge_rows`, `where user_1 != user_2`). Users
  with fewer than min_edge_weight likes are skipped up front (a pruning that changes no edge). There
  is no cap on popular items: every item, however many likers, contributes.
- Export: `output.py: output_gephi_csv` writes source,target,weight,edge_type. Its command-line path
  (`compute ... --output_file F --output_format csv` and `export_network F co_retweet --output_format
  csv`) fails in 1.5.2 (`write_output` passes n_messages, which `output_gephi_csv` does not take), so
  this script calls `output_gephi_csv` itself, in the toolkit's venv.

Memory, sampled from /proc every 50 ms while a tool runs: the largest single process's peak RSS
(VmHWM, what perf.run's ru_maxrss is for one process) and, since the toolkit forks a process pool,
the peak of the summed PSS of the whole process tree (the column to compare).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
TOOLKIT_VENV = ROOT / "perf" / ".toolkit-venv"
TOOLKIT_REQUIREMENTS = ROOT / "perf" / "requirements-toolkit.txt"
# likes only, as the toolkit sees them; edges.csv and nodes.csv only, as the toolkit writes one CSV;
# no lockstep groups (a node attribute the toolkit has no counterpart for: the same work on both sides;
# the row `zombiescan_with_lockstep` measures the command with them, as it runs by default)
ZOMBIESCAN_ARGS = ["--kinds", "like", "--format", "csv", "--overwrite"]
LIKE_FOR_LIKE = ["--lockstep-groups", "none"]


@dataclass
class Measured:
    """One command's cost: wall seconds, the largest process's peak RSS, the tree's peak PSS."""

    seconds: float
    max_process_mib: float
    tree_mib: float


def _children(pid: int) -> set[int]:
    """`pid` and every process descended from it, from /proc."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, grew = {pid}, True
    while grew:
        new = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= new
        grew = bool(new)
    return tree


def _tree_memory_kib(pid: int, hwm: dict[int, int]) -> int:
    """Summed proportional set size of a process tree (shared pages split among the processes
    sharing them, so forked workers are not counted twice); records each process's VmHWM in `hwm`."""
    total = 0
    for p in _children(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm[p] = max(hwm.get(p, 0), int(line.split()[1]))
                    break
        except OSError:
            continue
    return total


def measure(cmd: list[str], log: Path) -> Measured:
    """Run `cmd` (its output to `log`), fail if it fails, and return its cost.

    The largest process's peak is its VmHWM sampled from /proc, not wait4's ru_maxrss: Linux
    carries the RSS of the forking parent (this process, with DuckDB and Polars loaded) across
    exec into the child's ru_maxrss, which would charge each tool ~300 MiB it never used.
    """
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        peak, hwm = 0, {}  # type: ignore[var-annotated]
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_memory_kib(proc.pid, hwm))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"coordination_compare: `{' '.join(cmd)}` exited {proc.returncode}; its output is in {log}")
    return Measured(seconds, max(hwm.values(), default=0) / 1024, peak / 1024)


def _median(runs: list[Measured]) -> Measured:
    """Medians of repeated runs, field by field."""
    import statistics

    return Measured(*(statistics.median(getattr(r, f) for r in runs) for f in ("seconds", "max_process_mib", "tree_mib")))


def _sum(parts: list[Measured]) -> Measured:
    """Steps run one after another: seconds add up, peaks are the largest step's."""
    return Measured(sum(p.seconds for p in parts), max(p.max_process_mib for p in parts), max(p.tree_mib for p in parts))


def write_likes_csv(db: Path, path: Path) -> dict[str, int]:
    """The warehouse's likes as the toolkit's CSV input (one row per like, sorted by time; see the
    module docstring for the mapping). Returns row counts, the repeats the toolkit will drop among them."""
    from pipeline.warehouse import connect

    con = connect(db)
    try:
        whole = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE epoch_us(ts) % 1000000 <> 0), count(DISTINCT (actor_id, target_id)) "
            "FROM engagements WHERE kind = 'like'"
        ).fetchone()
        assert whole is not None
        likes, fractional, pairs = whole
        # Whole seconds are written as integers, as the toolkit's docs ask; sub-second times as
        # floats (preprocess_data parses with float()), so the window means the same to both tools.
        seconds = "epoch(ts)::BIGINT" if fractional == 0 else "epoch_us(ts) / 1e6"
        con.execute(
            f"""COPY (
                SELECT target_id || '_' || actor_id AS message_id, actor_id AS user_id, '' AS username,
                       target_id AS repost_id, '' AS reply_id, '' AS message, {seconds} AS timestamp, '' AS urls
                FROM engagements WHERE kind = 'like' ORDER BY ts, actor_id, target_id
            ) TO '{path}' (HEADER, DELIMITER ',')"""  # COPY TO takes no bound path; perf writes it
        )
        engagements = con.execute("SELECT count(*) FROM engagements").fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    return {"engagements": engagements, "likes": likes, "repeat_likes_dropped_by_toolkit": likes - pairs, "subsecond_times": fractional}


def toolkit_python() -> Path:
    python = TOOLKIT_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(
            f"coordination_compare: no toolkit venv at {TOOLKIT_VENV}; make it with\n"
            f"  python3.11 -m venv {TOOLKIT_VENV} && {TOOLKIT_VENV}/bin/pip install -r {TOOLKIT_REQUIREMENTS}"
        )
    return python


def run_toolkit(csv: Path, out: Path, window: int, min_weight: int, log: Path) -> dict[str, Measured]:
    """coordination-network-toolkit on `csv`: preprocess into SQLite, co_retweet network, edges CSV."""
    python = str(toolkit_python())
    db = out / "toolkit.db"
    for stale in out.glob("toolkit.db*"):
        stale.unlink()
    base = [python, "-m", "coordination_network_toolkit", str(db)]
    compute = ["compute", "co_retweet", "--time_window", str(window), "--min_edge_weight", str(min_weight), "--n_cpus", str(os.cpu_count())]
    export = "import sys; from coordination_network_toolkit.output import output_gephi_csv as f; f(sys.argv[1], 'co_retweet', sys.argv[2])"
    return {
        "preprocess": measure([*base, "preprocess", "--format", "csv", str(csv)], log),
        "compute": measure([*base, *compute], log),
        "export": measure([python, "-c", export, str(db), str(out / "toolkit_edges.csv")], log),
    }


def run_zombiescan(db: Path, folder: Path, window: int, min_weight: int, extra: list[str], log: Path) -> Measured:
    """`zombiescan coordination` (this venv's command) on the warehouse, likes only, into `folder`."""
    exe = Path(sys.executable).parent / "zombiescan"
    if not exe.exists():
        raise SystemExit(f"coordination_compare: no {exe}; install ZombieScan in this venv (make venv)")
    args = [str(exe), "coordination", "--db", str(db), "--out", str(folder), "--window", f"{window}s"]
    args += ["--min-repeats", str(min_weight), *ZOMBIESCAN_ARGS, *extra]
    return measure(args, log)


# The library limit for the same network: DuckDB alone (one process importing duckdb only) reads
# the likes, joins each window-wide cell of an item with itself and the next, keeps the pairs on
# >= min_weight items and writes source,target,weight. No evidence, flags, groups or node table.
BARE_NETWORK = """
import sys, duckdb
db, w, m, out, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
con = duckdb.connect(config={"memory_limit": limit} if limit else {})
con.execute("ATTACH ? AS wh (READ_ONLY)", [db])
con.execute("CREATE TEMP TABLE c AS SELECT DISTINCT actor_id AS a, target_id AS g, epoch(ts)::BIGINT AS t, epoch(ts)::BIGINT // $w AS c "
            "FROM wh.engagements WHERE kind = 'like'", {"w": w})
con.execute(f\"\"\"COPY (
    SELECT least(xa, ya) AS source, greatest(xa, ya) AS target, count(DISTINCT g) AS weight FROM (
        SELECT x.a AS xa, y.a AS ya, x.g FROM c x JOIN c y ON x.g = y.g AND x.c = y.c AND x.a < y.a WHERE abs(x.t - y.t) <= {w}
        UNION ALL
        SELECT x.a, y.a, x.g FROM c x JOIN c y ON x.g = y.g AND x.c + 1 = y.c AND x.a <> y.a WHERE abs(x.t - y.t) <= {w}
    ) GROUP BY ALL HAVING count(DISTINCT g) >= {m}
) TO '{out}' (HEADER)\"\"\")
"""


def run_bare(db: Path, out: Path, window: int, min_weight: int, memory_limit: str, log: Path) -> Measured:
    """BARE_NETWORK on the warehouse (a .duckdb file): the join's own cost, the floor for the command."""
    args = [str(db), str(window), str(min_weight), str(out / "bare_edges.csv"), memory_limit]
    return measure([sys.executable, "-c", BARE_NETWORK, *args], log)


def _pairs(edges: pl.DataFrame, weight: str) -> pl.DataFrame:
    """Undirected pairs (a < b) of a directed or undirected edge list, self-loops dropped, with the weight."""
    a, b = pl.col("source"), pl.col("target")
    return (
        edges.filter(a != b)
        .select(pl.min_horizontal(a, b).alias("a"), pl.max_horizontal(a, b).alias("b"), pl.col(weight).cast(pl.Int64).alias("w"))
        .unique(["a", "b"], keep="first")
    )


def read_toolkit_edges(path: Path) -> tuple[pl.DataFrame, int]:
    """The toolkit's edges as undirected pairs, and how many of its directed rows lack an equal reverse."""
    edges = pl.read_csv(path, infer_schema=False)
    rev = edges.select(pl.col("target").alias("source"), pl.col("source").alias("target"), pl.col("weight").alias("rweight"))
    joined = edges.join(rev, on=["source", "target"], how="left")
    asymmetric = joined.filter(pl.col("rweight").is_null() | (pl.col("rweight") != pl.col("weight"))).height
    return _pairs(edges, "weight"), asymmetric


def read_zombiescan_edges(folder: Path) -> pl.DataFrame:
    edges = pl.read_csv(folder / "edges.csv", infer_schema=False)
    return _pairs(edges, "shared_targets")


def _jaccard(x: set[object], y: set[object]) -> float:
    return len(x & y) / len(x | y) if x | y else 1.0


def _farm_accounts(db: Path) -> set[str] | None:
    """Accounts labelled is_like_farm in the warehouse; None when it has no labels."""
    from pipeline.warehouse import connect

    con = connect(db)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "labels" not in tables:
            return None
        return {r[0] for r in con.execute("SELECT account_id FROM labels WHERE is_like_farm").fetchall()}
    finally:
        con.close()


def explain(db: Path, diff: pl.DataFrame, window: int, cap: int) -> pl.DataFrame:
    """Recount the weight of each pair the tools disagree on (columns a, b, side, toolkit_w,
    zombiescan_w) from the likes, by each tool's definition:

    - `shared_in_window`: distinct items both liked within `window` seconds of each other, every
      distinct (account, item, second) like counted, no cap: the definition the two share;
    - `shared_first_likes`: the same from each account's first like of an item only (the toolkit
      keeps one row per message_id `{item}_{account}`): the toolkit's weight;
    - `shared_outside_hub_cells`: the same without the likes in hub cells (an item's likes in one
      `window`-wide slice of time, t // window, more than `cap` of them): ZombieScan's weight.

    `largest_cell` is the biggest cell of the pair's co-likes."""
    from pipeline.warehouse import connect

    con = connect(db)
    try:
        con.register("diff", diff.to_arrow())
        return con.sql(
            """
            WITH acts AS (SELECT DISTINCT actor_id, target_id, epoch(ts)::BIGINT AS t FROM engagements WHERE kind = 'like'),
            cells AS (SELECT target_id, t // $w AS c, count(*) AS n FROM acts GROUP BY ALL),
            sized AS (
                SELECT acts.*, cells.n, acts.t = min(acts.t) OVER (PARTITION BY acts.actor_id, acts.target_id) AS first
                FROM acts JOIN cells ON cells.target_id = acts.target_id AND cells.c = acts.t // $w
            ),
            co AS (
                SELECT d.a, d.b, la.target_id, greatest(la.n, lb.n) AS cell, la.first AND lb.first AS first
                FROM diff d
                JOIN sized la ON la.actor_id = d.a
                JOIN sized lb ON lb.actor_id = d.b AND lb.target_id = la.target_id
                WHERE abs(la.t - lb.t) <= $w
            )
            SELECT d.*, count(DISTINCT co.target_id) AS shared_in_window,
                   count(DISTINCT co.target_id) FILTER (WHERE co.first) AS shared_first_likes,
                   count(DISTINCT co.target_id) FILTER (WHERE co.cell <= $cap) AS shared_outside_hub_cells,
                   coalesce(max(co.cell), 0) AS largest_cell
            FROM diff d LEFT JOIN co USING (a, b)
            GROUP BY ALL ORDER BY side, a, b
            """,
            params={"w": window, "cap": cap},
        ).pl()
    finally:
        con.close()


def _reason(min_weight: int, cap: int) -> pl.Expr:
    """Why a pair differs, from explain()'s recounts: each tool's weight must be its definition's
    recount (0 below min_weight); then the recounts say which definitional difference made it."""

    def kept(col: str) -> pl.Expr:
        return pl.when(pl.col(col) >= min_weight).then(pl.col(col)).otherwise(0)

    reproduced = (pl.col("toolkit_w").fill_null(0) == kept("shared_first_likes")) & (
        pl.col("zombiescan_w").fill_null(0) == kept("shared_outside_hub_cells")
    )
    hub = pl.col("shared_outside_hub_cells") != pl.col("shared_in_window")
    repeats = pl.col("shared_first_likes") != pl.col("shared_in_window")
    return (
        pl.when(~reproduced).then(pl.lit("UNEXPLAINED: a tool's weight is not its definition's recount"))
        .when(hub & repeats).then(pl.lit(f"hub cap (cells > {cap} likes) and repeat likes"))
        .when(hub).then(pl.lit(f"hub cap (cells > {cap} likes)"))
        .when(repeats).then(pl.lit("repeat likes (the toolkit keeps an account's first like of an item)"))
        .otherwise(pl.lit("UNEXPLAINED: same recounts"))
    )  # fmt: skip


def compare(toolkit: pl.DataFrame, zombiescan: pl.DataFrame, farms: set[str] | None) -> dict[str, object]:
    """Edge and node agreement of the two tools and each one's node precision/recall against `farms`."""
    t_edges = set(toolkit.select("a", "b").iter_rows())
    z_edges = set(zombiescan.select("a", "b").iter_rows())
    t_nodes = {n for e in t_edges for n in e}
    z_nodes = {n for e in z_edges for n in e}
    both = toolkit.join(zombiescan, on=["a", "b"], suffix="_z")
    out: dict[str, object] = {
        "jaccard_edges": _jaccard(t_edges, z_edges),  # type: ignore[arg-type]
        "jaccard_nodes": _jaccard(t_nodes, z_nodes),
        "common_edges": len(t_edges & z_edges),
        "toolkit_only_edges": len(t_edges - z_edges),
        "zombiescan_only_edges": len(z_edges - t_edges),
        "common_edges_same_weight": both.filter(pl.col("w") == pl.col("w_z")).height,
    }
    for name, nodes in (("toolkit", t_nodes), ("zombiescan", z_nodes)):
        out[f"{name}_edges"], out[f"{name}_nodes"] = len(t_edges if name == "toolkit" else z_edges), len(nodes)
        if farms is not None:
            hit = len(nodes & farms)
            out[f"{name}_precision"] = hit / len(nodes) if nodes else float("nan")
            out[f"{name}_recall"] = hit / len(farms) if farms else float("nan")
    return out


def run(
    db: Path,
    out: Path,
    window: int,
    min_weight: int,
    *,
    zombiescan: bool = True,
    zombiescan_args: list[str] | None = None,
    repeats: int = 1,
    bare_memory_limit: str = "",
) -> dict[str, object]:
    """Both tools on the warehouse `db`'s likes, each run `repeats` times in turn (medians of time and
    memory); the comparison as one JSON-able row."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "coordination_compare.log"
    log.write_text("")
    (out / "differences.csv").unlink(missing_ok=True)
    csv = out / "toolkit_likes.csv"
    start = time.perf_counter()
    rows = write_likes_csv(db, csv)
    convert_seconds = time.perf_counter() - start
    toolkit_runs = [run_toolkit(csv, out, window, min_weight, log) for _ in range(repeats)]
    steps = {name: _median([r[name] for r in toolkit_runs]) for name in toolkit_runs[0]}
    toolkit_total = _median([_sum(list(r.values())) for r in toolkit_runs])
    toolkit, asymmetric = read_toolkit_edges(out / "toolkit_edges.csv")
    farms = _farm_accounts(db)
    row: dict[str, object] = {
        "db": str(db), "window_s": window, "min_weight": min_weight, "rows": rows, "convert_seconds": convert_seconds,
        "csv_mib": csv.stat().st_size / 2**20, "toolkit_db_mib": sum(p.stat().st_size for p in out.glob("toolkit.db*")) / 2**20,
        "toolkit": asdict(toolkit_total), "toolkit_steps": {k: asdict(v) for k, v in steps.items()},
        "toolkit_asymmetric_rows": asymmetric, "cpus": os.cpu_count(), "repeats": repeats,
    }  # fmt: skip
    if not zombiescan:
        empty = pl.DataFrame(schema={"a": pl.String, "b": pl.String, "w": pl.Int64})
        cmp = compare(toolkit, empty, farms)
        row.update({k: v for k, v in cmp.items() if k.startswith("toolkit_")})
        return row
    extra = zombiescan_args or []
    z = _median([run_zombiescan(db, out / "zombiescan", window, min_weight, [*LIKE_FOR_LIKE, *extra], log) for _ in range(repeats)])
    row["zombiescan"] = asdict(z)
    full = _median([run_zombiescan(db, out / "zombiescan-with-lockstep", window, min_weight, extra, log) for _ in range(repeats)])
    row["zombiescan_with_lockstep"] = asdict(full)
    if db.is_file():  # the bare join reads a .duckdb warehouse
        bare = _median([run_bare(db, out, window, min_weight, bare_memory_limit, log) for _ in range(repeats)])
        row["bare_duckdb"] = {**asdict(bare), "memory_limit": bare_memory_limit or "DuckDB's default"}
        row["bare_duckdb_edges"] = pl.read_csv(out / "bare_edges.csv", infer_schema=False).height
    zs = read_zombiescan_edges(out / "zombiescan")
    row.update(compare(toolkit, zs, farms))
    both = toolkit.join(zs, on=["a", "b"], how="full", coalesce=True, suffix="_z")
    side = (
        pl.when(pl.col("w_z").is_null()).then(pl.lit("toolkit only"))
        .when(pl.col("w").is_null()).then(pl.lit("zombiescan only"))
        .otherwise(pl.lit("both, weights differ"))
    )  # fmt: skip
    diff = both.filter(pl.col("w").is_null() | pl.col("w_z").is_null() | (pl.col("w") != pl.col("w_z"))).select(
        "a", "b", side.alias("side"), pl.col("w").alias("toolkit_w"), pl.col("w_z").alias("zombiescan_w")
    )
    if diff.height:
        cap = json.loads((out / "zombiescan" / "report.json").read_text())["hub_cap"]["max_cell_actors"]
        explained = explain(db, diff, window, cap)
        explained.write_csv(out / "differences.csv")
        reason = _reason(min_weight, cap)
        row["hub_cap"] = cap
        row["differences"] = (
            explained.group_by("side", reason.alias("reason"))
            .agg(pl.len().alias("pairs"), pl.col("largest_cell").min().alias("smallest_largest_cell"))
            .sort("side", "reason")
            .to_dicts()
        )  # fmt: skip
    return row


def print_table(row: dict[str, object]) -> None:
    print(f"{row['db']}: {row['rows']}, window {row['window_s']} s, min weight {row['min_weight']}, {row['cpus']} cores, "
          f"medians of {row.get('repeats', 1)} runs")  # fmt: skip
    print(f"likes -> toolkit CSV: {row['convert_seconds']:.1f} s, {row['csv_mib']:.0f} MiB (not counted below)\n")
    print("| tool | edges | nodes | seconds | peak MiB (largest process) | peak MiB (process tree PSS) | node precision | node recall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for tool in ("toolkit", "zombiescan", "zombiescan_with_lockstep"):
        if tool not in row:
            continue
        m: dict[str, float] = row[tool]  # type: ignore[assignment]
        same = tool.split("_with")[0]  # the same network with or without the lockstep groups beside it
        p, r = row.get(f"{same}_precision", float("nan")), row.get(f"{same}_recall", float("nan"))
        size = f"{row[f'{same}_edges']:,} | {row[f'{same}_nodes']:,}"
        print(f"| {tool} | {size} | {m['seconds']:.2f} | {m['max_process_mib']:,.0f} | {m['tree_mib']:,.0f} | {p:.3f} | {r:.3f} |")
    steps: dict[str, dict[str, float]] = row["toolkit_steps"]  # type: ignore[assignment]
    print("\ntoolkit steps: " + ", ".join(f"{k} {v['seconds']:.1f} s / {v['tree_mib']:.0f} MiB" for k, v in steps.items()))
    print(f"toolkit directed rows without an equal reverse: {row['toolkit_asymmetric_rows']}; SQLite file {row['toolkit_db_mib']:.0f} MiB")
    if "zombiescan" in row:
        t, z = row["toolkit"], row["zombiescan"]
        c = steps["compute"]
        speed = f"{t['seconds'] / z['seconds']:.1f}x faster ({c['seconds'] / z['seconds']:.1f}x against its compute step alone)"  # type: ignore[index]
        print(f"zombiescan vs toolkit: {speed}, peak tree PSS {z['tree_mib'] / t['tree_mib']:.2f}x the toolkit's")  # type: ignore[index]
        if "zombiescan_with_lockstep" in row:
            f = row["zombiescan_with_lockstep"]
            print(f"with the lockstep groups computed too (the command's default): {t['seconds'] / f['seconds']:.1f}x faster")  # type: ignore[index]
        if "bare_duckdb" in row:
            b = row["bare_duckdb"]
            print(
                f"bare DuckDB join (memory limit {b['memory_limit']}): {b['seconds']:.2f} s, {b['max_process_mib']:,.0f} MiB RSS, "  # type: ignore[index]
                f"{row['bare_duckdb_edges']:,} edges; {t['seconds'] / b['seconds']:.1f}x faster than the toolkit; "  # type: ignore[index]
                f"the command takes {z['seconds'] / b['seconds']:.1f}x the bare join's time"  # type: ignore[index]
            )
        print(f"Jaccard edges {row['jaccard_edges']:.4f}, nodes {row['jaccard_nodes']:.4f}; common edges {row['common_edges']:,} "
              f"({row['common_edges_same_weight']:,} with the same weight), toolkit only {row['toolkit_only_edges']:,}, "
              f"zombiescan only {row['zombiescan_only_edges']:,}")  # fmt: skip
        for d in row.get("differences", []):  # type: ignore[attr-defined]
            print(
                f"  {d['side']}: {d['pairs']:,} pairs, {d['reason']}; each has a co-like in a cell of >= {d['smallest_largest_cell']} likes"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m perf.coordination_compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True, help="warehouse (.duckdb file or Parquet folder)")
    parser.add_argument(
        "--out", type=Path, required=True, help="working folder: toolkit CSV and SQLite, both tools' edges, differences.csv"
    )
    parser.add_argument("--window", type=int, default=60, help="seconds; both tools' window (inclusive)")
    parser.add_argument("--min-weight", type=int, default=2, help="toolkit --min_edge_weight = zombiescan --min-repeats")
    parser.add_argument("--toolkit-only", action="store_true", help="skip `zombiescan coordination` (the toolkit's numbers alone)")
    parser.add_argument("--zombiescan-args", nargs=argparse.REMAINDER, default=[], help="further arguments for `zombiescan coordination`")
    parser.add_argument("--repeats", type=int, default=1, help="run each tool this many times (in turn); medians are reported")
    parser.add_argument("--bare-memory-limit", default="", help="DuckDB memory_limit of the bare join (default: DuckDB's)")
    parser.add_argument("--results", type=Path, default=None, help="append the JSON row here (default: OUT/results.jsonl)")
    args = parser.parse_args(argv)
    row = run(
        args.db,
        args.out,
        args.window,
        args.min_weight,
        zombiescan=not args.toolkit_only,
        zombiescan_args=args.zombiescan_args,
        repeats=args.repeats,
        bare_memory_limit=args.bare_memory_limit,
    )
    row["machine"] = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    row["command"] = "python -m perf.coordination_compare " + " ".join(sys.argv[1:] if argv is None else argv)
    print_table(row)
    with (args.results or args.out / "results.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
