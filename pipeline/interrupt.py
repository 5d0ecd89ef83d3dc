"""Ctrl-C and SIGTERM: clean up like any failure, then exit 130 or 143 with one line.

The handlers raise `Interrupted` in the main thread, so every `finally` and context manager
runs: temporaries are removed, outputs keep their old contents. DuckDB turns a signal that
arrives during a query into its own `RuntimeError("Query interrupted")`; `received` says which
signal it was, so the caller still exits with the right code. A second signal while
cleaning up is noted, not raised, so the clean-up finishes.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

NAMES: dict[int, str] = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}
_received: list[int] = []


class Interrupted(BaseException):
    """A SIGINT or SIGTERM arrived; `code` is the exit status the shell expects (128 + signal).

    Not a KeyboardInterrupt: click would turn that into "Aborted!" and exit status 1."""

    def __init__(self, signum: int) -> None:
        super().__init__(NAMES.get(signum, f"signal {signum}"))
        self.signum = signum
        self.code = 128 + signum


def _handle(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if len(_received) == 1:
        raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Route SIGINT and SIGTERM through `Interrupted` for the block (main thread only, as Python
    requires); the handlers before it are put back afterwards."""
    _received.clear()
    before = {signum: signal.signal(signum, _handle) for signum in NAMES}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


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
