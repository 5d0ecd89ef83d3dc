"""The built-in social-platform simulator with ground truth (docs/simulator.md)."""

from pipeline.simulate.config import KNOBS, PRESETS, SimConfig, describe, from_params, make_config
from pipeline.simulate.style import RANGES, WorldStyle, draw_style
from pipeline.simulate.tables import simulate, write_contract

__all__ = [
    "KNOBS", "PRESETS", "RANGES", "SimConfig", "WorldStyle", "describe", "draw_style", "from_params", "make_config", "simulate",
    "write_contract",
]  # fmt: skip
