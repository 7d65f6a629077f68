"""Helpers of the PySpark deployer tests: skip outside CI (fail in CI) when Spark cannot run here; local clusters."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from clipper_core.files import read_json
from clipper_core.ports import free_ports
from clipper_core.testing import pid_alive, recorded_pids, wait_until

IN_CI = os.environ.get("CI", "").lower() == "true"

#: JVM settings for the test run's short-lived Spark drivers (the test process's and the replicas'): start fast.
FAST_START = json.dumps({"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"})


def unavailable(reason: str) -> None:
    """Skip outside CI; fail under ``CI=true``, where the Spark tests must run."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def needs_pyspark() -> None:
    """pyspark importable (no JVM needed), or :func:`unavailable`."""
    from clipper_deployers import _spark

    from clipper_core.errors import ClipperException

    try:
        _spark.require_pyspark()
    except ClipperException as exc:
        unavailable(exc.msg)


def require_spark() -> None:
    """pyspark importable and a Java runtime present, or :func:`unavailable`."""
    from clipper_deployers import _spark

    from clipper_core.errors import ClipperException

    try:
        _spark.require_pyspark()
        _spark.require_java()
    except ClipperException as exc:
        unavailable(exc.msg)


def replica_log(conn: Any, name: str, version: str) -> str:
    """The first replica's log of ``name:version`` (for assertion messages)."""
    path = Path(conn.cm.cluster_dir) / "logs" / f"{name}_{version}-0.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else f"(no {path})"


@contextmanager
def local_cluster(home: Path, name: str, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A started local cluster in ``home`` whose processes see ``env``; stopped, and its processes gone, after."""
    from clipper_admin import ClipperConnection, LocalContainerManager

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLIPPER_HOME", str(home))
        mp.setenv("CLIPPER_SPARK_CONF", FAST_START)  # inherited by the replicas
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        query, mgmt, rpc, redis_port = free_ports(4)
        cm = LocalContainerManager(
            cluster_name=name,
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
