"""`zombiescan score` as a job: check the request, read the inputs, score, write the outputs.

The command line parses the options into a `ScoreRequest`, shows progress and prints the
summary; everything in between is here. Outputs are locked from the start (a second run writing
the same file stops at once) and written under temporary names, renamed into place only when
all are written: a failure or Ctrl-C leaves every output as it was.

An accounts file given without engagements (a bulk profile export) is scored from the profile
features alone, by the profile-only models (`models/<task>-profile/`): every row says
`has_engagements = false` and names that model in `<task>_model_version`. With engagements the
full models score every account, those without any engagement too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import tasks
from pipeline.db import check_memory_limit
from pipeline.errors import ZombieScanError
from pipeline.features.build import check_reference_time
from pipeline.io import atomic_path, output_lock, refuse_overwriting_inputs, scratch_dir
from pipeline.models.card import simulated, simulated_warning
from pipeline.models.train import FEATURE_SETS, FULL, PROFILE, model_folder
from pipeline.scoring.models import check_profile_only, load_models, load_registered
from pipeline.scoring.pages import seller_task, suspected_pages
from pipeline.scoring.score import CHUNK_SIZE, Progress, profile_scores, to_csv_frame, warehouse_scores
from pipeline.warehouse import connect

DEFAULT_MODEL_DIR = Path("models")


@dataclass(frozen=True)
class ScoreRequest:
    """What `zombiescan score` was asked to do (its options, parsed)."""

    accounts: Path  # a contract file, or a warehouse (.duckdb file or Parquet folder)
    out: Path
    engagements: Path | None = None
    targets: Path | None = None
    model_dir: Path | None = None  # default: models/
    model_uri: str | None = None  # registered models, comma-separated, instead of model_dir
    reference_time: datetime | None = None
    chunk_size: int = CHUNK_SIZE
    memory_limit: str = "5GB"
    explain: str = "flagged"
    fmt: str = "parquet"  # or csv
    pages_out: Path | None = None
    overwrite: bool = False


@dataclass
class ScoreResult:
    summary: dict[str, Any]  # the JSON line `zombiescan score` prints
    unscored: int  # accounts created after the reference time
    warnings: list[str]
    notes: list[str] = field(default_factory=list)  # what the command says on stderr besides the warnings


def run(request: ScoreRequest, progress: Progress | None = None) -> ScoreResult:
    """Score every account of the request's inputs and write the outputs; `progress(step, done, total)`."""
    start = time.perf_counter()
    r = request
    # a bulk profile export (accounts only, not a warehouse): the profile-only models
    profile_only = r.engagements is None and not _is_warehouse(r.accounts)
    if profile_only and r.pages_out is not None:
        raise ZombieScanError(
            "--pages-out: needs --engagements (it ranks pages by the likes they received); give them, or drop --pages-out "
            "to score the profiles alone"
        )
    if profile_only and r.targets is not None:
        raise ZombieScanError(
            f"--targets {r.targets}: describes what engagements point at, and there are none; give --engagements too, "
            "or drop --targets to score the profiles alone"
        )
    model_files = _model_files(r.model_dir or DEFAULT_MODEL_DIR) if not r.model_uri else []
    refuse_overwriting_inputs(
        {"--out": r.out, "--pages-out": r.pages_out},
        {"--accounts": r.accounts, "--engagements": r.engagements, "--targets": r.targets, "--model-dir": model_files},
    )
    if r.pages_out is not None and r.pages_out.resolve() == r.out.resolve():
        raise ZombieScanError(f"--pages-out {r.pages_out}: the same file as --out; give it another name")
    if r.model_uri and r.model_dir:
        raise ZombieScanError("--model-uri and --model-dir: give one of them")
    check_memory_limit(r.memory_limit)
    steps: dict[str, float] = {}  # seconds per step, for the summary
    step = timed_steps(progress or (lambda step, done, total: None), steps)
    with contextlib.ExitStack() as outputs:
        for option, path in (("--out", r.out), ("--pages-out", r.pages_out)):
            if path is None:
                continue
            if not path.parent.is_dir():
                raise ZombieScanError(f"{option} {path}: the folder {path.parent} does not exist; create it first")
            # held to the end: a second run writing the same file fails now instead of racing us;
            # creating the lock file also proves, before minutes of work, that the folder is writable
            outputs.enter_context(output_lock(path))
            if path.is_dir():
                raise ZombieScanError(f"{option} {path}: is a folder; give a file name")
            if path.exists() and not r.overwrite:
                raise ZombieScanError(f"{option} {path}: exists (it is not one of the inputs); pass --overwrite to replace it")
        if r.model_dir is not None and not r.model_dir.is_dir():
            raise ZombieScanError(f"--model-dir {r.model_dir}: no such folder (expected <task>/model.txt and model.json inside)")
        with scratch_dir("zombiescan-score-") as scratch:
            if r.model_uri:
                models, versions = load_registered([u.strip() for u in r.model_uri.split(",") if u.strip()], scratch)
                if profile_only:
                    check_profile_only(models, versions)
            else:
                models, versions = load_models(r.model_dir or DEFAULT_MODEL_DIR, PROFILE if profile_only else FULL)
            seller = tasks.like_seller()
            if r.pages_out is not None and (seller is None or seller.name not in models):
                raise ZombieScanError(f"--pages-out: needs a {seller.name if seller else 'like-selling'} model, and none was loaded")
            if _is_warehouse(r.accounts):
                if r.engagements is not None or r.targets is not None:
                    raise ZombieScanError(
                        f"--accounts {r.accounts}: is a warehouse, which holds the engagements and targets; drop --engagements/--targets"
                    )
                db = r.accounts
                _accounts_in(db)  # a file that is no warehouse fails here, before any work
            else:
                step("validating and loading the input", 0, 0)
                db = ingest_inputs(scratch, r.accounts, r.engagements, r.targets, r.memory_limit)
            check_reference_time(db, r.reference_time)
            notes = []
            options: dict[str, Any] = dict(
                explain=r.explain, versions=versions, chunk_size=r.chunk_size, memory_limit=r.memory_limit, progress=step
            )
            scoring = (
                profile_scores(db, models, reference_time=r.reference_time, **options)
                if profile_only
                else warehouse_scores(db, models, reference_time=r.reference_time, **options)
            )
            # every output under a temporary name, renamed into place only when all are written:
            # a failure or Ctrl-C leaves each as it was
            with renamed_together([r.out, *([r.pages_out] if r.pages_out is not None else [])]) as (tmp, *pages_tmp):
                sellers = scratch / "sellers.parquet" if pages_tmp else None
                with scoring as scores:  # the feature connection closes before the pages query opens its own
                    counts = write_scores(scores.batches, tmp, r.fmt, sellers=sellers, tasks=list(models), out=r.out)
                if pages_tmp and sellers is not None:
                    step("pages", 0, 0)
                    pages = suspected_pages(db, sellers, until=r.reference_time)
                    step("writing", 0, 0)
                    write_frame(pages, pages_tmp[0], r.fmt, out=r.pages_out)
                step("writing", 0, 0)  # the scores were written as they were made: what is left is renaming into place
            if profile_only:
                notes.append(
                    f"no --engagements: scored from the profile alone by {', '.join(versions.values())} "
                    f"(has_engagements = false), as of {scores.reference_time.isoformat()}"
                )
            unscored = _accounts_in(db) - counts.accounts  # features describe accounts created by the reference time
            step("done", 0, 0)
    warnings = [simulated_warning(task) for task, model in models.items() if simulated(model)]
    summary = {
        "accounts": counts.accounts,
        "created_after_reference_time": unscored,
        "flagged": counts.flagged,
        "no_engagements": counts.no_engagements,
        "models": versions,
        "seconds": round(time.perf_counter() - start, 1),
        "steps": {name: round(v, 1) for name, v in steps.items()},
        "out": str(r.out),
        "warnings": warnings,
    }
    return ScoreResult(summary, unscored, warnings, notes)


def timed_steps(progress: Progress, steps: dict[str, float]) -> Progress:
    """Pass progress on, and add each step's seconds to `steps` (a step ends when the next begins; "done" ends the last)."""
    current: list[Any] = [None, time.perf_counter()]

    def update(step: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if step != current[0]:
            if current[0] is not None:
                steps[current[0]] = steps.get(current[0], 0.0) + now - current[1]
            current[:] = [step, now]
        if step != "done":
            progress(step, done, total)

    return update


def ingest_inputs(scratch: Path, accounts: Path, engagements: Path | None, targets: Path | None, memory_limit: str) -> Path:
    """Validate the input files exactly as `zombiescan ingest` does, into a scratch warehouse; messages name the user's files.

    Parquet files that pass are not copied: the scratch warehouse shows them through views
    (`check_in_place`), so they must stay unchanged while the command runs.

    Without `engagements` only the accounts are required (the warehouse's engagements table is then empty).
    """
    from pipeline.contract import FORMATS, file_format
    from pipeline.errors import ContractError
    from pipeline.ingest import ingest
    from pipeline.ingest.load import check_in_place

    folder = scratch / "input"
    folder.mkdir()
    names = {}
    for table, path in (("accounts", accounts), ("engagements", engagements), ("targets", targets)):
        if path is None:
            continue
        if not path.is_file():
            raise ZombieScanError(f"{path}: {table} file not found" + (" (it is a folder)" if path.is_dir() else ""))
        fmt = file_format(path)
        if not fmt:
            raise ZombieScanError(
                f"{path}: {table} file of an unknown kind; expected a name ending in {', '.join(FORMATS)} (or .duckdb for a warehouse)"
            )
        link = folder / f"{table}{fmt}{'.gz' if path.name.lower().endswith('.gz') else ''}"
        link.symlink_to(path.resolve())
        names[str(link)] = str(path)
    require = None if engagements is not None else ("accounts",)
    try:
        # Parquet inputs that pass every rule are read where they are (views, nothing copied);
        # any problem, and CSV or JSON Lines, take the full ingest, which names each bad row.
        if check_in_place(folder, scratch / "input.duckdb", require=require, memory_limit=memory_limit) is None:
            ingest(folder, scratch / "input.duckdb", memory_limit=memory_limit, require=require)
    except ZombieScanError as exc:
        if isinstance(exc, ContractError):
            raise ContractError([_rename(p, names) for p in exc.problems]) from None
        raise ZombieScanError(_rename(str(exc), names)) from None
    return scratch / "input.duckdb"


def _rename(problem: str, names: dict[str, str]) -> str:
    for link, original in names.items():
        problem = problem.replace(link, original)
    return problem


@dataclass
class Counts:
    """What the summary says of the scores written."""

    accounts: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    no_engagements: int = 0


def write_scores(batches: Iterator[pl.DataFrame], tmp: Path, fmt: str, *, sellers: Path | None, tasks: list[str], out: Path) -> Counts:
    """Write the scores to `tmp` batch by batch (Parquet row groups, or CSV rows), and, when
    `sellers` is given, the columns the pages query reads to that scratch Parquet file; count as
    they pass. `out`: the output `tmp` stands for, named when the disk refuses."""
    import pyarrow.parquet as pq

    counts = Counts(flagged=dict.fromkeys(tasks, 0))
    seller = seller_task() if sellers is not None else None
    with contextlib.ExitStack() as files:
        writer: Any = None
        pages_in: Any = None
        for batch in batches:
            counts.accounts += batch.height
            for task in tasks:
                counts.flagged[task] += int(batch[f"flagged_{task}"].sum())
            counts.no_engagements += int((~batch["has_engagements"]).sum())
            with _refused(out):
                if fmt == "csv":
                    if writer is None:
                        writer = files.enter_context(tmp.open("wb"))
                    to_csv_frame(batch).write_csv(writer, include_header=writer.tell() == 0)
                else:
                    table = batch.to_arrow()
                    if writer is None:
                        writer = files.enter_context(pq.ParquetWriter(tmp, table.schema, compression="zstd"))
                    writer.write_table(table)
            if sellers is not None:
                with _refused(sellers, what="the scratch copy of the like sellers' flags for --pages-out"):
                    part = batch.select("account_id", f"flagged_{seller}", "lockstep_group").to_arrow()
                    if pages_in is None:
                        pages_in = files.enter_context(pq.ParquetWriter(sellers, part.schema))
                    pages_in.write_table(part)
        with _refused(out):
            files.close()  # the Parquet footers
    return counts


def write_frame(frame: pl.DataFrame, tmp: Path, fmt: str, *, out: Path | None) -> None:
    """One frame to `tmp` as Parquet or CSV (nested columns as JSON text); `out`: what `tmp` stands for."""
    with _refused(out):
        if fmt == "csv":
            to_csv_frame(frame).write_csv(tmp)
        else:
            frame.write_parquet(tmp)


@contextlib.contextmanager
def renamed_together(paths: list[Path]) -> Iterator[list[Path]]:
    """A temporary path beside each of `paths`, each renamed into place only when the block
    succeeds and all are written (`atomic_path`); a failure leaves every one as it was."""
    with contextlib.ExitStack() as stack:
        with _refused(*paths):
            temporaries = [stack.enter_context(atomic_path(path)) for path in paths]
        yield temporaries
        with _refused(*paths):
            stack.close()  # the renames


@contextlib.contextmanager
def _refused(*paths: Path | None, what: str = "") -> Iterator[None]:
    """An OSError (disk full, no permission) as a clear error naming the file."""
    try:
        yield
    except OSError as exc:
        names = ", ".join(str(p) for p in paths if p is not None)
        raise ZombieScanError(
            f"{names}{f' ({what})' if what else ''}: cannot write ({exc.strerror or exc}); nothing was replaced"
        ) from None


def _model_files(model_dir: Path) -> list[Path]:
    """The files `load_models` reads from a model folder, either feature set (inputs that no output may replace)."""
    return [
        model_folder(model_dir, task, feature_set) / name
        for task in tasks.names()
        for feature_set in FEATURE_SETS
        for name in ("model.txt", "model.json")
    ]


def _is_warehouse(accounts: Path) -> bool:
    return accounts.suffix == ".duckdb" or accounts.is_dir()


def _accounts_in(db: Path) -> int:
    con = connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM accounts").fetchall()[0][0])
    finally:
        con.close()
