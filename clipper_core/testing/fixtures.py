"""Pytest fixtures for plugin tests: ``pytest_plugins = ["clipper_core.testing.fixtures"]``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pluggy
import pytest

from clipper_core.plugins import get_plugin_manager
from clipper_core.registry import PluginHost
from clipper_core.testing.fake import FakeBackend, FakeContainerManager


@pytest.fixture
def plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with the built-ins only (no entry points)."""
    return get_plugin_manager(load_entrypoints=False)


@pytest.fixture
def register_plugin(plugin_manager: pluggy.PluginManager) -> Iterator[Callable[[object, str], PluginHost]]:
    """``register_plugin(obj, name)`` registers a plugin object and returns a host over it; undone after the test."""
    names: list[str] = []

    def register(plugin: object, name: str) -> PluginHost:
        plugin_manager.register(plugin, name)
        names.append(name)
        return PluginHost(plugin_manager)

    try:
        yield register
    finally:
        for name in names:
            plugin_manager.unregister(name=name)


@pytest.fixture
def fake_manager() -> FakeContainerManager:
    """A :class:`FakeContainerManager` on a backend of its own."""
    return FakeContainerManager(backend=FakeBackend())
