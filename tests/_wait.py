"""Polling with a deadline, the one way the tests wait for something to happen (the plugin-testing kit's)."""

from __future__ import annotations

from clipper_core.testing import wait_until

__all__ = ["wait_until"]
