"""Constructor checks: ``service_types`` (with the original's messages) and the names Kubernetes will accept."""

from __future__ import annotations

from typing import Any

from clipper_core.errors import ContainerManagerError

CLUSTER_IP = "ClusterIP"
NODE_PORT = "NodePort"
LOAD_BALANCER = "LoadBalancer"
EXTERNAL_NAME = "ExternalName"
OFFICIAL_K8S_SERVICE_TYPES = (CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME)
SERVICE_KEYS = ("redis", "management", "query", "query-rpc", "metric")
DEFAULT_SERVICE_TYPES: dict[str, str] = dict.fromkeys(SERVICE_KEYS, NODE_PORT)

#: Longest service name the manager makes: ``query-frontend-<id>-at-<cluster>``; services are DNS-1035 labels.
_MAX_SERVICE_NAME = 63


def determine_service_types(service_types: Any) -> dict[str, str]:
    """The service type of each Clipper service; ``None`` means NodePort everywhere (the original's default)."""
    result = dict(DEFAULT_SERVICE_TYPES)
    if service_types is None:
        return result
    st = service_types
    if not isinstance(st, dict):
        msg = f"service_types must be 'dict' type: {st}"
        raise ContainerManagerError(msg)
    if set(st.keys()) != set(DEFAULT_SERVICE_TYPES.keys()):
        msg = f"service_types has unknown keys: {st.keys()}"
        raise ContainerManagerError(msg)
    if any(v not in OFFICIAL_K8S_SERVICE_TYPES for v in set(st.values())):
        msg = f"service_types has unknown values: {st.values()}"
        raise ContainerManagerError(msg)
    if EXTERNAL_NAME in st.values():
        msg = f"Clipper does not support '{EXTERNAL_NAME}' service"
        raise ContainerManagerError(msg)
    result.update(st)
    return result


def check_cluster_name(cluster_name: str, max_frontends: int = 9) -> str:
    """Service names are ``...-at-<cluster>`` DNS-1035 labels of at most 63 characters; refuse what cannot fit."""
    longest = f"query-frontend-{max_frontends}-at-{cluster_name}"
    if len(longest) > _MAX_SERVICE_NAME:
        msg = (
            f"Invalid Kubernetes cluster name {cluster_name!r}: Clipper's service names "
            f"('{longest}') must be DNS-1035 labels of at most {_MAX_SERVICE_NAME} characters; use a shorter name "
            "of lower-case letters, digits and '-'"
        )
        raise ContainerManagerError(msg)
    return cluster_name


def parse_bool(value: str) -> bool:
    """``--use-internal-ip true`` and the like."""
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    msg = f"expected true or false, got {value!r}"
    raise ValueError(msg)
