"""The ``clipper images build`` command (also the ``clipper-images`` console script)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clipper_core import __version__
from clipper_core.container_manager import clipper_registry
from clipper_core.errors import ClipperException
from clipper_docker.images.build import DEFAULT_IMAGES, IMAGE_NAMES, build_images

if TYPE_CHECKING:
    from clipper_core.commands import CommandContext

logger = logging.getLogger(__name__)

HELP = "build the Clipper Docker images (offline)"


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``images build``."""
    parser.add_argument(
        "--registry",
        default=clipper_registry(),
        help="tag prefix (default $CLIPPER_REGISTRY or 'clipper')",
    )
    parser.add_argument("--version", default=__version__, help=f"image tag (default {__version__})")
    parser.add_argument("--base-image", default=None, help="base image with python3 (default: built offline)")
    parser.add_argument(
        "--java-base-image",
        default=None,
        help="base image with python3 and Java 17+ for pyspark-container (default: built offline)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--only",
        nargs="+",
        choices=IMAGE_NAMES,
        default=list(DEFAULT_IMAGES),
        metavar="NAME",
        help=f"build these images ({', '.join(IMAGE_NAMES)}; default {', '.join(DEFAULT_IMAGES)})",
    )
    which.add_argument(
        "--all",
        dest="only",
        action="store_const",
        const=list(IMAGE_NAMES),
        help="build every image, the framework model images (pyspark, pytorch, onnx) too",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="cache directory (default ~/.cache/clipper)")
    parser.add_argument(
        "--images-dir", type=Path, default=None, help="use the *.Dockerfile files of this directory instead of ours"
    )
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=None,
        help="take the wheels of clipper-core/-frontend (and any dependency wheels) from this directory instead of "
        "the installed distributions (default $CLIPPER_WHEELHOUSE)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the inputs did not change")
    parser.add_argument("--no-cache", action="store_true", help="also bypass Docker's layer cache")
    parser.add_argument("--offline", action="store_true", help="do not try to pull python:3.11-slim")
    # Its own dest: a sub-parser's default would overwrite `clipper -v`.
    parser.add_argument("-v", "--verbose", dest="build_verbose", action="store_true", help="print the build output")


def configure(parser: argparse.ArgumentParser) -> None:
    """``clipper images``: the sub-commands (only ``build`` today)."""
    sub = parser.add_subparsers(dest="images_command", metavar="ACTION")
    sub.required = True
    add_build_arguments(sub.add_parser("build", help="build (or refresh) every Clipper image", description=HELP))


def run(args: argparse.Namespace, ctx: CommandContext | None = None) -> int:
    """Run ``images build`` with parsed ``args``; errors propagate as :class:`ClipperException`."""
    build_images(
        registry=args.registry,
        version=args.version,
        names=args.only,
        base_image=args.base_image,
        cache_dir=args.cache_dir,
        images_dir=args.images_dir,
        wheelhouse=args.wheelhouse,
        force=args.force,
        no_cache=args.no_cache,
        offline=args.offline,
        verbose=args.build_verbose or bool(getattr(args, "verbose", False)),
        java_base_image=args.java_base_image,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``clipper-images build [options]``, the same as ``clipper images build``."""
    parser = argparse.ArgumentParser(prog="clipper-images", description="Build the Clipper Docker images offline.")
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.build_verbose else logging.WARNING, format="%(message)s")
    try:
        return run(args)
    except ClipperException as exc:
        print(f"error: {exc.msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
