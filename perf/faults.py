"""Fault injection at size: kill -9, SIGTERM and Ctrl-C at several points of each writer, and two
writers of one output at once, on a simulated world; prints a Markdown table and the counts.

    python -m perf.faults                      # the `default` world (about 15 minutes on 2 cores)
    python -m perf.faults --preset tiny        # the same cases in about 3 minutes
    python -m perf.faults --writers score --points 0.2 0.5

For each writer (ingest, features, score, benchmark) the clean run is timed first and leaves the
output a fault must not damage; then each fault is sent at each point (a share of the clean run's
time). A case is handled when: the exit status is 143 (SIGTERM), 130 (Ctrl-C), -9 (kill -9) or 0
(the run finished first); an interrupted run printed one line and no traceback; the output is the
earlier one, byte for byte, unless the run finished; the inputs are byte-identical; nothing is left
beside the output or in the temp folder (after kill -9: once the next run, which must succeed and
say what it removed, is over). The fast versions of these cases run in CI (tests/test_faults.py).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FAULTS = {"SIGTERM": (signal.SIGTERM, 143), "Ctrl-C": (signal.SIGINT, 130), "kill -9": (signal.SIGKILL, -9)}
DEBRIS = (".tmp", ".lock", ".probe")


def digest(path: Path) -> dict[str, str]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []
    return {str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@dataclass
class Writer:
    name: str
    args: Callable[[Path], list[str]]  # work folder -> CLI arguments
    out: Callable[[Path], Path]
    inputs: Callable[[Path], list[Path]]


def writers(models: Path, data_root: Path) -> list[Writer]:
    return [
        Writer("ingest", lambda w: ["ingest", "--source", str(w / "sim"), "--db", str(w / "out" / "w.duckdb")],
               lambda w: w / "out" / "w.duckdb", lambda w: [w / "sim"]),
        Writer("features", lambda w: ["features", "--db", str(w / "w.duckdb"), "--out", str(w / "out" / "features")],
               lambda w: w / "out" / "features", lambda w: [w / "w.duckdb"]),
        Writer("score", lambda w: ["score", "--accounts", str(w / "sim" / "accounts.parquet"), "--engagements",
                                   str(w / "sim" / "engagements.parquet"), "--model-dir", str(models), "--out",
                                   str(w / "out" / "scores.parquet"), "--pages-out", str(w / "out" / "pages.parquet"), "--overwrite"],
               lambda w: w / "out" / "scores.parquet", lambda w: [w / "sim", models]),
        Writer("benchmark", lambda w: ["benchmark", "--fast", "--dataset", "instafake", "--data-root", str(data_root),
                                       "--out", str(w / "out" / "bench")],
               lambda w: w / "out" / "bench", lambda w: [data_root / "instafake"]),
    ]  # fmt: skip


def run(args: list[str], tmp: Path, fault: tuple[int, float] | None = None) -> tuple[int, str]:
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    if fault is not None:
        signum, after = fault
        try:
            proc.wait(timeout=after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signum)
    _, err = proc.communicate()
    return proc.returncode, err


def debris(folder: Path, tmp: Path) -> list[str]:
    beside = [p.name for p in folder.rglob("*") if p.name.endswith(DEBRIS)]
    return beside + [p.name for p in tmp.iterdir()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--writers", nargs="+", default=["ingest", "features", "score", "benchmark"])
    parser.add_argument("--points", nargs="+", type=float, default=[0.1, 0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--models", type=Path, default=Path("models"), help="trained models for `score` (make repro writes them)")
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("ZOMBIESCAN_DATA_ROOT", "../shared/data")))
    a = parser.parse_args(argv)
    rows: list[tuple[str, str, str, str, str]] = []
    tried = handled = 0
    with tempfile.TemporaryDirectory(prefix="zombiescan-faults-") as scratch:
        work = Path(scratch)
        tmp = work / "tmp"
        tmp.mkdir()
        (work / "out").mkdir()
        code, err = run(["simulate", "--preset", a.preset, "--out", str(work / "sim")], tmp)
        assert code == 0, err
        code, err = run(["ingest", "--source", str(work / "sim"), "--db", str(work / "w.duckdb")], tmp)
        assert code == 0, err
        for w in [w for w in writers(a.models.resolve(), a.data_root.resolve()) if w.name in a.writers]:
            inputs = {str(p): digest(p) for p in w.inputs(work)}
            start = time.perf_counter()
            code, err = run(w.args(work), tmp)
            clean = time.perf_counter() - start
            if code != 0:
                rows.append((w.name, "clean run", "-", str(code), f"FAILED: {err.strip().splitlines()[-1] if err.strip() else ''}"))
                continue
            rows.append((w.name, "clean run", f"{clean:.1f} s", "0", "reference output"))
            good = digest(w.out(work))
            for fault, (signum, expected) in FAULTS.items():
                for point in a.points:
                    tried += 1
                    code, err = run(w.args(work), tmp, (signum, clean * point))
                    problems = []
                    if code == -signum and signum != signal.SIGKILL:
                        # outside the command's handlers (Python starting up, or exiting after the
                        # command ended): the default action, which a shell also reports as 128 + signal
                        code = expected
                        err = "default action"
                    if code not in (expected, 0):
                        problems.append(f"exit {code}")
                    if code == expected and signum != signal.SIGKILL:
                        lines = [line for line in err.strip().splitlines() if line.strip() and "stopped" in line]
                        if not lines or "Traceback" in err:
                            problems.append("no one-line message" if not lines else "traceback")
                    if code != 0 and digest(w.out(work)) != good and w.name != "ingest":
                        problems.append("output changed")
                    if w.name == "ingest" and code != 0 and set(digest(w.out(work))) != set(good):
                        problems.append("output changed")
                    if signum == signal.SIGKILL and code != 0:
                        left_by_kill = [n for n in debris(work / "out", tmp) if not n.endswith(".lock")]
                        again, err2 = run(w.args(work), tmp)
                        if again != 0:
                            problems.append(f"rerun exit {again}")
                        elif left_by_kill and "removed" not in err2:
                            problems.append(f"rerun did not say it removed {', '.join(left_by_kill[:2])}")
                    left = debris(work / "out", tmp)
                    if left:
                        problems.append(f"left {', '.join(left[:3])}")
                        for p in tmp.iterdir():
                            shutil.rmtree(p, ignore_errors=True)
                    if {p: digest(Path(p)) for p in inputs} != inputs:
                        problems.append("an input changed")
                    handled += not problems
                    outcome = "; ".join(problems) or ("finished first" if code == 0 else "clean stop, old output kept")
                    if err == "default action" and not problems:
                        outcome = "ended by the default action while Python started or exited; output whole"
                    good = digest(w.out(work))  # a run that finished (or the rerun) wrote the reference anew
                    rows.append((w.name, fault, f"{point:.0%} ({clean * point:.1f} s)", str(code), outcome))
            # two writers of one output at once: the second fails at once, the first finishes
            tried += 1
            env = {**os.environ, "TMPDIR": str(tmp)}
            start = time.perf_counter()
            first = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *w.args(work)], stderr=subprocess.PIPE, text=True, env=env)
            lock = w.out(work).parent / f".{w.out(work).name}.lock"
            deadline = time.monotonic() + clean * 3 + 10
            while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)  # until the first run holds the output's lock
            held = time.perf_counter() - start
            first.send_signal(signal.SIGSTOP)
            code2, err2 = run(w.args(work), tmp)
            first.send_signal(signal.SIGCONT)
            first.communicate()
            ok = code2 == 1 and "another zombiescan run" in err2 and first.returncode == 0 and not debris(work / "out", tmp)
            handled += ok
            rows.append(
                (
                    w.name,
                    "second writer",
                    f"once the first holds the lock ({held:.1f} s)",
                    str(code2),
                    "refused, first finished" if ok else f"PROBLEM: {err2.strip()[-200:]}",
                )
            )
    print(f"# fault injection, preset {a.preset}: `python -m perf.faults --preset {a.preset}`\n")
    print("| writer | fault | at | exit | outcome |\n|---|---|---|---:|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n{handled} of {tried} cases handled")
    return 0 if handled == tried else 1


if __name__ == "__main__":
    raise SystemExit(main())
