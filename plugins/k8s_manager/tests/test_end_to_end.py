"""End to end: the pods of the Deployments the manager created run as Docker containers (docker_kubelet), and a
prediction flows from the host through the NodePort of the REST Service the manager created, the query frontend,
and the model replica built by build_model — proof that names, args, env, probes and Services fit together.

Needs a Docker daemon and root (the NodePort forwarder enters the pods' network namespace); without them it skips,
except with CI=true, where it fails.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from k8s_test_support import Cluster

from clipper_core.testing import feature_sum, save_closure, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def docker_client(k8s: Cluster) -> Iterator[Any]:
    k8s.handler  # noqa: B018 - against a real cluster the ServingContract covers this
    if os.geteuid() != 0:
        unavailable("the NodePort forwarder needs root (setns into the pods' network namespace)")
    try:
        from clipper_docker import connect_docker
        from clipper_docker.images import build_images
    except ImportError as exc:
        unavailable(f"clipper-docker is not importable ({exc})")
    from clipper_core.admin import CLIPPER_REGISTRY
    from clipper_core.errors import ClipperException

    try:
        client = connect_docker(timeout=180)
        build_images(registry=CLIPPER_REGISTRY, say=lambda line: None, client=client, offline=True)
    except ClipperException as exc:
        unavailable(f"no Docker daemon or no Clipper images: {exc.msg}")
    yield client
    client.close()


def _registry_answers(addr: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{addr}/v2/", timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on a free loopback port (the Docker daemon treats 127.0.0.0/8 as insecure)."""
    import shutil
    import time

    from clipper_core.local.redis_server import stop_process
    from clipper_core.ports import free_ports

    binary = shutil.which("docker-registry")
    if binary is None:
        unavailable("docker-registry is not installed (apt-get install docker-registry, or scripts/docker-up.sh)")
    (port,) = free_ports(1)
    addr = f"127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp("registry")
    config = workdir / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        f"http:\n  addr: {addr}\n"
    )
    with open(workdir / "registry.log", "wb") as log:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not _registry_answers(addr):
                if proc.poll() is not None or time.monotonic() > deadline:
                    unavailable("docker-registry did not start: " + (workdir / "registry.log").read_text()[-2000:])
                time.sleep(0.2)
            yield addr
        finally:
            stop_process(proc)


@pytest.fixture
def internal_ip_node(k8s: Cluster) -> Iterator[None]:
    """The node's only address is InternalIP 127.0.0.1, where the forwarded NodePorts listen."""
    from k8s_standin import NODES

    def set_addresses(addresses: list[dict[str, str]]) -> None:
        k8s.handler.objects[(NODES, None, "node-1")].patch({"status": {"addresses": addresses}})

    k8s.call(lambda: set_addresses([{"type": "InternalIP", "address": "127.0.0.1"}]))
    yield
    k8s.call(
        lambda: set_addresses(
            [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "ExternalDNS", "address": "node-1.example"}]
        )
    )


def test_a_prediction_flows_through_the_objects_the_manager_created(
    k8s: Cluster, docker_client: Any, registry: str, internal_ip_node: None, cluster_name: str, tmp_path: Any
) -> None:
    from clipper_k8s import KubernetesContainerManager
    from clipper_k8s import _manifests as mf
    from docker_kubelet import DockerKubelet

    from clipper_admin import ClipperConnection
    from clipper_core.testing.contract import predict

    services = [
        mf.redis_name(cluster_name),
        mf.mgmt_name(cluster_name),
        mf.query_service_name(cluster_name),
        mf.query_name(cluster_name, 0),
    ]
    kubelet = DockerKubelet(k8s.server, docker_client, cluster_name, "default", services)
    cm = KubernetesContainerManager(cluster_name=cluster_name, useInternalIP=True)
    cm.start_timeout = cm.deploy_timeout = 180.0
    conn = ClipperConnection(cm)
    try:
        conn.start_clipper()
        assert cm.get_query_addr().startswith("127.0.0.1:3")  # InternalIP and the REST Service's NodePort
        conn.register_application("e2e", "doubles", "-1.0", 5_000_000)
        model_dir = save_closure(feature_sum, str(tmp_path))
        # built with the Docker plugin, pushed to the registry, and pulled by the "kubelet" (imagePullPolicy Always)
        image = cm.build_model("sum", "1", model_dir, "default", container_registry=registry)
        assert image == f"{registry}/default-{cluster_name}-sum:1"  # the pull fails unless the push happened
        conn.deploy_model("sum", 1, "doubles", image)
        conn.link_model_to_app("e2e", "sum")
        answer = predict(cm.get_query_addr(), "e2e", {"input": [1.0, 2.5]})
        assert answer["default"] is False and float(answer["output"]) == 3.5, answer
        conn.set_num_replicas("sum", 2)  # a scale patch; the second pod connects to the same frontend
        wait_until(
            lambda: len([r for r in conn.get_all_model_replicas(verbose=True) if r["model_name"] == "sum"]) == 2,
            120,
            "2 connected replicas",
        )
        for i in range(10):
            answer = predict(cm.get_query_addr(), "e2e", {"input": [float(i), 1.0]})
            assert answer["default"] is False and float(answer["output"]) == i + 1.0, answer
        assert kubelet.errors == []
    finally:
        conn.stop_all()
        kubelet.stop()
        for leftover in docker_client.images.list(name=f"{registry}/{cm.cluster_identifier}-sum"):
            with contextlib.suppress(Exception):  # best effort: the image is only this test's
                docker_client.images.remove(leftover.id, force=True)
    assert k8s.labelled(cluster_name) == []
    assert not [e for e in kubelet.errors if "left behind" in e], kubelet.errors
