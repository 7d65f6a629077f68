"""Fixtures for the PySpark deployer tests: one SparkSession per test run, one local cluster per module.

Without pyspark or Java these tests skip with the reason, except under ``CI=true``: then they fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from spark_test_support import require_spark

from clipper_core.files import read_json
from clipper_core.local._state import pid_alive, recorded_pids
from clipper_core.ports import free_ports
from clipper_core.testing import wait_until

#: JVM settings for the test run's short-lived Spark drivers (the test process's and the replicas'): start fast.
FAST_START = json.dumps({"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"})


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The test process's SparkSession (one local core, no UI, loopback), shared by every test."""
    require_spark()
    from clipper_deployers._spark import session_config
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in session_config().items():
        builder = builder.config(key, value)
    session = builder.appName("clipper-pyspark-tests").getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A started local cluster in its own CLIPPER_HOME, stopped (and its processes gone) after the module."""
    from clipper_admin import ClipperConnection, LocalContainerManager

    home = tmp_path_factory.mktemp("clipper-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPPER_HOME", str(home))
        mp.setenv("CLIPPER_SPARK_CONF", FAST_START)  # inherited by the replicas
        query, mgmt, rpc, redis_port = free_ports(4)
        cm = LocalContainerManager(
            cluster_name="pyspark",
            clipper_query_port=query,
            clipper_management_port=mgmt,
            clipper_rpc_port=rpc,
            redis_port=redis_port,
        )
        # A deploy waits until the replica serves; a Spark replica first starts a JVM, slow on a busy machine.
        cm.deploy_timeout = 180.0
        conn = ClipperConnection(cm)
        conn.start_clipper()
        try:
            yield conn
        finally:
            pids = recorded_pids(read_json(Path(cm.cluster_dir) / "processes.json"))
            conn.stop_all()
            wait_until(lambda: not any(pid_alive(p) for p in pids), 30, "cluster processes to exit")


os.environ.setdefault("CLIPPER_TEST", "1")
