"""The `zombiescan` command line: thin sub-commands over the library."""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from pipeline import interrupt
from pipeline.errors import ZombieScanError
from pipeline.ingest import DEFAULT_MAX_REJECT_SHARE

app = typer.Typer(
    name="zombiescan",
    help="Find fake ('zombie') profiles and like-farm accounts. Each sub-command has its own --help.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class Preset(StrEnum):
    """Size presets of the simulator (pipeline.simulate.PRESETS)."""

    tiny = "tiny"
    default = "default"
    large = "large"


@app.command()
def simulate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder to write the contract tables into. An earlier simulator output there is replaced whole, "
            "atomically; any other existing folder is refused.",
        ),
    ],
    preset: Annotated[
        Preset,
        typer.Option(help="World size: tiny (tests), default (~20k accounts, ~1M engagements) or large (1M accounts, 20M+ engagements)."),
    ] = Preset.default,
    seed: Annotated[
        int | None, typer.Option(help="Random seed; the same seed and settings give byte-identical files. Default: the preset's (42).")
    ] = None,
    accounts: Annotated[
        int | None, typer.Option(help="Number of accounts, overriding the preset's; farm and community counts scale with it.")
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(
            help="Take difficulty knobs and pinned style settings from the 'simulate' section of this params file (e.g. params.yaml)."
        ),
    ] = None,
) -> None:
    """Simulate a social platform with zombies and like farms; write it as a contract folder.

    How its people and operators behave (activity, sessions, sleep, batch registration, farm
    delivery...) is drawn from the seed: two seeds are two different platforms (docs/simulator.md).
    """
    from pipeline.io import output_lock, refuse_overwriting_inputs
    from pipeline.params import load_params, section
    from pipeline.simulate import from_params, write_contract
    from pipeline.simulate import simulate as run_simulation

    refuse_overwriting_inputs({"--out": out}, {"--params": params})

    values = section(load_params(params), "simulate") if params else {}
    knobs = values.get("knobs") or {}
    _, cfg, style = from_params({"preset": preset.value, "knobs": knobs, "style": values.get("style")}, seed=seed, accounts=accounts)
    with output_lock(out):  # from the start: a second run writing the same folder stops at once
        tables = run_simulation(cfg, style)
        write_contract(tables, out, cfg, preset.value, style)
    err.print(f"wrote {out}: " + ", ".join(f"{name} {df.height:,}" for name, df in tables.items()))


@app.command()
def ingest(
    source: Annotated[
        Path,
        typer.Option(
            "--source", help="Contract folder: accounts and engagements (+ targets, labels, campaigns) as .parquet, .csv or .jsonl."
        ),
    ],
    db: Annotated[Path, typer.Option("--db", help="DuckDB warehouse file to create; replaced only if the whole ingest succeeds.")],
    quarantine: Annotated[
        bool,
        typer.Option(
            "--quarantine",
            help="Move bad rows to table 'rejects' with their reasons instead of failing; still fail above --max-reject-share.",
        ),
    ] = False,
    max_reject_share: Annotated[
        float, typer.Option(help="With --quarantine: the largest share of any table's rows that may be rejected.")
    ] = DEFAULT_MAX_REJECT_SHARE,
    index: Annotated[
        list[str] | None,
        typer.Option(
            "--index",
            help="Add an ART index on this engagements column (actor_id or target_id); repeatable. Faster point look-ups, slower ingest.",
        ),
    ] = None,
) -> None:
    """Validate a contract folder and load it into a warehouse (a .duckdb file, or a folder of Parquet tables)."""
    from pipeline.ingest import ingest as run_ingest
    from pipeline.io import refuse_overwriting_inputs

    refuse_overwriting_inputs({"--db": db}, {"--source": source})

    report = run_ingest(source, db, quarantine=quarantine, max_reject_share=max_reject_share, index_engagements=index or [])
    for name, t in report.tables.items():
        err.print(f"{name}: {t.summary()}")
    err.print(f"wrote {db}")


class Engine(StrEnum):
    """Where features and scores are computed: DuckDB on this machine, or Apache Spark (the `spark` extra)."""

    duckdb = "duckdb"
    spark = "spark"


EngineOption = Annotated[
    Engine, typer.Option("--engine", help="duckdb (this machine) or spark (local[N] or a cluster; pip install 'zombiescan[spark]').")
]
MasterOption = Annotated[
    str | None,
    typer.Option("--master", help="Spark master with --engine spark: local[N] (default local[2]), spark://HOST:PORT, yarn, k8s://..."),
]
SparkConfOption = Annotated[
    list[str] | None,
    typer.Option("--spark-conf", help="Spark setting KEY=VALUE with --engine spark (repeatable), e.g. spark.executor.memory=8g."),
]


@app.command()
def features(
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="Folder for features.parquet (one row per account), lockstep_groups.parquet and report.json; written whole."
        ),
    ],
    db: Annotated[
        Path | None, typer.Option("--db", help="Warehouse written by `zombiescan ingest` (Spark: a Parquet-folder warehouse).")
    ] = None,
    accounts: Annotated[
        str | None, typer.Option("--accounts", help="Instead of --db: the accounts table as Parquet (a file, a folder of parts or a glob).")
    ] = None,
    engagements: Annotated[str | None, typer.Option("--engagements", help="With --accounts: the engagements as Parquet.")] = None,
    targets: Annotated[str | None, typer.Option("--targets", help="With --accounts: the optional targets table as Parquet.")] = None,
    reference_time: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 time the features describe (e.g. 2026-06-01T00:00:00Z); nothing after it is used. Default: the last engagement."
        ),
    ] = None,
    params: Annotated[Path | None, typer.Option(help="Take lockstep settings from 'featurize.lockstep' in this params file.")] = None,
    engine: EngineOption = Engine.duckdb,
    master: MasterOption = None,
    spark_conf: SparkConfOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output folder (Spark engine; DuckDB replaces it).")
    ] = False,
) -> None:
    """Compute profile, behavioural, graph and lockstep features for every account."""
    from pipeline.features.lockstep import LockstepParams
    from pipeline.io import refuse_overwriting_inputs
    from pipeline.params import load_params, parse_utc_time, section

    if (db is None) == (accounts is None):
        raise ZombieScanError("give the input as --db WAREHOUSE, or as --accounts and --engagements (Parquet)")
    if accounts is not None and engagements is None:
        raise ZombieScanError("--accounts: needs --engagements beside it")
    refuse_overwriting_inputs(
        {"--out": out},
        {
            "--db": db,
            "--params": params,
            **{
                o: Path(p)
                for o, p in (("--accounts", accounts), ("--engagements", engagements), ("--targets", targets))
                if p and "*" not in p
            },
        },
    )
    settings = LockstepParams.from_dict(section(load_params(params), "featurize").get("lockstep") if params else None, "featurize.lockstep")
    when = parse_utc_time(reference_time, "--reference-time")
    if engine is Engine.spark:
        from pipeline.spark.job import features_job
        from pipeline.spark.read import Inputs, warehouse_inputs
        from pipeline.spark.session import SparkSettings

        inputs = warehouse_inputs(db) if db is not None else Inputs(str(accounts), engagements, targets)
        report = features_job(
            inputs,
            str(out),
            settings=SparkSettings.parse(master, spark_conf),
            reference_time=when,
            lockstep_params=settings,
            overwrite=overwrite,
        )
    else:
        if master or spark_conf:
            raise ZombieScanError("--master and --spark-conf: only with --engine spark")
        report = _duckdb_features(db, accounts, engagements, targets, out, when, settings)
    err.print(
        f"wrote {out}: {report.accounts:,} accounts x {report.features} features; "
        f"{report.lockstep_groups} lockstep groups ({report.lockstep_accounts:,} accounts)"
    )
    if not report.timed:
        err.print("note: the engagements carry no time information, so no lockstep groups; lock_dense_block_score still applies")


def _duckdb_features(
    db: Path | None, accounts: str | None, engagements: str | None, targets: str | None, out: Path, when: Any, settings: Any
) -> Any:
    """`features` on DuckDB: from the warehouse, or from contract files checked into a scratch warehouse."""
    from pipeline.features.build import check_reference_time, featurize_warehouse
    from pipeline.io import output_lock, scratch_dir
    from pipeline.scoring.job import ingest_inputs

    with (
        output_lock(out),
        scratch_dir("zombiescan-features-") as scratch,
    ):  # from the start: a second run writing the same folder stops at once
        if db is None:
            assert accounts is not None
            db = ingest_inputs(
                scratch, Path(accounts), Path(engagements) if engagements else None, Path(targets) if targets else None, "5GB"
            )
        check_reference_time(db, when)
        return featurize_warehouse(db, out, reference_time=when, lockstep_params=settings)


@app.command()
def coordination(
    db: Annotated[Path, typer.Option("--db", help="Warehouse written by `zombiescan ingest` (a .duckdb file or a Parquet folder).")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for network.graphml, network.gexf, nodes.csv, edges.csv, groups.parquet, engagements.parquet and "
            "report.json; written whole.",
        ),
    ],
    window: Annotated[
        list[str] | None,
        typer.Option(
            "--window",
            help="Co-engagement window: 60s, 15m, 1h, 3d, seconds, or auto (CooRnet's estimate); repeatable or comma-separated. "
            "Each edge is marked with the fastest window that gives it. Default: 1h.",
        ),
    ] = None,
    min_repeats: Annotated[
        int | None, typer.Option("--min-repeats", help="An edge needs co-engagements on at least this many distinct targets (default 3).")
    ] = None,
    edge_percentile: Annotated[
        float | None,
        typer.Option(
            "--edge-percentile", help="Keep the edges whose shared-target count is at or above this percentile (0-100; default 0: all)."
        ),
    ] = None,
    kinds: Annotated[
        str | None, typer.Option("--kinds", help="Engagement kinds, comma-separated (e.g. like,share). Default: the lockstep settings'.")
    ] = None,
    fmt: Annotated[
        list[str] | None, typer.Option("--format", help="Network files: graphml, gexf, csv; repeatable or comma-separated. Default: all.")
    ] = None,
    auto_quantile: Annotated[
        float | None, typer.Option("--auto-quantile", help="With --window auto: the quantile of the fastest gaps (default 0.1).")
    ] = None,
    scores: Annotated[
        Path | None, typer.Option("--scores", help="Scores from `zombiescan score` (Parquet): p_zombie / p_like_farm as node attributes.")
    ] = None,
    max_edges: Annotated[
        int | None, typer.Option("--max-edges", help="Refuse a network with more edges than this (default 5,000,000).")
    ] = None,
    max_cell_actors: Annotated[
        int | None,
        typer.Option("--max-cell-actors", help="Hub cap: skip (and count) cells with more engagements. Default: featurize.lockstep's."),
    ] = None,
    max_pair_rows: Annotated[
        int | None,
        typer.Option(
            "--max-pair-rows",
            help="Refuse, before joining, a window whose cells hold more pairs of engagements than this (default 500,000,000).",
        ),
    ] = None,
    lockstep_groups: Annotated[
        str,
        typer.Option(
            "--lockstep-groups",
            help="The nodes' lockstep group: compute (run the lockstep detector here), a folder `zombiescan features` wrote for "
            "this warehouse (or its lockstep_groups.parquet) to reuse, or none.",
        ),
    ] = "compute",
    params: Annotated[
        Path | None,
        typer.Option(help="Lockstep settings from 'featurize.lockstep' (and defaults from a 'coordination' section) of this file."),
    ] = None,
    memory_limit: Annotated[str, typer.Option(help="DuckDB memory limit; past it DuckDB spills to disk.")] = "5GB",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier coordination output at --out.")] = False,
) -> None:
    """The account-account coordination network (CooRnet / CooRTweet style) with the evidence behind each edge; JSON summary on stdout."""
    import dataclasses
    import json
    import time

    from pipeline.coordination import CoordinationParams, check_output, coordination_network, parse_formats, windows_from_text
    from pipeline.coordination.network import COMPUTE, NONE
    from pipeline.features.lockstep import LockstepParams
    from pipeline.io import output_lock, refuse_overwriting_inputs
    from pipeline.params import load_params

    started = time.monotonic()
    given = Path(lockstep_groups) if lockstep_groups not in (COMPUTE, NONE) else None
    refuse_overwriting_inputs({"--out": out}, {"--db": db, "--params": params, "--scores": scores, "--lockstep-groups": given})
    values = load_params(params) if params else {}
    lock_params = LockstepParams.from_dict((values.get("featurize") or {}).get("lockstep"), "featurize.lockstep")
    settings = CoordinationParams.from_dict(values.get("coordination"), lock_params)  # its out/report paths are the stage's
    fmt = fmt or (values.get("coordination") or {}).get("formats")
    overrides: dict[str, Any] = {
        "max_pair_rows": max_pair_rows,
        "min_repeats": min_repeats,
        "edge_percentile": edge_percentile,
        "auto_quantile": auto_quantile,
        "max_edges": max_edges,
        "max_cell_actors": max_cell_actors,
        "kinds": tuple(k.strip() for k in kinds.split(",") if k.strip()) if kinds is not None else None,
    }
    if window:
        overrides.update(windows_from_text(window))
    settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    formats = parse_formats(fmt)
    check_output(out, overwrite)  # before any work: an existing folder is refused at once
    with output_lock(out):  # from the start: a second run writing the same folder stops at once
        from pipeline.coordination import write_coordination

        result = coordination_network(db, settings, scores, lockstep_groups=lockstep_groups, memory_limit=memory_limit)
        write_coordination(out, result, formats, overwrite)
    report = result.report
    if not result.timed and report.get("note"):
        err.print(f"note: {report['note']}", highlight=False, soft_wrap=True)
    hub = report["hub_cap"]
    if hub["capped_targets"]:
        err.print(
            f"note: {hub['capped_targets']:,} targets had cells above the hub cap ({hub['max_cell_actors']:,} engagements); "
            f"{hub['capped_engagements']:,} engagements in them were left out (--max-cell-actors raises the cap)",
            highlight=False,
            soft_wrap=True,
        )
    err.print(f"wrote {out}", highlight=False)
    summary = {
        "edges": report["edges"],
        "nodes": report["nodes"],
        "groups": report["groups"],
        "capped_targets": hub["capped_targets"],
        "windows_s": report["windows_s"],
        "timed": report["timed"],
        "seconds": round(time.monotonic() - started, 2),
        "out": str(out),
    }
    typer.echo(json.dumps(summary))


datasets_app = typer.Typer(help="Real datasets described by YAML specs (datasets/*.yaml; docs/datasets.md).", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")

DataRoot = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder the specs' paths are relative to. Default: $ZOMBIESCAN_DATA_ROOT, else ../shared/data."),
]


def _settings(params: Path | None) -> dict[str, Any]:
    """The params file named by --params (which must exist), else ./params.yaml if there is one, else nothing."""
    from pipeline.params import DEFAULT_PARAMS, load_params

    if params is not None:
        return load_params(params)
    return load_params(DEFAULT_PARAMS) if DEFAULT_PARAMS.is_file() else {}


@datasets_app.command("list")
def datasets_list() -> None:
    """List the dataset specs in datasets/ with their task and where their files are."""
    from pipeline.datasets.spec import SPEC_DIR, list_specs, load_spec

    names = list_specs()
    if not names:
        err.print(f"no dataset specs in {SPEC_DIR}/")
        return
    for name in names:
        spec = load_spec(SPEC_DIR / f"{name}.yaml")
        files = ", ".join(dict.fromkeys(f.path.split("/")[0] for f in spec.files()))
        typer.echo(f"{name:<18} {spec.task:<10} {files:<20} {spec.description}")


@datasets_app.command("check")
def datasets_check(
    name: Annotated[str, typer.Argument(help="A dataset name (datasets/<name>.yaml) or a spec file path.")],
    data_root: DataRoot = None,
) -> None:
    """Validate a spec against its files: rows, labels, balance, and every contract violation (nothing is written)."""
    from pipeline.datasets.adapt import load_dataset, write_warehouse
    from pipeline.datasets.spec import data_root as default_root
    from pipeline.datasets.spec import find_spec, load_spec
    from pipeline.io import scratch_dir

    spec = load_spec(find_spec(name))
    root = data_root or default_root((_settings(None).get("benchmark") or {}).get("root"))
    dataset = load_dataset(spec, root)
    with scratch_dir("zombiescan-check-") as scratch:
        report = write_warehouse(dataset, Path(scratch) / "check.duckdb")
    info = dataset.info()
    labelled = info["positives"] + info["negatives"]
    typer.echo(f"{spec.name}: {spec.path} (files under {root})")
    typer.echo(f"  task        {spec.task} ({spec.label_column})")
    for table, t in report.tables.items():
        typer.echo(f"  {table:<11} {t.summary()}")
    typer.echo(
        f"  balance     {info['positives']:,} positive, {info['negatives']:,} negative, {info['unlabelled']:,} unknown; "
        f"positive share {info['positives'] / max(labelled, 1):.3f}"
    )
    typer.echo(f"  raw_        {len(info['raw_features'])} column(s): {', '.join(info['raw_features']) or '-'}")
    typer.echo(f"  time        engagements {'timed' if info['timed'] else 'untimed' if info['engagements'] else 'none'}; "
               f"creation times {'known' if info['created_known'] else 'unknown'}; reference time {info['reference_time']}")  # fmt: skip
    if dataset.splits is not None:
        roles = "/".join(r for r in ("train", "valid", "test") if (dataset.splits["role"] == r).any())
        typer.echo(f"  splits      {info['fixed_splits']} shipped {roles} split{'s' * (info['fixed_splits'] != 1)}")
    typer.echo("  contract    ok: no violations")


@app.command()
def benchmark(
    out: Annotated[Path, typer.Option("--out", help="Folder for benchmark.json, benchmark-details.json and benchmark.md.")],
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="A dataset name from datasets/; repeatable. Default: all.")] = None,
    spec: Annotated[list[Path] | None, typer.Option("--spec", help="A spec file of your own; repeatable.")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="One seed, 2 inner folds, at most 300 rounds, 3 shipped splits (CI).")] = False,
    data_root: DataRoot = None,
    params: Annotated[
        Path | None, typer.Option(help="Training settings (train.<task>) and the protocol (benchmark). Default: params.yaml if present.")
    ] = None,
) -> None:
    """Run the pipeline on real datasets and report F1, accuracy, ROC-AUC and AP beside published results."""
    from pipeline.benchmark.protocol import Protocol
    from pipeline.benchmark.run import Plan, fast_plan, plan_from_params, run_benchmark
    from pipeline.datasets.spec import data_root as default_root
    from pipeline.datasets.spec import find_spec, list_specs, load_spec
    from pipeline.io import output_lock, refuse_overwriting_inputs

    settings = _settings(params)
    plan = plan_from_params(settings["benchmark"]) if settings.get("benchmark") else Plan(Protocol())
    if fast:
        plan = fast_plan(plan)
    paths = [find_spec(n) for n in dataset or []] + [find_spec(p) for p in spec or []]
    if not paths:
        paths = [find_spec(n) for n in list_specs()]
    if not paths:
        raise ZombieScanError("benchmark: no dataset specs in datasets/ (run from the project root, or give --spec FILE)")
    root = data_root or default_root((settings.get("benchmark") or {}).get("root"))
    refuse_overwriting_inputs({"--out": out}, {"--params": params, "--spec": paths, "--data-root": root})
    with output_lock(out):  # from the start: a second run writing the same folder stops at once
        details = run_benchmark([load_spec(p) for p in paths], root, plan, settings.get("train") or {}, out)
    for name, d in details.items():
        # one test fold (a shipped train/test split): no spread to show
        cells = ", ".join(f"{m} {v['mean']:.3f}" + (f" ± {v['std']:.3f}" if v["n_folds"] > 1 else "") for m, v in d["metrics"].items())
        err.print(f"{name}: {cells}")
    err.print(f"wrote {out / 'benchmark.md'}, {out / 'benchmark.json'}")


@app.command()
def report(
    out: Annotated[
        Path | None, typer.Option("--out", help="The HTML page to write (default: report.out in params, else reports/summary.html).")
    ] = None,
    params: Annotated[Path | None, typer.Option(help="Where the run's outputs are (default: params.yaml).")] = None,
) -> None:
    """Summarise a pipeline run on one HTML page: data, metrics with intervals, ablations, lockstep groups, pages, model cards."""
    from pipeline.io import output_lock, refuse_overwriting_inputs
    from pipeline.params import DEFAULT_PARAMS
    from pipeline.report import report_inputs, write_summary

    settings = _settings(params)
    if not settings:
        raise ZombieScanError("report: no params.yaml here; run from the project root or give --params FILE")
    path = out or Path((settings.get("report") or {}).get("out", "reports/summary.html"))
    base = params.resolve().parent if params is not None else Path()
    refuse_overwriting_inputs({"--out": path}, {"--params": params or DEFAULT_PARAMS, "the run's outputs": report_inputs(settings, base)})
    # a params file elsewhere describes the run beside it: its relative paths are read from its folder
    with output_lock(path):
        write_summary(settings, path, params.resolve().parent if params is not None else None)
    err.print(f"wrote {path}", highlight=False)


class OutputFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


class Explain(StrEnum):
    flagged = "flagged"
    all = "all"
    none = "none"


@app.command()
def score(
    accounts: Annotated[
        Path, typer.Option("--accounts", help="Accounts in the data contract (.parquet, .csv, .jsonl), or a DuckDB warehouse (.duckdb).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Scores, one row per account (schema in the README).")],
    engagements: Annotated[
        Path | None,
        typer.Option(
            "--engagements",
            help="Engagements in the data contract. Without them (and --accounts a file), every account is scored from its "
            "profile alone by the profile-only models (<task>-profile/ in --model-dir).",
        ),
    ] = None,
    targets: Annotated[Path | None, typer.Option("--targets", help="Optional targets table (creation times of posts).")] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option("--model-dir", help="Folder with <task>/ (and <task>-profile/) model.txt and model.json (default: models)."),
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            "--model-uri",
            help="Registered models instead of --model-dir, comma-separated, one per task (pipeline/tasks.py), e.g. "
            "models:/zombiescan-zombie@champion,models:/zombiescan-like-farm@champion (store: MLFLOW_TRACKING_URI).",
        ),
    ] = None,
    reference_time: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 time the features describe. Default: the last engagement (without engagements: the last account's creation)."
        ),
    ] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Accounts scored at a time (bounds the model step's memory).")] = 100_000,
    memory_limit: Annotated[str, typer.Option(help="DuckDB memory limit for the features; past it DuckDB spills to disk.")] = "5GB",
    explain: Annotated[Explain, typer.Option(help="Reasons for flagged accounts, all accounts, or none.")] = Explain.flagged,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output format; CSV holds reasons as JSON text.")] = OutputFormat.parquet,
    pages_out: Annotated[Path | None, typer.Option("--pages-out", help="Also write the targets ranked by suspected bought likes.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress output; only the JSON summary line.")] = False,
    engine: EngineOption = Engine.duckdb,
    master: MasterOption = None,
    spark_conf: SparkConfOption = None,
) -> None:
    """Score every account: p_<task> for each task (p_zombie, p_like_farm), decisions, reasons, lockstep group; JSON summary on stdout."""
    import json

    from pipeline.params import parse_utc_time
    from pipeline.progress import display
    from pipeline.scoring.job import ScoreRequest
    from pipeline.scoring.job import run as run_score

    if engine is Engine.spark:
        summary = _spark_score(
            accounts,
            out,
            engagements,
            targets,
            model_dir,
            model_uri,
            reference_time,
            explain,
            fmt,
            pages_out,
            overwrite,
            quiet,
            master,
            spark_conf,
        )
        typer.echo(json.dumps(summary))
        return
    if master or spark_conf:
        raise ZombieScanError("--master and --spark-conf: only with --engine spark")

    request = ScoreRequest(
        accounts=accounts,
        out=out,
        engagements=engagements,
        targets=targets,
        model_dir=model_dir,
        model_uri=model_uri,
        reference_time=parse_utc_time(reference_time, "--reference-time"),
        chunk_size=chunk_size,
        memory_limit=memory_limit,
        explain=explain.value,
        fmt=fmt.value,
        pages_out=pages_out,
        overwrite=overwrite,
    )
    logger = logging.getLogger("pipeline")
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        with display(err, quiet) as progress:
            result = run_score(request, progress)
    finally:
        logger.setLevel(level)
    if not quiet:
        if result.unscored:
            err.print(f"note: {result.unscored:,} accounts were created after the reference time and are not scored", highlight=False)
        for note in result.notes:
            err.print(f"note: {note}", highlight=False)
        for warning in result.warnings:
            err.print(f"warning: {warning}", highlight=False)
        err.print(f"wrote {out}" + (f" and {pages_out}" if pages_out else ""), highlight=False)
    typer.echo(json.dumps(result.summary))


def _spark_score(
    accounts: Path,
    out: Path,
    engagements: Path | None,
    targets: Path | None,
    model_dir: Path | None,
    model_uri: str | None,
    reference_time: str | None,
    explain: Explain,
    fmt: OutputFormat,
    pages_out: Path | None,
    overwrite: bool,
    quiet: bool,
    master: str | None,
    spark_conf: list[str] | None,
) -> dict[str, Any]:
    """`score --engine spark`: the inputs are Parquet (files, folders of parts, globs) or a Parquet-folder
    warehouse; the scores and pages are Parquet datasets."""
    from pipeline.io import refuse_overwriting_inputs, scratch_dir
    from pipeline.params import parse_utc_time
    from pipeline.progress import display
    from pipeline.scoring.job import DEFAULT_MODEL_DIR
    from pipeline.scoring.models import load_models, load_registered
    from pipeline.spark.job import SparkScoreRequest, score_job
    from pipeline.spark.read import Inputs, warehouse_inputs
    from pipeline.spark.session import SparkSettings

    if fmt is not OutputFormat.parquet:
        raise ZombieScanError("--format csv: the Spark engine writes Parquet datasets; convert a part with any Parquet reader")
    if model_uri and model_dir:
        raise ZombieScanError("--model-uri and --model-dir: give one of them")
    local = {o: p for o, p in (("--accounts", accounts), ("--engagements", engagements), ("--targets", targets)) if p and "*" not in str(p)}
    refuse_overwriting_inputs({"--out": out, "--pages-out": pages_out}, local)
    if engagements is None and accounts.suffix != ".duckdb" and accounts.is_dir() and (accounts / "accounts.parquet").exists():
        inputs = warehouse_inputs(accounts)
    else:
        inputs = Inputs(str(accounts), str(engagements) if engagements else None, str(targets) if targets else None)
    if inputs.engagements is None:  # before a Spark session starts
        raise ZombieScanError(
            "--engagements: missing; the Spark engine scores with engagements only; to score the profiles alone "
            "(the profile-only models), drop --engine spark"
        )
    logger = logging.getLogger("pipeline")
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        with scratch_dir("zombiescan-score-") as scratch:
            if model_uri:
                models, versions = load_registered([u.strip() for u in model_uri.split(",") if u.strip()], scratch)
            else:
                models, versions = load_models(model_dir or DEFAULT_MODEL_DIR)
            request = SparkScoreRequest(
                inputs=inputs,
                out=str(out),
                reference_time=parse_utc_time(reference_time, "--reference-time"),
                explain=explain.value,
                pages_out=str(pages_out) if pages_out else None,
                overwrite=overwrite,
            )
            with display(err, quiet) as progress:
                summary = score_job(request, models, versions, SparkSettings.parse(master, spark_conf), progress)
    finally:
        logger.setLevel(level)
    if not quiet:
        for warning in summary["warnings"]:
            err.print(f"warning: {warning}", highlight=False)
        err.print(f"wrote {out}" + (f" and {pages_out}" if pages_out else ""), highlight=False)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 1 a user error (one clear message), 2 a usage
    error, 130 Ctrl-C, 143 SIGTERM (after cleaning up: outputs as they were, no temporaries)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with interrupt.handled():
            # Typer handles --help and usage errors itself (message, exit code 2) and raises SystemExit.
            app(args=argv, prog_name="zombiescan")
    except BaseException as exc:
        code = interrupt.exit_code(exc)
        if code is not None:  # the signal, or what it caused: DuckDB's "Query interrupted", a message raised while stopping
            err.print(f"{interrupt.describe()}: stopped; every output is as it was before the run", highlight=False)
            return code
        if isinstance(exc, ZombieScanError):
            # The message quotes user data: escape it so '[/b]' in a bad value is printed, not parsed.
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            return 1
        if isinstance(exc, SystemExit):
            return exc.code if isinstance(exc.code, int) else 1
        problem = _environment_fault(exc)
        if problem is None:
            raise
        err.print(f"[bold red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        return 1
    return 0


def _environment_fault(exc: BaseException) -> str | None:
    """A one-line message for a fault of the machine rather than the code (disk full, a folder
    that cannot be written, an I/O error inside DuckDB); None for anything else (a bug: traceback).
    Outputs are still whole or absent: every writer builds them under a temporary name."""
    import errno

    import duckdb

    faults = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO)
    if isinstance(exc, OSError) and exc.errno in faults:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror} ({errno.errorcode.get(exc.errno or 0, 'I/O')}); nothing was replaced, and no temporary file is left"
    if isinstance(exc, duckdb.IOException | duckdb.OutOfMemoryException):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{first}; nothing was replaced, and no temporary file is left"
    return None


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
