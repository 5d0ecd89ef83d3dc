"""Cutting the lineage of the Spark steps' intermediate frames: one rule for every step.

The iterations (PageRank, k-core, the dense-block peel, the lockstep components) build each pass
from the last, so without a cut the plan of pass k holds k copies of the input and no planner
survives tens of passes; `monotonically_increasing_id` keys must also be frozen, since a
recomputation would draw them anew.

- With a checkpoint directory (`--spark-conf spark.checkpoint.dir=hdfs:///...`, a cluster) the
  cut is a reliable checkpoint, written at once: a lost executor does not lose the state of a
  long iteration. The session then also has Spark's cleaner delete the checkpoint files of
  frames no longer referenced (pipeline/spark/session.py), so passes do not pile up on storage.
- Without one (one machine) it is a `localCheckpoint`: kept in executor memory, then disk.
  `eager=False` lets the next action compute and keep it, so a pass pays one job for its state
  and its convergence numbers together, not two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def cut(frame: DataFrame, *, eager: bool = True) -> DataFrame:
    """`frame` with its lineage dropped: reliably with a checkpoint directory (always eagerly),
    else kept on the executors (`localCheckpoint`, computed now or by the next action)."""
    if frame.sparkSession.sparkContext.getCheckpointDir():
        return frame.checkpoint(eager=True)
    return frame.localCheckpoint(eager=eager)


def release(frame: DataFrame) -> None:
    """Drop the kept data of a cut frame now, not whenever the JVM's garbage collector lets Spark's
    cleaner find it: an iteration keeps a copy of its state every pass, and tens of passes of them
    would pile up on the executors' disks."""
    jdf = getattr(frame, "_jdf", None)  # a classic session's Dataset; a Spark Connect frame has none
    if jdf is not None:
        jdf.queryExecution().analyzed().rdd().unpersist(False)
