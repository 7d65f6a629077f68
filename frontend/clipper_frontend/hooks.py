"""Entry-point module of the clipper-frontend distribution: only hook implementations (see :mod:`._commands`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipper_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from clipper_core.commands import CommandRegistry


@hookimpl
def clipper_register_commands(commands: CommandRegistry) -> None:
    """``clipper query-frontend`` and ``clipper management-frontend``: run a frontend in the foreground."""
    from clipper_frontend import _commands

    _commands.register(commands)
