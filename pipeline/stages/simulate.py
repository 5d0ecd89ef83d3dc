"""Stage simulate: params `simulate` -> a contract folder of simulated tables (simulate.out)."""

from __future__ import annotations

import logging
from typing import Any

from pipeline.params import section
from pipeline.simulate import make_config, simulate, write_contract
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    p = section(params, "simulate")
    cfg = make_config(p["preset"], seed=p.get("seed"), accounts=p.get("accounts"), **(p.get("knobs") or {}))
    tables = simulate(cfg)
    write_contract(tables, p["out"], cfg, p["preset"])
    log.info("wrote %s: %s", p["out"], ", ".join(f"{k} {v.height:,}" for k, v in tables.items()))


def main(argv: list[str] | None = None) -> int:
    return stage_main("simulate", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
