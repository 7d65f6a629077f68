"""Clipper in Python frontends: the Tornado query frontend (REST + ZeroMQ RPC) and the management frontend."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clipper-frontend")  # frontend/pyproject.toml is the one source
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
