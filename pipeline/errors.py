"""Errors a user can cause. The CLI prints them without a traceback and exits non-zero."""

from __future__ import annotations


class ZombieScanError(Exception):
    """An error caused by input or settings; its message says what to fix."""


class ContractError(ZombieScanError):
    """One or more tables break the data contract.

    Attributes:
        problems: Every problem found, each already formatted with file, column, rows and
            what was expected.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        n = len(problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the input; nothing was written:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in problems)]))
