"""``clipper images build`` / ``clipper-images build``: build every Clipper image offline.

Steps (each cached, so a second run takes seconds):
1. a base image with Python 3.11: ``--base-image`` if given; else the imported debootstrap image if present; else
   ``python:3.11-slim`` if present or pullable; else ``debootstrap`` + ``docker import`` (rootfs cached);
2. a wheelhouse of the project's packages and their dependencies, made on the host with ``pip wheel``;
3. the images ``<registry>/{query_frontend,management_frontend,python-closure-container,redis}:<version>`` from
   ``images/*.Dockerfile``, each skipped when its inputs (Dockerfile, wheels, base image) are unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import docker
import docker.errors

from clipper_core import __version__
from clipper_core.container_manager import clipper_registry
from clipper_core.errors import ClipperException
from clipper_core.files import write_json_atomic
from clipper_docker._dockerapi import connect_docker
from clipper_docker._rootfs import BASE_TAG, ensure_base_image
from clipper_docker._wheelhouse import ensure_wheelhouse, find_source_tree, wheelhouse_digest

logger = logging.getLogger(__name__)

IMAGE_NAMES = ("redis", "management_frontend", "query_frontend", "python-closure-container")
PUBLIC_BASE = "python:3.11-slim"


def default_cache_dir() -> Path:
    explicit = os.environ.get("CLIPPER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "clipper"


def default_images_dir() -> Path | None:
    tree = find_source_tree()
    return tree / "images" if tree and (tree / "images").is_dir() else None


def image_tag(registry: str, name: str, version: str = __version__) -> str:
    return f"{registry}/{name}:{version}" if registry else f"{name}:{version}"


def choose_base_image(
    client: docker.DockerClient, cache_dir: Path, say: Callable[[str], None], base_image: str | None, offline: bool
) -> str:
    if base_image:
        try:
            client.images.get(base_image)
        except docker.errors.ImageNotFound:
            say(f"pulling base image {base_image}")
            try:
                client.images.pull(base_image)
            except docker.errors.APIError as exc:
                msg = f"Base image {base_image} is not present and cannot be pulled: {exc.explanation or exc}"
                raise ClipperException(msg) from exc
        return base_image
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
            raise ClipperException(msg)
        text = chunk.get("stream") or ""
        if text:
            lines.append(text)
            if verbose or text.startswith("Step "):
                say("    " + text.rstrip())
    return str(client.images.get(tag).id)


def build_images(
    registry: str = "clipper",
    version: str = __version__,
    names: Sequence[str] = IMAGE_NAMES,
    base_image: str | None = None,
    cache_dir: Path | None = None,
    images_dir: Path | None = None,
    force: bool = False,
    no_cache: bool = False,
    offline: bool = False,
    verbose: bool = False,
    say: Callable[[str], None] | None = None,
    client: docker.DockerClient | None = None,
) -> dict[str, str]:
    """Build the images; returns ``{name: tag}``.

    :param force: rebuild even when the inputs are unchanged (Docker's layer cache still applies).
    :param no_cache: also bypass Docker's layer cache.
    :param offline: never try to pull ``python:3.11-slim``.
    """
    out = say or (lambda text: print(text, flush=True))
    unknown = sorted(set(names) - set(IMAGE_NAMES))
    if unknown:
        msg = f"Unknown image(s) {unknown}; choose from {list(IMAGE_NAMES)}"
        raise ClipperException(msg)
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    images_dir = images_dir or default_images_dir()
    if images_dir is None or not images_dir.is_dir():
        msg = "Cannot find the images/ directory with the Dockerfiles; pass --images-dir"
        raise ClipperException(msg)
    client = client or connect_docker()
    started = time.monotonic()
    out("==> [1/3] base image")
    base = choose_base_image(client, cache_dir, out, base_image, offline)
    base_id = str(client.images.get(base).id)
    out("==> [2/3] wheelhouse")
    wheels, _ = ensure_wheelhouse(cache_dir, version, out, force=force)
    wheels_digest = wheelhouse_digest(wheels)
    stamps_path = cache_dir / "images.json"
    try:
        stamps = json.loads(stamps_path.read_text())
    except (OSError, ValueError):
        stamps = {}
    out(f"==> [3/3] images ({len(names)})")
    built: dict[str, str] = {}
    context = cache_dir / "build-context"
    prepared = False
    for i, name in enumerate([n for n in IMAGE_NAMES if n in names], 1):
        tag = image_tag(registry, name, version)
        dockerfile = images_dir / f"{name}.Dockerfile"
        if not dockerfile.is_file():
            msg = f"Missing Dockerfile {dockerfile}"
            raise ClipperException(msg)
        inputs = hashlib.sha256(dockerfile.read_bytes() + wheels_digest.encode() + base_id.encode()).hexdigest()
        try:
            current = str(client.images.get(tag).id)
        except docker.errors.ImageNotFound:
            current = ""
        if not force and not no_cache and current and stamps.get(tag) == {"inputs": inputs, "id": current}:
            out(f"  [{i}/{len(names)}] {tag} is up to date ({current[7:19]})")
            built[name] = tag
            continue
        if not prepared:  # one context shared by every image: the Dockerfiles + wheels/
            shutil.rmtree(context, ignore_errors=True)
            context.mkdir(parents=True)
            _link_wheels(wheels, context / "wheels")
            for f in images_dir.glob("*.Dockerfile"):
                shutil.copy2(f, context / f.name)
            (context / ".dockerignore").write_text("*.partial\n")
            prepared = True
        t0 = time.monotonic()
        out(f"  [{i}/{len(names)}] building {tag} (FROM {base})")
        image_id = _stream_build(client, context, dockerfile.name, tag, base, no_cache, out, verbose)
        if current and current != image_id:  # the old image is now untagged: drop it unless a container uses it
            try:
                client.images.remove(current, noprune=False)
            except docker.errors.APIError:
                pass
        stamps[tag] = {"inputs": inputs, "id": image_id}
        write_json_atomic(stamps_path, stamps)
        out(f"  [{i}/{len(names)}] built {tag} in {time.monotonic() - t0:.1f} s")
        built[name] = tag
    if prepared:
        shutil.rmtree(context, ignore_errors=True)
    out(f"==> images ready in {time.monotonic() - started:.1f} s: {', '.join(built.values())}")
    return built


def _link_wheels(wheels: Path, dest: Path) -> None:
    """``dest/clipper/`` gets the project's wheels, ``dest/deps/`` all others (hard links where possible)."""
    for sub in ("deps", "clipper"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for whl in wheels.glob("*.whl"):
        target = dest / ("clipper" if whl.name.startswith("clipper_") else "deps") / whl.name
        try:
            os.link(whl, target)
        except OSError:
            shutil.copy2(whl, target)


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``images build`` (shared by ``clipper images build`` and ``clipper-images build``)."""
    parser.add_argument(
        "--registry",
        default=clipper_registry(),
        help="tag prefix (default $CLIPPER_REGISTRY or 'clipper')",
    )
    parser.add_argument("--version", default=__version__, help=f"image tag (default {__version__})")
    parser.add_argument("--base-image", default=None, help="base image with python3 (default: built offline)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=IMAGE_NAMES,
        default=list(IMAGE_NAMES),
        metavar="NAME",
        help=f"build only these images ({', '.join(IMAGE_NAMES)})",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache directory (default ~/.cache/clipper)")
    parser.add_argument("--images-dir", type=Path, default=None, help="directory with the *.Dockerfile files")
    parser.add_argument("--force", action="store_true", help="rebuild even if the inputs did not change")
    parser.add_argument("--no-cache", action="store_true", help="also bypass Docker's layer cache")
    parser.add_argument("--offline", action="store_true", help="do not try to pull python:3.11-slim")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the full build output")


def run_build(args: argparse.Namespace) -> int:
    """Run ``images build`` with parsed ``args``; prints the error and returns 1 on failure."""
    try:
        build_images(
            registry=args.registry,
            version=args.version,
            names=args.only,
            base_image=args.base_image,
            cache_dir=args.cache_dir,
            images_dir=args.images_dir,
            force=args.force,
            no_cache=args.no_cache,
            offline=args.offline,
            verbose=args.verbose,
        )
    except ClipperException as exc:
        print(f"error: {exc.msg}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``clipper-images build [options]``."""
    parser = argparse.ArgumentParser(prog="clipper-images", description="Build the Clipper Docker images offline.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_build_arguments(sub.add_parser("build", help="build (or refresh) every Clipper image"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return run_build(args)


if __name__ == "__main__":
    sys.exit(main())
