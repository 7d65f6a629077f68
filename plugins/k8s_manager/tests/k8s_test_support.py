"""What the Kubernetes tests share: the real-cluster switch, the name prefix and the Cluster handle."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

REAL = os.environ.get("CLIPPER_K8S_REAL") == "1"
#: Every cluster started by this session has a name starting with this.
PREFIX = f"kt{os.getpid() % 100000}"


class Cluster:
    """What a test needs to know about the Kubernetes it talks to."""

    def __init__(self, kubeconfig: str, server: Any = None) -> None:
        self.kubeconfig = kubeconfig
        self.server = server  # the stand-in's ApiServer, None against a real cluster

    @property
    def handler(self) -> Any:
        if self.server is None:
            pytest.skip(
                "needs the API server stand-in (it injects faults or reads its store); not run with CLIPPER_K8S_REAL=1"
            )
        return self.server.handler

    def call(self, fn: Callable[[], Any]) -> Any:
        self.handler  # noqa: B018 - skips against a real cluster
        return self.server.call(fn)

    def labelled(self, cluster_name: str) -> list[str]:
        """``Kind/name`` of every object in the store carrying the cluster's label."""
        from clipper_core.container_manager import CLIPPER_DOCKER_LABEL

        if self.server is None:
            return self._labelled_in_real_cluster(cluster_name)

        def find() -> list[str]:
            return sorted(
                f"{obj.get('kind') or res.plural}/{obj['metadata']['name']}"
                for res, obj in self.server.handler.live()
                if (obj.get("metadata", {}).get("labels") or {}).get(CLIPPER_DOCKER_LABEL) == cluster_name
            )

        return self.call(find)

    def _labelled_in_real_cluster(self, cluster_name: str, namespace: str = "default") -> list[str]:
        from kubernetes import client, config

        from clipper_core.container_manager import CLIPPER_DOCKER_LABEL

        api = config.new_client_from_config(config_file=self.kubeconfig)
        core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
        selector = f"{CLIPPER_DOCKER_LABEL}={cluster_name}"
        found = []
        for kind, lister in (
            ("Deployment", lambda: apps.list_namespaced_deployment(namespace, label_selector=selector)),
            ("ReplicaSet", lambda: apps.list_namespaced_replica_set(namespace, label_selector=selector)),
            ("Pod", lambda: core.list_namespaced_pod(namespace, label_selector=selector)),
            ("Service", lambda: core.list_namespaced_service(namespace, label_selector=selector)),
            ("ConfigMap", lambda: core.list_namespaced_config_map(namespace, label_selector=selector)),
            ("ClusterRole", lambda: rbac.list_cluster_role(label_selector=selector)),
            ("ClusterRoleBinding", lambda: rbac.list_cluster_role_binding(label_selector=selector)),
        ):
            # pods being deleted still show up for their grace period; they are on their way out
            found += [f"{kind}/{o.metadata.name}" for o in lister().items if not o.metadata.deletion_timestamp]
        return sorted(found)
