"""Helpers of the PySpark deployer tests: skip outside CI, fail in CI, when Spark cannot run here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


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
