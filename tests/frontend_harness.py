"""Start a real query frontend process against a real Redis, and seed Redis the way the management API does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from clipper_core.local.redis_server import stop_process
from clipper_core.ports import free_ports, wait_for_port
from clipper_core.secrets import without_secrets
from tests._wait import wait_until


@dataclass
class Frontend:
    redis_port: int
    port: int
    rpc_port: int
    proc: subprocess.Popen
    log: Path
    _clients: dict[int, redis.Redis] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def db(self, n: int) -> redis.Redis:
        client = self._clients.get(n)
        if client is None:
            client = self._clients[n] = redis.Redis(port=self.redis_port, db=n, decode_responses=True)
        return client

    def add_app(self, name: str, input_type: str = "doubles", default: str = "-1.0", slo_micros: int = 100000) -> None:
        self.db(5).hset(
            name,
            mapping={
                "input_type": input_type,
                "policy": "DefaultOutputSelectionPolicy",
                "default_output": default,
                "latency_slo_micros": str(slo_micros),
            },
        )

    def add_model(self, name: str, version: str, input_type: str = "doubles", batch_size: int = -1) -> None:
        self.db(2).hset(
            f"{name}:{version}",
            mapping={
                "model_name": name,
                "model_version": version,
                "input_type": input_type,
                "labels": "",
                "container_name": "test",
                "model_data_path": "DEPRECATED",
                "batch_size": str(batch_size),
                "valid": "",
                "load": "0.000000",
            },
        )
        self.db(6).set(f"CURRENT_MODEL_VERSION:{name}", version)

    def link(self, app: str, model: str) -> None:
        self.db(7).sadd(app, model)

    def predict(self, app: str, body: object, **kw: object) -> requests.Response:
        return requests.post(f"{self.url}/{app}/predict", json=body, timeout=30, **kw)

    def wait_until(self, cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
        """:func:`tests._wait.wait_until`, with the end of the frontend's log in the failure message."""
        try:
            wait_until(cond, timeout, what, interval=0.02)
        except AssertionError as exc:
            msg = f"{exc}; frontend log:\n{self.log.read_text()[-3000:]}"
            raise AssertionError(msg) from None

    def wait_for_app(self, app: str) -> None:
        def ready() -> bool:
            return requests.post(f"{self.url}/{app}/predict", data=b"{}", timeout=5).status_code != 404

        self.wait_until(ready, what=f"app {app} to be served")


@contextmanager
def query_frontend(
    redis_port: int, tmp: Path, *extra: str, max_open_files: int | None = None, env: dict[str, str] | None = None
) -> Iterator[Frontend]:
    """A query frontend process with the options ``extra``; ``max_open_files`` lowers its RLIMIT_NOFILE.

    It inherits the environment without any cluster secret of the shell (a developer's CLIPPER_RPC_TOKEN must not
    change what the tests see); ``env`` adds variables on top.
    """
    port, rpc_port = free_ports(2)
    log = tmp / f"query-{port}.log"

    def limit_files() -> None:
        import resource

        if max_open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clipper_frontend.query",
                "--port",
                str(port),
                "--rpc-port",
                str(rpc_port),
                "--redis-port",
                str(redis_port),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**without_secrets(os.environ), "PYTHONUNBUFFERED": "1", **(env or {})},
            preexec_fn=limit_files if max_open_files is not None else None,
        )
    try:
        wait_for_port(port, timeout=20, proc=proc)
        yield Frontend(redis_port, port, rpc_port, proc, log)
    finally:
        stop_process(proc)
