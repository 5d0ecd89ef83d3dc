"""The README's folder table describes the tree a newcomer clones: every folder it names exists,
and every package folder and top-level folder in git is in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _table_folders() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Folders\n", 1)[1].split("\n## ", 1)[0]
    return [m.group(1).rstrip("/") for m in re.finditer(r"^\| `([^`]+)` \|", section, flags=re.M)]


def test_every_folder_in_the_readme_table_exists() -> None:
    named = _table_folders()
    assert named, "README.md: no folder table under '## Folders'"
    missing = [f for f in named if not (ROOT / f).exists()]
    assert not missing, f"README.md folder table names what the tree lacks: {missing}"


def test_every_package_and_top_level_folder_is_in_the_readme_table() -> None:
    named = set(_table_folders())
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    top = {p.split("/")[0] for p in tracked if "/" in p and not p.startswith(".")}
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "pipeline").glob("*/__init__.py")}
    missing = sorted((top | packages) - named)
    assert not missing, f"README.md folder table lacks {missing}"
