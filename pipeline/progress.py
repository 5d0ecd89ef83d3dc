"""A progress display on stderr for long commands, fed by `(step, done, total)` calls."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console


@contextlib.contextmanager
def display(err: Console, quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display on stderr, fed by `(step, done, total)` calls (total 0: a spinner).

    Each step's first word names its bar ("features: lockstep" updates the features bar). Off with
    --quiet; on a terminal that is not interactive rich prints nothing until the end, so each new
    step is also printed as a line."""
    if quiet:
        yield lambda step, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bars: dict[str, Any] = {}
    with Progress(*columns, console=err, transient=False) as display:

        def update(step: str, done: int, total: int) -> None:
            key = step.split(":")[0].split(" ")[0]
            for other, bar in bars.items():  # a new step finishes the one before
                if other != key and not display.tasks[bar].finished:
                    display.update(bar, total=display.tasks[bar].total or 1, completed=display.tasks[bar].total or 1)
            if key not in bars:
                bars[key] = display.add_task(step, total=total or None)
                if not err.is_terminal:
                    err.print(step, highlight=False)
            elif not err.is_terminal and display.tasks[bars[key]].description != step and total == 0:
                err.print(step, highlight=False)
            display.update(bars[key], description=step, completed=done, total=total or None)

        yield update
        for bar in bars.values():
            task = display.tasks[bar]
            display.update(bar, total=task.total or 1, completed=task.total or 1)
