"""Atomic writes: an output appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import ZombieScanError


@contextlib.contextmanager
def atomic_path(
    final: Path | str,
    *,
    replaceable_dir: Callable[[Path], bool] | None = None,
    replaceable_file: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield a temporary path beside `final`; move it onto `final` only if the block succeeds.

    The temporary name lives in the same folder, so the final move is a rename. Whatever was at
    `final` before survives a failure untouched.

    Args:
        final: The file or folder to produce.
        replaceable_dir: For folder outputs: says whether an existing folder at `final` may be
            replaced (e.g. it is an earlier output of the same command). Without it, or when it
            says no, an existing folder is never replaced: the caller named the wrong path.
        replaceable_file: Says whether an existing file at `final` may be replaced (default:
            yes). A folder output never replaces a file.

    Raises:
        ZombieScanError: `final` exists and may not be replaced.
    """
    final = Path(final).resolve()  # a symlink to a folder means that folder
    if final.is_dir() and not (replaceable_dir and replaceable_dir(final)):
        raise ZombieScanError(
            f"{final}: is an existing folder that this command did not write; refusing to replace it (choose another path, or remove it)"
        )
    if final.is_file() and (replaceable_dir is not None or (replaceable_file is not None and not replaceable_file(final))):
        raise ZombieScanError(f"{final}: is an existing file that this command did not write; refusing to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp / final.name
    try:
        yield target
        if final.is_dir():
            # A folder cannot be swapped in one rename: move the old one aside, move the new one
            # in, and put the old one back if that second step fails.
            old = tmp / (final.name + ".old")
            os.replace(final, old)
            try:
                os.replace(target, final)
            except BaseException:
                os.replace(old, final)
                raise
        else:
            os.replace(target, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
