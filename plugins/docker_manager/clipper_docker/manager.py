"""``DockerContainerManager``: a Clipper cluster whose Redis, frontends and model replicas are Docker containers.

Same constructor, labels, container names and behaviour as the original (reference §6.3), with these changes:
``docker_network="host"`` is supported (every container uses host networking and binds the constructor's ports on
127.0.0.1 — what the tests use); on a bridge network the ports are published on ``publish_address`` (127.0.0.1 by
default, where the original published on every interface); ports are never silently replaced by random ones (a taken
port is an error);
stopped containers are also removed; model replicas restart on failure; no Prometheus/exporter/fluentd containers
are started (the query frontend serves ``/metrics`` itself). The cluster has secrets (docs/security.md): its Redis
requires a generated password, replicas need the RPC token (``rpc_admission="open"`` admits containers written for
the original) and the management API can require a bearer token (``management_auth``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import docker
import docker.errors

from clipper_core import __version__
from clipper_core.container_manager import (
    CLIPPER_DOCKER_LABEL,
    CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL,
    CLIPPER_MODEL_CONTAINER_LABEL,
    CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL,
    DEFAULT_CACHE_SIZE,
    STANDARD_OPTIONS,
    ContainerManager,
    ManagerOption,
    clipper_registry,
    cluster_exists_error,
    model_label,
    validate_model_name,
)
from clipper_core.errors import ClipperException, ContainerManagerError, DeploymentError
from clipper_core.rpc.admission import MODES as ADMISSION_MODES
from clipper_core.secrets import bearer_header, generate
from clipper_docker import _dockerapi as api
from clipper_docker._build import build_model_image
from clipper_docker._secrets import RPC_ADMISSION_LABEL, DockerSecrets, read_secrets, with_env
from clipper_docker._services import (
    MGMT_PORT_LABEL,
    NETWORK_LABEL,
    QUERY_PORT_LABEL,
    REDIS_IP_LABEL,
    REDIS_PORT_LABEL,
    RPC_PORT_LABEL,
    Placement,
    ServicesSpec,
    check_ports,
    ensure_network,
    in_network_port,
    start_services,
    stop_in_order,
)

logger = logging.getLogger(__name__)


class _ClusterAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['cluster']}] {msg}", kwargs  # type: ignore[index]


class DockerContainerManager(ContainerManager):
    """Runs one Clipper cluster on a Docker daemon; every container carries ``ai.clipper.container.label``."""

    PLUGIN_NAME: ClassVar[str] = "docker"

    @classmethod
    def cli_options(cls) -> Sequence[ManagerOption]:
        return (
            *STANDARD_OPTIONS,
            ManagerOption("docker_network", "Docker network: 'host', or a bridge network (default clipper_network)"),
            ManagerOption("docker_ip_address", "address the frontends are reached at (default localhost)"),
            ManagerOption(
                "publish_address",
                "host address bridge-network ports are published on (default 127.0.0.1; 0.0.0.0 for every interface)",
            ),
            ManagerOption("rpc_admission", "'token' (default): only replicas with the cluster's RPC token; 'open'"),
        )

    def __init__(
        self,
        cluster_name: str = "default-cluster",
        docker_ip_address: str = "localhost",
        use_centralized_log: bool = False,
        fluentd_port: int = 24224,
        clipper_query_port: int = 1337,
        clipper_management_port: int = 1338,
        clipper_rpc_port: int = 7000,
        redis_ip: str | None = None,
        redis_port: int = 6379,
        prometheus_port: int = 9090,
        docker_network: str = "clipper_network",
        extra_container_kwargs: dict[str, Any] | None = None,
        publish_address: str = "127.0.0.1",
        redis_password: str | None = None,
        rpc_admission: str = "token",
        management_auth: bool = False,
    ) -> None:
        """The original's arguments, plus ``publish_address``: the host address the ports of a bridge-network
        cluster are published on (``"0.0.0.0"`` for every interface, as the original did; host networking always
        binds 127.0.0.1); ``redis_password``: the password of the external Redis at ``redis_ip`` (the cluster's own
        Redis gets a generated one); ``rpc_admission``: ``"token"`` admits only replicas with the cluster's RPC
        token, ``"open"`` every replica (containers written for the original); ``management_auth``: the management
        API requires the cluster's bearer token (see docs/security.md)."""
        self.cluster_name = validate_model_name(cluster_name, "cluster name")
        self.cluster_identifier = cluster_name
        self.docker_ip_address = docker_ip_address
        self.centralize_log = bool(use_centralized_log)
        self.logging_system_instance: Any = None
        self.log_config: dict[str, Any] = {"type": "json-file"}
        self.fluentd_port = int(fluentd_port)
        self.clipper_query_port = int(clipper_query_port)
        self.clipper_management_port = int(clipper_management_port)
        self.clipper_rpc_port = int(clipper_rpc_port)
        self.redis_ip = redis_ip
        self.redis_port = int(redis_port)
        self.prometheus_port = int(prometheus_port)
        self.docker_network = docker_network
        self.publish_address = publish_address
        self.redis_password = redis_password  # of an external Redis; the cluster's own gets a generated one
        if rpc_admission not in ADMISSION_MODES:
            msg = f"rpc_admission must be one of {', '.join(ADMISSION_MODES)}, got {rpc_admission!r}"
            raise ClipperException(msg)
        self.rpc_admission = rpc_admission
        self.management_auth = bool(management_auth)
        self._secrets: DockerSecrets | None = None  # what the running cluster uses (start_clipper or connect)
        extra = dict(extra_container_kwargs or {})
        user_labels = dict(extra.pop("labels", None) or {})
        for key in ("network", "network_mode", "detach", "name"):
            extra.pop(key, None)  # always set by the manager
        self.extra_container_kwargs = extra
        self.common_labels = {**user_labels, CLIPPER_DOCKER_LABEL: cluster_name}
        #: Image of the Redis container (start_clipper has no parameter for it, as in the original).
        self.redis_image = os.environ.get("CLIPPER_REDIS_IMAGE") or (f"{clipper_registry()}/redis:{__version__}")
        self.start_timeout = 120.0
        self.deploy_timeout = 120.0
        self.stop_timeout = 10
        self.log = _ClusterAdapter(logger, {"cluster": cluster_name})
        self._docker_client: docker.DockerClient | None = None

    # -- docker client and queries ------------------------------------------------------------------

    @property
    def docker_client(self) -> docker.DockerClient:
        """The Docker SDK client (connected on first use; raises a ContainerManagerError when no daemon answers)."""
        if self._docker_client is None:
            self._docker_client = api.connect_docker()
        return self._docker_client

    @docker_client.setter
    def docker_client(self, client: docker.DockerClient) -> None:
        self._docker_client = client

    @property
    def host_network(self) -> bool:
        return self.docker_network == "host"

    def _containers(self, *labels: str, all: bool = True) -> list[Any]:  # noqa: A002 - the SDK's name
        filters = {"label": [f"{CLIPPER_DOCKER_LABEL}={self.cluster_name}", *labels]}
        with api.docker_errors("Listing containers"):
            found = self.docker_client.containers.list(all=all, filters=filters)
        return list(found)

    def _live(self, *labels: str) -> list[Any]:
        return [c for c in self._containers(*labels) if c.status in api.LIVE_STATES]

    def _model_containers(self, name: str, version: str) -> list[Any]:
        return self._live(f"{CLIPPER_MODEL_CONTAINER_LABEL}={model_label(name, str(version))}")

    def _query_container(self) -> Any | None:
        found = self._containers(CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL, all=False)
        return found[0] if found else None

    # -- addresses ----------------------------------------------------------------------------------

    def get_admin_addr(self) -> str:
        return f"{self.docker_ip_address}:{self.clipper_management_port}"

    def get_query_addr(self) -> str:
        return f"{self.docker_ip_address}:{self.clipper_query_port}"

    def get_metric_addr(self) -> str:
        return self.get_query_addr()  # the query frontend serves /metrics itself; no Prometheus container

    def is_running(self) -> bool:
        return self._query_container() is not None

    def cluster_secrets(self) -> DockerSecrets | None:
        """The secrets of the running cluster (read from its containers' environment when this manager did not
        start it and has not connected); ``None`` when it is not running or was started without them."""
        if self._secrets is None:
            query = self._query_container()
            if query is not None:
                mgmt = self._containers(CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL, all=False)
                self._secrets = read_secrets(query, mgmt[0] if mgmt else None)
        return self._secrets

    def admin_headers(self) -> dict[str, str]:
        found = self.cluster_secrets() if self.management_auth or self._secrets else None
        return bearer_header(found.management_token) if found and found.management_token else {}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            {
                "running": self.is_running(),
                "docker_network": self.docker_network,
                "publish_address": self.publish_address,
                "rpc_port": self.clipper_rpc_port,
                "redis": f"{self.redis_ip or self.docker_ip_address}:{self.redis_port}",
                "external_redis": bool(self.redis_ip),
                "rpc_admission": self.rpc_admission,
                "management_auth": self.management_auth,
                "containers": {c.name: c.status for c in self._containers()},
            }
        )
        return info

    # -- start / connect / stop ---------------------------------------------------------------------

    @property
    def placement(self) -> Placement:
        """Network, published-port address, labels and extra kwargs of this cluster's containers."""
        return Placement(
            network=self.docker_network,
            publish_address=self.publish_address,
            labels=dict(self.common_labels),
            extra_container_kwargs=dict(self.extra_container_kwargs),
        )

    def services_spec(
        self,
        query_frontend_image: str,
        mgmt_frontend_image: str,
        cache_size: int,
        timeout_content: int,
        secrets: DockerSecrets,
    ) -> ServicesSpec:
        """What starting this cluster's Redis and frontends needs, frozen."""
        return ServicesSpec(
            cluster_name=self.cluster_name,
            placement=self.placement,
            docker_ip_address=self.docker_ip_address,
            query_port=self.clipper_query_port,
            management_port=self.clipper_management_port,
            rpc_port=self.clipper_rpc_port,
            redis_port=self.redis_port,
            redis_ip=self.redis_ip,
            redis_image=self.redis_image,
            query_image=query_frontend_image,
            mgmt_image=mgmt_frontend_image,
            cache_size=int(cache_size),
            timeout_content=int(timeout_content),
            start_timeout=self.start_timeout,
            secrets=secrets,
            rpc_admission=self.rpc_admission,
        )

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
        if num_frontend_replicas != 1:
            msg = "Docker container manager's query frontend scale-out is not supported yet (num_frontend_replicas)"
            raise ContainerManagerError(msg)
        if self.centralize_log:
            msg = "use_centralized_log (fluentd) is not supported by this DockerContainerManager; use get_logs()"
            raise ContainerManagerError(msg)
        if self._containers(all=False):
            raise cluster_exists_error(self.cluster_name)
        leftovers = self._containers()  # exited containers of an earlier run of this cluster
        if leftovers:
            self.log.info("removing %d stopped containers of an earlier run", len(leftovers))
            with api.docker_errors("Removing stopped containers"):
                api.stop_and_remove(leftovers, graceful=False)
        fresh = generate(self.redis_password, external_redis=bool(self.redis_ip))
        secrets = DockerSecrets.generated(fresh, self.management_auth)
        spec = self.services_spec(
            query_frontend_image, mgmt_frontend_image, cache_size, qf_http_timeout_content, secrets
        )
        for image in spec.images:
            api.ensure_image(self.docker_client, image)
        check_ports(spec)
        ensure_network(self.docker_client, spec.placement)
        started: list[Any] = []
        try:
            with api.docker_errors(f"Starting Clipper cluster {self.cluster_name}"):
                start_services(self.docker_client, spec, started)
        except BaseException:
            self.log.warning("start-up failed; removing the %d containers started", len(started))
            try:
                api.stop_and_remove(started, graceful=False)
            except Exception as exc:  # keep the original error
                self.log.warning("cleanup after a failed start: %s", exc)
            raise
        self._secrets = secrets
        self.log.info("Clipper is running (query %s, admin %s)", self.get_query_addr(), self.get_admin_addr())

    def connect(self) -> None:
        query = self._query_container()
        if query is None:
            msg = (
                f"Clipper cluster '{self.cluster_name}' is not running on this Docker daemon (no running query "
                f"frontend container labelled {CLIPPER_DOCKER_LABEL}={self.cluster_name}). Start it with "
                "ClipperConnection(DockerContainerManager(...)).start_clipper()."
            )
            raise ContainerManagerError(msg)
        labels = query.labels
        try:
            self.clipper_query_port = int(labels[QUERY_PORT_LABEL])
            self.clipper_rpc_port = int(labels[RPC_PORT_LABEL])
            mgmt = self._containers(CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL, all=False)
            mgmt_port = mgmt[0].labels.get(MGMT_PORT_LABEL) if mgmt else labels.get(MGMT_PORT_LABEL)
            self._secrets = read_secrets(query, mgmt[0] if mgmt else None)
            self.clipper_management_port = int(mgmt_port)
            self.redis_port = int(labels.get(REDIS_PORT_LABEL, self.redis_port))
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"Container {query.name} of cluster {self.cluster_name} lacks the port labels: {exc}"
            raise ContainerManagerError(msg) from exc
        self.redis_ip = labels.get(REDIS_IP_LABEL) or None
        self.docker_network = labels.get(NETWORK_LABEL, self.docker_network)
        self.rpc_admission = labels.get(RPC_ADMISSION_LABEL) or "open"  # a cluster started without RPC admission
        self.management_auth = bool(self._secrets and self._secrets.management_token)
        if self._secrets is not None and self.redis_ip:
            self.redis_password = self._secrets.redis_password
        self.log.info("connected (query %s, admin %s)", self.get_query_addr(), self.get_admin_addr())

    def stop_all(self, graceful: bool = True) -> None:
        containers = self._containers()
        with api.docker_errors(f"Stopping cluster {self.cluster_name}"):
            stop_in_order(containers, graceful, self.stop_timeout)
        self._secrets = None
        self.log.info("stopped and removed %d containers", len(containers))

    # -- models -------------------------------------------------------------------------------------

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
        return build_model_image(
            self.docker_client,
            self.cluster_identifier,
            name,
            version,
            model_data_path,
            base_image,
            container_registry,
            pkgs_to_install,
            network_mode="host" if self.host_network else None,
        )

    def deploy_model(self, name: str, version: str, input_type: str, image: str, num_replicas: int = 1) -> None:
        self.set_num_replicas(name, version, input_type, image, num_replicas)

    def get_num_replicas(self, name: str, version: str) -> int:
        return len(self._model_containers(name, version))

    def set_num_replicas(self, name: str, version: str, input_type: str, image: str, num_replicas: int) -> None:
        version = str(version)
        num_replicas = int(num_replicas)
        if num_replicas < 0:
            msg = f"num_replicas must be >= 0, got {num_replicas}"
            raise DeploymentError(msg)
        current = self._model_containers(name, version)
        if len(current) > num_replicas:
            surplus = sorted(current, key=lambda c: c.attrs.get("Created", ""))[num_replicas:]
            self.log.info("stopping %d replicas of %s:%s", len(surplus), name, version)
            with api.docker_errors(f"Stopping replicas of {name}:{version}"):
                api.stop_and_remove(surplus, True, self.stop_timeout)
            return
        missing = num_replicas - len(current)
        if missing <= 0:
            return
        query = self._query_container()
        if query is None:
            msg = (
                f"Clipper cluster '{self.cluster_name}' is not running (no query frontend container), so replicas "
                f"of {name}:{version} would have nothing to connect to. Start it with start_clipper()."
            )
            raise ContainerManagerError(msg)
        api.ensure_image(self.docker_client, image, "model image", DeploymentError)
        added: list[Any] = []
        try:
            with api.docker_errors(f"Starting replicas of {name}:{version}", DeploymentError):
                for _ in range(missing):
                    added.append(self._add_replica(name, version, input_type, image, query))
                api.wait_for(
                    added,
                    api.container_ready,
                    f"Model {name}:{version}",
                    self.deploy_timeout,
                    failed=api.model_failed,
                    error=DeploymentError,
                )
        except BaseException:
            try:
                api.stop_and_remove(added, graceful=False)
            except Exception as exc:
                self.log.warning("cleanup of failed replicas: %s", exc)
            raise
        self.log.info("%s:%s now has %d replicas", name, version, num_replicas)

    def _add_replica(self, name: str, version: str, input_type: str, image: str, query: Any) -> Any:
        env = {
            "CLIPPER_MODEL_NAME": name,
            "CLIPPER_MODEL_VERSION": version,
            "CLIPPER_INPUT_TYPE": input_type,
        }
        if self.host_network:
            env.update(CLIPPER_IP="127.0.0.1", CLIPPER_PORT=str(self.clipper_rpc_port))
        else:
            env.update(CLIPPER_IP=query.name, CLIPPER_PORT=str(in_network_port("rpc")))
        kwargs = self.placement.container_kwargs({CLIPPER_MODEL_CONTAINER_LABEL: model_label(name, version)})
        found = read_secrets(query, None)  # the token of the running cluster, whoever started it
        kwargs = with_env(kwargs, {**env, **(found.replica_env() if found else {})})
        kwargs.setdefault("restart_policy", {"Name": "on-failure"})
        return api.run_container(self.docker_client, f"{name}_{version}", image, **kwargs)

    def stop_models(self, models: dict[str, list[str]]) -> None:
        victims = [c for name, versions in models.items() for v in versions for c in self._model_containers(name, v)]
        with api.docker_errors("Stopping model containers"):
            api.stop_and_remove(victims, True, self.stop_timeout)

    def stop_all_model_containers(self) -> None:
        with api.docker_errors("Stopping model containers"):
            api.stop_and_remove(self._containers(CLIPPER_MODEL_CONTAINER_LABEL), True, self.stop_timeout)

    # -- logs ---------------------------------------------------------------------------------------

    def get_logs(self, logging_dir: str) -> list[str]:
        if self.centralize_log:
            msg = "get_logs with use_centralized_log (fluentd) is not supported"
            raise NotImplementedError(msg)
        with api.docker_errors("Reading container logs"):
            return api.write_logs(self._containers(), logging_dir)
