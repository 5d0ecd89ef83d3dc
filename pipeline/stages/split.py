"""Stage split: warehouse labels -> split.out (one row per labelled account: group, fold, labels)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.errors import ZombieScanError
from pipeline.io import atomic_path
from pipeline.models.split import SplitParams, make_split
from pipeline.params import parse_utc_time, section
from pipeline.stages.common import stage_main
from pipeline.warehouse import connect

log = logging.getLogger(__name__)


def split_params(values: dict[str, Any]) -> SplitParams:
    if "time_cutoff" in values:
        raise ZombieScanError("split.time_cutoff: renamed split.cohort_cutoff (the split is by creation cohort, not out of time)")
    known = set(SplitParams.__dataclass_fields__) | {"out"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ZombieScanError(f"split: unknown setting(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known))}")
    return SplitParams(
        method=str(values.get("method", "group")),
        folds=int(values.get("folds", 5)),
        seed=int(values.get("seed", 42)),
        cohort_cutoff=parse_utc_time(values.get("cohort_cutoff"), "split.cohort_cutoff"),
    )


def run(params: dict[str, Any]) -> None:
    p = section(params, "split")
    con = connect(section(params, "ingest")["db"])
    try:
        labels = con.sql("SELECT * FROM labels").pl()
        accounts = con.sql("SELECT account_id, created_at FROM accounts").pl()
    finally:
        con.close()
    split = make_split(labels, accounts, split_params(dict(p)))
    with atomic_path(Path(p["out"])) as tmp:
        split.write_parquet(tmp)
    log.info(
        "%d labelled accounts in %d folds (%s), %d groups",
        split.height,
        split["fold"].n_unique(),
        p.get("method"),
        split["group"].n_unique(),
    )


def main(argv: list[str] | None = None) -> int:
    return stage_main("split", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
