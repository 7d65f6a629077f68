"""``build_model`` for Docker: ``FROM <base>`` + optional ``pip install`` + ``COPY <model dir> /model/``, then push."""

from __future__ import annotations

import io
import logging
import shlex
import tarfile
import time
from typing import Any

import docker
import docker.errors

from clipper_core.container_manager import check_model_data_path, default_base_image
from clipper_core.errors import DeploymentError
from clipper_docker._dockerapi import docker_errors, ensure_image

logger = logging.getLogger(__name__)

PUSH_TRIES = 3


def model_dockerfile(base_image: str, pkgs_to_install: list[str] | None) -> str:
    """The generated Dockerfile. Packages come from the base image's wheelhouse (``/wheels``) when it has them,
    otherwise from the package index (the build then needs network access)."""
    lines = [f"FROM {base_image}"]
    if pkgs_to_install:
        pkgs = " ".join(shlex.quote(str(p)) for p in pkgs_to_install)
        lines.append(
            "RUN if [ -d /wheels ] && python -m pip install --no-index --find-links /wheels "
            f"{pkgs}; then :; else python -m pip install {pkgs}; fi"
        )
    lines.append("COPY model/ /model/")
    return "\n".join(lines) + "\n"


def build_context(model_data_path: str, dockerfile: str) -> io.BytesIO:
    """A tar build context holding ``Dockerfile`` and the model directory as ``model/``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
        tar.add(model_data_path, arcname="model")
    buf.seek(0)
    return buf


def _stream_errors(stream: Any, what: str) -> list[str]:
    """Consume a decoded build/push stream; raise on an ``error`` entry. Returns the text lines seen."""
    lines: list[str] = []
    for chunk in stream:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error") or chunk.get("errorDetail"):
            err = chunk.get("error") or chunk["errorDetail"].get("message", "")
            tail = "".join(lines[-20:]).rstrip()
            msg = f"{what} failed: {str(err).strip()}" + (f"\nLast build output:\n{tail}" if tail else "")
            raise DeploymentError(msg)
        text = chunk.get("stream") or ""
        if text:
            lines.append(text)
            logger.debug("%s", text.rstrip())
    return lines


def build_model_image(
    client: docker.DockerClient,
    cluster_identifier: str,
    name: str,
    version: str,
    model_data_path: str,
    base_image: str,
    container_registry: str | None = None,
    pkgs_to_install: list[str] | None = None,
    network_mode: str | None = None,
) -> str:
    """Build ``[<registry>/]<cluster>-<name>:<version>`` and push it when ``container_registry`` is set."""
    check_model_data_path(model_data_path)
    if base_image == "default":
        base_image = default_base_image()
    repo = f"{cluster_identifier}-{name}"
    if container_registry:
        repo = f"{container_registry.rstrip('/')}/{repo}"
    image = f"{repo}:{version}"
    ensure_image(client, base_image, "base image", DeploymentError)
    context = build_context(model_data_path, model_dockerfile(base_image, pkgs_to_install))
    logger.info("building Docker image %s from %s (base %s)", image, model_data_path, base_image)
    with docker_errors(f"Building image {image}", DeploymentError):
        stream = client.api.build(
            fileobj=context,
            custom_context=True,
            tag=image,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            network_mode=network_mode,
        )
        _stream_errors(stream, f"Building image {image}")
    if container_registry:
        push_image(client, repo, version)
    return image


def push_image(client: docker.DockerClient, repo: str, tag: str) -> None:
    """Push ``repo:tag``; a refusal (reported in the stream or as an API error) raises with the reason."""
    what = f"Pushing image {repo}:{tag}"
    for attempt in range(1, PUSH_TRIES + 1):
        try:
            with docker_errors(what, DeploymentError):
                _stream_errors(client.api.push(repo, tag=tag, stream=True, decode=True), what)
            logger.info("pushed %s:%s", repo, tag)
            return
        except DeploymentError as exc:
            transient = "timeout" in exc.msg.lower() and attempt < PUSH_TRIES
            if not transient:
                raise
            logger.warning("%s (attempt %s/%s); retrying", exc.msg, attempt, PUSH_TRIES)
            time.sleep(1.0)
