"""Waiting for a local cluster's model replicas: running, connected to the query frontend, or gone.

A replica counts as connected once the query frontend's record of it (Redis DB 3) names its pid; the record's
``status``/``error`` carry the load error a replica reports in its NewContainer status frame.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import redis

from clipper_core.config_store import CONTAINER_DB, _s, container_key
from clipper_core.errors import ContainerManagerError, DeploymentError
from clipper_core.files import tail
from clipper_core.secrets import redis_password

if TYPE_CHECKING:
    from clipper_core.local.manager import LocalContainerManager

logger = logging.getLogger(__name__)


def wait_for_replicas(cm: LocalContainerManager, wanted: dict[str, int], min_connected: int | None = None) -> None:
    """Wait until each ``<name>:<version>`` has exactly ``wanted`` replica processes (none being stopped) and
    ``min_connected`` of them (default: all) are connected to the query frontend.

    Fails early with a :class:`DeploymentError` when a replica reports that its model failed to load, or when
    one keeps exiting; with a :class:`ContainerManagerError` at the deadline.
    """
    deadline = time.monotonic() + cm.deploy_timeout
    baseline = _restart_counts(cm, wanted)
    while True:
        replicas = cm._processes().get("replicas") or {}
        pending = None
        for key, count in wanted.items():
            entries = replicas.get(key, [])
            live = {int(e["pid"]) for e in entries if e.get("pid") and not e.get("stopping")}
            need = count if min_connected is None else min(count, min_connected)
            records = _connected_records(cm, key, live) if live and count else {}
            for pid, record in records.items():
                if record.get("status") == "error":
                    raise _load_error(cm, key, pid, record.get("error", ""))
            for entry in entries if count else []:
                restarts = int(entry.get("restarts", 0)) - baseline.get((key, entry.get("slot")), 0)
                if not entry.get("stopping") and restarts >= 2 and int(entry["pid"]) not in records:
                    raise _exit_error(cm, key, entry, restarts)
            if len(entries) != count or len(live) != count or len(records) < need:
                pending = (key, len(live), len(records), count)
                break
        if pending is None:
            return
        if not cm.is_running():
            msg = f"Clipper cluster '{cm.cluster_name}' stopped while waiting for model replicas"
            raise ContainerManagerError(msg)
        if time.monotonic() >= deadline:
            key, running, connected, count = pending
            name, _, version = key.partition(":")
            log = cm.paths.replica_log(name, version, 0)
            msg = (
                f"Model {key}: {running} of {count} replicas running and {connected} connected to the query "
                f"frontend after {cm.deploy_timeout:.0f} s. Last lines of {log}:\n{tail(log)}"
            )
            raise ContainerManagerError(msg)
        time.sleep(0.1)


def _restart_counts(cm: LocalContainerManager, wanted: dict[str, int]) -> dict[tuple[str, Any], int]:
    replicas = cm._processes().get("replicas") or {}
    return {(key, e.get("slot")): int(e.get("restarts", 0)) for key in wanted for e in replicas.get(key, [])}


def _connected_records(cm: LocalContainerManager, key: str, pids: set[int]) -> dict[int, dict[str, str]]:
    """The query frontend's replica records (Redis DB 3) of ``key`` that belong to the processes ``pids``."""
    name, _, version = key.partition(":")
    client = redis.Redis(
        host=cm._redis_host,
        port=cm.redis_port,
        db=CONTAINER_DB,
        password=redis_password(cm.paths.root) or cm.redis_password,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
    )
    out: dict[int, dict[str, str]] = {}
    try:
        for rkey in client.scan_iter(match=container_key(name, version, "*"), count=1000):
            record = {_s(k): _s(v) for k, v in client.hgetall(rkey).items()}
            try:
                pid = int(record.get("pid", ""))
            except ValueError:
                continue
            if pid in pids and record.get("model_name") == name and record.get("model_version") == version:
                out[pid] = record
    except redis.RedisError as exc:
        logger.debug("could not read the replica records of %s: %s", key, exc)
    finally:
        client.close()
    return out


def _load_error(cm: LocalContainerManager, key: str, pid: int, error: str) -> DeploymentError:
    name, _, version = key.partition(":")
    msg = f"Model {key} failed to load in its replica (pid {pid}): {error}. {cm.replica_log_hint(name, version)}"
    return DeploymentError(msg)


def _exit_error(cm: LocalContainerManager, key: str, entry: dict[str, Any], restarts: int) -> DeploymentError:
    name, _, version = key.partition(":")
    log = cm.paths.replica_log(name, version, int(entry.get("slot", 0)))
    msg = (
        f"Replica {entry.get('slot', 0)} of model {key} exited {restarts} times before connecting to the query "
        f"frontend. Last lines of {log}:\n{tail(log)}"
    )
    return DeploymentError(msg)
