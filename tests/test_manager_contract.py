"""The container-manager contract suite (clipper_core.testing.contract) against the fake and the local manager."""

from __future__ import annotations

from typing import ClassVar

import pytest

from clipper_core.container_manager import ContainerManager
from clipper_core.local import LocalContainerManager
from clipper_core.testing import FakeBackend, FakeContainerManager
from clipper_core.testing.contract import ContainerManagerContract, ServingContract


class TestFakeManagerContract(ContainerManagerContract):
    """The fake passes the manager-level contract, which also shows the suite's checks can run without a cluster."""

    backend: ClassVar[FakeBackend] = FakeBackend()

    def make_manager(self, cluster_name: str) -> ContainerManager:
        return FakeContainerManager(cluster_name, backend=self.backend)


@pytest.mark.cluster
class TestLocalManagerContract(ServingContract):
    def make_manager(self, cluster_name: str) -> ContainerManager:
        return LocalContainerManager(cluster_name, **self.ports_for(cluster_name))


def test_the_contract_catches_a_manager_that_breaks_it() -> None:
    """A manager that forgets to stop replicas fails the contract's stop check (the suite can fail)."""

    class Leaky(FakeContainerManager):
        def stop_models(self, models: dict[str, list[str]]) -> None:
            self._record("stop_models", models=models)

    class LeakyContract(ContainerManagerContract):
        timeout = 0.5
        backend = FakeBackend()

        def make_manager(self, cluster_name: str) -> ContainerManager:
            return Leaky(cluster_name, backend=self.backend)

    suite = LeakyContract()
    cm = suite.make_manager(suite.new_cluster_name())
    cm.start_clipper()
    try:
        image = cm.build_model("m", "1", _model_dir(), suite.base_image())
        with pytest.raises(AssertionError, match="0 replicas of contract-model:1"):
            suite.test_deploy_scale_and_stop(cm, image)
    finally:
        cm.stop_all()


def _model_dir() -> str:
    from clipper_core.testing import feature_sum, save_closure

    return save_closure(feature_sum)
