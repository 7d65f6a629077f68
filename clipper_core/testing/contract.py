"""The container-manager contract suite: the behaviour every :class:`ContainerManager` plugin must have.

Subclass it in the plugin's tests and say how to build a manager::

    from clipper_core.testing.contract import ServingContract

    class TestMyManagerContract(ServingContract):
        def make_manager(self, cluster_name: str) -> ContainerManager:
            return MyManager(cluster_name=cluster_name, **self.ports_for(cluster_name))

:class:`ContainerManagerContract` checks what a manager does on its own (start, connect from a new object,
build, deploy, scale, logs, stop, isolation of clusters by name, bad input). :class:`ServingContract` adds what a
manager that runs real frontends and replicas must also do: answer predictions through the cluster it started,
before and after scaling. Each test class starts one cluster for all its tests (and a second one for the isolation
test) and stops everything it started, also when a test fails.
"""

from __future__ import annotations

import inspect
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from clipper_core.container_manager import ContainerManager, default_base_image
from clipper_core.errors import ClipperException
from clipper_core.ports import free_ports
from clipper_core.testing import feature_sum, save_closure, wait_until


class ContainerManagerContract:
    """What every container manager must do. Override :meth:`make_manager`; tune the class variables."""

    #: Seconds to wait for replicas to start or stop.
    timeout: ClassVar[float] = 90.0
    #: Input type the contract's model is deployed with.
    input_type: ClassVar[str] = "doubles"

    def make_manager(self, cluster_name: str) -> ContainerManager:
        """A manager for ``cluster_name`` (not started). Two calls with one name must address the same cluster."""
        raise NotImplementedError

    def start(self, cm: ContainerManager) -> None:
        """Start ``cm``'s cluster with the arguments ``ClipperConnection.start_clipper`` passes by default."""
        from clipper_core.admin import ClipperConnection

        defaults = inspect.signature(ClipperConnection.start_clipper).parameters
        cm.start_clipper(**{name: p.default for name, p in defaults.items() if name != "self"})

    def base_image(self) -> str:
        """The base image ``build_model`` gets (default: the Python closure container of this version)."""
        return default_base_image()

    # -- helpers for subclasses ------------------------------------------------------------------------

    _ports: ClassVar[dict[str, list[int]]] = {}

    def ports_for(self, cluster_name: str) -> dict[str, int]:
        """Free ports for a cluster, the same ones on every call with the same name (for the standard options)."""
        ports = self._ports.setdefault(cluster_name, free_ports(4))
        return {
            "clipper_query_port": ports[0],
            "clipper_management_port": ports[1],
            "clipper_rpc_port": ports[2],
            "redis_port": ports[3],
        }

    @staticmethod
    def new_cluster_name() -> str:
        return f"contract-{uuid.uuid4().hex[:8]}"

    def wait_replicas(self, cm: ContainerManager, name: str, version: str, n: int) -> None:
        wait_until(lambda: cm.get_num_replicas(name, version) == n, self.timeout, f"{n} replicas of {name}:{version}")

    # -- fixtures ----------------------------------------------------------------------------------------

    # Class-scoped fixtures are classmethods (pytest runs them once, before any instance exists).

    @pytest.fixture(scope="class")
    @classmethod
    def cluster(cls) -> Iterator[ContainerManager]:
        suite = cls()
        cm = suite.make_manager(cls.new_cluster_name())
        try:
            suite.start(cm)
            yield cm
        finally:
            cm.stop_all()

    @pytest.fixture(scope="class")
    @classmethod
    def model_dir(cls, tmp_path_factory: pytest.TempPathFactory) -> str:
        return save_closure(feature_sum, str(tmp_path_factory.mktemp("contract-model")))

    @pytest.fixture(scope="class")
    @classmethod
    def image(cls, cluster: ContainerManager, model_dir: str) -> str:
        return cluster.build_model("contract-model", "1", model_dir, cls().base_image())

    # -- the contract --------------------------------------------------------------------------------------

    def test_connect_to_a_cluster_that_is_not_running_fails(self) -> None:
        cm = self.make_manager(self.new_cluster_name())
        with pytest.raises(ClipperException):
            cm.connect()

    def test_starting_a_running_cluster_again_is_refused(self, cluster: ContainerManager) -> None:
        with pytest.raises(ClipperException, match="already exists"):
            self.start(self.make_manager(cluster.cluster_name))
        assert cluster.is_running()

    def test_connect_from_a_new_manager_object(self, cluster: ContainerManager) -> None:
        other = self.make_manager(cluster.cluster_name)
        other.connect()
        assert other.get_query_addr() == cluster.get_query_addr()
        assert other.get_admin_addr() == cluster.get_admin_addr()

    def test_build_refuses_bad_input(self, cluster: ContainerManager, model_dir: str, tmp_path: Path) -> None:
        with pytest.raises(ClipperException):
            cluster.build_model("contract-model", "1", str(tmp_path / "missing"), self.base_image())
        with pytest.raises(ClipperException):
            cluster.build_model("Not_A_Valid_Name", "1", model_dir, self.base_image())

    def test_deploy_scale_and_stop(self, cluster: ContainerManager, image: str) -> None:
        name, version = "contract-model", "1"
        cluster.deploy_model(name, version, self.input_type, image, num_replicas=1)
        try:
            self.wait_replicas(cluster, name, version, 1)
            cluster.set_num_replicas(name, version, self.input_type, image, 2)
            self.wait_replicas(cluster, name, version, 2)
            cluster.set_num_replicas(name, version, self.input_type, image, 1)
            self.wait_replicas(cluster, name, version, 1)
            with pytest.raises(ClipperException):
                cluster.set_num_replicas(name, version, self.input_type, image, -1)
            assert cluster.get_num_replicas(name, version) == 1
        finally:
            cluster.stop_models({name: [version]})
        self.wait_replicas(cluster, name, version, 0)

    def test_get_logs_copies_files_into_the_directory(self, cluster: ContainerManager, tmp_path: Path) -> None:
        logdir = tmp_path / "logs"
        paths = cluster.get_logs(str(logdir))
        assert paths, "get_logs returned no file"
        for path in paths:
            assert os.path.isfile(path), path
            assert Path(path).resolve().is_relative_to(logdir.resolve()), path

    def test_stop_all_model_containers_keeps_the_cluster(self, cluster: ContainerManager, image: str) -> None:
        cluster.deploy_model("contract-model", "1", self.input_type, image, num_replicas=1)
        self.wait_replicas(cluster, "contract-model", "1", 1)
        cluster.stop_all_model_containers()
        self.wait_replicas(cluster, "contract-model", "1", 0)
        assert cluster.is_running()

    def test_clusters_are_isolated_by_name(self, cluster: ContainerManager, image: str, model_dir: str) -> None:
        other = self.make_manager(self.new_cluster_name())
        try:
            self.start(other)
            other_image = other.build_model("contract-model", "1", model_dir, self.base_image())
            other.deploy_model("contract-model", "1", self.input_type, other_image, num_replicas=1)
            cluster.deploy_model("contract-model", "1", self.input_type, image, num_replicas=2)
            self.wait_replicas(other, "contract-model", "1", 1)
            self.wait_replicas(cluster, "contract-model", "1", 2)
            other.stop_all_model_containers()
            self.wait_replicas(other, "contract-model", "1", 0)
            assert cluster.get_num_replicas("contract-model", "1") == 2
            other.stop_all()
            assert not other.is_running()
            assert cluster.is_running()
            assert cluster.get_num_replicas("contract-model", "1") == 2
        finally:
            other.stop_all()
            cluster.stop_models({"contract-model": ["1"]})
        self.wait_replicas(cluster, "contract-model", "1", 0)


def predict(query_addr: str, app: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """``POST /<app>/predict`` and the decoded answer (error answers too)."""
    request = urllib.request.Request(
        f"http://{query_addr}/{app}/predict",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a loopback test cluster
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read())
    return answer


class ServingContract(ContainerManagerContract):
    """The contract of a manager that runs real frontends and replicas: predictions flow through what it started."""

    def start(self, cm: ContainerManager) -> None:
        """Start through ``ClipperConnection.start_clipper``, which also waits until both frontends answer."""
        from clipper_core.admin import ClipperConnection

        ClipperConnection(cm).start_clipper()

    def test_serves_predictions_before_and_after_scaling(self, cluster: ContainerManager, model_dir: str) -> None:
        from clipper_core.admin import ClipperConnection

        conn = ClipperConnection(cluster)
        conn.connect()
        conn.register_application("contract-app", self.input_type, "-1.0", 5_000_000)
        try:
            conn.build_and_deploy_model("served-model", 1, self.input_type, model_dir, self.base_image())
            conn.link_model_to_app("contract-app", "served-model")
            answer = predict(cluster.get_query_addr(), "contract-app", {"input": [1.0, 2.5]})
            assert answer["default"] is False, answer
            assert float(answer["output"]) == 3.5
            conn.set_num_replicas("served-model", 2)
            wait_until(
                lambda: (
                    len([r for r in conn.get_all_model_replicas(verbose=True) if r["model_name"] == "served-model"])
                    == 2
                ),
                self.timeout,
                "2 connected replicas",
            )
            for i in range(20):
                answer = predict(cluster.get_query_addr(), "contract-app", {"input": [float(i), 1.0]})
                assert answer["default"] is False and float(answer["output"]) == i + 1.0, answer
        finally:
            conn.delete_application("contract-app")
            conn.stop_models(["served-model"])
