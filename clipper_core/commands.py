"""What a plugin gets to add ``clipper`` sub-commands: :class:`CommandRegistry` and :class:`CommandContext`.

A plugin implements :func:`~clipper_core.hookspecs.clipper_register_commands` and calls
:meth:`CommandRegistry.add`::

    @hookimpl
    def clipper_register_commands(commands: CommandRegistry) -> None:
        commands.add("images", help="build the Docker images", configure=add_image_options, run=run_images)

``run(args, ctx)`` returns the exit status. Raise :class:`~clipper_core.errors.ClipperException` for errors the user
can act on: ``clipper`` prints its message as one ``error: ...`` line and exits with status 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clipper_core.errors import DuplicatePluginError

if TYPE_CHECKING:
    from clipper_core.container_manager import ContainerManager
    from clipper_core.registry import PluginHost

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace, "CommandContext"], int]


def _no_options(parser: argparse.ArgumentParser) -> None:
    """The ``configure`` of a command without options of its own."""


@dataclass(frozen=True)
class Command:
    """One ``clipper`` sub-command.

    :ivar manager_options: the command acts on a cluster, so it takes ``--cluster-name``, ``--manager`` and the
        options every installed container manager declares (:meth:`ContainerManager.cli_options`).
    """

    name: str
    help: str
    run: Run
    configure: Configure = _no_options
    manager_options: bool = False


class CommandRegistry:
    """The sub-commands plugins added, in the order they were added."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def add(
        self,
        name: str,
        *,
        help: str,  # noqa: A002 - argparse's own word for it
        run: Run,
        configure: Configure = _no_options,
        manager_options: bool = False,
    ) -> None:
        """Add ``clipper NAME``.

        :param name: the sub-command's name.
        :param help: one line for ``clipper --help``.
        :param run: ``run(args, ctx) -> exit status``.
        :param configure: adds the command's arguments to its :class:`argparse.ArgumentParser`.
        :param manager_options: the command acts on a cluster (see :class:`Command`).
        :raises DuplicatePluginError: another plugin already added a command of that name.
        """
        if name in self._commands:
            first = self._commands[name].run.__module__
            msg = f"Two plugins add the command 'clipper {name}': {first} and {run.__module__}"
            raise DuplicatePluginError(msg)
        self._commands[name] = Command(name, help, run, configure, manager_options)

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def get(self, name: str) -> Command:
        return self._commands[name]


class CommandContext:
    """What a running command gets besides its arguments: the plugin host and a way to build the chosen manager."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def make_manager(self, args: argparse.Namespace) -> ContainerManager:
        """The container manager named by ``--manager``, built from ``--cluster-name`` and its own options."""
        from clipper_core.cli._managers import build_manager

        return build_manager(self.host, args)
