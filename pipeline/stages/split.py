"""Stage split: warehouse labels -> split.out (one row per labelled account: group, fold, labels)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.io import atomic_path
from pipeline.models.split import make_split, split_params
from pipeline.params import section
from pipeline.stages.common import stage_main
from pipeline.warehouse import connect

log = logging.getLogger(__name__)


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
