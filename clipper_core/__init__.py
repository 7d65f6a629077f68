"""Clipper in Python: the plugin core (hook specs, plugin manager, admin API, local cluster)."""

from __future__ import annotations

from clipper_core.errors import (
    ClipperError,
    ClipperException,
    ContainerManagerError,
    DeploymentError,
    DuplicatePluginError,
    InputDecodeError,
    PluginError,
    UnconnectedException,
    UnknownPluginError,
)
from clipper_core.hookspecs import hookimpl

__version__ = "0.5.0"

__all__ = [
    "__version__",
    "hookimpl",
    "ClipperError",
    "ClipperException",
    "ContainerManagerError",
    "DeploymentError",
    "DuplicatePluginError",
    "InputDecodeError",
    "PluginError",
    "UnconnectedException",
    "UnknownPluginError",
]
