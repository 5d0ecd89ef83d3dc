"""The Spark engine on a real standalone cluster started by the test itself (P10): a master and two
workers on this machine, every process bound to 127.0.0.1, stopped at the end. Same conditions
as tests/test_spark.py (the `spark` extra; required in CI). A module of its own: a process holds
one Spark session at a time, and tests/test_spark.py's local session ends with its module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from pipeline.features.profile import profile_features

if os.environ.get("ZOMBIESCAN_REQUIRE_SPARK") != "1":
    pytest.importorskip("pyspark", reason="the Spark engine needs the 'spark' extra (pip install -e '.[spark]')")

from tests.test_spark import _same


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark standalone master and two workers on this machine, every process bound to
    127.0.0.1 (SPARK_LOCAL_IP and --host), stopped at the end. Yields the master URL."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pyspark

    home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("spark-cluster")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env["SPARK_MASTER_OPTS"] = "-Dspark.master.rest.enabled=false"  # no REST submission server: one port fewer
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master_cmd = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(_free_port())]
    commands = [("master", master_cmd)]
    for i in (1, 2):
        worker = ["org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1", "--memory", "1g"]
        commands.append((f"worker{i}", [*worker, "--webui-port", str(_free_port()), "--work-dir", str(logs / f"work{i}")]))
    processes = []
    try:
        for name, args in commands:
            log = (logs / f"{name}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [str(home / "bin" / "spark-class"), *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            if name == "master":
                _wait_for(logs / "master.log", "I have been elected leader", 90)
        for i in (1, 2):
            _wait_for(logs / f"worker{i}.log", "Successfully registered with master", 90)
        sockets = _listening({p.pid for p in processes})
        loopback = ("127.0.0.1:", "[::ffff:127.0.0.1]:")  # the JVM's IPv4 socket on an IPv6 stack
        assert sockets and all(a.startswith(loopback) for a in sockets), f"a cluster process listens beyond loopback: {sockets}"
        yield url
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _listening(pids: set[int]) -> list[str]:
    """The local addresses the processes `pids` listen on (TCP), from `ss`."""
    import re
    import subprocess

    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids]


def _wait_for(path: Any, text: str, seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise AssertionError(
        f"{path.name}: no '{text}' within {seconds:.0f} s:\n{path.read_text(errors='replace')[-3000:] if path.is_file() else ''}"
    )


def test_profile_and_behaviour_on_a_standalone_cluster(standalone_cluster: str, tiny_tables: dict[str, pl.DataFrame]) -> None:
    """The same SQL on a real (one-machine) Spark cluster: master and two workers on 127.0.0.1."""
    from pipeline.features.behaviour import behavioural_features
    from pipeline.features.profile import _with_optional_columns
    from pipeline.spark.session import spark_session
    from pipeline.spark.sql import run_feature_sql

    accounts = _with_optional_columns(tiny_tables["accounts"])
    engagements = tiny_tables["engagements"]
    if "weight" not in engagements.columns:
        engagements = engagements.with_columns(weight=pl.lit(1, pl.Int64))
    targets = tiny_tables["targets"]
    reference = engagements["ts"].max()
    conf = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", "spark.executor.memory": "512m"}
    with spark_session(standalone_cluster, conf=conf, app="zombiescan-cluster-test") as cluster:
        assert cluster.sparkContext.master == standalone_cluster
        for name, frame in (("accounts", accounts), ("engagements", engagements), ("targets", targets)):
            cluster.createDataFrame(frame.to_arrow()).createOrReplaceTempView(name)
        profile = pl.from_arrow(run_feature_sql(cluster, "profile.sql", {"ref": reference}).toArrow())
        behaviour = pl.from_arrow(run_feature_sql(cluster, "behaviour.sql", {"ref": reference, "young_hours": 24.0}).toArrow())
    assert isinstance(profile, pl.DataFrame) and isinstance(behaviour, pl.DataFrame)
    _same(profile_features(accounts, reference_time=reference), profile)
    _same(behavioural_features(accounts, engagements, reference_time=reference, targets=targets), behaviour)
