"""Spark outputs that appear whole or not at all.

A job writes its output folder under a temporary name beside the destination (same file system,
so the final step is a rename), then renames it into place; an existing output is replaced only
with `overwrite`, and only after the new one is complete. A failure or Ctrl-C before the rename
leaves the destination as it was and removes the temporary folder. Paths go through Hadoop's
FileSystem API, so the same code writes to a local disk, HDFS or an object store (where a rename
is a copy: still never a half-written destination, as readers see the old or the new folder).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipeline.errors import ZombieScanError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Rows per Parquet part file: a large output is split into parts of about this size, written in parallel.
ROWS_PER_PART = 2_000_000


class SparkFolder:
    """A folder on the file system of `path`, through the JVM's Hadoop FileSystem."""

    def __init__(self, spark: SparkSession, path: str) -> None:
        jvm: Any = spark._jvm  # Hadoop's FileSystem API, as pyspark itself reaches it
        self.spark = spark
        self._path_cls = jvm.org.apache.hadoop.fs.Path
        self.path = self._path_cls(path)
        self.fs = self.path.getFileSystem(spark._jsc.hadoopConfiguration())
        self.uri = str(self.fs.makeQualified(self.path).toString())

    def child(self, name: str) -> str:
        return f"{self.uri.rstrip('/')}/{name}"

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def write_text(self, name: str, text: str) -> None:
        stream = self.fs.create(self._path_cls(self.child(name)), True)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()

    def delete(self) -> None:
        if self.fs.exists(self.path):
            self.fs.delete(self.path, True)

    def rename_to(self, other: SparkFolder) -> None:
        if not self.fs.rename(self.path, other.path):
            raise ZombieScanError(f"{other.uri}: could not move the finished output into place (from {self.uri})")


@contextmanager
def spark_output(spark: SparkSession, dest: str, *, overwrite: bool = False, option: str = "--out") -> Iterator[SparkFolder]:
    """A temporary folder to write the output into, renamed to `dest` when the block ends without error."""
    target = SparkFolder(spark, dest)
    if target.exists() and not overwrite:
        raise ZombieScanError(f"{option} {dest}: exists; pass --overwrite to replace it (nothing was written)")
    parent = target.path.getParent()
    if parent is not None and not target.fs.exists(parent):
        raise ZombieScanError(f"{option} {dest}: the folder {parent.toString()} does not exist; create it first")
    name = target.path.getName()
    tmp = SparkFolder(spark, f"{parent.toString() if parent is not None else '.'}/.{name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        old = None
        if target.exists():
            old = SparkFolder(spark, f"{tmp.uri}.old")
            target.rename_to(old)
        tmp.rename_to(target)
        if old is not None:
            old.delete()
    finally:
        tmp.delete()


def write_parquet(frame: DataFrame, uri: str, *, rows: int | None = None, sort: str | None = "account_id") -> None:
    """`frame` as a Parquet dataset (a folder of parts) at `uri`: one part per ~ROWS_PER_PART rows
    (a small frame is one file), rows sorted by `sort` across the parts (None: as they come, e.g.
    already ordered)."""
    rows = frame.count() if rows is None else rows
    parts = max(1, -(-rows // ROWS_PER_PART))
    # With a sort key: a range shuffle (coalesce(1) would also run the work before it in one task).
    # Without: the frame is ordered already and its partitions are that order, concatenated as they are.
    ordered = frame.coalesce(1) if parts == 1 else frame
    out = frame.repartitionByRange(parts, sort).sortWithinPartitions(sort) if sort else ordered
    out.write.mode("error").parquet(uri)
