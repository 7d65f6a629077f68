"""On-disk state of a local cluster, shared by :mod:`clipper_core.local` and :mod:`clipper_core.local.supervisor`.

Layout (``CLUSTER_DIR = $CLIPPER_HOME/clusters/<cluster_name>``, see docs/architecture.md):
``cluster.json``, ``processes.json``, ``logs/``, ``models/<name>/<version>/``, ``venvs/<name>-<version>/``, ``run/``,
``redis/`` (the append-only file of the cluster's own Redis).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from clipper_core.errors import ClipperException
from clipper_core.files import read_json
from clipper_core.names import check_path_component as check_path_component  # re-exported

logger = logging.getLogger(__name__)

IMAGE_PREFIX = "local:"
ENV_CLUSTER_DIR = "CLIPPER_CLUSTER_DIR"  # set on every process the supervisor starts, to recognise them later
SUPERVISOR_MODULE = "clipper_core.local.supervisor"
# Command-line fragments of the processes a local cluster runs (fallback when the environment cannot be read).
PROCESS_MARKERS = ("clipper_core.local.supervisor", "clipper_frontend.", "clipper_core.container", "redis-server")

_IMAGE_RE = re.compile(r"^local:(?P<cluster>[^/:]+)/(?P<name>[^/:]+):(?P<version>[^/:]+)$")


def clipper_home() -> Path:
    """``$CLIPPER_HOME`` (made absolute, symlinks kept), defaulting to ``~/.clipper``."""
    return Path(os.path.abspath(os.environ.get("CLIPPER_HOME") or Path.home() / ".clipper"))


def _checked(name: str, version: str) -> tuple[str, str]:
    return check_path_component(name, "model name"), check_path_component(str(version), "model version")


@dataclass(frozen=True)
class ClusterPaths:
    """Every path of one local cluster."""

    root: Path

    @classmethod
    def for_cluster(cls, cluster_name: str) -> ClusterPaths:
        return cls(clipper_home() / "clusters" / check_path_component(cluster_name, "cluster name"))

    @property
    def cluster_json(self) -> Path:
        return self.root / "cluster.json"

    @property
    def processes_json(self) -> Path:
        return self.root / "processes.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def redis_data(self) -> Path:
        """Where the cluster's own Redis persists its data, so that a restarted Redis keeps it."""
        return self.root / "redis"

    # Every path built from a model name and version checks both (clipper_core.names): nothing leaves root.

    def model_dir(self, name: str, version: str) -> Path:
        name, version = _checked(name, version)
        return self.models / name / version

    def venv_dir(self, name: str, version: str) -> Path:
        name, version = _checked(name, version)
        return self.venvs / f"{name}-{version}"

    def replica_log(self, name: str, version: str, slot: int) -> Path:
        name, version = _checked(name, version)
        return self.logs / f"{name}_{version}-{int(slot)}.log"

    def ready_file(self, name: str, version: str, slot: int) -> Path:
        name, version = _checked(name, version)
        return self.run / f"{name}_{version}-{int(slot)}.ready"

    def make_dirs(self) -> None:
        for path in (self.root, self.logs, self.models, self.venvs, self.run, self.redis_data):
            path.mkdir(parents=True, exist_ok=True)


# -- images ------------------------------------------------------------------------------------------


def image_ref(cluster: str, name: str, version: str) -> str:
    return f"{IMAGE_PREFIX}{cluster}/{name}:{version}"


def parse_image_ref(image: str) -> tuple[str, str, str] | None:
    """``local:<cluster>/<name>:<version>`` -> ``(cluster, name, version)``, or ``None`` for other references."""
    match = _IMAGE_RE.match(str(image))
    if match is None:
        return None
    return match.group("cluster"), match.group("name"), match.group("version")


def image_model_dir(image: str) -> Path | None:
    """The model-store directory an image reference points at (whether or not it exists)."""
    parsed = parse_image_ref(image)
    if parsed is None:
        return None
    cluster, name, version = parsed
    try:
        return ClusterPaths.for_cluster(cluster).model_dir(name, version)
    except ClipperException:
        return None


# -- processes ---------------------------------------------------------------------------------------


def _process(pid: int | None) -> psutil.Process | None:
    if not pid:
        return None
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.Error, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    return _process(pid) is not None


def is_supervisor(pid: int | None, root: Path) -> bool:
    """Whether ``pid`` is the live supervisor of the cluster in ``root`` (guards against pid reuse)."""
    proc = _process(pid)
    if proc is None:
        return False
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return False
    return SUPERVISOR_MODULE in cmdline and str(root) in cmdline


def cluster_ports(root: Path) -> list[int]:
    """The ports configured in ``root``'s ``cluster.json`` (empty when it is missing)."""
    config = read_json(root / "cluster.json") or {}
    out = []
    for key in ("redis_port", "management_port", "query_port", "rpc_port"):
        try:
            out.append(int(config[key]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def looks_like_ours(pid: int | None, root: Path) -> bool:
    """Whether ``pid`` is a live process the supervisor of ``root`` started (or the supervisor itself).

    Every process the supervisor starts carries ``CLIPPER_CLUSTER_DIR=root`` in its environment: when the
    environment can be read, that is the answer. Only when it cannot (another user's process, or an environment a
    process title rewrite wiped) does the command line decide, and then it must both look like a cluster process
    and name ``root`` or one of the cluster's ports.
    """
    proc = _process(pid)
    if proc is None:
        return False
    try:
        environ = proc.environ()
    except psutil.AccessDenied:
        environ = {}
    except psutil.Error:
        return False
    if environ:  # empty: unreadable, or wiped by a process title rewrite (older redis-server)
        return environ.get(ENV_CLUSTER_DIR) == str(root)
    try:
        args = proc.cmdline()
    except psutil.Error:
        return False
    cmdline = " ".join(args)
    if not any(marker in cmdline for marker in PROCESS_MARKERS):
        return False
    if str(root) in cmdline:
        return True
    # A port counts only as a whole argument (``--port 1337``, ``--port=1337``, ``tcp://host:7000``), never as digits
    # that happen to stand somewhere in a path.
    ports = {str(port) for port in cluster_ports(root)}
    return any(arg in ports or re.split(r"[=:]", arg)[-1] in ports for arg in args)


def signal_pid(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; ``False`` when it no longer exists."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        logger.warning("not allowed to signal pid %s", pid)
        return False
    return True


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Poll until none of ``pids`` is alive or ``timeout`` passes; return those still alive."""
    remaining = [p for p in pids if p]
    deadline = time.monotonic() + timeout
    while True:
        remaining = [p for p in remaining if pid_alive(p)]
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(0.05)


def kill_ours(pids: Iterable[int], root: Path, graceful: bool = True, timeout: float = 5.0) -> None:
    """Terminate (then kill) every pid that still belongs to the cluster in ``root``."""
    ours = [p for p in set(pids) if p and p != os.getpid() and looks_like_ours(p, root)]
    if not ours:
        return
    for pid in ours:
        signal_pid(pid, signal.SIGTERM if graceful else signal.SIGKILL)
    left = wait_gone(ours, timeout if graceful else 2.0)
    for pid in left:
        logger.warning("pid %s did not exit; killing it", pid)
        signal_pid(pid, signal.SIGKILL)
    wait_gone(left, 2.0)


def group_members(pgid: int, root: Path) -> list[int]:
    """Live processes in process group ``pgid`` that belong to the cluster in ``root``."""
    out = []
    for proc in psutil.process_iter(["pid"]):
        pid = proc.info["pid"]
        if pid == os.getpid():
            continue
        try:
            if os.getpgid(pid) != pgid:
                continue
        except OSError:
            continue
        if looks_like_ours(pid, root):
            out.append(pid)
    return out


def recorded_pids(processes: dict[str, Any] | None) -> list[int]:
    """Every pid listed in a ``processes.json`` document."""
    if not processes:
        return []
    pids = [processes.get(key) for key in ("supervisor", "redis", "management", "query")]
    for entries in (processes.get("replicas") or {}).values():
        pids.extend(entry.get("pid") for entry in entries)
    return [int(p) for p in pids if p]
