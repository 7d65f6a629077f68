"""A kit for testing Clipper plugins (and code that uses a container manager).

* :class:`FakeContainerManager` — an in-memory manager (``PLUGIN_NAME = "fake"``) that records every call;
  managers built on one :class:`FakeBackend` see the same "cluster", as real ones see the same processes.
* :class:`FakePlugin` — a plugin object whose hooks register the fake manager.
* :func:`save_closure` — a model directory (``func.pkl``) that any manager's ``build_model`` accepts.
* :func:`wait_until` — poll with a deadline, the one way tests should wait.
* :mod:`clipper_core.testing.contract` — the container-manager contract suite every manager plugin runs against
  itself;
* :mod:`clipper_core.testing.fixtures` — pytest fixtures (``pytest_plugins = ["clipper_core.testing.fixtures"]``).

Only the two submodules need pytest, so this module imports in a core-only install.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import cloudpickle

from clipper_core.local._state import pid_alive, recorded_pids
from clipper_core.testing.fake import FakeBackend, FakeContainerManager, FakePlugin

T = TypeVar("T")

__all__ = [
    "FakeBackend",
    "FakeContainerManager",
    "FakePlugin",
    "feature_sum",
    "pid_alive",
    "recorded_pids",
    "save_closure",
    "wait_until",
]


def feature_sum(xs: Any) -> list[str]:  # noqa: ANN401 - whatever batch type the input type decodes to
    """The contract suite's model: the sum of each input, as a string.

    It lives here, not in the pytest-only contract module, because replicas unpickle it by reference.
    """
    return [str(float(sum(x))) for x in xs]


def save_closure(func: Callable[..., object], directory: str | None = None) -> str:
    """Pickle ``func`` as ``func.pkl`` into ``directory`` (a new temporary one by default); returns the directory."""
    directory = directory or tempfile.mkdtemp(prefix="clipper-model-")
    with open(os.path.join(directory, "func.pkl"), "wb") as fh:
        cloudpickle.dump(func, fh)
    return directory


def wait_until(cond: Callable[[], T], timeout: float = 30.0, what: str = "condition", interval: float = 0.05) -> T:
    """Call ``cond`` until it returns something true and return that; raise ``AssertionError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:g} s waiting for {what} (last value {last!r})"
            raise AssertionError(msg)
        time.sleep(interval)
