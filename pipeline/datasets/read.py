"""Read one dataset file (csv or tsv, with a header row or with columns named by the spec; parquet, JSON array,
JSON Lines, npz) into a frame with its row numbers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.datasets.spec import FileSpec
from pipeline.errors import ZombieScanError

# 1-based data row of the source file (a CSV's header is row 0; in a headerless CSV, whose
# columns the spec names, the first line is row 1; an array's first item is row 1)
ROW = "__row"


def read_file(root: Path, spec: FileSpec, where: str) -> pl.DataFrame:
    """The file's columns (text columns stay text: conversions are checked value by value later) and ROW.

    Args:
        root: The data root the spec's paths are relative to.
        spec: The file entry of the spec.
        where: The spec key of the entry, for messages (e.g. `accounts.files[1]`).

    Raises:
        ZombieScanError: the file is missing, cannot be parsed in its format, or has no rows.
    """
    path = root / spec.path
    if not path.is_file():
        raise ZombieScanError(f"{path}: file not found (spec key {where}.path, relative to the data root {root})")
    try:
        frame = _read(path, spec, where)
    except ZombieScanError:
        raise
    except Exception as exc:  # every reader has its own exception types for a broken file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ZombieScanError(f"{path}: cannot be read as {spec.format} (spec key {where}.format): {first}") from None
    if frame.height == 0:
        raise ZombieScanError(f"{path}: file has no rows (spec key {where})")
    if ROW in frame.columns:
        raise ZombieScanError(f"{path}: column '{ROW}' is a name ZombieScan reserves; rename it")
    return frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def _read(path: Path, spec: FileSpec, where: str) -> pl.DataFrame:
    if spec.format in ("csv", "tsv"):
        separator = "\t" if spec.format == "tsv" else ","
        if spec.columns:
            _check_fields(path, separator, spec.columns, where)
        # Everything as text: the spec decides what a column means, and a value that does not fit
        # is reported with its row rather than guessed at by type inference.
        return pl.read_csv(
            path,
            separator=separator,
            infer_schema=False,
            encoding="utf8",
            quote_char='"',
            has_header=not spec.columns,
            new_columns=list(spec.columns) or None,
        )
    if spec.format == "parquet":
        return pl.read_parquet(path)
    if spec.format == "jsonl":
        return pl.read_ndjson(path, infer_schema_length=None)
    if spec.format == "json":
        items = json.loads(path.read_text(encoding="utf-8-sig"))
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ZombieScanError(f"{path}: expected a JSON array of objects (format json); use jsonl for one object per line")
        return pl.DataFrame(items, infer_schema_length=None)
    return _read_npz(path, spec)


def _check_fields(path: Path, separator: str, columns: tuple[str, ...], where: str) -> None:
    """A headerless file: every record has as many fields as the spec names columns.

    Polars would fill a short record with nulls and stop at a long one without saying where: one
    pass of the csv module (the same quoting rules) finds the first record that differs.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        for row, record in enumerate(csv.reader(fh, delimiter=separator, quotechar='"'), start=1):
            if len(record) != len(columns):
                raise ZombieScanError(
                    f"{path}: row {row} has {len(record)} field(s); the spec names {len(columns)} column(s) "
                    f"({', '.join(columns)}) (spec key {where}.columns; the file is read without a header row)"
                )


def _read_npz(path: Path, spec: FileSpec) -> pl.DataFrame:
    """Named arrays of one length as columns: a 1-D array is one column, a 2-D array one column per name."""
    with np.load(path, allow_pickle=False) as npz:
        columns: dict[str, np.ndarray] = {}
        length = None
        for name, names in spec.arrays.items():
            if name not in npz.files:
                raise ZombieScanError(f"{path}: no array '{name}' (spec key arrays; arrays in the file: {', '.join(npz.files)})")
            array = npz[name]
            parts = [array] if array.ndim == 1 else [array[:, j] for j in range(array.shape[1])] if array.ndim == 2 else None
            if parts is None or len(parts) != len(names):
                raise ZombieScanError(
                    f"{path}: array '{name}' has shape {array.shape}; the spec names {len(names)} column(s) for it ({', '.join(names)})"
                )
            if length is not None and len(array) != length:
                raise ZombieScanError(f"{path}: array '{name}' has {len(array)} rows, the arrays before it {length}")
            length = len(array)
            columns.update(zip(names, parts, strict=True))
    return pl.DataFrame(columns)


def read_masks(root: Path, spec: FileSpec, names: dict[str, str], where: str) -> dict[str, np.ndarray]:
    """Split masks (splits x rows, boolean) by role, from an npz file; `names`: role -> array name."""
    path = root / spec.path
    if not path.is_file():
        raise ZombieScanError(f"{path}: file not found (spec key {where}.path, relative to the data root {root})")
    out = {}
    try:
        npz_file = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a file that is not an npz
        raise ZombieScanError(f"{path}: cannot be read as npz (spec key {where}.path): {exc}") from None
    with npz_file as npz:
        for role, name in names.items():
            if name not in npz.files:
                raise ZombieScanError(f"{path}: no array '{name}' (spec key {where}.{role}; arrays: {', '.join(npz.files)})")
            try:
                mask = np.asarray(npz[name])
            except ValueError as exc:  # an object array needs pickle, which we never allow
                raise ZombieScanError(f"{path}: array '{name}' (spec key {where}.{role}): {exc}") from None
            if mask.ndim == 1:
                mask = mask[None, :]
            if mask.ndim != 2 or mask.dtype != np.bool_:
                raise ZombieScanError(f"{path}: array '{name}' (spec key {where}.{role}): expected boolean masks, splits x accounts")
            out[role] = mask
    shapes = {m.shape for m in out.values()}
    if len(shapes) != 1:
        raise ZombieScanError(f"{path}: the train, valid and test masks differ in shape ({', '.join(map(str, shapes))})")
    return out
