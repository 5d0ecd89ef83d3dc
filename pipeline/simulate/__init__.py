"""The built-in social-platform simulator with ground truth (docs/simulator.md)."""

from pipeline.simulate.config import KNOBS, PRESETS, SimConfig, make_config
from pipeline.simulate.tables import simulate, write_contract

__all__ = ["KNOBS", "PRESETS", "SimConfig", "make_config", "simulate", "write_contract"]
