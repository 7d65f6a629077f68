"""Fixtures for the PySpark deployer tests: one SparkSession per test run, one local cluster per module.

Without pyspark or Java these tests skip with the reason, except under ``CI=true``: then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from spark_test_support import FAST_START, local_cluster, require_spark


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The test process's SparkSession (one local core, no UI, loopback), shared by every test."""
    require_spark()
    from clipper_deployers._spark import CONF_ENV, session_config
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as mp:  # the JVM reads these when it starts, in getOrCreate
        mp.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        mp.setenv(CONF_ENV, FAST_START)
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
    """A local cluster for the module's tests."""
    with local_cluster(tmp_path_factory.mktemp("clipper-home"), "pyspark") as conn:
        yield conn


os.environ.setdefault("CLIPPER_TEST", "1")
