"""Polling with a deadline, the one way the tests wait for something to happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(cond: Callable[[], T], timeout: float = 30.0, what: str = "condition", interval: float = 0.05) -> T:
    """Call ``cond`` until it returns something true and return that; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:g} s waiting for {what} (last value {last!r})"
            raise AssertionError(msg)
        time.sleep(interval)
