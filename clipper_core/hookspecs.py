"""Hook specifications for Clipper plugins. Implement them with ``@clipper_core.hookimpl``.

Every hook is called once at start-up to build a registry; none is ever called on the request path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from clipper_core.commands import CommandRegistry
    from clipper_core.container_manager import ContainerManager
    from clipper_core.deployer import ModelDeployer
    from clipper_core.input_types import InputType

PROJECT_NAME = "clipper"  # also the entry-point group
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------
# Registration hooks: called once at start-up; return classes or objects
# ---------------------------------------------------------------------------


@hookspec
def clipper_register_container_managers() -> list[type[ContainerManager]]:
    """Return the :class:`~clipper_core.container_manager.ContainerManager` subclasses this plugin provides.

    Called once when a :class:`~clipper_core.registry.PluginHost` is built. Not firstresult, not historic.

    :returns: classes, each with a unique ``PLUGIN_NAME`` (``"local"``, ``"docker"``, ``"kubernetes"``).

    .. versionadded:: 0.5
    """


@hookspec
def clipper_register_deployers() -> list[ModelDeployer]:
    """Return deployer objects this plugin provides.

    Called once when :meth:`~clipper_core.registry.PluginHost.deployers` is first used (by ``clipper deploy``).
    Not firstresult, not historic.

    :returns: objects (usually modules) with a unique ``PLUGIN_NAME`` (``"python_closure"``) exposing ``deploy(...)``
        and ``create_endpoint(...)`` (:class:`~clipper_core.deployer.ModelDeployer`).

    .. versionadded:: 0.5
    """


@hookspec
def clipper_register_input_types() -> list[InputType]:
    """Return :class:`~clipper_core.input_types.InputType` objects this plugin provides.

    Called once at start-up by the frontends, the admin client and the model-container runtime.
    The five original types are registered through this same hook (``trylast``), so a plugin can
    override one by returning a type with the same name. Not firstresult, not historic.

    :returns: input types with a canonical ``name``, ``aliases`` and a unique RPC ``code``.

    .. versionadded:: 0.5
    """


# ---------------------------------------------------------------------------
# Command-line hooks: called once when the ``clipper`` command starts
# ---------------------------------------------------------------------------


@hookspec
def clipper_register_commands(commands: CommandRegistry) -> None:
    """Add sub-commands to the ``clipper`` command (llm's ``register_commands`` is the model).

    Called once per ``clipper`` invocation, before the command line is parsed, so ``clipper --help`` lists a
    plugin's commands exactly when the plugin is installed. The core's own commands (``start``, ``stop``,
    ``status``, ``predict``, ``plugins``) are added through this same hook (``trylast``). Not firstresult, not
    historic.

    :param commands: call :meth:`~clipper_core.commands.CommandRegistry.add` once per command.
    :returns: nothing; commands are added to ``commands``.

    .. versionadded:: 0.5
    """
