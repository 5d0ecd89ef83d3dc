"""What every stage's `main` does: parse `--params`, set up logging, print user errors cleanly."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from pipeline import interrupt
from pipeline.errors import ZombieScanError
from pipeline.params import DEFAULT_PARAMS, load_params


def stage_main(name: str, run: Callable[..., None], argv: list[str] | None, *, tasks: tuple[str, ...] = ()) -> int:
    """Load params, run the stage, turn a `ZombieScanError` into a message and exit code 1.

    With `tasks`, the stage takes `--task` (one of them) and `run` gets it as keyword `task`.
    """
    parser = argparse.ArgumentParser(prog=f"python -m pipeline.stages.{name}")
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="params file (default: params.yaml)")
    if tasks:
        parser.add_argument("--task", required=True, choices=tasks, help="which classifier")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{name}: %(message)s")
    try:
        with interrupt.handled():
            if tasks:
                run(load_params(args.params), task=args.task)
            else:
                run(load_params(args.params))
    except BaseException as exc:
        code = interrupt.exit_code(exc)
        if code is not None:  # also a DuckDB "Query interrupted" or a message raised while stopping
            print(f"{name}: {interrupt.describe()}: stopped; every output is as it was before the run", file=sys.stderr)
            return code
        if isinstance(exc, ZombieScanError):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    return 0
