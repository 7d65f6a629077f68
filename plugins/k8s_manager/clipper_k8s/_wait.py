"""Waiting for Deployments: until the wanted number of replicas is available, a pod fails for good, or a deadline.

A pod that cannot pull its image or keeps crashing never becomes available; instead of waiting out the deadline
the wait stops at the first such pod with its reason (``ErrImagePull``, ``CrashLoopBackOff``, ...).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from clipper_core.errors import ClipperException, DeploymentError
from clipper_k8s._api import Apis, api_errors

logger = logging.getLogger(__name__)

#: Container waiting reasons that do not go away by waiting.
FATAL_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
POLL_INTERVAL = 0.5
#: Seconds one API request of the wait may take (an API server that stops answering ends the wait too).
REQUEST_TIMEOUT = 30.0


def pod_failure(pod: Any) -> str | None:
    """``container <c> (image <i>) of pod <p>: <reason>: <message>`` for the first fatally waiting container."""
    statuses = list(getattr(pod.status, "container_statuses", None) or [])
    statuses += list(getattr(pod.status, "init_container_statuses", None) or [])
    for status in statuses:
        waiting = getattr(status.state, "waiting", None) if status.state is not None else None
        if waiting is not None and waiting.reason in FATAL_REASONS:
            detail = f": {waiting.message}" if waiting.message else ""
            where = f"container {status.name} (image {status.image}) of pod {pod.metadata.name}"
            return f"{where}: {waiting.reason}{detail}"
    return None


def _selector(deployment: Any) -> str:
    labels = deployment.spec.selector.match_labels or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _condition_failure(deployment: Any) -> str | None:
    for cond in deployment.status.conditions or [] if deployment.status else []:
        if cond.type == "Progressing" and cond.status == "False" and cond.reason == "ProgressDeadlineExceeded":
            return f"{cond.reason}: {cond.message}"
        if cond.type == "ReplicaFailure" and cond.status == "True":
            return f"{cond.reason}: {cond.message}"
    return None


def available(deployment: Any) -> int:
    return int((deployment.status.available_replicas if deployment.status else None) or 0)


def wait_available(
    apis: Apis,
    namespace: str,
    name: str,
    replicas: int,
    timeout: float,
    what: str,
    error: type[ClipperException] = DeploymentError,
) -> None:
    """Wait until Deployment ``name`` has exactly ``replicas`` available replicas.

    :raises error: a pod of it fails for good, its rollout fails, or ``timeout`` seconds pass; the message names
        the Deployment, ``what`` it runs, and the reason.
    """
    deadline = time.monotonic() + timeout
    last = "no status yet"
    while True:
        with api_errors(f"Reading Deployment {namespace}/{name}", apis.host, error):
            dep = apis.apps.read_namespaced_deployment(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        have = available(dep)
        if have == replicas and (replicas > 0 or not (dep.status and dep.status.replicas)):
            return
        last = f"{have} of {replicas} replicas available"
        failed = _condition_failure(dep)
        if failed is None and have < replicas:
            with api_errors(f"Listing the pods of Deployment {namespace}/{name}", apis.host, error):
                pods = apis.core.list_namespaced_pod(
                    namespace, label_selector=_selector(dep), _request_timeout=REQUEST_TIMEOUT
                ).items
            for pod in pods:
                failed = pod_failure(pod)
                if failed:
                    break
        if failed:
            msg = f"Deployment {namespace}/{name} ({what}) cannot become available: {failed}"
            raise error(msg)
        if time.monotonic() > deadline:
            msg = (
                f"Deployment {namespace}/{name} ({what}) did not become available within {timeout:.0f} s "
                f"({last}). Check its pods with kubectl -n {namespace} describe deployment {name}."
            )
            raise error(msg)
        time.sleep(POLL_INTERVAL)
