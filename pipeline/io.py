"""Atomic writes: an output appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds.

    Works for a file or a directory. The temporary name lives in the same folder so the
    rename is atomic on POSIX; whatever was at `final` before survives a failure untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp / final.name
    try:
        yield target
        if final.is_dir() and not final.is_symlink():
            # A directory cannot be replaced in one rename: move the old one aside first,
            # then swap, so a crash in between still leaves one complete copy on disk.
            old = tmp / (final.name + ".old")
            os.replace(final, old)
            os.replace(target, final)
        else:
            os.replace(target, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
