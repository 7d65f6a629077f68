"""Flatten registration-hook results into name -> object registries, once, at start-up.

:class:`PluginHost` is the typed facade over the untyped ``pm.hook`` relay; nothing else in the code base
calls a hook directly.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from clipper_core.errors import DuplicatePluginError, UnknownPluginError
from clipper_core.plugins import get_plugin_manager

if TYPE_CHECKING:
    from clipper_core.container_manager import ContainerManager
    from clipper_core.input_types import InputType

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects collected from one registration hook.

    Results of ``trylast`` (built-in) implementations never clash with external ones: an external plugin that
    registers the same name wins. Two non-built-in plugins registering one name is a :class:`DuplicatePluginError`.
    """

    def __init__(self, kind: str, items: dict[str, T], owners: dict[str, str]) -> None:
        self.kind = kind
        self._items = items
        self.owners = owners

    @classmethod
    def collect(cls, pm: pluggy.PluginManager, hook_name: str, kind: str, name_attr: str = "PLUGIN_NAME") -> Registry[T]:
        caller = getattr(pm.hook, hook_name)
        impls = sorted(caller.get_hookimpls(), key=lambda impl: impl.trylast)  # externals first, built-ins last
        items: dict[str, T] = {}
        owners: dict[str, str] = {}
        builtin: dict[str, bool] = {}
        for impl in impls:
            for obj in impl.function() or []:
                name = getattr(obj, name_attr)
                if name in items:
                    if impl.trylast:
                        logger.debug("%s %r from %s overridden by %s", kind, name, impl.plugin_name, owners[name])
                        continue
                    if not builtin[name]:
                        msg = (
                            f"Duplicate {kind} {name!r}: registered by plugin {owners[name]!r} "
                            f"and by plugin {impl.plugin_name!r}"
                        )
                        raise DuplicatePluginError(msg)
                items[name] = obj
                owners[name] = impl.plugin_name
                builtin[name] = bool(impl.trylast)
        return cls(kind, items, owners)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            msg = f"Unknown {self.kind} {name!r}. Installed: {known}"
            raise UnknownPluginError(msg) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items


class PluginHost:
    """Typed access to everything plugins registered."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm if pm is not None else get_plugin_manager()
        self._managers: Registry[type[ContainerManager]] | None = None
        self._deployers: Registry[Any] | None = None
        self._input_types: Any = None

    def container_managers(self) -> Registry[type[ContainerManager]]:
        if self._managers is None:
            self._managers = Registry.collect(self.pm, "clipper_register_container_managers", "container manager")
        return self._managers

    def deployers(self) -> Registry[Any]:
        if self._deployers is None:
            self._deployers = Registry.collect(self.pm, "clipper_register_deployers", "deployer")
        return self._deployers

    def input_types(self) -> InputTypeRegistry:
        if self._input_types is None:
            from clipper_core.input_types import InputTypeRegistry

            reg: Registry[InputType] = Registry.collect(self.pm, "clipper_register_input_types", "input type", "name")
            self._input_types = InputTypeRegistry(reg)
        return self._input_types


if TYPE_CHECKING:
    from clipper_core.input_types import InputTypeRegistry


_default_host: PluginHost | None = None


def default_host() -> PluginHost:
    """A process-wide host built on first use (entry points loaded once per process)."""
    global _default_host
    if _default_host is None:
        _default_host = PluginHost()
    return _default_host
