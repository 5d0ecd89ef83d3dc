"""Stage simulate: params `simulate` -> a contract folder of simulated tables (simulate.out) and its trait rates (simulate.report)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pipeline.io import atomic_path
from pipeline.params import section
from pipeline.simulate import from_params, simulate, write_contract
from pipeline.simulate.traits import rates_markdown, trait_rates
from pipeline.stages.common import stage_main

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    p = section(params, "simulate")
    preset, cfg, style = from_params(p)
    tables = simulate(cfg, style)
    write_contract(tables, p["out"], cfg, preset, style)
    log.info("wrote %s: %s", p["out"], ", ".join(f"{k} {v.height:,}" for k, v in tables.items()))
    # How often each trait occurs per class: no trait may belong to one class (docs/simulator.md#traits).
    rates = trait_rates(tables["accounts"], tables["engagements"], tables["labels"])
    log.info("trait rates per class:\n%s", rates_markdown(rates))
    report = {row["trait"]: {k: v for k, v in row.items() if k != "trait"} for row in rates.iter_rows(named=True)}
    path = Path(p["report"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"style": style.as_dict(), "traits": report}, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    return stage_main("simulate", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
