"""The plugin manager factory: hook specs, blocked names, entry points, built-ins.

Environment switches:

* ``CLIPPER_DISABLED_PLUGINS`` — comma-separated plugin names to block (entry-point names or built-in module names).
* ``CLIPPER_DISABLE_PLUGIN_AUTOLOAD`` — set to anything non-empty to skip entry-point discovery.
* ``CLIPPER_TRACE_PLUGINS=1`` — log every hook call with its arguments and results at DEBUG.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

from clipper_core import hookspecs
from clipper_core.errors import PluginError

logger = logging.getLogger(__name__)

# Built-ins register through the same hooks as external plugins, marked trylast so those can override them.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "clipper_core.input_types",
    "clipper_core.local.hooks",
    "clipper_core.cli.builtin",
)


def disabled_plugins() -> list[str]:
    """Names listed in ``CLIPPER_DISABLED_PLUGINS``."""
    raw = os.environ.get("CLIPPER_DISABLED_PLUGINS", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def get_plugin_manager(*, load_entrypoints: bool = True) -> pluggy.PluginManager:
    """Build a fresh plugin manager with every installed plugin and the built-ins registered.

    :param load_entrypoints: discover plugins through the ``clipper`` entry-point group
        (also switched off by ``CLIPPER_DISABLE_PLUGIN_AUTOLOAD``).
    :returns: a checked :class:`pluggy.PluginManager`.
    :raises PluginError: a plugin failed to import or implements a hook wrongly.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in disabled_plugins():
        pm.set_blocked(name)
    if load_entrypoints and not os.environ.get("CLIPPER_DISABLE_PLUGIN_AUTOLOAD"):
        try:
            pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
        except pluggy.PluginValidationError as exc:
            msg = f"Plugin {exc.plugin!r} is invalid: {exc}"
            raise PluginError(msg) from exc
        except Exception as exc:
            msg = f"A plugin in entry-point group {hookspecs.PROJECT_NAME!r} failed to load: {exc!r}"
            raise PluginError(msg) from exc
    for modname in DEFAULT_PLUGINS:
        if pm.is_blocked(modname) or pm.has_plugin(modname):
            continue
        try:
            pm.register(importlib.import_module(modname), modname)
        except pluggy.PluginValidationError as exc:
            msg = f"Built-in plugin {modname!r} is invalid: {exc}"
            raise PluginError(msg) from exc
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        msg = f"Plugin {exc.plugin!r} implements an unknown hook: {exc}"
        raise PluginError(msg) from exc
    if os.environ.get("CLIPPER_TRACE_PLUGINS") == "1":
        pm.add_hookcall_monitoring(_trace_before, _trace_after)
    return pm


def _trace_before(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
    logger.debug("hook %s called with %r by %s", hook_name, kwargs, [i.plugin_name for i in hook_impls])


def _trace_after(
    outcome: pluggy.Result[Any], hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
) -> None:
    logger.debug("hook %s returned %r", hook_name, outcome.get_result() if outcome.exception is None else outcome)


def list_plugins(pm: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """Describe every registered plugin: name, hooks it implements, and the distribution it comes from.

    :returns: dicts with ``name``, ``hooks``, ``dist`` and ``version`` (``None`` for built-ins).
    """
    pm = pm or get_plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distributions()}
    out = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        dist = dists.get(id(plugin))
        out.append(
            {
                "name": name,
                "hooks": hooks,
                "dist": dist.metadata["Name"] if dist is not None else "clipper-core (built-in)",
                "version": dist.version if dist is not None else _core_version(),
            }
        )
    return sorted(out, key=lambda d: d["name"])


def _core_version() -> str:
    from clipper_core import __version__

    return __version__
