"""Flatten registration-hook results into name -> object registries, once, at start-up.

:class:`PluginHost` is the typed facade over the untyped ``pm.hook`` relay. Every registry is built from one
``pm.hook.<name>()`` call, so hook wrappers, pluggy's ordering and ``CLIPPER_TRACE_PLUGINS`` all apply. There is no
process-wide host: whoever needs plugins builds a :class:`PluginHost` (or is handed one) and passes it on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cache
from importlib.metadata import packages_distributions
from typing import TYPE_CHECKING, Generic, TypeVar

import pluggy

from clipper_core.errors import DuplicatePluginError, UnknownPluginError
from clipper_core.input_types import InputType, InputTypeRegistry
from clipper_core.plugins import get_plugin_manager

if TYPE_CHECKING:
    from clipper_core.container_manager import ContainerManager
    from clipper_core.deployer import ModelDeployer

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Objects defined under this package are the built-ins; anything else comes from a plugin and wins over them.
BUILTIN_PACKAGE = "clipper_core"


def _package(obj: object) -> str:
    module = obj.__module__ if isinstance(obj, type) else type(obj).__module__
    if module == "builtins" or module is None:  # modules registered as deployers, say
        module = getattr(obj, "__name__", "") or ""
    return str(module).split(".", 1)[0]


@cache
def _distribution_of(package: str) -> str:
    dists = packages_distributions().get(package)
    return dists[0] if dists else package


def owner(obj: object) -> str:
    """Who provides ``obj``: the distribution of its top-level package (else the package's name)."""
    return _distribution_of(_package(obj))


def is_builtin(obj: object) -> bool:
    return _package(obj) == BUILTIN_PACKAGE


class Registry(Generic[T]):
    """Named objects collected from one registration hook.

    Built-ins (objects of ``clipper_core``, registered ``trylast``) never clash with a plugin's: a plugin that
    registers the same name wins. Two plugins registering one name is a :class:`DuplicatePluginError`.
    """

    def __init__(self, kind: str, items: dict[str, T]) -> None:
        self.kind = kind
        self._items = items

    @classmethod
    def from_results(
        cls, kind: str, results: Iterable[Iterable[T] | None], name_attr: str = "PLUGIN_NAME"
    ) -> Registry[T]:
        """Build a registry from a registration hook's results (one list per implementation)."""
        items: dict[str, T] = {}
        for result in results:
            for obj in result or ():
                name = getattr(obj, name_attr)
                if name in items and items[name] is not obj:
                    old = items[name]
                    if is_builtin(obj):
                        logger.debug("built-in %s %r overridden by %s", kind, name, owner(old))
                        continue
                    if not is_builtin(old):
                        msg = f"Duplicate {kind} {name!r}: registered by {owner(old)!r} and by {owner(obj)!r}"
                        raise DuplicatePluginError(msg)
                items[name] = obj
        return cls(kind, items)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            msg = f"Unknown {self.kind} {name!r}. Installed: {known}"
            raise UnknownPluginError(msg) from None

    def owner(self, name: str) -> str:
        """The distribution that registered ``name``."""
        return owner(self.get(name))

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items(), key=lambda item: item[0])

    def __contains__(self, name: object) -> bool:
        return name in self._items


class PluginHost:
    """Typed access to everything plugins registered; each registry is built on first use."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        self.pm = pm if pm is not None else get_plugin_manager()
        self._managers: Registry[type[ContainerManager]] | None = None
        self._deployers: Registry[ModelDeployer] | None = None
        self._input_types: InputTypeRegistry | None = None

    def container_managers(self) -> Registry[type[ContainerManager]]:
        if self._managers is None:
            results = self.pm.hook.clipper_register_container_managers()
            self._managers = Registry.from_results("container manager", results)
        return self._managers

    def deployers(self) -> Registry[ModelDeployer]:
        if self._deployers is None:
            self._deployers = Registry.from_results("deployer", self.pm.hook.clipper_register_deployers())
        return self._deployers

    def input_types(self) -> InputTypeRegistry:
        if self._input_types is None:
            results = self.pm.hook.clipper_register_input_types()
            reg: Registry[InputType] = Registry.from_results("input type", results, "name")
            self._input_types = InputTypeRegistry(reg.items())
        return self._input_types
