"""Read `params.yaml`, the one place every path and setting lives."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ZombieScanError

DEFAULT_PARAMS = Path("params.yaml")


class Params(dict[str, Any]):
    """The params file's contents, remembering which file they came from (for messages)."""

    def __init__(self, source: Path | str, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.source = source


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """Load the params file.

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
    return Params(path, params)


class Section(dict[str, Any]):
    """One stage's settings; a missing key is a clear user error, not a KeyError."""

    def __init__(self, name: str, source: Path | str, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.name = name
        self.source = source

    def __missing__(self, key: str) -> Any:
        raise ZombieScanError(f"{self.source}: setting '{self.name}.{key}' is missing")


def section(params: dict[str, Any], name: str) -> Section:
    """Return one stage's section, with a clear error when it or a key in it is missing."""
    source = getattr(params, "source", DEFAULT_PARAMS)
    value = params.get(name)
    if not isinstance(value, dict):
        raise ZombieScanError(f"{source}: section '{name}' is missing or is not a mapping")
    return Section(name, source, value)


def parse_utc_time(value: str | datetime | None, name: str) -> datetime | None:
    """An ISO 8601 setting with a time zone (`...Z` for UTC) as a datetime; None stays None.

    Raises:
        ZombieScanError: naming the setting, when the text is not such a timestamp.
    """
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as a datetime
        if value.tzinfo is None:
            raise ZombieScanError(f"{name} = {value.isoformat()}: expected a time zone (add Z for UTC)")
        return value
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ZombieScanError(f"{name} = {value!r}: expected an ISO 8601 timestamp such as 2026-06-01T00:00:00Z") from None
    if parsed.tzinfo is None:
        raise ZombieScanError(f"{name} = {value!r}: expected a time zone (add Z for UTC)")
    return parsed
