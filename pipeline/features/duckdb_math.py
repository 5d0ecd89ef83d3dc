"""DuckDB's own arithmetic for compiled (numba) passes that must give the feature SQL's bytes.

The behaviour clock pass and the lockstep burst pass replace SQL statements on DuckDB; where the
SQL's operators differ from Python's, the passes call these instead.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def trunc_div(a: int, b: int) -> int:
    """DuckDB's integer division (b > 0): towards zero, so -61 // 60 is -1, not Python's -2."""
    q = abs(a) // b
    return q if a >= 0 else -q


@numba.njit(cache=True)
def round_away(x: float) -> float:
    """std::round: half away from zero (DuckDB's DOUBLE -> DECIMAL cast)."""
    r = np.trunc(x)
    if abs(x - r) >= 0.5:
        r += 1.0 if x > 0 else -1.0
    return r
