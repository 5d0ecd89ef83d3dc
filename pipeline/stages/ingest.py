"""Stage ingest: a contract folder (ingest.source), or a real dataset (data.spec) -> DuckDB warehouse (ingest.db) + report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.datasets.adapt import load_dataset, write_warehouse
from pipeline.datasets.spec import data_root, find_spec, load_spec
from pipeline.ingest import DEFAULT_MAX_REJECT_SHARE, ingest
from pipeline.io import atomic_path
from pipeline.params import section
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    p = section(params, "ingest")
    data = params.get("data") or {}
    if data.get("spec"):
        # A real dataset instead of the simulator: the spec maps its files onto the contract,
        # and the same ingest checks them (docs/datasets.md).
        spec = load_spec(find_spec(data["spec"]))
        dataset = load_dataset(spec, data_root(data.get("root")))
        report = write_warehouse(dataset, Path(p["db"]))
        log.info("%s: %s", spec.name, dataset.info())
    else:
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
