"""Fixtures for the Kubernetes manager tests: a stateful API server stand-in (kmock) or, with CLIPPER_K8S_REAL=1,
the real cluster ``KUBECONFIG`` points at."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_test_support import PREFIX, REAL, Cluster


@pytest.fixture(scope="session")
def k8s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if REAL:
        kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        yield Cluster(kubeconfig)
        return
    from k8s_standin import NODES, ApiServer

    server = ApiServer()
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-1"},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "ExternalDNS", "address": "node-1.example"},
            ]
        },
    }

    def seed() -> None:
        server.handler.namespaces["default"] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "default"},
        }
        server.handler.put(NODES, None, node)

    server.call(seed)
    path = server.kubeconfig(str(tmp_path_factory.mktemp("kube") / "config"))
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = path
    try:
        yield Cluster(path, server)
    finally:
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old
        server.stop()


@pytest.fixture
def cluster_name() -> str:
    return f"{PREFIX}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def managers(k8s: Cluster) -> Iterator[Callable[..., Any]]:
    """Build managers; every one built is stopped (stop_all) at teardown."""
    from clipper_k8s import KubernetesContainerManager

    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        cm = KubernetesContainerManager(**kwargs)
        cm.start_timeout = cm.deploy_timeout = 60.0
        made.append(cm)
        return cm

    yield make
    for cm in made:
        cm.stop_all(graceful=False)


@pytest.fixture
def kubeconfig_path(k8s: Cluster) -> Path:
    return Path(k8s.kubeconfig)
