"""Starting a cluster's service containers (Redis, management frontend, query frontend) and the checks before it.

Names, labels and port labels follow the original (reference §6.3). With ``docker_network="host"`` every container
uses host networking and binds the manager's ports on 127.0.0.1; otherwise they join a user-defined bridge network,
listen on the in-network default ports and publish them on the manager's ports.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import docker.errors

from clipper_core.container_manager import (
    CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL,
    CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL,
)
from clipper_core.ports import check_ports as shared_check_ports
from clipper_docker import _dockerapi as api

if TYPE_CHECKING:
    from clipper_docker.manager import DockerContainerManager

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


def check_ports(cm: DockerContainerManager) -> None:
    """Raise a :class:`ClipperException` naming the first configured port that is taken or used twice."""
    wanted = [
        (cm.clipper_query_port, "the query frontend (clipper_query_port)"),
        (cm.clipper_management_port, "the management frontend (clipper_management_port)"),
        (cm.clipper_rpc_port, "model container RPC (clipper_rpc_port)"),
    ]
    if cm.redis_ip is None:
        wanted.append((cm.redis_port, "Redis (redis_port)"))
    host = "127.0.0.1" if cm.host_network else "0.0.0.0"
    shared_check_ports(
        cm.cluster_name, [(port, what, host) for port, what in wanted], check_free=api.daemon_is_local()
    )


def ensure_network(cm: DockerContainerManager) -> None:
    """Create the user-defined bridge network unless it exists (nothing to do for host networking)."""
    if cm.host_network:
        return
    client = cm.docker_client
    with api.docker_errors(f"Creating the Docker network {cm.docker_network}"):
        if not client.networks.list(names=[cm.docker_network]):
            try:
                client.networks.create(cm.docker_network, driver="bridge", check_duplicate=True)
            except docker.errors.APIError as exc:  # created concurrently by another cluster
                logger.debug("network %s: %s", cm.docker_network, exc)


def start_services(
    cm: DockerContainerManager,
    started: list[Any],
    query_image: str,
    mgmt_image: str,
    cache_size: int,
    timeout_content: int,
) -> None:
    """Start Redis (unless external), the management and the query frontend; wait until both frontends answer.

    Every started container is appended to ``started`` at once, so the caller can remove them on failure.
    """
    client = cm.docker_client
    host = cm.host_network
    bind = "127.0.0.1" if host else "0.0.0.0"
    port = (
        {"query": cm.clipper_query_port, "rpc": cm.clipper_rpc_port, "mgmt": cm.clipper_management_port}
        if host
        else dict(_IN_NETWORK_PORTS)
    )
    if cm.redis_ip is not None:
        redis_addr, redis_port = cm.redis_ip, cm.redis_port
    else:
        redis_port = cm.redis_port if host else in_network_port("redis")
        command = ["redis-server", "--port", str(redis_port), "--bind", bind, "--protected-mode", "no"]
        redis = api.run_container(
            client,
            "redis",
            cm.redis_image,
            command=[*command, "--save", "", "--appendonly", "no"],
            restart_policy=_RESTART,
            **cm.container_kwargs({REDIS_PORT_LABEL: str(cm.redis_port)}, {"6379/tcp": cm.redis_port}),
        )
        started.append(redis)
        redis_addr = "127.0.0.1" if host else redis.name
    redis_args = ["--redis-ip", redis_addr, "--redis-port", str(redis_port)]

    mgmt_labels = {CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL: "", MGMT_PORT_LABEL: str(cm.clipper_management_port)}
    started.append(
        api.run_container(
            client,
            "mgmt_frontend",
            mgmt_image,
            command=["--host", bind, "--port", str(port["mgmt"]), *redis_args],
            restart_policy=_RESTART,
            **cm.container_kwargs(mgmt_labels, {"1338/tcp": cm.clipper_management_port}),
        )
    )

    query_labels = {
        CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL: "",
        QUERY_PORT_LABEL: str(cm.clipper_query_port),
        RPC_PORT_LABEL: str(cm.clipper_rpc_port),
        MGMT_PORT_LABEL: str(cm.clipper_management_port),
        REDIS_PORT_LABEL: str(cm.redis_port),
        REDIS_IP_LABEL: cm.redis_ip or "",
        NETWORK_LABEL: cm.docker_network,
    }
    query_args = ["--host", bind, "--port", str(port["query"]), "--rpc-port", str(port["rpc"]), *redis_args]
    query_args += ["--cache-size", str(int(cache_size)), "--timeout-content", str(timeout_content)]
    published = {"1337/tcp": cm.clipper_query_port, "7000/tcp": cm.clipper_rpc_port}
    started.append(
        api.run_container(
            client,
            "query_frontend",
            query_image,
            command=query_args,
            restart_policy=_RESTART,
            **cm.container_kwargs(query_labels, published),
        )
    )

    urls = [f"http://{cm.get_admin_addr()}/admin/ping", f"http://{cm.get_query_addr()}/metrics"]
    api.wait_for(
        started,
        api.container_ready,
        f"Starting Clipper cluster {cm.cluster_name}",
        cm.start_timeout,
        extra_check=lambda: all(api.http_ok(u) for u in urls),
    )
