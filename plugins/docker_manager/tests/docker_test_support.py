"""Helpers shared by the Docker manager tests and their fixtures."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
#: Every cluster started by this session has a name starting with this, so leftovers can be found.
PREFIX = f"dt{os.getpid()}"
REGISTRY_ADDR = "127.0.0.1:5000"


def unavailable(reason: str) -> None:
    """Skip outside CI; fail in CI, where Docker tests must run (DESIGN.md §5)."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)
