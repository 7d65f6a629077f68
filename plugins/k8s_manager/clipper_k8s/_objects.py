"""Creating, finding and deleting the cluster's objects, and copying pod logs (a mix-in of the manager)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from clipper_core.container_manager import CLIPPER_NAME_LABEL
from clipper_core.errors import ClipperException, ContainerManagerError
from clipper_k8s import _manifests as mf
from clipper_k8s._api import ignore_status

if TYPE_CHECKING:
    from clipper_k8s._api import Apis

logger = logging.getLogger(__name__)


class ObjectsMixin:
    """Needs ``_apis``, ``k8s_namespace``, ``cluster_name``, ``request_timeout`` and ``_errors`` of the manager."""

    _apis: Apis
    k8s_namespace: str
    cluster_name: str
    request_timeout: float

    def _errors(self, what: str, error: type[ClipperException] = ContainerManagerError) -> Any:
        raise NotImplementedError

    def _create(
        self, body: dict[str, Any], error: type[ClipperException] = ContainerManagerError, update: bool = False
    ) -> None:
        """Create ``body``; an object of that name that already exists is left as it is (as the original), or, with
        ``update``, a Deployment gets ``body``'s spec, which rolls its pods (one new ready pod before an old goes)."""
        from kubernetes.client.exceptions import ApiException

        kind, name, ns = body["kind"], body["metadata"]["name"], self.k8s_namespace
        apis, timeout = self._apis, self.request_timeout
        creators = {
            "Deployment": lambda: apis.apps.create_namespaced_deployment(ns, body, _request_timeout=timeout),
            "Service": lambda: apis.core.create_namespaced_service(ns, body, _request_timeout=timeout),
            "ClusterRole": lambda: apis.rbac.create_cluster_role(body, _request_timeout=timeout),
            "ClusterRoleBinding": lambda: apis.rbac.create_cluster_role_binding(body, _request_timeout=timeout),
        }
        where = f"{ns}/{name}" if kind in ("Deployment", "Service") else name
        with self._errors(f"Could not create Kubernetes {kind} {where}", error):
            try:
                creators[kind]()
                logger.debug("created %s %s", kind, where)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        if update and kind == "Deployment":
            with self._errors(f"Could not update Kubernetes Deployment {where}", error):
                self._apis.apps.patch_namespaced_deployment(name, ns, {"spec": body["spec"]}, _request_timeout=timeout)
            logger.info("updated Deployment %s (rolling update)", where)

    def _cluster_deployments(self, role: str | None = None) -> list[Any]:
        terms = [f"{CLIPPER_NAME_LABEL}={role}"] if role else []
        selector = mf.cluster_selector(self.cluster_name, *terms)
        with self._errors(f"Listing the Deployments of cluster {self.cluster_name} in namespace {self.k8s_namespace}"):
            found = self._apis.apps.list_namespaced_deployment(
                self.k8s_namespace, label_selector=selector, _request_timeout=self.request_timeout
            )
        return list(found.items or [])

    def _read_scale(self, name: str) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        with self._errors(f"Reading the scale of Deployment {self.k8s_namespace}/{name}"):
            try:
                return self._apis.apps.read_namespaced_deployment_scale(
                    name, self.k8s_namespace, _request_timeout=self.request_timeout
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def _delete_deployments(self, names: list[str]) -> None:
        for name in names:
            try:
                with self._errors(f"Deleting Deployment {self.k8s_namespace}/{name}"), ignore_status(404):
                    self._apis.apps.delete_namespaced_deployment(
                        name,
                        self.k8s_namespace,
                        propagation_policy="Background",
                        _request_timeout=self.request_timeout,
                    )
            except ClipperException as exc:
                logger.warning("cleanup of a failed deployment: %s", exc)

    def _delete_by_selector(self, selector: str, models_only: bool, graceful: bool = True) -> None:
        """Delete the namespace's Deployments, ReplicaSets and pods matching ``selector`` (and, unless
        ``models_only``, its Services, ConfigMaps, ReplicationControllers and the cluster's RBAC objects)."""
        ns, timeout, apis = self.k8s_namespace, self.request_timeout, self._apis
        grace: dict[str, Any] = {} if graceful else {"grace_period_seconds": 0}
        opts: dict[str, Any] = {"label_selector": selector, "_request_timeout": timeout}
        steps: list[tuple[str, Any]] = []
        if not models_only:
            steps.append(("Services", self._delete_services))
        steps += [
            (
                "Deployments",
                lambda: apis.apps.delete_collection_namespaced_deployment(
                    ns, propagation_policy="Background", **grace, **opts
                ),
            ),
            ("ReplicaSets", lambda: apis.apps.delete_collection_namespaced_replica_set(ns, **grace, **opts)),
            ("Pods", lambda: apis.core.delete_collection_namespaced_pod(ns, **grace, **opts)),
        ]
        if not models_only:
            rbac_selector = f"{selector},{mf.NAMESPACE_LABEL}={ns}"
            rbac_opts = {"label_selector": rbac_selector, "_request_timeout": timeout}
            steps += [
                (
                    "ReplicationControllers",
                    lambda: apis.core.delete_collection_namespaced_replication_controller(ns, **opts),
                ),
                ("ConfigMaps", lambda: apis.core.delete_collection_namespaced_config_map(ns, **opts)),
                ("ClusterRoleBindings", lambda: apis.rbac.delete_collection_cluster_role_binding(**rbac_opts)),
                ("ClusterRoles", lambda: apis.rbac.delete_collection_cluster_role(**rbac_opts)),
            ]
        for what, step in steps:
            with self._errors(f"Deleting the {what} labelled {selector} in namespace {ns}"), ignore_status(404):
                step()

    def _delete_services(self) -> None:
        ns, timeout = self.k8s_namespace, self.request_timeout
        selector = mf.cluster_selector(self.cluster_name)
        services = self._apis.core.list_namespaced_service(ns, label_selector=selector, _request_timeout=timeout)
        for service in services.items or []:
            with ignore_status(404):
                self._apis.core.delete_namespaced_service(service.metadata.name, ns, _request_timeout=timeout)

    def get_logs(self, logging_dir: str) -> list[str]:
        """One file per pod container, ``<pod>_<i>.log`` (the original's names)."""
        from kubernetes.client.exceptions import ApiException

        logging_dir = os.path.abspath(os.path.expanduser(logging_dir))
        os.makedirs(logging_dir, exist_ok=True)
        ns, timeout = self.k8s_namespace, self.request_timeout
        paths: list[str] = []
        with self._errors(f"Reading the pod logs of cluster {self.cluster_name} in namespace {ns}"):
            pods = self._apis.core.list_namespaced_pod(
                ns, label_selector=mf.cluster_selector(self.cluster_name), _request_timeout=timeout
            ).items
            for pod in pods or []:
                for i, container in enumerate(pod.spec.containers or []):
                    try:
                        text = self._apis.core.read_namespaced_pod_log(
                            pod.metadata.name, ns, container=container.name, _request_timeout=timeout
                        )
                    except ApiException as exc:  # e.g. a pod still pulling its image has no log yet
                        text = f"(no log for container {container.name}: {exc.status} {exc.reason})\n"
                    path = os.path.join(logging_dir, f"{pod.metadata.name}_{i}.log")
                    with open(path, "w") as f:
                        f.write(text if isinstance(text, str) else str(text))
                    paths.append(path)
        return paths
