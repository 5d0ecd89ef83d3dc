"""Writing without losing anything: atomic outputs, one writer per output, no debris, inputs kept.

- `atomic_path`: an output appears whole under its final name, or not at all.
- `output_lock`: one process writes an output at a time (a lock file beside it, held for the
  whole run); a second run fails at once with a message naming the first.
- Every temporary folder records its owner (pid and start time); a later run removes the
  temporaries of processes that are gone (kill -9, power loss) and says so.
- `refuse_overwriting_inputs`: an output is never one of the command's inputs, whatever the
  spelling (symlinks, `..`, hard links), with or without --overwrite.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from pipeline.errors import ZombieScanError
from pipeline.interrupt import deferred

log = logging.getLogger(__name__)

OWNER = ".owner"  # inside each temporary folder: "<pid> <process start time>"
STALE_UNOWNED_S = 60  # a temporary without an owner file is someone's only for the moment between its mkdir and the write


def _start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), '' where /proc is missing; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
    except (OSError, IndexError):
        pass
    try:  # no /proc (macOS): only whether the pid exists
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def _owner_text() -> str:
    return f"{os.getpid()} {_start_time(os.getpid()) or ''}".strip()


def _owner_alive(folder: Path) -> bool:
    """Whether the process that made `folder` is still running (a reused pid does not count)."""
    try:
        parts = (folder / OWNER).read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        try:
            return time.time() - folder.stat().st_mtime < STALE_UNOWNED_S
        except OSError:
            return False
    started = _start_time(pid)
    if started is None:
        return False
    return len(parts) < 2 or not started or started == parts[1]


def owned_tempdir(prefix: str, suffix: str = "", parent: Path | str | None = None) -> Path:
    """mkdtemp with an owner file inside, after removing stale siblings with the same prefix and suffix."""
    parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    remove_stale(parent, f"{glob.escape(prefix)}*{glob.escape(suffix)}")
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    try:
        (folder / OWNER).write_text(_owner_text())
    except BaseException:  # a full disk: leave nothing behind
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def remove_stale(parent: Path, pattern: str) -> list[Path]:
    """Remove the folders in `parent` matching `pattern` whose owner process is gone; say so."""
    removed = []
    for folder in sorted(parent.glob(pattern)):
        if folder.is_dir() and not folder.is_symlink() and not _owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
                log.warning("removed %s: a temporary left by an earlier run that did not finish", folder)
    return removed


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: Path | str | None = None) -> Iterator[Path]:
    """A private temporary folder in the system's temp folder, removed afterwards (also on Ctrl-C
    or SIGTERM); one left by a killed run is removed by the next run that asks for one."""
    folder = owned_tempdir(prefix, parent=parent)
    try:
        yield folder
    finally:
        with deferred():
            shutil.rmtree(folder, ignore_errors=True)


_process_scratch: Path | None = None


def process_scratch() -> Path:
    """This process's spill folder (DuckDB's temp_directory), removed when the process exits."""
    global _process_scratch
    if _process_scratch is None or not _process_scratch.is_dir():
        folder = owned_tempdir("zombiescan-spill-")
        atexit.register(shutil.rmtree, folder, True)
        _process_scratch = folder
    return _process_scratch


_held: dict[Path, int] = {}  # lock file -> how many nested holders in this process


def _lock_path(final: Path) -> Path:
    return final.parent / f".{final.name}.lock"


@contextlib.contextmanager
def output_lock(final: Path | str) -> Iterator[None]:
    """Hold the exclusive lock on output `final` (`.NAME.lock` beside it) for the block.

    Re-entrant within a process. A second process asking for the same output fails at once.
    The lock file is removed on release; a lock file left by a killed process holds no lock (the
    kernel drops it) and is taken over.

    Raises:
        ZombieScanError: another process is writing `final`, or its folder cannot be written.
    """
    final = Path(final).resolve()
    lock = _lock_path(final)
    if lock in _held:
        _held[lock] += 1
        try:
            yield
        finally:
            _held[lock] -= 1
        return
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ZombieScanError(f"{final}: cannot create the folder {final.parent} ({exc.strerror})") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ZombieScanError(
                f"{final}: cannot write to the folder {final.parent} ({exc.strerror}); choose a folder you can write to"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 100, 0).decode(errors="replace").split()
            os.close(fd)
            who = f"process {holder[0]}" if holder else "another process"
            raise ZombieScanError(
                f"{final}: another zombiescan run ({who}) is writing it now; wait for it to finish, or choose another output path"
            ) from None
        # Its last holder may have removed the file between our open and our lock: then we hold
        # a lock on a name nobody else sees, and must start again.
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    with contextlib.suppress(OSError):  # who holds it is for the message only: a full disk must not stop us here
        os.ftruncate(fd, 0)
        os.pwrite(fd, _owner_text().encode(), 0)
    _held[lock] = 1
    try:
        yield
    finally:
        with deferred():
            del _held[lock]
            with contextlib.suppress(OSError):
                os.unlink(lock)  # before unlocking: a waiter on the old file sees it is gone
            os.close(fd)


@contextlib.contextmanager
def atomic_path(
    final: Path | str,
    *,
    replaceable_dir: Callable[[Path], bool] | None = None,
    replaceable_file: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield a temporary path beside `final`; move it onto `final` only if the block succeeds.

    The temporary name lives in the same folder, so the final move is a rename. Whatever was at
    `final` before survives a failure untouched. The output's lock is held throughout, and
    temporaries of `final` left by killed runs are removed first.

    Args:
        final: The file or folder to produce.
        replaceable_dir: For folder outputs: says whether an existing folder at `final` may be
            replaced (e.g. it is an earlier output of the same command). Without it, or when it
            says no, an existing folder is never replaced: the caller named the wrong path.
        replaceable_file: Says whether an existing file at `final` may be replaced (default:
            yes). A folder output never replaces a file.

    Raises:
        ZombieScanError: `final` exists and may not be replaced, or another run is writing it.
    """
    final = Path(final).resolve()  # a symlink to a folder means that folder
    with output_lock(final):
        if final.is_dir() and not (replaceable_dir and replaceable_dir(final)):
            raise ZombieScanError(
                f"{final}: is an existing folder that this command did not write; refusing to replace it "
                "(choose another path, or remove it)"
            )
        if final.is_file() and (replaceable_dir is not None or (replaceable_file is not None and not replaceable_file(final))):
            raise ZombieScanError(f"{final}: is an existing file that this command did not write; refusing to replace it")
        tmp = owned_tempdir(f".{final.name}.", ".tmp", final.parent)
        target = tmp / final.name
        try:
            yield target
            with deferred():  # a signal now waits until the output is in place
                if final.is_dir():
                    # A folder cannot be swapped in one rename: move the old one aside, move the new
                    # one in, and put the old one back if that second step fails.
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
            with deferred():
                shutil.rmtree(tmp, ignore_errors=True)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def refuse_overwriting_inputs(outputs: Mapping[str, Path | None], inputs: Mapping[str, Path | Iterable[Path] | None]) -> None:
    """Fail unless every output is a path of its own: not an input (after symlinks and `..`, or the
    same file under another name), and, for an output that is a folder, not holding an input.

    Args:
        outputs: option name (e.g. "--out") -> the path it writes.
        inputs: option name -> the path(s) it reads; a folder counts with the files in it.

    Raises:
        ZombieScanError: naming both options and paths.
    """
    reads: list[tuple[str, Path]] = []
    for option, value in inputs.items():
        if value is None:
            continue
        for path in [value] if isinstance(value, Path | str) else value:
            path = Path(path)
            reads.append((option, path))
            with contextlib.suppress(OSError):  # a folder we may not list has no files we could clobber
                if path.is_dir():
                    reads += [(option, p) for p in sorted(path.iterdir()) if p.is_file()]
    for out_option, out in outputs.items():
        if out is None:
            continue
        out = Path(out)
        for in_option, path in reads:
            if _same(out, path) or _inside(path, out):
                what = "is" if _same(out, path) else "holds"
                raise ZombieScanError(
                    f"{out_option} {out}: {what} {path}, read by {in_option}: an output never replaces an input of the "
                    "same command (with or without --overwrite); choose another path"
                )
