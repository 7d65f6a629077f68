"""Shared fixtures: a real redis-server per test session, fresh plugin managers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipper_core.local.redis_server import redis_command, stop_process
from clipper_core.ports import free_port, wait_for_port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real redis-server on a free loopback port, stopped (by PID) at the end of the session."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    log = open(workdir / "redis.log", "wb")
    proc = subprocess.Popen(redis_command(port, workdir), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc=proc)
        yield ("127.0.0.1", port)
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture
def clean_redis(redis_server: tuple[str, int]) -> Iterator[tuple[str, int]]:
    """The session Redis, flushed before the test."""
    import redis

    client = redis.Redis(host=redis_server[0], port=redis_server[1])
    client.flushall()
    client.close()
    yield redis_server


@pytest.fixture
def clipper_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated CLIPPER_HOME for tests that start local clusters."""
    home = tmp_path / "clipper-home"
    home.mkdir()
    monkeypatch.setenv("CLIPPER_HOME", str(home))
    return home


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("CLIPPER_TEST", "1")
