"""Clipper in Python: the plugin core (hook specs, plugin manager, admin API, local cluster)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from clipper_core.commands import CommandContext, CommandRegistry
from clipper_core.container_manager import ContainerManager, ManagerOption
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

try:
    # The distribution's pyproject.toml is the one place the version is written; image tags follow it.
    __version__ = version("clipper-core")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "hookimpl",
    "CommandContext",
    "CommandRegistry",
    "ContainerManager",
    "ManagerOption",
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
