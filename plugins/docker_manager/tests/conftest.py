"""Fixtures for the Docker manager tests: a real Docker daemon, the Clipper images, clusters, a local registry.

Without a Docker daemon these tests skip with the reason, except when ``CI=true``: then they fail (DESIGN.md §5).
Start a daemon with ``sudo bash scripts/docker-up.sh``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from docker_test_support import PREFIX, REGISTRY_ADDR, unavailable

from clipper_core.admin import CLIPPER_REGISTRY
from clipper_core.container_manager import CLIPPER_DOCKER_LABEL
from clipper_core.errors import ClipperException
from clipper_core.local.redis_server import stop_process
from clipper_core.ports import free_ports


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A Docker SDK client for a daemon that answers, and cleanup of whatever this session left on it."""
    try:
        from clipper_docker._dockerapi import connect_docker
    except ImportError as exc:  # pragma: no cover - the plugin is not installed
        unavailable(f"clipper-docker is not importable ({exc})")
    try:
        client = connect_docker(timeout=180)
    except ClipperException as exc:
        unavailable(f"no Docker daemon: {exc.msg}")
    yield client
    leftovers = [
        c for c in client.containers.list(all=True) if c.labels.get(CLIPPER_DOCKER_LABEL, "").startswith(PREFIX)
    ]
    for c in leftovers:
        c.remove(force=True)
    for image in client.images.list():
        if any(t.split("/")[-1].startswith(PREFIX) for t in image.tags):
            for tag in image.tags:
                try:
                    client.images.remove(tag, force=True)
                except Exception:  # noqa: BLE001 - best effort cleanup
                    pass
    client.close()


@pytest.fixture(scope="session")
def clipper_images(docker_client: Any) -> dict[str, str]:
    """Build (or reuse, when unchanged) the Clipper images, tagged ``<CLIPPER_REGISTRY>/<name>:<version>``."""
    from clipper_docker.images import build_images

    lines: list[str] = []
    t0 = time.monotonic()
    try:
        built = build_images(registry=CLIPPER_REGISTRY, say=lines.append, client=docker_client, offline=True)
    except ClipperException as exc:
        unavailable("the Clipper images could not be built: " + exc.msg + "\n" + "\n".join(lines[-20:]))
    sys.stderr.write(f"\nClipper images ready in {time.monotonic() - t0:.1f} s\n")
    return built


class ClusterFactory:
    """Starts host-network clusters on free ports and stops every one of them at teardown."""

    def __init__(self) -> None:
        self.conns: list[Any] = []

    def make(self, suffix: str, start: bool = True, **kwargs: Any) -> Any:
        from clipper_admin import ClipperConnection, DockerContainerManager

        query, mgmt, rpc, redis = free_ports(4)
        options: dict[str, Any] = {
            "cluster_name": f"{PREFIX}-{suffix}",
            "docker_network": "host",
            "clipper_query_port": query,
            "clipper_management_port": mgmt,
            "clipper_rpc_port": rpc,
            "redis_port": redis,
        }
        options.update(kwargs)
        conn = ClipperConnection(DockerContainerManager(**options))
        self.conns.append(conn)
        if start:
            conn.start_clipper()
        return conn

    def stop_all(self) -> None:
        for conn in self.conns:
            try:
                conn.stop_all(graceful=False)
            except ClipperException:
                pass


@pytest.fixture
def clusters(clipper_images: dict[str, str]) -> Iterator[ClusterFactory]:
    factory = ClusterFactory()
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def cluster(clipper_images: dict[str, str]) -> Iterator[Any]:
    """One running cluster shared by a module's tests."""
    factory = ClusterFactory()
    try:
        yield factory.make("main")
    finally:
        factory.stop_all()


def _registry_answers() -> bool:
    try:
        return requests.get(f"http://{REGISTRY_ADDR}/v2/", timeout=2).status_code in (200, 401)
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1:5000 (started here, and stopped by PID, unless one already runs)."""
    if _registry_answers():
        yield REGISTRY_ADDR
        return
    binary = shutil.which("docker-registry")
    if binary is None:
        unavailable("docker-registry is not installed (apt-get install docker-registry, or scripts/docker-up.sh)")
    workdir = tmp_path_factory.mktemp("registry")
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY_ADDR}\n"
    )
    log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _registry_answers():
            if proc.poll() is not None or time.monotonic() > deadline:
                unavailable("docker-registry did not start: " + Path(workdir / "registry.log").read_text()[-2000:])
            time.sleep(0.2)
        yield REGISTRY_ADDR
    finally:
        stop_process(proc)
        log.close()


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    def wait(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                msg = f"timed out after {timeout:.0f} s waiting for {what}"
                raise AssertionError(msg)
            time.sleep(0.25)

    return wait
