"""The Kubernetes objects a Clipper cluster consists of, as plain dicts (``apps/v1``, ``v1``, ``rbac/v1``).

Names, labels, ports and environment follow the original's templates (reference §6.4), with these changes: the
Deployments themselves carry the cluster labels (the original's template said ``label:``), model pods also carry
``ai.clipper.query_frontend.id`` so that the per-frontend Deployments of one model have disjoint selectors, every
Deployment rolls with ``maxUnavailable: 0`` (a new pod must be ready before an old one goes), and no Prometheus or
frontend-exporter objects are created (the query frontend serves ``/metrics`` itself).
"""

from __future__ import annotations

from typing import Any

from clipper_core.container_manager import (
    CLIPPER_DOCKER_LABEL,
    CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL,
    CLIPPER_MODEL_CONTAINER_LABEL,
    CLIPPER_NAME_LABEL,
    CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL,
    CLIPPER_RPC_PORT,
    model_label,
)

QUERY_FRONTEND_ID_LABEL = "ai.clipper.query_frontend.id"
#: On the cluster-wide RBAC objects: clusters of one name in two namespaces must not remove each other's.
NAMESPACE_LABEL = "ai.clipper.namespace"
QUERY_PORT = 1337
MGMT_PORT = 1338
REDIS_CONTAINER_PORT = 6379
READY_FILE = "/model_is_ready.check"

#: ``ai.clipper.name`` of each kind of object.
ROLE_REDIS = "redis"
ROLE_MGMT = "management-frontend"
ROLE_QUERY = "query-frontend"
ROLE_MODEL = "model"
ROLE_RBAC = "rbac"

Manifest = dict[str, Any]


def redis_name(cluster: str) -> str:
    return f"redis-at-{cluster}"


def mgmt_name(cluster: str) -> str:
    return f"mgmt-frontend-at-{cluster}"


def query_name(cluster: str, frontend_id: int) -> str:
    return f"query-frontend-{frontend_id}-at-{cluster}"


def query_service_name(cluster: str) -> str:
    return f"query-frontend-at-{cluster}"


def model_deployment_name(name: str, version: str, frontend_id: int, cluster: str) -> str:
    return f"{name}-{version}-deployment-at-{frontend_id}-at-{cluster}"


def rbac_name(namespace: str, cluster: str) -> str:
    return f"clipper-{namespace}-{cluster}"


def cluster_labels(cluster: str, role: str, **extra: str) -> dict[str, str]:
    return {CLIPPER_DOCKER_LABEL: cluster, CLIPPER_NAME_LABEL: role, **extra}


def cluster_selector(cluster: str, *terms: str) -> str:
    """A label selector for the cluster's objects, narrowed by ``terms`` (``key=value`` or a bare ``key``)."""
    return ",".join([f"{CLIPPER_DOCKER_LABEL}={cluster}", *terms])


def _meta(name: str, labels: dict[str, str], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _deployment(
    name: str,
    namespace: str,
    labels: dict[str, str],
    containers: list[dict[str, Any]],
    replicas: int = 1,
    pod_annotations: dict[str, str] | None = None,
) -> Manifest:
    template_meta: dict[str, Any] = {"labels": dict(labels)}
    if pod_annotations:
        template_meta["annotations"] = dict(pod_annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, labels, namespace),
        "spec": {
            "replicas": int(replicas),
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": template_meta, "spec": {"containers": containers}},
        },
    }


def _service(
    name: str,
    namespace: str,
    labels: dict[str, str],
    selector: dict[str, str],
    ports: list[tuple[str, int, int]],
    service_type: str,
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, labels, namespace),
        "spec": {
            "type": service_type,
            "selector": dict(selector),
            "ports": [
                {"name": pname, "port": int(port), "targetPort": int(target), "protocol": "TCP"}
                for pname, port, target in ports
            ],
        },
    }


def _port(number: int, name: str | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {"containerPort": number, "protocol": "TCP"}
    if name:
        port["name"] = name
    return port


def rbac_labels(cluster: str, namespace: str) -> dict[str, str]:
    return cluster_labels(cluster, ROLE_RBAC, **{NAMESPACE_LABEL: namespace})


# -- RBAC -------------------------------------------------------------------------------------------------------


def cluster_role(cluster: str, namespace: str) -> Manifest:
    """Read access for the pods of the namespace's default service account (service discovery, as the original)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(rbac_name(namespace, cluster), rbac_labels(cluster, namespace)),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["nodes", "services", "endpoints", "pods"],
                "verbs": ["get", "list", "watch"],
            },
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
        ],
    }


def cluster_role_binding(cluster: str, namespace: str) -> Manifest:
    name = rbac_name(namespace, cluster)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name, rbac_labels(cluster, namespace)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }


# -- Redis, management frontend, query frontends ----------------------------------------------------------------


def redis_deployment(cluster: str, namespace: str, image: str) -> Manifest:
    container = {
        "name": "redis",
        "image": image,
        "command": ["redis-server"],
        "args": [
            "--port",
            str(REDIS_CONTAINER_PORT),
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        "ports": [_port(REDIS_CONTAINER_PORT)],
        "readinessProbe": {"tcpSocket": {"port": REDIS_CONTAINER_PORT}, "periodSeconds": 2},
    }
    return _deployment(redis_name(cluster), namespace, cluster_labels(cluster, ROLE_REDIS), [container])


def redis_service(cluster: str, namespace: str, public_port: int, service_type: str) -> Manifest:
    labels = cluster_labels(cluster, ROLE_REDIS)
    ports = [(str(REDIS_CONTAINER_PORT), public_port, REDIS_CONTAINER_PORT)]
    return _service(redis_name(cluster), namespace, labels, labels, ports, service_type)


def mgmt_deployment(cluster: str, namespace: str, image: str, redis_host: str, redis_port: int) -> Manifest:
    container = {
        "name": "mgmt-frontend",
        "image": image,
        "args": [
            "--host",
            "0.0.0.0",
            "--port",
            str(MGMT_PORT),
            "--redis-ip",
            redis_host,
            "--redis-port",
            str(redis_port),
        ],
        "ports": [_port(MGMT_PORT)],
        "readinessProbe": {"httpGet": {"path": "/admin/ping", "port": MGMT_PORT}, "periodSeconds": 2},
    }
    labels = cluster_labels(cluster, ROLE_MGMT, **{CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL: ""})
    return _deployment(mgmt_name(cluster), namespace, labels, [container])


def mgmt_service(cluster: str, namespace: str, service_type: str) -> Manifest:
    labels = cluster_labels(cluster, ROLE_MGMT, **{CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL: ""})
    return _service(
        mgmt_name(cluster), namespace, labels, labels, [(str(MGMT_PORT), MGMT_PORT, MGMT_PORT)], service_type
    )


def _query_labels(cluster: str, frontend_id: int | None = None) -> dict[str, str]:
    extra = {CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL: ""}
    if frontend_id is not None:
        extra[QUERY_FRONTEND_ID_LABEL] = str(frontend_id)
    return cluster_labels(cluster, ROLE_QUERY, **extra)


def query_deployment(
    cluster: str,
    namespace: str,
    frontend_id: int,
    image: str,
    redis_host: str,
    redis_port: int,
    cache_size: int,
    timeout_content: int,
) -> Manifest:
    container = {
        "name": "query-frontend",
        "image": image,
        "args": [
            "--host",
            "0.0.0.0",
            "--port",
            str(QUERY_PORT),
            "--rpc-port",
            str(CLIPPER_RPC_PORT),
            "--redis-ip",
            redis_host,
            "--redis-port",
            str(redis_port),
            "--cache-size",
            str(int(cache_size)),
            "--timeout-content",
            str(timeout_content),
            # No cluster secret reaches the pods yet (docs/security.md, "Kubernetes"): say so in the manifest.
            "--rpc-admission",
            "open",
        ],
        "ports": [_port(CLIPPER_RPC_PORT), _port(QUERY_PORT)],
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": QUERY_PORT}, "periodSeconds": 2},
    }
    return _deployment(query_name(cluster, frontend_id), namespace, _query_labels(cluster, frontend_id), [container])


def query_rpc_service(cluster: str, namespace: str, frontend_id: int, service_type: str) -> Manifest:
    labels = _query_labels(cluster, frontend_id)
    ports = [(str(CLIPPER_RPC_PORT), CLIPPER_RPC_PORT, CLIPPER_RPC_PORT)]
    return _service(query_name(cluster, frontend_id), namespace, labels, labels, ports, service_type)


def query_service(cluster: str, namespace: str, service_type: str) -> Manifest:
    """The REST service shared by every query frontend of the cluster."""
    labels = _query_labels(cluster)
    ports = [(str(QUERY_PORT), QUERY_PORT, QUERY_PORT)]
    return _service(query_service_name(cluster), namespace, labels, labels, ports, service_type)


# -- models ------------------------------------------------------------------------------------------------------


def model_deployment(
    cluster: str,
    namespace: str,
    name: str,
    version: str,
    frontend_id: int,
    input_type: str,
    image: str,
    num_replicas: int,
    options: dict[str, Any] | None = None,
) -> Manifest:
    """One model version's replicas that connect to query frontend ``frontend_id``.

    ``options`` may hold ``resources`` (a container ``resources`` dict: requests/limits), ``liveness_probe`` and
    ``readiness_probe`` (probe dicts replacing the defaults) and ``image_pull_policy`` (default ``Always``).
    """
    options = dict(options or {})
    container: dict[str, Any] = {
        "name": "model",
        "image": image,
        "imagePullPolicy": options.get("image_pull_policy") or "Always",
        "ports": [_port(80), _port(1390)],
        "env": [
            {"name": "CLIPPER_MODEL_NAME", "value": name},
            {"name": "CLIPPER_MODEL_VERSION", "value": version},
            {"name": "CLIPPER_IP", "value": query_name(cluster, frontend_id)},
            {"name": "CLIPPER_PORT", "value": str(CLIPPER_RPC_PORT)},
            {"name": "CLIPPER_INPUT_TYPE", "value": input_type},
        ],
        "readinessProbe": options.get("readiness_probe")
        or {"exec": {"command": ["cat", READY_FILE]}, "initialDelaySeconds": 3, "periodSeconds": 3},
    }
    if options.get("liveness_probe"):
        container["livenessProbe"] = options["liveness_probe"]
    if options.get("resources"):
        container["resources"] = options["resources"]
    labels = cluster_labels(
        cluster,
        ROLE_MODEL,
        **{CLIPPER_MODEL_CONTAINER_LABEL: model_label(name, version), QUERY_FRONTEND_ID_LABEL: str(frontend_id)},
    )
    return _deployment(
        model_deployment_name(name, version, frontend_id, cluster), namespace, labels, [container], num_replicas
    )


def namespace_manifest(namespace: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
