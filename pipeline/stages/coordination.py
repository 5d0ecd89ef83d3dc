"""Stage coordination: warehouse + features + models -> coordination.out, the coordination network
for analysts (nodes/edges CSV, GraphML, GEXF, groups, flagged engagements; pipeline/coordination)
and its counts as metrics (coordination.report).

The nodes carry p_zombie / p_like_farm from the shipped models, scored on the run's features (the
same scores `zombiescan score` gives at the features' reference time, without reasons), and the
lockstep groups of the featurize stage (lockstep_groups.parquet, same warehouse and settings).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.coordination import CoordinationParams, coordination_network, parse_formats, write_coordination
from pipeline.coordination.network import COMPUTE
from pipeline.features.lockstep import LockstepParams
from pipeline.io import atomic_path, scratch_dir
from pipeline.params import section
from pipeline.scoring.models import load_models
from pipeline.scoring.score import score_features
from pipeline.stages.common import stage_main
from pipeline.warehouse import connect

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    p = section(params, "coordination")
    out, report_path = Path(p["out"]), Path(p["report"])
    formats = parse_formats(p.get("formats"))
    lockstep = LockstepParams.from_dict((params.get("featurize") or {}).get("lockstep"), "featurize.lockstep")
    settings = CoordinationParams.from_dict(p, lockstep)
    models, _ = load_models(Path(section(params, "train")["models"]))
    features = pl.read_parquet(Path(section(params, "featurize")["out"]) / "features.parquet")
    scores = score_features(features, models, explain="none").select("account_id", *[f"p_{task}" for task in models])
    with scratch_dir("zombiescan-coordination-") as scratch:
        scores.write_parquet(scratch / "scores.parquet")
        db = section(params, "ingest")["db"]
        result = coordination_network(db, settings, scratch / "scores.parquet", lockstep_groups=_lockstep_source(params, db))
    write_coordination(out, result, formats, overwrite=True)
    with atomic_path(report_path) as tmp:
        tmp.write_text(json.dumps(result.report, indent=2, sort_keys=True) + "\n")
    log.info(
        "%d edges, %d accounts, %d groups (windows %s s)",
        result.edges.height,
        result.nodes.height,
        result.groups.height,
        ", ".join(str(w) for w in result.report.get("windows_s", [])),
    )


def _lockstep_source(params: dict[str, Any], db: str) -> str:
    """The featurize stage's folder when its lockstep groups saw every engagement the network sees
    (same warehouse and settings; features cut at a reference time before the last engagement saw
    fewer): they are not found twice. Otherwise "compute"."""
    folder = Path(section(params, "featurize")["out"])
    try:
        cut = json.loads((folder / "report.json").read_text())["reference_time"]
    except (OSError, ValueError, KeyError):
        return COMPUTE
    con = connect(db)
    try:
        later = con.execute("SELECT count(*) FROM engagements WHERE ts > ?::TIMESTAMPTZ", [cut]).fetchall()[0][0]
    finally:
        con.close()
    if later:
        log.info("lockstep groups: the features stop at %s, before %d engagements: found again on every engagement", cut, later)
        return COMPUTE
    return str(folder)


def main(argv: list[str] | None = None) -> int:
    return stage_main("coordination", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
