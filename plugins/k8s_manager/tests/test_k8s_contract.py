"""The container-manager contract suite (clipper_core.testing.contract) against KubernetesContainerManager.

Against the API server stand-in no pod runs, so the manager-level ContainerManagerContract runs (start, refusing a
second start, connect from a new object, build input checks, deploy / scale / stop, logs, stop_all_model_containers,
isolation of clusters by name); ServingContract (predictions through the started cluster) needs real pods: it runs
only in the real-cluster mode (CLIPPER_K8S_REAL=1). ``build_model`` here checks its input as the real one does and
then returns the image name instead of building it with Docker, since the stand-in never pulls images.
"""

from __future__ import annotations

import uuid

import pytest
from k8s_test_support import PREFIX, REAL

from clipper_core.container_manager import ContainerManager, check_model_data_path, validate_model_name
from clipper_core.testing.contract import ContainerManagerContract, ServingContract


def _manager_class() -> type[ContainerManager]:
    from clipper_k8s import KubernetesContainerManager

    class NoBuildManager(KubernetesContainerManager):
        def build_model(
            self,
            name: str,
            version: str,
            model_data_path: str,
            base_image: str,
            container_registry: str | None = None,
            pkgs_to_install: list[str] | None = None,
        ) -> str:
            version = validate_model_name(str(version), "model version")
            validate_model_name(name)
            check_model_data_path(model_data_path)
            return f"reg.example/{self.cluster_identifier}-{name}:{version}"

    return NoBuildManager


@pytest.mark.skipif(REAL, reason="its images are never pulled by the stand-in; a real cluster runs ServingContract")
@pytest.mark.usefixtures("k8s")
class TestKubernetesManagerContract(ContainerManagerContract):
    timeout = 60.0

    @staticmethod
    def new_cluster_name() -> str:
        return f"{PREFIX}-c{uuid.uuid4().hex[:6]}"

    def make_manager(self, cluster_name: str) -> ContainerManager:
        return _manager_class()(cluster_name=cluster_name)


@pytest.mark.skipif(not REAL, reason="ServingContract needs real pods: set CLIPPER_K8S_REAL=1 and KUBECONFIG (README)")
@pytest.mark.usefixtures("k8s")
class TestKubernetesManagerServingContract(ServingContract):
    timeout = 300.0

    @staticmethod
    def new_cluster_name() -> str:
        return f"{PREFIX}-s{uuid.uuid4().hex[:6]}"

    def make_manager(self, cluster_name: str) -> ContainerManager:
        import os

        from clipper_k8s import KubernetesContainerManager

        cm = KubernetesContainerManager(cluster_name=cluster_name, useInternalIP=True)
        registry = os.environ.get("CLIPPER_K8S_REGISTRY")
        if registry:  # build_model pushes there, and the cluster pulls from there
            original = cm.build_model
            cm.build_model = lambda *a, **kw: original(*a, **{**kw, "container_registry": registry})  # type: ignore[method-assign]
        return cm
