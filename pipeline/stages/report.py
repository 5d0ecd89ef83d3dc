"""Stage report: the run's outputs -> report.out (reports/summary.html), one self-contained page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.params import section
from pipeline.report import write_summary
from pipeline.stages.common import stage_main


def run(params: dict[str, Any]) -> None:
    write_summary(params, Path(section(params, "report")["out"]))


def main(argv: list[str] | None = None) -> int:
    return stage_main("report", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
