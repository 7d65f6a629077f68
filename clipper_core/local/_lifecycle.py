"""Start-up checks and shutdown of a local cluster's processes (used by :mod:`clipper_core.local`)."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

from clipper_core.errors import ContainerManagerError
from clipper_core.files import read_json, tail
from clipper_core.local._state import (
    ClusterPaths,
    group_members,
    is_supervisor,
    kill_ours,
    recorded_pids,
    signal_pid,
    wait_gone,
)
from clipper_core.ports import check_ports

logger = logging.getLogger(__name__)

FRONTEND_CRASH_LIMIT = 3  # start-up gives up early when a service crashed this often

__all__ = ["accepts", "check_ports", "clear_stale", "stop_cluster", "wait_until_up"]


def accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until_up(
    paths: ClusterPaths,
    cluster_name: str,
    checks: list[tuple[str, Callable[[], bool]]],
    supervisor: subprocess.Popen[bytes] | None,
    timeout: float,
) -> None:
    """Poll ``(service, check)`` pairs in order; raise with the relevant log's tail on failure or timeout."""
    deadline = time.monotonic() + timeout
    pending = list(checks)
    while pending:
        if supervisor is not None and supervisor.poll() is not None:
            log = paths.logs / "supervisor.log"
            msg = (
                f"The supervisor of cluster {cluster_name} exited with {supervisor.returncode} during start-up. "
                f"Last lines of {log}:\n{tail(log)}"
            )
            raise ContainerManagerError(msg)
        name, check = pending[0]
        if check():
            pending.pop(0)
            continue
        restarts = ((read_json(paths.processes_json) or {}).get("restarts") or {}).get(name, 0)
        if restarts >= FRONTEND_CRASH_LIMIT or time.monotonic() >= deadline:
            why = (
                f"crashed {restarts} times"
                if restarts >= FRONTEND_CRASH_LIMIT
                else (f"did not come up within {timeout:.0f} s")
            )
            log = paths.logs / f"{name}.log"
            msg = f"Clipper cluster {cluster_name}: {name} {why}. Last lines of {log}:\n{tail(log)}"
            raise ContainerManagerError(msg)
        time.sleep(0.1)


def clear_stale(paths: ClusterPaths) -> None:
    """Kill what a supervisor that died without cleaning up left behind (it may hold the cluster's ports)."""
    config = read_json(paths.cluster_json) or {}
    leftovers = set(recorded_pids(read_json(paths.processes_json)))
    if config.get("supervisor_pid"):
        leftovers |= set(group_members(int(config["supervisor_pid"]), paths.root))
    if leftovers:
        logger.warning("cleaning up processes left over by a dead supervisor in %s", paths.root)
        kill_ours(leftovers, paths.root, graceful=False)
    paths.processes_json.unlink(missing_ok=True)


def stop_cluster(
    paths: ClusterPaths, config: dict[str, Any], popen: subprocess.Popen[bytes] | None, graceful: bool
) -> None:
    """Signal the supervisor, wait for it, then kill every recorded pid (or group member) still ours."""
    sup = config.get("supervisor_pid")
    processes = read_json(paths.processes_json)
    if sup and is_supervisor(sup, paths.root):
        sup = int(sup)
        signal_pid(sup, signal.SIGTERM if graceful else signal.SIGKILL)
        timeout = 20.0 if graceful else 5.0
        if popen is not None and popen.pid == sup:
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        elif wait_gone([sup], timeout):
            logger.warning("supervisor %s did not exit; killing it", sup)
            signal_pid(sup, signal.SIGKILL)
            wait_gone([sup], 5.0)
    elif popen is not None:
        popen.poll()  # reap
    leftovers = set(recorded_pids(processes)) | set(recorded_pids(read_json(paths.processes_json)))
    if sup:
        leftovers |= set(group_members(int(sup), paths.root))
    kill_ours(leftovers, paths.root, graceful=graceful)
    paths.processes_json.unlink(missing_ok=True)
