"""Built-in plugin module of the local container manager (registered ``trylast``, so a plugin can replace it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipper_core.hookspecs import hookimpl

if TYPE_CHECKING:
    from clipper_core.container_manager import ContainerManager


@hookimpl(trylast=True)
def clipper_register_container_managers() -> list[type[ContainerManager]]:
    from clipper_core.local.manager import LocalContainerManager

    return [LocalContainerManager]
