"""The Kubernetes API client: credentials, the API objects, and turning API failures into Clipper errors.

Credentials: in-cluster service-account config when running inside a pod (``KUBERNETES_SERVICE_HOST`` is set and no
kubeconfig or context was asked for), otherwise the kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``) with an
optional context.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clipper_core.errors import ClipperException, ContainerManagerError

logger = logging.getLogger(__name__)


def _kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError as exc:
        msg = (
            "KubernetesContainerManager needs the official Kubernetes client: pip install kubernetes "
            f"(or reinstall clipper-kubernetes) ({exc})"
        )
        raise ContainerManagerError(msg) from exc
    return kubernetes


@dataclass
class Apis:
    """The typed API objects the manager uses, sharing one ``ApiClient``."""

    core: Any
    apps: Any
    rbac: Any
    host: str
    context: str | None


def connect(kube_context: str | None = None, config_file: str | None = None) -> Apis:
    """Load credentials and build the API objects (no request is made yet)."""
    k8s = _kubernetes()
    from kubernetes import client, config

    cfg = client.Configuration()
    in_cluster = os.environ.get("KUBERNETES_SERVICE_HOST") and not (kube_context or config_file)
    context = kube_context
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            context = "in-cluster"
        else:  # $KUBECONFIG is read now, not when the kubernetes package was imported
            path = config_file or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=kube_context, client_configuration=cfg
            )
    except (config.ConfigException, OSError, TypeError, ValueError) as exc:
        where = config_file or os.environ.get("KUBECONFIG") or "~/.kube/config"
        msg = (
            f"Could not load Kubernetes credentials from {'the pod service account' if in_cluster else where}"
            f"{f' (context {kube_context!r})' if kube_context else ''}: {exc}. Point KUBECONFIG at a kubeconfig "
            "for your cluster (kind, minikube and k3s write one) or pass kube_context=..."
        )
        raise ContainerManagerError(msg) from exc
    cfg.retries = 1  # fail fast on an unreachable API server; the manager's waits poll on their own
    api = client.ApiClient(cfg)
    logger.debug("kubernetes client %s, API server %s", getattr(k8s, "__version__", "?"), cfg.host)
    return Apis(client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api), cfg.host, context)


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (TypeError, ValueError):
            pass
    return str(getattr(exc, "reason", "") or exc)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a Kubernetes ``ApiException`` (None for anything else)."""
    from kubernetes.client.exceptions import ApiException

    return exc.status if isinstance(exc, ApiException) else None


@contextlib.contextmanager
def api_errors(what: str, host: str = "", error: type[ClipperException] = ContainerManagerError) -> Iterator[None]:
    """Turn Kubernetes API and connection failures inside the block into ``error`` naming ``what`` and why."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    try:
        yield
    except ApiException as exc:
        status, detail = exc.status, _message(exc)
        if status == 403:
            msg = (
                f"{what}: forbidden by the Kubernetes API server (403): {detail}. The credentials in use lack an "
                "RBAC permission for this; ask a cluster administrator to grant it or use another kube_context."
            )
        elif status == 401:
            msg = f"{what}: the Kubernetes API server refused the credentials (401): {detail}"
        elif status == 404:
            msg = f"{what}: not found (404): {detail}"
        else:
            msg = f"{what}: the Kubernetes API server answered {status} {exc.reason}: {detail}"
        raise error(msg) from exc
    except (Urllib3Error, OSError) as exc:
        msg = (
            f"{what}: the Kubernetes API server{f' at {host}' if host else ''} is unreachable ({exc}). Check that "
            "the cluster is running and that KUBECONFIG / kube_context point at it."
        )
        raise error(msg) from exc


@contextlib.contextmanager
def ignore_status(*statuses: int) -> Iterator[None]:
    """Swallow ``ApiException``s with one of ``statuses`` (409 on create, 404 on delete)."""
    from kubernetes.client.exceptions import ApiException

    try:
        yield
    except ApiException as exc:
        if exc.status not in statuses:
            raise
