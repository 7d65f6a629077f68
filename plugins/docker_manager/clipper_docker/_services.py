"""Starting a cluster's service containers (Redis, management frontend, query frontend) and the checks before it.

Names, labels and port labels follow the original (reference §6.3). With ``docker_network="host"`` every container
uses host networking and binds the manager's ports on 127.0.0.1; otherwise they join a user-defined bridge network,
listen on the in-network default ports and publish them on the manager's ports at ``publish_address`` (127.0.0.1
unless the user asks for another address).

The cluster's secrets reach each container in its environment only (:mod:`clipper_docker._secrets`): Redis
requires its password, both frontends authenticate to it, and the query frontend admits replicas by the RPC token
unless ``rpc_admission`` is ``open``.

Everything here works from a frozen :class:`ServicesSpec` the manager builds, never from the manager itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from clipper_core.container_manager import (
    CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL,
    CLIPPER_MODEL_CONTAINER_LABEL,
    CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL,
)
from clipper_core.ports import check_ports as shared_check_ports
from clipper_docker import _dockerapi as api
from clipper_docker._secrets import RPC_ADMISSION_LABEL, DockerSecrets, redis_command, with_env

logger = logging.getLogger(__name__)

REDIS_PORT_LABEL = "ai.clipper.redis.port"
QUERY_PORT_LABEL = "ai.clipper.query_frontend.query.port"
RPC_PORT_LABEL = "ai.clipper.query_frontend.rpc.port"
MGMT_PORT_LABEL = "ai.clipper.management.port"
# Our additions, so that connect() from another process knows everything start_clipper knew.
REDIS_IP_LABEL = "ai.clipper.redis.ip"
NETWORK_LABEL = "ai.clipper.docker.network"

_IN_NETWORK_PORTS = {"query": 1337, "rpc": 7000, "mgmt": 1338, "redis": 6379}
_RESTART = {"Name": "unless-stopped"}


def in_network_port(service: str) -> int:
    """The port a service listens on inside a bridge network."""
    return _IN_NETWORK_PORTS[service]


@dataclass(frozen=True)
class Placement:
    """Where a cluster's containers run: network, published-port address, labels and the user's extra kwargs."""

    network: str
    publish_address: str = "127.0.0.1"
    labels: Mapping[str, str] = field(default_factory=dict)
    extra_container_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def host_network(self) -> bool:
        return self.network == "host"

    def container_kwargs(self, labels: Mapping[str, str], ports: Mapping[str, int] | None = None) -> dict[str, Any]:
        """``containers.run`` keyword arguments: extra kwargs, labels, network, and ports published (bridge only)
        on ``publish_address``."""
        kwargs: dict[str, Any] = {**self.extra_container_kwargs, "labels": {**self.labels, **labels}}
        if self.host_network:
            kwargs["network_mode"] = "host"
        else:
            kwargs["network"] = self.network
            if ports:
                kwargs["ports"] = {inner: (self.publish_address, port) for inner, port in ports.items()}
        kwargs.setdefault("init", True)  # PID 1 forwards SIGTERM, so stop() is quick
        return kwargs


@dataclass(frozen=True)
class ServicesSpec:
    """Everything :func:`start_services` needs to start one cluster's Redis and frontends."""

    cluster_name: str
    placement: Placement
    #: The address clients (and the readiness checks) reach the published ports at.
    docker_ip_address: str
    query_port: int
    management_port: int
    rpc_port: int
    redis_port: int
    #: An external Redis; None starts a Redis container.
    redis_ip: str | None
    redis_image: str
    query_image: str
    mgmt_image: str
    cache_size: int
    timeout_content: int
    start_timeout: float
    #: What each container gets in its environment (see clipper_docker._secrets).
    secrets: DockerSecrets = field(repr=False)
    #: The query frontend's ``--rpc-admission``: ``token``, or ``open`` for containers written for the original.
    rpc_admission: str = "token"

    @property
    def images(self) -> list[str]:
        """The images the services run."""
        return [self.query_image, self.mgmt_image] + ([self.redis_image] if self.redis_ip is None else [])


def check_ports(spec: ServicesSpec) -> None:
    """Raise a :class:`ContainerManagerError` naming the first configured port that is taken or used twice."""
    wanted = [
        (spec.query_port, "the query frontend (clipper_query_port)"),
        (spec.management_port, "the management frontend (clipper_management_port)"),
        (spec.rpc_port, "model container RPC (clipper_rpc_port)"),
    ]
    if spec.redis_ip is None:
        wanted.append((spec.redis_port, "Redis (redis_port)"))
    host = "127.0.0.1" if spec.placement.host_network else spec.placement.publish_address
    shared_check_ports(
        spec.cluster_name, [(port, what, host) for port, what in wanted], check_free=api.daemon_is_local()
    )


def ensure_network(client: docker.DockerClient, placement: Placement) -> None:
    """Create the user-defined bridge network unless it exists (nothing to do for host networking)."""
    if placement.host_network:
        return
    with api.docker_errors(f"Creating the Docker network {placement.network}"):
        if not client.networks.list(names=[placement.network]):
            try:
                client.networks.create(placement.network, driver="bridge", check_duplicate=True)
            except docker.errors.APIError as exc:  # created concurrently by another cluster
                logger.debug("network %s: %s", placement.network, exc)


def start_services(client: docker.DockerClient, spec: ServicesSpec, started: list[Any]) -> None:
    """Start Redis (unless external), the management and the query frontend; wait until both frontends answer.

    Every started container is appended to ``started`` at once, so the caller can remove them on failure.
    """
    place = spec.placement
    host = place.host_network
    # Inside a bridge network the services must accept connections from the other containers; what reaches them
    # from outside is decided by the published ports (placement.publish_address).
    bind = "127.0.0.1" if host else "0.0.0.0"
    port = (
        {"query": spec.query_port, "rpc": spec.rpc_port, "mgmt": spec.management_port}
        if host
        else dict(_IN_NETWORK_PORTS)
    )
    if spec.redis_ip is not None:
        redis_addr, redis_port = spec.redis_ip, spec.redis_port
    else:
        redis_port = spec.redis_port if host else in_network_port("redis")
        redis_kwargs = place.container_kwargs({REDIS_PORT_LABEL: str(spec.redis_port)}, {"6379/tcp": spec.redis_port})
        redis = api.run_container(
            client,
            "redis",
            spec.redis_image,
            command=redis_command(redis_port, bind),
            restart_policy=_RESTART,
            **with_env(redis_kwargs, spec.secrets.redis_env()),
        )
        started.append(redis)
        redis_addr = "127.0.0.1" if host else redis.name
    redis_args = ["--redis-ip", redis_addr, "--redis-port", str(redis_port)]

    mgmt_labels = {CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL: "", MGMT_PORT_LABEL: str(spec.management_port)}
    started.append(
        api.run_container(
            client,
            "mgmt_frontend",
            spec.mgmt_image,
            command=["--host", bind, "--port", str(port["mgmt"]), *redis_args],
            restart_policy=_RESTART,
            **with_env(
                place.container_kwargs(mgmt_labels, {"1338/tcp": spec.management_port}), spec.secrets.management_env()
            ),
        )
    )

    query_labels = {
        CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL: "",
        QUERY_PORT_LABEL: str(spec.query_port),
        RPC_PORT_LABEL: str(spec.rpc_port),
        MGMT_PORT_LABEL: str(spec.management_port),
        REDIS_PORT_LABEL: str(spec.redis_port),
        REDIS_IP_LABEL: spec.redis_ip or "",
        NETWORK_LABEL: place.network,
        RPC_ADMISSION_LABEL: spec.rpc_admission,
    }
    query_args = ["--host", bind, "--port", str(port["query"]), "--rpc-port", str(port["rpc"]), *redis_args]
    query_args += ["--cache-size", str(int(spec.cache_size)), "--timeout-content", str(spec.timeout_content)]
    query_args += ["--rpc-admission", spec.rpc_admission]
    published = {"1337/tcp": spec.query_port, "7000/tcp": spec.rpc_port}
    started.append(
        api.run_container(
            client,
            "query_frontend",
            spec.query_image,
            command=query_args,
            restart_policy=_RESTART,
            **with_env(place.container_kwargs(query_labels, published), spec.secrets.query_env()),
        )
    )

    urls = [
        f"http://{spec.docker_ip_address}:{spec.management_port}/admin/ping",
        f"http://{spec.docker_ip_address}:{spec.query_port}/metrics",
    ]
    api.wait_for(
        started,
        api.container_ready,
        f"Starting Clipper cluster {spec.cluster_name}",
        spec.start_timeout,
        extra_check=lambda: all(api.http_ok(u) for u in urls),
    )


def stop_in_order(containers: list[Any], graceful: bool, timeout: int) -> None:
    """Stop and remove a cluster's containers: model replicas first, then the query and the management frontend,
    Redis last."""

    def rank(c: Any) -> int:
        labels = c.labels
        if CLIPPER_MODEL_CONTAINER_LABEL in labels:
            return 0
        if CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL in labels:
            return 1
        return 2 if CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL in labels else 3

    for level in range(4):
        api.stop_and_remove([c for c in containers if rank(c) == level], graceful, timeout)
