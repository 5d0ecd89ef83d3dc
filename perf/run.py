"""Benchmark the pipeline's stages on named sizes; print a Markdown table of time and peak memory.

Each (stage, preset) runs in a fresh Python process so its peak RSS is its own. Stages run in
pipeline order on the same working folder, so `ingest` loads what `simulate` just wrote.

    python -m perf.run                          # simulate, ingest, index at default and large
    python -m perf.run --presets tiny --stages simulate
    python -m perf.run --presets default --stages realdata   # the real-data benchmark (tiny: its --fast subset)
    python -m perf.run --presets large@250000 large@500000 large \
        --stages simulate features_cli spark_features score_cli spark_score   # both engines' cost growth
    python -m perf.run --presets default default@24000 --stages simulate ingest coordination_compare
        # `zombiescan coordination` against coordination-network-toolkit (perf/coordination_compare.py)
    python -m perf.run --presets large --stages score_cli limits --repeats 3 --work DIR
        # each step of `zombiescan score` beside its library limit, measured in the same run (perf/limits.py)

A preset `NAME@N` is preset NAME resized to N accounts (farms and communities scale with it).
With three or more sizes of one stage, the table is followed by the exponent of a log-log fit of
its time against the number of engagements (1.0: linear).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = (
    "simulate", "ingest", "index", "ingest_csv", "featurize", "graphlib", "realdata", "score", "score_cli", "score_cli_2gb", "limits",
    "features_cli", "spark_features", "spark_score", "coordination_compare",
)  # fmt: skip
DEFAULT_STAGES = ("simulate", "ingest", "index", "featurize", "graphlib")
PRESETS = ("default", "large")


def _result(stage: str, preset: str, seconds: float, rows: dict[str, int], note: str = "") -> dict[str, object]:
    """One benchmark row; peak RSS is this process's, which runs nothing but the one stage."""
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"stage": stage, "preset": preset, "seconds": seconds, "peak_mib": peak_mib, "rows": rows, "note": note}


def _one(stage: str, preset: str, work: Path) -> dict[str, object]:
    """Run one stage in this process and measure it."""
    src = work / f"sim-{preset}"
    start = time.perf_counter()
    if stage == "simulate":
        from pipeline.simulate import make_config, simulate, write_contract

        name, _, size = preset.partition("@")
        cfg = make_config(name, accounts=int(size) if size else None)
        tables = simulate(cfg)
        write_contract(tables, src, cfg, preset)
        rows = {k: v.height for k, v in tables.items()}
    elif stage == "ingest":
        from pipeline.ingest import ingest

        report = ingest(src, work / f"warehouse-{preset}.duckdb")
        rows = {k: t.rows_loaded for k, t in report.tables.items()}
    elif stage == "index":
        return _index(preset, work)
    elif stage == "ingest_csv":
        return _ingest_csv(preset, work)
    elif stage == "featurize":
        from pipeline.features.build import featurize_warehouse

        report = featurize_warehouse(work / f"warehouse-{preset}.duckdb", work / f"features-{preset}")
        rows = {"accounts": report.accounts}
        note = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items()) + f"; {report.lockstep_groups} lockstep groups"
        return _result(stage, preset, time.perf_counter() - start, rows, note)
    elif stage == "graphlib":
        return _graphlib(preset, work)
    elif stage == "realdata":
        return _realdata(preset, work)
    elif stage == "score":
        return _score(preset, work)
    elif stage in ("score_cli", "score_cli_2gb"):
        return _score_cli(preset, work, "2GB" if stage == "score_cli_2gb" else "5GB")
    elif stage == "limits":
        return _limits(preset, work)
    elif stage in ("features_cli", "spark_features"):
        return _features_cli(preset, work, "spark" if stage == "spark_features" else "duckdb")
    elif stage == "spark_score":
        return _score_cli(preset, work, "5GB", engine="spark")
    elif stage == "coordination_compare":
        return _coordination_compare(preset, work)
    else:
        raise SystemExit(f"unknown stage {stage}")
    return _result(stage, preset, time.perf_counter() - start, rows)


def _ingest_csv(preset: str, work: Path) -> dict[str, object]:
    """The same ingest from CSV files (parsed by Python's csv module, record by record)."""
    import polars as pl

    from pipeline.ingest import ingest

    src, csv_dir = work / f"sim-{preset}", work / f"csv-{preset}"
    csv_dir.mkdir(exist_ok=True)
    for table in src.glob("*.parquet"):
        pl.read_parquet(table).write_csv(csv_dir / f"{table.stem}.csv")
    start = time.perf_counter()
    report = ingest(csv_dir, work / f"warehouse-csv-{preset}.duckdb")
    rows = {k: t.rows_loaded for k, t in report.tables.items()}
    return _result("ingest_csv", preset, time.perf_counter() - start, rows, "from CSV")


def _graphlib(preset: str, work: Path, networkx_nodes: int = 100_000) -> dict[str, object]:
    """PageRank + k-core on the follow graph: igraph on all of it, networkx on up to `networkx_nodes` nodes."""
    import igraph as ig
    import networkx as nx
    import numpy as np

    from pipeline.features.graph import follow_edges
    from pipeline.warehouse import connect

    con = connect(work / f"warehouse-{preset}.duckdb")
    accounts = con.sql("SELECT account_id FROM accounts").pl()
    follows = con.sql(
        "SELECT actor_id, target_id, kind::VARCHAR AS kind, target_type::VARCHAR AS target_type FROM engagements WHERE kind = 'follow'"
    ).pl()
    con.close()
    ids, src, dst = follow_edges(accounts, follows)

    def igraph_run(n: int, s: np.ndarray, d: np.ndarray) -> float:
        t = time.perf_counter()
        g = ig.Graph(n=n, edges=np.column_stack([s, d]).tolist(), directed=True)
        g.pagerank()
        g.as_undirected(mode="collapse").coreness()
        return time.perf_counter() - t

    def networkx_run(n: int, s: np.ndarray, d: np.ndarray) -> float:
        t = time.perf_counter()
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_edges_from(zip(s.tolist(), d.tolist(), strict=True))
        nx.pagerank(g)
        u = nx.Graph(g.to_undirected())
        u.remove_edges_from(nx.selfloop_edges(u))
        nx.core_number(u)
        return time.perf_counter() - t

    n = len(ids)
    start = time.perf_counter()
    ig_all = igraph_run(n, src, dst)
    sub_n = min(n, networkx_nodes)
    keep = (src < sub_n) & (dst < sub_n)  # ids are random, so the first sub_n nodes are a random sample
    ig_sub = igraph_run(sub_n, src[keep], dst[keep])
    nx_sub = networkx_run(sub_n, src[keep], dst[keep])
    seconds = time.perf_counter() - start
    note = (
        f"PageRank + k-core, follow graph {n:,} nodes / {len(src):,} edges: igraph {ig_all:.1f} s; "
        f"on {sub_n:,} nodes / {int(keep.sum()):,} edges: igraph {ig_sub:.2f} s, "
        f"networkx {nx_sub:.1f} s ({nx_sub / max(ig_sub, 1e-9):.0f}x)"
    )
    return _result("graphlib", preset, seconds, {"accounts": n}, note)


def _realdata(preset: str, work: Path) -> dict[str, object]:
    """The real-data benchmark over every spec in datasets/, as `dvc repro benchmark` runs it (tiny: --fast)."""
    import yaml

    from pipeline.benchmark.run import fast_plan, plan_from_params, run_benchmark
    from pipeline.datasets.spec import data_root, find_spec, list_specs, load_spec

    params = yaml.safe_load(Path("params.yaml").read_text())
    plan = plan_from_params(params["benchmark"])
    if preset == "tiny":
        plan = fast_plan(plan)
    specs = [load_spec(find_spec(name)) for name in list_specs()]
    start = time.perf_counter()
    details = run_benchmark(specs, data_root(params["data"]["root"]), plan, params["train"], work / f"realdata-{preset}")
    seconds = time.perf_counter() - start
    accounts = sum(d["info"]["accounts"] for d in details.values())
    engagements = sum(d["info"]["engagements"] for d in details.values())
    note = ("fast subset; " if preset == "tiny" else "") + ", ".join(f"{name} {d['seconds']['total']:.0f} s" for name, d in details.items())
    return _result("realdata", preset, seconds, {"accounts": accounts, "engagements": engagements}, note)


def _score(preset: str, work: Path) -> dict[str, object]:
    """Batch scoring end to end on the ingested warehouse (features included), with the models in models/;
    the note splits out the model step and compares it with a bare Booster.predict of the same matrices."""
    import numpy as np

    from pipeline.features.build import warehouse_features
    from pipeline.models.train import to_matrix
    from pipeline.scoring import load_models, score_features

    models, versions = load_models(Path("models"))
    start = time.perf_counter()
    features, _, _ = warehouse_features(work / f"warehouse-{preset}.duckdb")
    t_features = time.perf_counter() - start
    t = time.perf_counter()
    scores = score_features(features, models, explain="none", versions=versions)
    t_model = time.perf_counter() - t
    t = time.perf_counter()
    explained = score_features(features, models, explain="flagged", versions=versions)
    t_explained = time.perf_counter() - t
    seconds = t_features + t_explained
    matrices = {task: to_matrix(features, models[task].features) for task in models}
    t = time.perf_counter()
    for task in models:
        np.asarray(models[task].booster.predict(matrices[task], raw_score=True))  # type: ignore[union-attr]
    t_bare = time.perf_counter() - t
    flagged = {task: int(explained[f"flagged_{task}"].sum()) for task in models}
    # the reasons' SHAP values beside LightGBM's own pred_contrib on the same flagged rows: time and largest difference
    from pipeline.scoring.treeshap import shap_values

    t_ours = t_lgb = 0.0
    diff = 0.0
    for task in models:
        booster, x = models[task].booster, matrices[task][explained[f"flagged_{task}"].to_numpy()]
        t = time.perf_counter()
        ours = shap_values(booster, x)  # type: ignore[arg-type]
        t_ours += time.perf_counter() - t
        t = time.perf_counter()
        theirs = np.asarray(booster.predict(x, pred_contrib=True))[:, :-1]  # type: ignore[union-attr]
        t_lgb += time.perf_counter() - t
        diff = max(diff, float(np.abs(ours - theirs).max(initial=0.0)))
    note = (
        f"features {t_features:.0f} s; model step (both tasks, probabilities, no reasons) {t_model:.1f} s vs bare "
        f"Booster.predict {t_bare:.1f} s ({t_model / max(t_bare, 1e-9):.2f}x); with reasons for flagged accounts "
        f"{t_explained:.1f} s; flagged {flagged}; SHAP values of the {sum(flagged.values()):,} flagged: "
        f"pipeline.scoring.treeshap {t_ours:.1f} s vs LightGBM pred_contrib {t_lgb:.1f} s ({t_lgb / max(t_ours, 1e-9):.1f}x), "
        f"largest difference {diff:.1e}"
    )
    del scores
    return _result("score", preset, seconds, {"accounts": features.height}, note)


# Spark on one machine (local[2]): the JVM runs the driver and both executor threads. Its heap is
# set here; Spark spills to disk past its share of it instead of failing.
SPARK_CONF = ["spark.driver.memory=6g", "spark.sql.shuffle.partitions=16"]


def _engine_args(engine: str) -> list[str]:
    if engine == "duckdb":
        return []
    return ["--engine", "spark", "--master", "local[2]", *[x for c in SPARK_CONF for x in ("--spark-conf", c)]]


def _jvm_peak_mib() -> float:
    """Peak RSS (VmHWM) of the Java processes this process started (Spark's JVM), 0 without one."""
    me, peak = os.getpid(), 0.0
    children = {me}
    for _ in range(3):  # spark-submit -> spark-class -> java
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) in children:
                    children.add(int(stat.parent.name))
            except (OSError, IndexError, ValueError):
                continue
    for pid in children - {me}:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def _cli(args: list[str]) -> tuple[float, list[str]]:
    """Run `zombiescan ARGS` in this process; seconds and what it printed on stdout."""
    import contextlib
    import io

    from pipeline.cli import main as cli

    start = time.perf_counter()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli(args)
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"zombiescan {args[0]} exited {code}")
    return seconds, stdout.getvalue().strip().splitlines()


def _memory_note(engine: str) -> str:
    if engine == "duckdb":
        return ""
    python = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"; driver: Python {python:,.0f} MiB, JVM (driver + local executors, heap 6g) peak {_jvm_peak_mib():,.0f} MiB"


def _features_cli(preset: str, work: Path, engine: str) -> dict[str, object]:
    """`zombiescan features` from the simulator's Parquet files on one engine: checks, every family, the write."""
    src, out = work / f"sim-{preset}", work / f"features-{engine}-{preset}"
    args = ["features", "--accounts", str(src / "accounts.parquet"), "--engagements", str(src / "engagements.parquet")]
    args += ["--targets", str(src / "targets.parquet"), "--out", str(out), *_engine_args(engine)]
    if engine == "spark":
        args.append("--overwrite")
    seconds, _ = _cli(args)
    report = json.loads((out / "report.json").read_text())
    engagements = _engagements(src)
    result = _result(f"features_{engine}", preset, seconds, {"accounts": report["accounts"], "engagements": engagements})
    groups = report["lockstep_groups"]
    result["note"] = f"`zombiescan features --engine {engine}` from Parquet; {groups} lockstep groups" + _memory_note(engine)
    if engine == "spark":
        result["peak_mib"] = max(float(result["peak_mib"]), _jvm_peak_mib())  # type: ignore[arg-type]
    return result


def _coordination_compare(preset: str, work: Path, window: int = 60, min_weight: int = 2) -> dict[str, object]:
    """`zombiescan coordination` and coordination-network-toolkit's co_retweet network on the ingested
    warehouse's likes; seconds and peak are ZombieScan's (its one process), the toolkit's in the note."""
    import contextlib

    from perf.coordination_compare import print_table, run

    out = work / f"coordination-{preset}"
    row = run(work / f"warehouse-{preset}.duckdb", out, window, min_weight, repeats=3)
    with (out / "table.md").open("w") as f, contextlib.redirect_stdout(f):
        print_table(row)
    t, z = row["toolkit"], row["zombiescan"]
    note = (
        f"window {window} s, min weight {min_weight}, {row['rows']['likes']:,} likes; "  # type: ignore[index]
        f"toolkit {t['seconds']:.1f} s / {t['tree_mib']:,.0f} MiB tree PSS, zombiescan {z['tree_mib']:,.0f} MiB tree PSS; "  # type: ignore[index]
        f"edges {row['toolkit_edges']:,} vs {row['zombiescan_edges']:,}, Jaccard edges {row['jaccard_edges']:.3f}, "
        f"nodes {row['jaccard_nodes']:.3f}; node precision/recall toolkit {row.get('toolkit_precision', float('nan')):.2f}/"
        f"{row.get('toolkit_recall', float('nan')):.2f}, zombiescan {row.get('zombiescan_precision', float('nan')):.2f}/"
        f"{row.get('zombiescan_recall', float('nan')):.2f}"
    )  # fmt: skip
    result = _result("coordination_compare", preset, float(z["seconds"]), dict(row["rows"]), note)  # type: ignore[index, call-overload]
    result["peak_mib"] = float(z["max_process_mib"])  # type: ignore[index]
    result["detail"] = row
    return result


def _engagements(src: Path) -> int:
    import polars as pl

    return int(pl.scan_parquet(src / "engagements.parquet").select(pl.len()).collect().item())


def _score_cli(preset: str, work: Path, memory_limit: str, engine: str = "duckdb") -> dict[str, object]:
    """`zombiescan score` as a platform team runs it: the simulator's Parquet files in, input
    validation, features, both models, reasons for the flagged, the pages report."""
    src, out = work / f"sim-{preset}", work / f"scores-{engine}-{preset}"
    out.mkdir(exist_ok=True)
    args = ["score", "--accounts", str(src / "accounts.parquet"), "--engagements", str(src / "engagements.parquet")]
    args += ["--targets", str(src / "targets.parquet"), "--out", str(out / "scores.parquet"), "--pages-out", str(out / "pages.parquet")]
    # Spark: not --quiet, so the engine's seconds per step reach the stage's log as they happen (_log_to)
    args += ["--overwrite", *(["--quiet"] if engine == "duckdb" else []), *_engine_args(engine)]
    if engine == "duckdb":
        args += ["--memory-limit", memory_limit]
    seconds, lines = _cli(args)
    summary = json.loads(lines[-1])
    steps = ", ".join(f"{k.removeprefix('features: ')} {v:.0f} s" for k, v in summary["steps"].items())
    where = f"DuckDB memory limit {memory_limit}" if engine == "duckdb" else "Spark local[2]"
    note = f"`zombiescan score --engine {engine}` from Parquet, {where}: {steps}; flagged {summary['flagged']}" + _memory_note(engine)
    stage = "score_cli" if engine == "duckdb" else "spark_score"
    result = _result(stage, preset, seconds, {"accounts": summary["accounts"], "engagements": _engagements(src)}, note)
    result["steps"] = summary["steps"]
    if engine == "spark":
        result["peak_mib"] = max(float(result["peak_mib"]), _jvm_peak_mib())  # type: ignore[arg-type]
    return result


def _limits(preset: str, work: Path) -> dict[str, object]:
    """Each step of `zombiescan score` done bare by its library (perf/limits.py), on the same Parquet
    files; the scores of an earlier `score_cli` run give the flagged rows, `zombiescan features`
    (run here once, untimed, if its output is missing) the feature matrices."""
    from perf import limits

    src, scores = work / f"sim-{preset}", work / f"scores-duckdb-{preset}" / "scores.parquet"
    if not scores.is_file():
        raise SystemExit(f"limits: {scores} not found; run the score_cli stage first (e.g. --stages score_cli limits)")
    features = work / f"features-duckdb-{preset}" / "features.parquet"
    if not features.is_file():
        _features_cli(preset, work, "duckdb")
    start = time.perf_counter()
    measured = limits.measure(src, features, scores, Path("models"))
    seconds: dict[str, float] = measured["seconds"]
    note = ", ".join(f"{k.removeprefix('features: ')} {v:.1f} s" for k, v in seconds.items())
    note += f"; bare lockstep pairs {measured['lockstep_pairs']:,}, pred_contrib rows {measured['flagged']:,}"
    note += f"; the pages query's core alone (likes per target, flagged joined in) {measured['pages_core']:.1f} s"
    result = _result("limits", preset, time.perf_counter() - start, {"engagements": _engagements(src)}, note)
    result["limits"] = seconds
    return result


def _lookup_ms(con: object, ids: list[tuple[str, str]]) -> float:
    """Median milliseconds of `count(*)` for one actor or one target."""
    times = []
    for column, value in ids:
        t = time.perf_counter()
        con.execute(f"SELECT count(*) FROM engagements WHERE {column} = ?", [value]).fetchall()  # type: ignore[attr-defined]
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _index(preset: str, work: Path) -> dict[str, object]:
    """What ART indexes on engagements cost (build time) and buy (point look-ups), on the ingested warehouse."""
    from pipeline.warehouse import connect

    con = connect(work / f"warehouse-{preset}.duckdb", read_only=False)
    sample = con.execute("SELECT actor_id, target_id FROM engagements USING SAMPLE 5 ROWS (reservoir, 1)").fetchall()
    ids = [("actor_id", a) for a, _ in sample] + [("target_id", t) for _, t in sample]
    before = _lookup_ms(con, ids)
    start = time.perf_counter()
    con.execute("CREATE INDEX bench_actor ON engagements (actor_id)")
    con.execute("CREATE INDEX bench_target ON engagements (target_id)")
    seconds = time.perf_counter() - start
    after = _lookup_ms(con, ids)
    rows = con.execute("SELECT count(*) FROM engagements").fetchall()[0][0]
    con.close()
    note = f"builds ART indexes on actor_id and target_id; point look-up {before:.0f} ms without, {after:.1f} ms with"
    return _result("index", preset, seconds, {"engagements": rows}, note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), help="size presets to run (tiny, default, large)")
    parser.add_argument("--stages", nargs="+", default=list(DEFAULT_STAGES), choices=STAGES, help="stages to run, in pipeline order")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one, removed after)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="run each stage (but simulate) this many times; the row is the run of median time"
    )
    parser.add_argument("--one", nargs=3, metavar=("STAGE", "PRESET", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: expected a whole number >= 1")
    if args.one:
        stage, preset, work = args.one
        _log_to(Path(work) / f"{stage}-{preset}.log")
        row = json.dumps(_one(stage, preset, Path(work)))
        with (Path(work) / "results.jsonl").open("a") as f:  # kept if a later, longer row is interrupted
            f.write(row + "\n")
        print(row)
        return 0

    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="zombiescan-perf-")
    work = args.work or Path(tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for preset in args.presets:
        for stage in args.stages:
            runs = []
            for _ in range(1 if stage == "simulate" else args.repeats):
                done = subprocess.run([sys.executable, "-m", "perf.run", "--one", stage, preset, str(work)], capture_output=True, text=True)
                if done.returncode != 0:
                    print(done.stderr, file=sys.stderr)
                    raise SystemExit(f"perf: {stage} at {preset} failed (exit {done.returncode}); its stderr is above")
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
                r = runs[-1]
                print(f"  {stage:<9} {preset:<8} {r['seconds']:8.1f} s {r['peak_mib']:9.0f} MiB", file=sys.stderr, flush=True)
            median = sorted(runs, key=lambda r: float(r["seconds"]))[(len(runs) - 1) // 2]  # a real run, its note and steps
            if len(runs) > 1:
                median["runs"] = [round(float(r["seconds"]), 1) for r in runs]
                median["note"] = f"median of {len(runs)} runs ({', '.join(f'{x:.1f}' for x in median['runs'])} s); " + str(median["note"])
            results.append(median)
    if tmp:
        tmp.cleanup()

    cmd = "python -m perf.run " + " ".join(["--presets", *args.presets, "--stages", *args.stages])
    if args.repeats > 1:
        cmd += f" --repeats {args.repeats}"
    print(f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}; command: `{cmd}`\n")
    print("| stage | preset | rows | seconds | peak RSS (MiB) | note |")
    print("|---|---|---|---:|---:|---|")
    for r in results:
        rows: dict[str, int] = r["rows"]  # type: ignore[assignment]
        size = ", ".join(f"{rows[k]:,} {k}" for k in ("accounts", "engagements") if k in rows)
        print(f"| {r['stage']} | {r['preset']} | {size} | {r['seconds']:.1f} | {r['peak_mib']:,.0f} | {r['note']} |")
    for r in results:  # each score_cli row beside the limits measured in the same run
        limit = next((x for x in results if x["stage"] == "limits" and x["preset"] == r["preset"]), None)
        if r["stage"] == "score_cli" and limit is not None:
            from perf.limits import ratio_table

            print(f"\nSteps of score_cli at {r['preset']} beside their library limits (perf/limits.py; medians' runs):\n")
            print("\n".join(ratio_table(r["steps"], limit["limits"])))  # type: ignore[arg-type]
    growth = _growth(results)
    if growth:
        print("\nCost growth (exponent of a log-log fit of seconds against engagements; 1.0 is linear):\n")
        for stage, (slope, sizes) in growth.items():
            print(f"- {stage}: {slope:.2f} over {sizes}")
    return 0


def _log_to(path: Path) -> None:
    """The stage's INFO log (e.g. the Spark engine's seconds per step) in `path`, as it runs."""
    import logging

    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger("pipeline").setLevel(logging.INFO)


def _growth(results: list[dict[str, object]]) -> dict[str, tuple[float, str]]:
    """Per stage with three or more sizes: the slope of log(seconds) against log(engagements)."""
    import numpy as np

    out = {}
    for stage in dict.fromkeys(str(r["stage"]) for r in results):
        rows = [r for r in results if r["stage"] == stage and "engagements" in r["rows"]]  # type: ignore[operator]
        if len(rows) < 3:
            continue
        x = np.log([r["rows"]["engagements"] for r in rows])  # type: ignore[index]
        y = np.log([float(r["seconds"]) for r in rows])  # type: ignore[arg-type]
        out[stage] = (float(np.polyfit(x, y, 1)[0]), ", ".join(f"{r['rows']['engagements']:,}" for r in rows))  # type: ignore[index]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
