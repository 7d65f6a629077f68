"""Docker container manager plugin for Clipper in Python (distribution ``clipper-docker``).

``DockerContainerManager`` runs Redis, the management frontend, the query frontend and every model replica as
Docker containers labelled ``ai.clipper.container.label=<cluster_name>`` (reference §6.3). ``clipper images build``
(:mod:`clipper_docker.images`) builds the images it runs, offline.
"""

from __future__ import annotations

import importlib.metadata

from clipper_docker._build import build_model_image
from clipper_docker._dockerapi import connect_docker
from clipper_docker.manager import DockerContainerManager

try:
    __version__ = importlib.metadata.version("clipper-docker")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

# build_model_image and connect_docker are public for other managers that build their model images with Docker
# (the Kubernetes manager does).
__all__ = ["DockerContainerManager", "__version__", "build_model_image", "connect_docker"]
