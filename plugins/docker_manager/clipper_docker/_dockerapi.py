"""Thin helpers over the Docker SDK: connecting, error translation, images, starting/waiting/stopping containers."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors

from clipper_core.errors import ClipperException, ContainerManagerError

logger = logging.getLogger(__name__)

#: Container states that count as "there" (a crashed container that Docker is restarting still counts).
LIVE_STATES = ("created", "running", "restarting", "paused")

NO_DAEMON_HINT = (
    "Start one with `sudo bash scripts/docker-up.sh` from the Clipper source tree, or `sudo dockerd --bridge=none "
    "--iptables=false &` (or `sudo systemctl start docker`); install it with `sudo apt-get install docker.io`. "
    "Set DOCKER_HOST if the daemon listens elsewhere."
)


def connect_docker(timeout: int = 120) -> docker.DockerClient:
    """A client for the daemon of the environment (``DOCKER_HOST`` or the default socket).

    :raises ContainerManagerError: when no daemon answers, saying how to start one.
    """
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:  # the SDK's connection errors are OSErrors
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        msg = f"No Docker daemon answers at {where} ({exc}). {NO_DAEMON_HINT}"
        raise ContainerManagerError(msg) from exc
    return client


@contextlib.contextmanager
def docker_errors(what: str, error: type[ClipperException] = ContainerManagerError) -> Iterator[None]:
    """Turn Docker SDK and connection errors raised inside the block into ``error``."""
    try:
        yield
    except ClipperException:
        raise
    except docker.errors.APIError as exc:
        msg = f"{what} failed: {exc.explanation or exc}"
        raise error(msg) from exc
    except docker.errors.DockerException as exc:
        msg = f"{what} failed: {exc}. Is the Docker daemon still running? {NO_DAEMON_HINT}"
        raise error(msg) from exc
    except OSError as exc:
        if not is_connection_error(exc):
            raise
        msg = f"{what} failed: {exc}. Is the Docker daemon still running? {NO_DAEMON_HINT}"
        raise error(msg) from exc


def is_connection_error(exc: BaseException) -> bool:
    """One of the Docker SDK's transport errors (requests' and urllib3's exceptions are OSErrors), or a socket's."""
    return isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__module__.split(".")[0] in (
        "requests",
        "urllib3",
    )


def ensure_image(
    client: docker.DockerClient,
    image: str,
    what: str = "image",
    error: type[ClipperException] = ContainerManagerError,
) -> None:
    """Make sure ``image`` is present locally, pulling it if possible.

    :raises error: when it is neither present nor pullable.
    """
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as exc:
        msg = f"Cannot inspect the {what} {image}: {exc.explanation or exc}"
        raise error(msg) from exc
    logger.info("%s %s is not present locally; trying to pull it", what, image)
    try:
        client.images.pull(image)
    except (docker.errors.APIError, docker.errors.ImageNotFound) as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        msg = (
            f"Docker {what} {image} does not exist locally and could not be pulled ({reason}). "
            f"Build the Clipper images with {build_command(image)}, or pass an image that exists."
        )
        raise error(msg) from exc


def build_command(image: str) -> str:
    """The ``clipper images build`` command that builds ``image`` when it is one of ours, else the plain one."""
    from clipper_docker.images.build import DEFAULT_IMAGES, IMAGE_NAMES

    name = image.rsplit("/", 1)[-1].split(":", 1)[0]
    if name in IMAGE_NAMES and name not in DEFAULT_IMAGES:
        return f"`clipper images build --only {name}`"
    return "`clipper images build` (or `clipper-images build`)"


def daemon_is_local() -> bool:
    host = os.environ.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")


def run_container(client: docker.DockerClient, prefix: str, image: str, **kwargs: Any) -> Any:
    """``containers.run(detach=True)`` under the name ``<prefix>-<random 0..100000>`` (retried on a name clash)."""
    last: Exception | None = None
    for _ in range(5):
        name = f"{prefix}-{random.randint(0, 100000)}"
        try:
            return client.containers.run(image, name=name, detach=True, **kwargs)
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "is already in use" in str(exc.explanation or ""):
                last = exc
                continue
            raise
    msg = f"Could not find a free container name for {prefix}: {last}"
    raise ContainerManagerError(msg)


def logs_tail(container: Any, lines: int = 30) -> str:
    try:
        raw = container.logs(stdout=True, stderr=True, tail=lines)
    except docker.errors.DockerException as exc:
        return f"(no logs: {exc})"
    return bytes(raw).decode("utf-8", "replace").rstrip() or "(empty log)"


def container_failed(container: Any) -> str | None:
    """Why ``container`` (freshly reloaded) is not going to come up, or None while it still may."""
    state = container.attrs.get("State", {})
    restarts = int(container.attrs.get("RestartCount", 0) or 0)
    if state.get("Status") in ("exited", "dead"):
        return f"exited with code {state.get('ExitCode')}" + (f" ({state['Error']})" if state.get("Error") else "")
    if state.get("Restarting") or restarts > 0:
        return f"crashed (exit code {state.get('ExitCode')}) and is being restarted ({restarts} restarts)"
    if state.get("OOMKilled"):
        return "was killed for using too much memory"
    return None


def model_failed(container: Any) -> str | None:
    """:func:`container_failed`, or the model runtime reported that the model could not be loaded."""
    why = container_failed(container)
    if why is not None:
        return why
    health = container.attrs.get("State", {}).get("Health") or {}
    if health.get("Status") == "unhealthy" and "model failed to load" in logs_tail(container, 50):
        return "cannot load its model"
    return None


def container_ready(container: Any) -> bool:
    """Running, and healthy when the image defines a HEALTHCHECK."""
    state = container.attrs.get("State", {})
    if state.get("Status") != "running":
        return False
    health = state.get("Health")
    return health is None or health.get("Status") == "healthy"


def wait_for(
    containers: list[Any],
    ready: Callable[[Any], bool],
    what: str,
    timeout: float,
    extra_check: Callable[[], bool] | None = None,
    failed: Callable[[Any], str | None] = container_failed,
    error: type[ClipperException] = ContainerManagerError,
) -> None:
    """Poll until ``ready(container)`` holds for all (and ``extra_check()`` is true); fail early on a crash.

    :raises error: naming the container, why, and the tail of its log.
    """
    deadline = time.monotonic() + timeout
    pending = list(containers)
    while True:
        still = []
        for c in pending:
            try:
                c.reload()
            except docker.errors.NotFound as exc:
                msg = f"{what}: container {c.name} disappeared"
                raise error(msg) from exc
            why = failed(c)
            if why is not None:
                msg = f"{what}: container {c.name} ({c.attrs['Config']['Image']}) {why}. Last lines of its log:\n"
                raise error(msg + logs_tail(c))
            if not ready(c):
                still.append(c)
        pending = still
        if not pending and (extra_check is None or extra_check()):
            return
        if time.monotonic() >= deadline:
            names = ", ".join(c.name for c in pending) or "the service check"
            detail = "\n".join(f"--- {c.name}:\n{logs_tail(c)}" for c in pending)
            msg = f"{what}: {names} not ready after {timeout:.0f} s.\n{detail}".rstrip()
            raise error(msg)
        time.sleep(0.2)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own frontends' URLs
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def stop_and_remove(containers: list[Any], graceful: bool = True, timeout: int = 10) -> None:
    """Stop (SIGTERM, then SIGKILL after ``timeout``) or kill the containers in parallel, then remove them."""

    def one(c: Any) -> None:
        try:
            if graceful:
                c.stop(timeout=timeout)
            else:
                c.kill()
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:  # already stopped, or dying: removal below forces it
            logger.debug("stopping %s: %s", c.name, exc)
        try:
            c.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise

    if not containers:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
        for future in [pool.submit(one, c) for c in containers]:
            future.result()


def write_logs(containers: list[Any], logging_dir: str) -> list[str]:
    """Write each container's output to ``logging_dir/image_<id>:container_<id>.log``; the paths written."""
    os.makedirs(logging_dir, exist_ok=True)
    paths = []
    for c in containers:
        image_id = str(c.attrs.get("Image", ""))  # c.image would fail once the image is deleted
        short = image_id[:17] if image_id.startswith("sha256:") else image_id[:10]
        path = os.path.join(logging_dir, f"image_{short}:container_{c.short_id}.log")
        with open(path, "wb") as f:
            f.write(c.logs(stdout=True, stderr=True))
        paths.append(path)
    return paths
