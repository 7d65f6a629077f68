"""``KubernetesContainerManager``: a Clipper cluster made of Kubernetes Deployments and Services.

Constructor, object names, labels, environment, service types and address rules of the original (reference §6.4),
on today's APIs (``apps/v1``, ``rbac.authorization.k8s.io/v1``). Changes: starting a cluster that already has
objects is refused (as every manager here); ``start_clipper`` waits for each Deployment with a deadline and stops at
the first pod that cannot pull its image or keeps crashing; a failed start removes what it created; ``connect()``
reads the service types from the Services themselves (nothing is written into the package directory); no Prometheus
objects (the query frontend serves ``/metrics``, so ``get_metric_addr`` is the query address).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from clipper_core import __version__
from clipper_core.container_manager import (
    CLIPPER_MODEL_CONTAINER_LABEL,
    DEFAULT_CACHE_SIZE,
    REDIS_IP_OPTION,
    REDIS_PORT_OPTION,
    ContainerManager,
    ManagerOption,
    check_model_data_path,
    clipper_registry,
    cluster_exists_error,
    model_label,
    validate_model_name,
)
from clipper_core.errors import ClipperException, ContainerManagerError, DeploymentError
from clipper_k8s import _manifests as mf
from clipper_k8s._addresses import AddressesMixin
from clipper_k8s._api import Apis, api_errors, ignore_status
from clipper_k8s._config import LOAD_BALANCER, check_cluster_name, determine_service_types, parse_bool
from clipper_k8s._objects import ObjectsMixin
from clipper_k8s._wait import wait_available

logger = logging.getLogger(__name__)

NAMESPACE_MISSING = (
    "Error connecting to Kubernetes cluster. Namespace does not exist. You can pass in "
    "KubernetesContainerManager(create_namespace_if_not_exists=True) to crate this namespcae"
)
#: Keyword arguments of ``deploy_model`` / ``set_model_options`` that shape a model's pods.
MODEL_OPTIONS = ("resources", "liveness_probe", "readiness_probe", "image_pull_policy")


class KubernetesContainerManager(AddressesMixin, ObjectsMixin, ContainerManager):
    """Runs one Clipper cluster in a Kubernetes namespace; every object carries ``ai.clipper.container.label``."""

    PLUGIN_NAME: ClassVar[str] = "kubernetes"

    @classmethod
    def cli_options(cls) -> Sequence[ManagerOption]:
        return (
            ManagerOption("namespace", "Kubernetes namespace of the cluster (default: default)"),
            ManagerOption("kube_context", "kubeconfig context to use (default: the current context)"),
            ManagerOption("kubernetes_proxy_addr", "reach the services through this `kubectl proxy` URL"),
            ManagerOption(
                "useInternalIP", "use node InternalIP addresses when no ExternalDNS", parse_bool, "--use-internal-ip"
            ),
            ManagerOption(
                "create_namespace_if_not_exists",
                "create the namespace if missing (true/false)",
                parse_bool,
                "--create-namespace",
            ),
            REDIS_IP_OPTION,
            REDIS_PORT_OPTION,
        )

    def __init__(
        self,
        cluster_name: str = "default-cluster",
        kubernetes_proxy_addr: str | None = None,
        redis_ip: str | None = None,
        redis_port: int = 6379,
        useInternalIP: bool = False,  # noqa: N803 - the original's name
        namespace: str = "default",
        service_types: dict[str, str] | None = None,
        create_namespace_if_not_exists: bool = False,
        kube_context: str | None = None,
        kube_config_file: str | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self.cluster_name = check_cluster_name(validate_model_name(cluster_name, "cluster name"))
        self.kubernetes_proxy_addr = kubernetes_proxy_addr.rstrip("/") if kubernetes_proxy_addr else None
        self.use_k8s_proxy = kubernetes_proxy_addr is not None
        self.redis_ip = redis_ip
        self.redis_port = int(redis_port)
        self.useInternalIP = bool(useInternalIP)
        self.k8s_namespace = namespace
        self.service_types = determine_service_types(service_types)
        self._explicit_service_types = service_types is not None
        self.cluster_identifier = cluster_name if namespace != "default" else f"{namespace}-{cluster_name}"
        self.redis_image = os.environ.get("CLIPPER_REDIS_IMAGE") or f"{clipper_registry()}/redis:{__version__}"
        self.start_timeout = 300.0
        self.deploy_timeout = 300.0
        self.request_timeout = float(request_timeout)  # seconds per API request
        self.num_frontend_replicas = 1
        self.external_node_hosts: list[str] = []
        self.clipper_query_port = mf.QUERY_PORT
        self.clipper_management_port = mf.MGMT_PORT
        self.clipper_rpc_port = 7000
        self.clipper_query_ip: str | None = None
        self.clipper_management_ip: str | None = None
        #: Per-model pod options (``MODEL_OPTIONS``) by model name or ``(name, version)``; see set_model_options.
        self.model_options: dict[Any, dict[str, Any]] = {}
        from clipper_k8s import _api

        self._apis: Apis = _api.connect(kube_context, kube_config_file)
        self._check_namespace(create_namespace_if_not_exists)

    # -- the original's attribute names ------------------------------------------------------------------

    @property
    def _k8s_v1(self) -> Any:
        return self._apis.core

    @property
    def _k8s_apps(self) -> Any:
        return self._apis.apps

    @property
    def _k8s_beta(self) -> Any:  # the original's name for the Deployments API
        return self._apis.apps

    @property
    def _k8s_rbac(self) -> Any:
        return self._apis.rbac

    def _errors(self, what: str, error: type[ClipperException] = ContainerManagerError) -> Any:
        return api_errors(what, self._apis.host, error)

    def _check_namespace(self, create: bool) -> None:
        ns = self.k8s_namespace
        from kubernetes.client.exceptions import ApiException

        with self._errors(f"Reading namespace {ns}"):
            try:
                self._k8s_v1.read_namespace(ns, _request_timeout=self.request_timeout)
                return
            except ApiException as exc:
                if exc.status != 404:
                    raise
        if not create:
            msg = f"{NAMESPACE_MISSING} (namespace {ns!r})"
            raise ContainerManagerError(msg)
        with self._errors(f"Could not create Kubernetes namespace {ns}"), ignore_status(409):
            self._k8s_v1.create_namespace(mf.namespace_manifest(ns), _request_timeout=self.request_timeout)
        logger.info("created namespace %s", ns)

    # -- start / connect ------------------------------------------------------------------------------------------

    def start_clipper(
        self,
        query_frontend_image: str,
        mgmt_frontend_image: str,
        frontend_exporter_image: str = "",
        cache_size: int = DEFAULT_CACHE_SIZE,
        qf_http_thread_pool_size: int = 1,
        qf_http_timeout_request: int = 5,
        qf_http_timeout_content: int = 300,
        num_frontend_replicas: int = 1,
    ) -> None:
        num_frontend_replicas = int(num_frontend_replicas)
        if num_frontend_replicas < 1:
            msg = f"num_frontend_replicas must be >= 1, got {num_frontend_replicas}"
            raise ContainerManagerError(msg)
        check_cluster_name(self.cluster_name, num_frontend_replicas - 1)
        if self._cluster_deployments():
            raise cluster_exists_error(self.cluster_name)
        ns, cluster, st = self.k8s_namespace, self.cluster_name, self.service_types
        try:
            self._create(mf.cluster_role(cluster, ns))
            self._create(mf.cluster_role_binding(cluster, ns))
            if self.redis_ip is None:
                self._create(mf.redis_deployment(cluster, ns, self.redis_image))
                self._create(mf.redis_service(cluster, ns, self.redis_port, st["redis"]))
                self._wait(mf.redis_name(cluster), 1, "Redis", self.start_timeout, ContainerManagerError)
                redis_host = mf.redis_name(cluster)
            else:
                redis_host = self.redis_ip
            self._create(mf.mgmt_deployment(cluster, ns, mgmt_frontend_image, redis_host, self.redis_port))
            self._create(mf.mgmt_service(cluster, ns, st["management"]))
            for i in range(num_frontend_replicas):
                self._create(
                    mf.query_deployment(
                        cluster,
                        ns,
                        i,
                        query_frontend_image,
                        redis_host,
                        self.redis_port,
                        cache_size,
                        qf_http_timeout_content,
                    )
                )
                self._create(mf.query_rpc_service(cluster, ns, i, st["query-rpc"]))
            self._create(mf.query_service(cluster, ns, st["query"]))
            self._wait(mf.mgmt_name(cluster), 1, "the management frontend", self.start_timeout, ContainerManagerError)
            for i in range(num_frontend_replicas):
                self._wait(
                    mf.query_name(cluster, i), 1, f"query frontend {i}", self.start_timeout, ContainerManagerError
                )
            self.num_frontend_replicas = num_frontend_replicas
            self.connect()
        except BaseException:
            logger.warning("[%s] start-up failed; removing the objects created", self.cluster_identifier)
            try:
                self.stop_all(graceful=False)
            except ClipperException as exc:  # keep the original error
                logger.warning("cleanup after a failed start: %s", exc)
            raise
        logger.info(
            "[%s] Clipper is running (query %s, admin %s)",
            self.cluster_identifier,
            self.get_query_addr(),
            self.get_admin_addr(),
        )

    def _wait(self, name: str, replicas: int, what: str, timeout: float, error: type[ClipperException]) -> None:
        wait_available(self._apis, self.k8s_namespace, name, replicas, timeout, what, error)

    def connect(self) -> None:
        ns, cluster = self.k8s_namespace, self.cluster_name
        mgmt = self._read_service(mf.mgmt_name(cluster))
        query = self._read_service(mf.query_service_name(cluster))
        if mgmt is None or query is None:
            msg = (
                f"Clipper cluster '{cluster}' is not running in Kubernetes namespace '{ns}' (no Service "
                f"{mf.mgmt_name(cluster) if mgmt is None else mf.query_service_name(cluster)}). Start it with "
                "ClipperConnection(KubernetesContainerManager(...)).start_clipper()."
            )
            raise ContainerManagerError(msg)
        if not self._explicit_service_types:  # the Services know which types they were created with
            self.service_types["management"] = mgmt.spec.type or self.service_types["management"]
            self.service_types["query"] = query.spec.type or self.service_types["query"]
        self.clipper_management_port, self.clipper_management_ip = self._service_endpoint(mgmt, mf.MGMT_PORT)
        self.clipper_query_port, self.clipper_query_ip = self._service_endpoint(query, mf.QUERY_PORT)
        if not self.use_k8s_proxy and LOAD_BALANCER not in (mgmt.spec.type, query.spec.type):
            self.external_node_hosts = self._node_hosts()
        elif not self.use_k8s_proxy:
            self.external_node_hosts = self._node_hosts(required=False)
        self.num_frontend_replicas = max(1, len(self._cluster_deployments(mf.ROLE_QUERY)))
        logger.info(
            "[%s] connected (query %s, admin %s)", self.cluster_identifier, self.get_query_addr(), self.get_admin_addr()
        )

    def is_running(self) -> bool:
        return bool(self._cluster_deployments(mf.ROLE_QUERY))

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "manager": self.PLUGIN_NAME,
            "cluster_name": self.cluster_name,
            "namespace": self.k8s_namespace,
            "api_server": self._apis.host,
            "service_types": dict(self.service_types),
        }
        info["running"] = self.is_running()
        if info["running"]:
            self.connect()
            info.update(query=self.get_query_addr(), admin=self.get_admin_addr())
        info["deployments"] = {d.metadata.name: mf_available(d) for d in self._cluster_deployments()}
        return info

    # -- models -------------------------------------------------------------------------------------------------

    def build_model(
        self,
        name: str,
        version: str,
        model_data_path: str,
        base_image: str,
        container_registry: str | None = None,
        pkgs_to_install: list[str] | None = None,
    ) -> str:
        """Build ``[<registry>/]<cluster_identifier>-<name>:<version>`` with the Docker plugin and push it."""
        version = validate_model_name(str(version), "model version")
        validate_model_name(name)
        check_model_data_path(model_data_path)
        try:
            from clipper_docker import build_model_image, connect_docker
        except ImportError as exc:
            msg = (
                "KubernetesContainerManager.build_model builds the model image with the Docker plugin, which is not "
                f"installed ({exc}): pip install clipper-docker (or clipper-kubernetes[build]), or build and push "
                "the image yourself and call deploy_model with it"
            )
            raise DeploymentError(msg) from exc
        if not container_registry:
            logger.warning(
                "build_model without container_registry: the image %s-%s:%s stays on this Docker host; "
                "the cluster can only run it if its nodes share that image store (kind load, minikube)",
                self.cluster_identifier,
                name,
                version,
            )
        image: str = build_model_image(
            connect_docker(),
            self.cluster_identifier,
            name,
            version,
            model_data_path,
            base_image,
            container_registry,
            pkgs_to_install,
        )
        return image

    def set_model_options(self, name: str, version: str | None = None, **options: Any) -> None:
        """Pod options for a model (all versions, or one): ``resources``, ``liveness_probe``, ``readiness_probe``,
        ``image_pull_policy``. They apply to the Deployments deploy_model creates or updates afterwards."""
        unknown = sorted(set(options) - set(MODEL_OPTIONS))
        if unknown:
            msg = f"Unknown model options {unknown}; known: {', '.join(MODEL_OPTIONS)}"
            raise ContainerManagerError(msg)
        key: Any = name if version is None else (name, str(version))
        self.model_options.setdefault(key, {}).update(options)

    def _options_for(self, name: str, version: str, extra: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(extra) - set(MODEL_OPTIONS))
        if unknown:
            msg = f"Unknown deploy_model options {unknown}; known: {', '.join(MODEL_OPTIONS)}"
            raise ContainerManagerError(msg)
        return {**self.model_options.get(name, {}), **self.model_options.get((name, version), {}), **extra}

    def deploy_model(
        self, name: str, version: str, input_type: str, image: str, num_replicas: int = 1, **options: Any
    ) -> None:
        """One Deployment per query frontend, each with ``num_replicas`` replicas; waits until they are available.

        ``options`` (``resources``, ``liveness_probe``, ``readiness_probe``, ``image_pull_policy``) shape the pods.
        Deploying a version that already has Deployments updates them: a rolling update that starts a new ready pod
        before it stops an old one (``maxUnavailable: 0``), so queries keep being answered.
        """
        version = str(version)
        num_replicas = self._check_count(num_replicas)
        if len(model_label(name, version)) > 63:
            msg = (
                f"Model {name}:{version} cannot run on Kubernetes: its label value '{model_label(name, version)}' "
                "(<name>_<version>) is longer than the 63 characters Kubernetes allows; use a shorter name or version"
            )
            raise DeploymentError(msg)
        opts = self._options_for(name, version, options)
        created: list[str] = []  # new Deployments, removed again when the deploy fails (an updated one keeps rolling)
        waits: list[str] = []
        try:
            for i in range(self.num_frontend_replicas):
                body = mf.model_deployment(
                    self.cluster_name, self.k8s_namespace, name, version, i, input_type, image, num_replicas, opts
                )
                existed = self._read_scale(body["metadata"]["name"]) is not None
                self._create(body, error=DeploymentError, update=True)
                if not existed:
                    created.append(body["metadata"]["name"])
                waits.append(body["metadata"]["name"])
            for dep in waits:
                self._wait(
                    dep, num_replicas, f"model {name}:{version}, image {image}", self.deploy_timeout, DeploymentError
                )
        except BaseException:
            self._delete_deployments(created)
            raise

    @staticmethod
    def _check_count(num_replicas: int) -> int:
        num_replicas = int(num_replicas)
        if num_replicas < 0:
            msg = f"num_replicas must be >= 0, got {num_replicas}"
            raise ContainerManagerError(msg)
        return num_replicas

    def get_num_replicas(self, name: str, version: str) -> int:
        scale = self._read_scale(mf.model_deployment_name(name, str(version), 0, self.cluster_name))
        return 0 if scale is None else int(scale.spec.replicas or 0)

    def set_num_replicas(self, name: str, version: str, input_type: str, image: str, num_replicas: int) -> None:
        version = str(version)
        num_replicas = self._check_count(num_replicas)
        names = [
            mf.model_deployment_name(name, version, i, self.cluster_name) for i in range(self.num_frontend_replicas)
        ]
        if self._read_scale(names[0]) is None:
            if num_replicas > 0:
                self.deploy_model(name, version, input_type, image, num_replicas)
            return
        for dep in names:
            with self._errors(f"Could not update scale of the specified Deployment {dep}", DeploymentError):
                self._k8s_apps.patch_namespaced_deployment_scale(
                    dep, self.k8s_namespace, {"spec": {"replicas": num_replicas}}, _request_timeout=self.request_timeout
                )
        for dep in names:
            self._wait(
                dep, num_replicas, f"model {name}:{version}, image {image}", self.deploy_timeout, DeploymentError
            )

    def stop_models(self, models: dict[str, list[str]]) -> None:
        for name, versions in models.items():
            for version in versions:
                label = f"{CLIPPER_MODEL_CONTAINER_LABEL}={model_label(name, str(version))}"
                self._delete_by_selector(mf.cluster_selector(self.cluster_name, label), models_only=True)

    def stop_all_model_containers(self) -> None:
        selector = mf.cluster_selector(self.cluster_name, CLIPPER_MODEL_CONTAINER_LABEL)
        self._delete_by_selector(selector, models_only=True)

    def stop_all(self, graceful: bool = True) -> None:
        self._delete_by_selector(mf.cluster_selector(self.cluster_name), models_only=False, graceful=graceful)
        logger.info("[%s] removed every object labelled with the cluster", self.cluster_identifier)


def mf_available(deployment: Any) -> str:
    status = deployment.status
    have = (status.available_replicas if status else None) or 0
    return f"{have}/{deployment.spec.replicas} available"
