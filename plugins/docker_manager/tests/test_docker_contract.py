"""The container-manager contract suite (clipper_core.testing.contract) against DockerContainerManager."""

from __future__ import annotations

import uuid

import pytest
from docker_test_support import PREFIX

from clipper_core.container_manager import ContainerManager
from clipper_core.testing.contract import ServingContract

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


@pytest.mark.usefixtures("clipper_images")
class TestDockerManagerContract(ServingContract):
    """Host networking (all traffic on 127.0.0.1), as every Docker test here."""

    @staticmethod
    def new_cluster_name() -> str:
        return f"{PREFIX}-contract-{uuid.uuid4().hex[:6]}"  # the prefix lets the session's cleanup find leftovers

    def make_manager(self, cluster_name: str) -> ContainerManager:
        from clipper_docker import DockerContainerManager

        return DockerContainerManager(cluster_name=cluster_name, docker_network="host", **self.ports_for(cluster_name))
