"""Port helpers shared by the container managers, the tests and the benchmark: free ports, waits, clash checks."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any

from clipper_core.errors import ContainerManagerError


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


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
            raise ContainerManagerError(msg)
        seen[port] = what
        if check_free and not port_is_free(port, "0.0.0.0" if host in ("", "::") else host):
            msg = (
                f"Cannot start Clipper cluster {cluster_name}: port {port} for {what} is already in use. "
                "Stop whatever uses it or choose another port."
            )
            raise ContainerManagerError(msg)


def wait_for_port(
    port: int, host: str = "127.0.0.1", timeout: float = 10.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    """Poll until something accepts TCP connections on ``host:port``, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            program = proc.args[0] if isinstance(proc.args, list) else proc.args
            msg = f"process {program!s} exited with {proc.returncode}"
            raise ContainerManagerError(msg)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    msg = f"nothing answered on {host}:{port} within {timeout:.0f} s"
    raise ContainerManagerError(msg)
