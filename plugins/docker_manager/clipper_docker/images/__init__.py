"""The offline image build: ``clipper images build`` (:mod:`.cli`), :func:`build_images` (:mod:`.build`), the
debootstrap base image (:mod:`._rootfs`), the wheelhouse (:mod:`._wheelhouse`, :mod:`._project_wheels`) and the
Dockerfiles, shipped as package data in ``dockerfiles/``."""

from __future__ import annotations

from clipper_docker.images.build import DEFAULT_IMAGES, IMAGE_NAMES, build_images, image_tag
from clipper_docker.images.cli import main

__all__ = ["DEFAULT_IMAGES", "IMAGE_NAMES", "build_images", "image_tag", "main"]
