"""The coordination network (CooRnet / CooRTweet style) on top of the lockstep detector: `coordination_network`, `write_coordination`."""

from pipeline.coordination.export import FORMATS, check_output, parse_formats, write_coordination
from pipeline.coordination.network import CoordinationParams, CoordinationResult, coordination_network, parse_window, windows_from_text

__all__ = [
    "FORMATS",
    "CoordinationParams",
    "CoordinationResult",
    "check_output",
    "coordination_network",
    "parse_formats",
    "parse_window",
    "windows_from_text",
    "write_coordination",
]
