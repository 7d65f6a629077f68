"""Entry point of clipper-docker: registers the Docker container manager and the ``clipper images`` command."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipper_core import hookimpl

if TYPE_CHECKING:
    from clipper_core.commands import CommandRegistry
    from clipper_core.container_manager import ContainerManager


@hookimpl
def clipper_register_container_managers() -> list[type[ContainerManager]]:
    from clipper_docker.manager import DockerContainerManager

    return [DockerContainerManager]


@hookimpl
def clipper_register_commands(commands: CommandRegistry) -> None:
    from clipper_docker.images import cli

    commands.add("images", help=cli.HELP, configure=cli.configure, run=cli.run)
