"""Ctrl-C and SIGTERM: clean up like any failure, then exit 130 or 143 with one line.

The handlers raise `Interrupted` in the main thread, so every `finally` and context manager
runs: temporaries are removed, outputs keep their old contents. DuckDB turns a signal that
arrives during a query into its own `RuntimeError("Query interrupted")`; `received` says which
signal it was, so the caller still exits with the right code. A second signal while
cleaning up is noted, not raised, so the clean-up finishes (`deferred`).
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import weakref
from collections.abc import Iterator
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")

NAMES: dict[int, str] = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}
_received: list[int] = []


class Interrupted(BaseException):
    """A SIGINT or SIGTERM arrived; `code` is the exit status the shell expects (128 + signal).

    Not a KeyboardInterrupt: click would turn that into "Aborted!" and exit status 1."""

    def __init__(self, signum: int) -> None:
        super().__init__(NAMES.get(signum, f"signal {signum}"))
        self.signum = signum
        self.code = 128 + signum


_state = {"raised": False, "deferred": 0}


def _handle(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    _raise_if_due()


def _raise_if_due() -> None:
    """Raise `Interrupted` once per run, and never inside a `deferred` block."""
    if _received and not _state["raised"] and not _state["deferred"]:
        _state["raised"] = True
        raise Interrupted(_received[0])


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Clean-up that a signal must not cut short (removing temporaries, swapping an output in).

    A signal that arrives inside is recorded; it is raised when the block ends normally (and
    not at all if the block ends with an exception: the run is stopping already)."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
    _raise_if_due()


_connections: weakref.WeakSet[Any] = weakref.WeakSet()


def track(con: T) -> T:
    """Register a DuckDB connection to be interrupted when a signal arrives; returns it."""
    _connections.add(con)
    return con


def _watch(reader: socket.socket) -> None:
    """Interrupt every tracked DuckDB connection as soon as a signal arrives.

    Python runs a signal handler only when the main thread checks for signals, and DuckDB's main
    thread does not while it waits for a worker thread's task: a Ctrl-C could wait as long as the
    longest task. The C-level handler writes to the wakeup fd at once, and this thread (DuckDB
    releases the GIL while it works) tells each connection to stop.
    """
    while True:
        try:
            if not reader.recv(1):
                return
        except OSError:
            return
        for con in list(_connections):
            with contextlib.suppress(Exception):
                con.interrupt()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Route SIGINT and SIGTERM through `Interrupted` for the block (main thread only, as Python
    requires), and interrupt running DuckDB queries at once; the handlers before it are put back
    afterwards."""
    _received.clear()
    _state["raised"] = False
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    before = {signum: signal.signal(signum, _handle) for signum in NAMES}
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=_watch, args=(reader,), name="zombiescan-interrupt", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_fd)
        for signum, handler in before.items():
            signal.signal(signum, handler)
        writer.close()  # the watcher's recv returns b"" and it ends
        watcher.join(timeout=5)
        reader.close()


def received() -> int | None:
    """The first signal in the last `handled` block, or None."""
    return _received[0] if _received else None


def describe() -> str:
    """'interrupted (Ctrl-C)' or 'terminated (SIGTERM)': what stopped the run."""
    return NAMES.get(_received[0], f"signal {_received[0]}") if _received else NAMES[signal.SIGINT]


def exit_code(exc: BaseException | None = None) -> int | None:
    """128 + the signal, when a signal arrived (or `exc` is a KeyboardInterrupt: 130); else None."""
    if _received:
        return 128 + _received[0]
    if isinstance(exc, KeyboardInterrupt | Interrupted):
        return 128 + signal.SIGINT
    return None
