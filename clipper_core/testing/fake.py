"""An in-memory container manager for tests of code that drives a manager (and of the contract suite itself)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from clipper_core.container_manager import (
    DEFAULT_CACHE_SIZE,
    ContainerManager,
    check_model_data_path,
    cluster_exists_error,
    validate_model_name,
)
from clipper_core.errors import ContainerManagerError, DeploymentError
from clipper_core.hookspecs import hookimpl


@dataclass
class _FakeCluster:
    replicas: dict[tuple[str, str], int] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeBackend:
    """What the fake "runs": clusters by name. Share one between managers that should see the same clusters."""

    clusters: dict[str, _FakeCluster] = field(default_factory=dict)


class FakeContainerManager(ContainerManager):
    """Records every call in :attr:`calls` as ``(method, kwargs)``; replicas are numbers in :attr:`backend`.

    Addresses point nowhere (``fake:<port>``): the fake runs no frontend, so it serves no predictions.
    """

    PLUGIN_NAME: ClassVar[str] = "fake"

    def __init__(self, cluster_name: str = "fake-cluster", backend: FakeBackend | None = None) -> None:
        self.cluster_name = cluster_name
        self.cluster_identifier = cluster_name
        self.backend = backend if backend is not None else FakeBackend()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.connected = False

    def _record(self, method: str, **kwargs: Any) -> None:  # noqa: ANN401 - whatever the caller passed
        self.calls.append((method, kwargs))

    def _cluster(self) -> _FakeCluster:
        cluster = self.backend.clusters.get(self.cluster_name)
        if cluster is None:
            msg = f"No Clipper cluster named {self.cluster_name!r} is running"
            raise ContainerManagerError(msg)
        return cluster

    def start_clipper(
        self,
        query_frontend_image: str = "",
        mgmt_frontend_image: str = "",
        frontend_exporter_image: str = "",
        cache_size: int = DEFAULT_CACHE_SIZE,
        qf_http_thread_pool_size: int = 1,
        qf_http_timeout_request: int = 5,
        qf_http_timeout_content: int = 300,
        num_frontend_replicas: int = 1,
    ) -> None:
        self._record("start_clipper", cache_size=cache_size, num_frontend_replicas=num_frontend_replicas)
        if self.cluster_name in self.backend.clusters:
            raise cluster_exists_error(self.cluster_name)
        self.backend.clusters[self.cluster_name] = _FakeCluster()
        self.connected = True

    def connect(self) -> None:
        self._record("connect")
        self._cluster()
        self.connected = True

    def build_model(
        self,
        name: str,
        version: str,
        model_data_path: str,
        base_image: str,
        container_registry: str | None = None,
        pkgs_to_install: list[str] | None = None,
    ) -> str:
        self._record("build_model", name=name, version=version, model_data_path=model_data_path, base_image=base_image)
        validate_model_name(name)
        validate_model_name(str(version), "model version")
        check_model_data_path(model_data_path)
        if not os.path.isfile(os.path.join(model_data_path, "func.pkl")):
            msg = f"Model directory {model_data_path!r} has no func.pkl"
            raise DeploymentError(msg)
        image = f"fake:{self.cluster_name}/{name}:{version}"
        self._cluster().images[image] = model_data_path
        return image

    def deploy_model(self, name: str, version: str, input_type: str, image: str, num_replicas: int = 1) -> None:
        self._record("deploy_model", name=name, version=version, input_type=input_type, image=image)
        self.set_num_replicas(name, version, input_type, image, num_replicas)

    def get_num_replicas(self, name: str, version: str) -> int:
        return self._cluster().replicas.get((name, str(version)), 0)

    def set_num_replicas(self, name: str, version: str, input_type: str, image: str, num_replicas: int) -> None:
        self._record("set_num_replicas", name=name, version=version, num_replicas=num_replicas)
        cluster = self._cluster()
        if num_replicas < 0:
            msg = f"num_replicas must be >= 0, got {num_replicas}"
            raise ContainerManagerError(msg)
        if image not in cluster.images:
            msg = f"Image {image!r} was not built on cluster {self.cluster_name!r}"
            raise DeploymentError(msg)
        cluster.replicas[(name, str(version))] = num_replicas

    def get_logs(self, logging_dir: str) -> list[str]:
        self._record("get_logs", logging_dir=logging_dir)
        cluster = self._cluster()
        os.makedirs(logging_dir, exist_ok=True)
        path = os.path.join(logging_dir, f"{self.cluster_name}-fake.log")
        with open(path, "w", encoding="utf-8") as fh:
            for (name, version), n in sorted(cluster.replicas.items()):
                fh.write(f"{name}:{version} replicas={n}\n")
        return [path]

    def stop_models(self, models: dict[str, list[str]]) -> None:
        self._record("stop_models", models=models)
        cluster = self._cluster()
        for name, versions in models.items():
            for version in versions:
                cluster.replicas.pop((name, str(version)), None)

    def stop_all_model_containers(self) -> None:
        self._record("stop_all_model_containers")
        self._cluster().replicas.clear()

    def stop_all(self, graceful: bool = True) -> None:
        self._record("stop_all", graceful=graceful)
        self.backend.clusters.pop(self.cluster_name, None)
        self.connected = False

    def get_admin_addr(self) -> str:
        return "fake:1338"

    def get_query_addr(self) -> str:
        return "fake:1337"

    def get_metric_addr(self) -> str:
        return "fake:1390"

    def is_running(self) -> bool:
        return self.cluster_name in self.backend.clusters


class FakePlugin:
    """A plugin object registering :class:`FakeContainerManager`: ``pm.register(FakePlugin(), "fake")``."""

    @hookimpl
    def clipper_register_container_managers(self) -> list[type[ContainerManager]]:
        return [FakeContainerManager]
