"""Building every Clipper image offline (``clipper images build``).

Steps (each cached, so a second run takes seconds):
1. a base image with Python 3.11: ``--base-image`` if given; else the imported debootstrap image if present; else
   ``python:3.11-slim`` if present or pullable; else ``debootstrap`` + ``docker import`` (rootfs cached);
2. a wheelhouse: the project's wheels from the installed distributions (or ``--wheelhouse DIR``) and their
   dependencies, fetched on the host with ``pip wheel`` (see :mod:`._wheelhouse`);
3. the images ``<registry>/{query_frontend,management_frontend,python-closure-container,redis}:<version>`` from the
   Dockerfiles shipped in this package (``clipper_docker/images/dockerfiles/``), each skipped when its inputs
   (Dockerfile, wheels, base image) are unchanged.

The framework model images (``pyspark-container``, ``pytorch-container``, ``onnx-container``; see
:mod:`.frameworks`) are built only when named (``--only NAME`` or ``--all``). They add ``clipper-deployers`` and
the framework's wheels; ``pyspark-container`` is built on a base with a Java runtime (``--java-base-image``, else
one made with debootstrap like the Python base).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import docker
import docker.errors

from clipper_core import __version__
from clipper_core.errors import DeploymentError
from clipper_core.files import write_json_atomic
from clipper_docker._dockerapi import connect_docker, docker_errors
from clipper_docker.images._rootfs import BASE_TAG, JAVA, ensure_base_image
from clipper_docker.images._wheelhouse import ensure_wheelhouse, user_wheelhouse, wheel_digest, wheelhouse_digest
from clipper_docker.images.frameworks import FRAMEWORK_IMAGES, ensure_framework_wheels

logger = logging.getLogger(__name__)

#: What ``clipper images build`` builds unless told otherwise: a cluster and the Python closure image.
DEFAULT_IMAGES = ("redis", "management_frontend", "query_frontend", "python-closure-container")
#: Every image it can build, in build order.
IMAGE_NAMES = (*DEFAULT_IMAGES, *FRAMEWORK_IMAGES)
#: Images that install clipper-frontend (all but redis install clipper-core).
FRONTEND_IMAGES = ("management_frontend", "query_frontend")
PUBLIC_BASE = "python:3.11-slim"


def default_cache_dir() -> Path:
    explicit = os.environ.get("CLIPPER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "clipper"


def packaged_dockerfiles() -> dict[str, bytes]:
    """``{file name: contents}`` of the Dockerfiles shipped in this package (``dockerfiles/*.Dockerfile``)."""
    folder = resources.files(__package__).joinpath("dockerfiles")
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.name.endswith(".Dockerfile")}


def read_dockerfiles(images_dir: Path | None) -> dict[str, bytes]:
    """The Dockerfiles of ``images_dir`` (``--images-dir``), else the packaged ones."""
    if images_dir is None:
        return packaged_dockerfiles()
    if not images_dir.is_dir():
        msg = f"--images-dir {images_dir} is not a directory"
        raise DeploymentError(msg)
    return {f.name: f.read_bytes() for f in images_dir.glob("*.Dockerfile")}


def project_dists(names: Sequence[str]) -> list[str]:
    """The project's distributions the images need wheels of: clipper-core, and clipper-frontend when it is
    installed (required when a frontend image is built)."""
    dists = ["clipper-core"]
    if not list(md.distributions(name="clipper-frontend")):
        wanted = [n for n in names if n in FRONTEND_IMAGES]
        if wanted:
            msg = (
                f"The {' and '.join(wanted)} image(s) run clipper-frontend, which is not installed on this host: "
                "`pip install clipper-frontend` (its wheel goes into the images), or build only "
                "`--only python-closure-container redis`"
            )
            raise DeploymentError(msg)
        return dists
    return [*dists, "clipper-frontend"]


def image_tag(registry: str, name: str, version: str = __version__) -> str:
    return f"{registry}/{name}:{version}" if registry else f"{name}:{version}"


def ensure_present(client: docker.DockerClient, image: str, say: Callable[[str], None]) -> str:
    """``image``, pulled if it is not present.

    :raises DeploymentError: neither present nor pullable.
    """
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        say(f"pulling base image {image}")
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            msg = f"Base image {image} is not present and cannot be pulled: {exc.explanation or exc}"
            raise DeploymentError(msg) from exc
    return image


def choose_base_image(
    client: docker.DockerClient, cache_dir: Path, say: Callable[[str], None], base_image: str | None, offline: bool
) -> str:
    if base_image:
        return ensure_present(client, base_image, say)
    try:
        client.images.get(BASE_TAG)
        return ensure_base_image(client, cache_dir, say)
    except docker.errors.ImageNotFound:
        pass
    for attempt in ("local", "pull"):
        try:
            if attempt == "local":
                client.images.get(PUBLIC_BASE)
            elif offline:
                break
            else:
                say(f"trying to pull {PUBLIC_BASE}")
                client.images.pull(PUBLIC_BASE)
            say(f"using base image {PUBLIC_BASE}")
            return PUBLIC_BASE
        except docker.errors.ImageNotFound:
            continue
        except docker.errors.APIError as exc:
            say(f"cannot pull {PUBLIC_BASE} ({(exc.explanation or str(exc)).splitlines()[0]}); building one offline")
    return ensure_base_image(client, cache_dir, say)


def _stream_build(
    client: docker.DockerClient,
    context: Path,
    dockerfile: str,
    tag: str,
    base: str,
    nocache: bool,
    say: Callable[[str], None],
    verbose: bool,
) -> str:
    lines: list[str] = []
    stream = client.api.build(
        path=str(context),
        dockerfile=dockerfile,
        tag=tag,
        buildargs={"BASE_IMAGE": base},
        rm=True,
        forcerm=True,
        pull=False,
        nocache=nocache,
        decode=True,
    )
    for chunk in stream:
        if chunk.get("error"):
            tail = "".join(lines[-25:]).rstrip()
            msg = f"building {tag} failed: {chunk['error'].strip()}\n{tail}"
            raise DeploymentError(msg)
        text = chunk.get("stream") or ""
        if text:
            lines.append(text)
            if verbose or text.startswith("Step "):
                say("    " + text.rstrip())
    return str(client.images.get(tag).id)


def build_images(
    registry: str = "clipper",
    version: str = __version__,
    names: Sequence[str] = DEFAULT_IMAGES,
    base_image: str | None = None,
    cache_dir: Path | None = None,
    images_dir: Path | None = None,
    wheelhouse: Path | None = None,
    force: bool = False,
    no_cache: bool = False,
    offline: bool = False,
    verbose: bool = False,
    say: Callable[[str], None] | None = None,
    client: docker.DockerClient | None = None,
    java_base_image: str | None = None,
) -> dict[str, str]:
    """Build the images; returns ``{name: tag}``.

    :param names: which of :data:`IMAGE_NAMES` (default :data:`DEFAULT_IMAGES`, without the framework images).
    :param images_dir: a directory with ``<name>.Dockerfile`` files to use instead of the packaged ones.
    :param wheelhouse: take the project's wheels from here instead of the installed distributions (default
        ``$CLIPPER_WHEELHOUSE``); it may also hold dependency wheels.
    :param force: rebuild even when the inputs are unchanged (Docker's layer cache still applies).
    :param no_cache: also bypass Docker's layer cache.
    :param offline: never try to pull ``python:3.11-slim``.
    :param java_base_image: the base of ``pyspark-container`` (python3 3.11 and Java 17+); default: made offline.
    :raises DeploymentError: naming what is missing or what failed.
    """
    out = say or (lambda text: print(text, flush=True))
    unknown = sorted(set(names) - set(IMAGE_NAMES))
    if unknown:
        msg = f"Unknown image(s) {unknown}; choose from {list(IMAGE_NAMES)}"
        raise DeploymentError(msg)
    names = [n for n in IMAGE_NAMES if n in names]
    dockerfiles = read_dockerfiles(images_dir)
    missing = [f"{n}.Dockerfile" for n in names if f"{n}.Dockerfile" not in dockerfiles]
    if missing:
        msg = f"No {', '.join(missing)} in {images_dir or 'the clipper_docker package'}"
        raise DeploymentError(msg)
    dists = project_dists(names)
    wheelhouse = user_wheelhouse(wheelhouse)
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    client = client or connect_docker()
    started = time.monotonic()
    frameworks = [FRAMEWORK_IMAGES[n] for n in names if n in FRAMEWORK_IMAGES]
    out("==> [1/3] base image")
    base = choose_base_image(client, cache_dir, out, base_image, offline)
    bases = {name: base for name in names}
    if any(fw.java for fw in frameworks):
        java_base = (
            ensure_present(client, java_base_image, out)
            if java_base_image
            else ensure_base_image(client, cache_dir, out, flavour=JAVA)
        )
        bases.update({fw.name: java_base for fw in frameworks if fw.java})
    base_ids = {image: str(client.images.get(image).id) for image in set(bases.values())}
    out("==> [2/3] wheelhouse")
    wheels = ensure_wheelhouse(cache_dir, dists, version, out, wheelhouse=wheelhouse, force=force)
    framework_wheels = {
        fw.extra: ensure_framework_wheels(wheels, fw, version, out, wheelhouse=wheelhouse, force=force)
        for fw in frameworks
    }
    shared_digest = wheelhouse_digest(wheels)  # hashes every wheel's bytes: once, not once per image
    digests = dict.fromkeys(names, shared_digest)
    for fw in frameworks:
        digests[fw.name] += wheel_digest(list(framework_wheels[fw.extra].glob("*.whl")))
    stamps_path = cache_dir / "images.json"
    try:
        stamps = json.loads(stamps_path.read_text())
    except (OSError, ValueError):
        stamps = {}
    out(f"==> [3/3] images ({len(names)})")
    built: dict[str, str] = {}
    contexts: dict[str | None, Path] = {}  # by framework extra: hard links, and only what its images COPY
    try:
        for i, name in enumerate(names, 1):
            tag = image_tag(registry, name, version)
            dockerfile = f"{name}.Dockerfile"
            inputs = hashlib.sha256(
                dockerfiles[dockerfile] + digests[name].encode() + base_ids[bases[name]].encode()
            ).hexdigest()
            try:
                current = str(client.images.get(tag).id)
            except docker.errors.ImageNotFound:
                current = ""
            if not force and not no_cache and current and stamps.get(tag) == {"inputs": inputs, "id": current}:
                out(f"  [{i}/{len(names)}] {tag} is up to date ({current[7:19]})")
                built[name] = tag
                continue
            extra = FRAMEWORK_IMAGES[name].extra if name in FRAMEWORK_IMAGES else None
            if extra not in contexts:
                only = {extra: framework_wheels[extra]} if extra else {}
                contexts[extra] = _make_context(cache_dir, wheels, only, dockerfiles)
            t0 = time.monotonic()
            out(f"  [{i}/{len(names)}] building {tag} (FROM {bases[name]})")
            with docker_errors(f"Building {tag}"):
                image_id = _stream_build(client, contexts[extra], dockerfile, tag, bases[name], no_cache, out, verbose)
            if current and current != image_id:  # the old image is now untagged: drop it unless a container uses it
                try:
                    client.images.remove(current, noprune=False)
                except docker.errors.APIError:
                    pass
            stamps[tag] = {"inputs": inputs, "id": image_id}
            write_json_atomic(stamps_path, stamps)
            out(f"  [{i}/{len(names)}] built {tag} in {time.monotonic() - t0:.1f} s")
            built[name] = tag
    finally:
        for context in contexts.values():
            shutil.rmtree(context, ignore_errors=True)
    out(f"==> images ready in {time.monotonic() - started:.1f} s: {', '.join(built.values())}")
    return built


def _make_context(cache_dir: Path, wheels: Path, frameworks: dict[str, Path], dockerfiles: dict[str, bytes]) -> Path:
    """A build context: the Dockerfiles and ``wheels/`` (see :func:`_link_wheels`)."""
    context = Path(tempfile.mkdtemp(prefix="build-context-", dir=cache_dir))
    _link_wheels(wheels, context / "wheels", frameworks)
    for fname, data in dockerfiles.items():
        (context / fname).write_bytes(data)
    (context / ".dockerignore").write_text("*.partial\n")
    return context


def _link_wheels(wheels: Path, dest: Path, frameworks: dict[str, Path]) -> None:
    """``dest/clipper/`` gets the project's wheels, ``dest/deps/`` all others and ``dest/frameworks/<extra>/`` each
    framework's (hard links where possible)."""
    sources = {"deps": wheels / "deps", "clipper": wheels / "clipper"}
    sources.update({f"frameworks/{extra}": folder for extra, folder in frameworks.items()})
    for sub, folder in sources.items():
        (dest / sub).mkdir(parents=True, exist_ok=True)
        for whl in folder.glob("*.whl"):
            try:
                os.link(whl, dest / sub / whl.name)
            except OSError:
                shutil.copy2(whl, dest / sub / whl.name)
