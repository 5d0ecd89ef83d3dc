"""Stage ingest: a contract folder (ingest.source) -> DuckDB warehouse (ingest.db) + report (ingest.report)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.io import atomic_path
from pipeline.params import section
from pipeline.stages.common import stage_main
from pipeline.warehouse import DEFAULT_MAX_REJECT_SHARE, ingest

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    p = section(params, "ingest")
    report = ingest(
        p["source"],
        p["db"],
        quarantine=p.get("quarantine", False),
        max_reject_share=p.get("max_reject_share", DEFAULT_MAX_REJECT_SHARE),
        index_engagements=p.get("index_engagements") or [],
    )
    with atomic_path(Path(p["report"])) as tmp:
        tmp.write_text(report.to_json() + "\n")
    for name, t in report.tables.items():
        log.info("%s: %s", name, t.summary())


def main(argv: list[str] | None = None) -> int:
    return stage_main("ingest", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
