"""Real model-container processes serving a query frontend, restarted whenever they exit (as the local supervisor
and Docker's restart policy do), and an open-loop HTTP load generator for loopback fault tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import orjson

from clipper_core.local.redis_server import stop_process


@dataclass
class Exit:
    pid: int
    code: int
    at: float  # time.monotonic()


class ContainerPool:
    """``n`` replicas of one model (``python -m clipper_core.container``), each restarted as soon as it exits."""

    def __init__(
        self,
        tmp: Path,
        rpc_port: int,
        name: str,
        version: str,
        func: Callable[[Any], Any],
        n: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.model_dir = tmp / f"model-{name}-{version}"
        self.model_dir.mkdir(parents=True, exist_ok=True)
        with open(self.model_dir / "func.pkl", "wb") as f:
            cloudpickle.dump(func, f)
        self.tmp = tmp
        self.env = {
            **os.environ,
            "CLIPPER_MODEL_NAME": name,
            "CLIPPER_MODEL_VERSION": version,
            "CLIPPER_IP": "127.0.0.1",
            "CLIPPER_PORT": str(rpc_port),
            "CLIPPER_MODEL_PATH": str(self.model_dir),
            "CLIPPER_READY_FILE": "",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.n = n
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n
        self.logs: list[Path] = [tmp / f"replica-{name}-{slot}.log" for slot in range(n)]
        self.exits: list[Exit] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def __enter__(self) -> ContainerPool:
        for slot in range(self.n):
            self._start(slot)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for proc in self.procs:
            if proc is not None:
                stop_process(proc)

    def _start(self, slot: int) -> None:
        with open(self.logs[slot], "ab") as out:
            self.procs[slot] = subprocess.Popen(
                [sys.executable, "-m", "clipper_core.container"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def _supervise(self) -> None:
        while not self._stop.wait(0.02):
            for slot, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None:
                    with self._lock:
                        self.exits.append(Exit(proc.pid, proc.returncode, time.monotonic()))
                    if not self._stop.is_set():
                        self._start(slot)

    def exit_count(self) -> int:
        with self._lock:
            return len(self.exits)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


# --------------------------------------------------------------------------- open-loop load


class _Client:
    """Keep-alive HTTP/1.1 connections to one frontend, reused by whichever request is next."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> Any:
        conn = self.idle.pop() if self.idle else await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = conn
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        payload = await reader.readexactly(length)
        self.idle.append(conn)
        return orjson.loads(payload)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def open_loop(port: int, app: str, body: Callable[[int], object], rate: float, seconds: float) -> list[Any]:
    """Send ``rate`` queries a second for ``seconds`` (query ``i`` has body ``body(i)``), each at its own time
    whether or not earlier ones were answered; returns the answers in order (None for a request that failed)."""
    path = f"/{app}/predict"

    async def main() -> list[Any]:
        client = _Client(port)
        loop = asyncio.get_running_loop()
        start = loop.time()
        count = int(rate * seconds)

        async def one(i: int) -> Any:
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            try:
                return await asyncio.wait_for(client.post(path, orjson.dumps(body(i))), 30)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                return None

        try:
            return list(await asyncio.gather(*(one(i) for i in range(count))))
        finally:
            client.close()

    return asyncio.run(main())
