"""Entry point of clipper-kubernetes: registers the Kubernetes container manager with the plugin host."""

from __future__ import annotations

from typing import TYPE_CHECKING

from clipper_core import hookimpl

if TYPE_CHECKING:
    from clipper_core.container_manager import ContainerManager


@hookimpl
def clipper_register_container_managers() -> list[type[ContainerManager]]:
    from clipper_k8s.manager import KubernetesContainerManager

    return [KubernetesContainerManager]
