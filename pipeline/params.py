"""Read `params.yaml`, the one place every path and setting lives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ZombieScanError

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Load the params file as a dict.

    Raises:
        ZombieScanError: if the file is missing, is not YAML, or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ZombieScanError(f"{path}: params file not found (run from the project root)") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ZombieScanError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ZombieScanError(f"{path}: expected a mapping of stage sections at the top level")
    return params


def section(params: dict[str, Any], name: str, source: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return one stage's section, with a clear error when it is missing."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise ZombieScanError(f"{source}: section '{name}' is missing or is not a mapping")
    return value
