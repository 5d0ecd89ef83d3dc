"""Stage featurize: warehouse (ingest.db) -> featurize.out/{features,lockstep_groups}.parquet + metrics (featurize.report),
on DuckDB or, with `featurize.engine: spark`, on Spark (the same files)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.errors import ZombieScanError
from pipeline.features.build import featurize_warehouse
from pipeline.features.lockstep import LockstepParams
from pipeline.io import atomic_path
from pipeline.params import parse_utc_time, section
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    p = section(params, "featurize")
    when = parse_utc_time(p.get("reference_time"), "featurize.reference_time")
    lockstep = LockstepParams.from_dict(p.get("lockstep"), "featurize.lockstep")
    engine = p.get("engine", "duckdb")
    if engine == "spark":
        from pipeline.spark.features import featurize_warehouse_spark
        from pipeline.spark.session import SparkSettings

        spark = p.get("spark") or {}
        settings = SparkSettings(spark.get("master") or "local[2]", {str(k): str(v) for k, v in (spark.get("conf") or {}).items()})
        db = Path(section(params, "ingest")["db"])
        report = featurize_warehouse_spark(db, Path(p["out"]), settings=settings, reference_time=when, lockstep_params=lockstep)
    elif engine == "duckdb":
        report = featurize_warehouse(section(params, "ingest")["db"], p["out"], reference_time=when, lockstep_params=lockstep)
    else:
        raise ZombieScanError(f"featurize.engine: {engine!r}: expected duckdb or spark")
    with atomic_path(Path(p["report"])) as tmp:
        tmp.write_text(json.dumps(report.record(), indent=2, sort_keys=True) + "\n")
    log.info("%d accounts x %d features, %d lockstep groups", report.accounts, report.features, report.lockstep_groups)


def main(argv: list[str] | None = None) -> int:
    return stage_main("featurize", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
