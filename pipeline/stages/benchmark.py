"""Stage benchmark: dataset specs (benchmark.datasets, files under data.root) -> benchmark.out/benchmark.{json,md} + details."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.benchmark.run import plan_from_params, run_benchmark
from pipeline.datasets.spec import data_root, find_spec, load_spec
from pipeline.params import section
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    p = section(params, "benchmark")
    specs = [load_spec(find_spec(name)) for name in p["datasets"]]
    root = data_root(p.get("root"))
    details = run_benchmark(specs, root, plan_from_params(p), params.get("train", {}), Path(p["out"]))
    for name, d in details.items():
        goals = ", ".join(f"{m} {g['measured']:.3f} (goal {g['goal']:.3f}{'' if g['met'] else ', MISSED'})" for m, g in d["goals"].items())
        log.info("%s: %s", name, goals)


def main(argv: list[str] | None = None) -> int:
    return stage_main("benchmark", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
