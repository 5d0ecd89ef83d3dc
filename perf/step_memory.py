"""Peak memory of each step of `zombiescan score`: where the job's memory goes, not only its peak.

    python -m perf.step_memory --work DIR --preset large --memory-limit 2GB

scores the simulator's Parquet files in DIR/sim-PRESET (made by `python -m perf.run --presets
PRESET --stages simulate --work DIR`) in this process, as the command line does, while a thread
reads the process's resident memory every 0.2 s; prints each step's seconds and the largest RSS
seen while it ran. The outputs go to a scratch folder, removed at the end. The benchmark's
`score_cli` rows give the job's peak from a fresh process; this splits it by step (a sample
every 0.2 s can miss a spike shorter than that).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

INTERVAL = 0.2


def rss_mib() -> float:
    """This process's resident memory now (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(src: Path, memory_limit: str) -> tuple[list[tuple[str, float, float]], dict[str, object]]:
    """(step, seconds, peak RSS MiB) per step in the order they ran, and the job's JSON summary."""
    from pipeline.scoring.job import ScoreRequest, run

    current = ["starting"]
    peaks: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            step = current[0]
            peaks[step] = max(peaks.get(step, 0.0), rss_mib())
            stop.wait(INTERVAL)

    def progress(step: str, done: int, total: int) -> None:
        if step != current[0]:
            peaks[step] = max(peaks.get(step, 0.0), rss_mib())
            current[0] = step

    out = Path(tempfile.mkdtemp(prefix="step-memory-"))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        request = ScoreRequest(
            accounts=src / "accounts.parquet",
            engagements=src / "engagements.parquet",
            targets=src / "targets.parquet",
            out=out / "scores.parquet",
            pages_out=out / "pages.parquet",
            memory_limit=memory_limit,
        )
        result = run(request, progress)
    finally:
        stop.set()
        sampler.join()
        shutil.rmtree(out, ignore_errors=True)
    steps: dict[str, float] = result.summary["steps"]  # type: ignore[assignment]
    rows = [(step, seconds, peaks.get(step, 0.0)) for step, seconds in steps.items()]
    return rows, result.summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="the benchmark's work folder (holds sim-PRESET/)")
    parser.add_argument("--preset", default="large")
    parser.add_argument("--memory-limit", default="5GB", help="DuckDB's limit, as `zombiescan score --memory-limit`")
    args = parser.parse_args(argv)
    src = args.work / f"sim-{args.preset}"
    if not (src / "engagements.parquet").is_file():
        raise SystemExit(
            f"{src}: no simulated world; make it with `python -m perf.run --presets {args.preset} --stages simulate --work {args.work}`"
        )
    start = time.perf_counter()
    rows, summary = measure(src, args.memory_limit)
    print(
        f"`zombiescan score` on {src}, --memory-limit {args.memory_limit}: {summary['accounts']:,} accounts, "
        f"{time.perf_counter() - start:.1f} s, largest RSS {max(r[2] for r in rows):,.0f} MiB (sampled every {INTERVAL} s)"
    )
    print()
    print("| step | seconds | peak RSS (MiB) |")
    print("|---|---:|---:|")
    for step, seconds, peak in rows:
        print(f"| {step} | {seconds:.1f} | {peak:,.0f} |")
    print()
    print(f"command: `python -m perf.step_memory --work DIR --preset {args.preset} --memory-limit {args.memory_limit}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
