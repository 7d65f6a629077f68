"""What every deployer does once its model directory is written: build and deploy it, and for ``create_endpoint``
register the application and link the model to it.

Each deployer keeps the original's positional signature and hands the options it shares with the others over as
one :class:`DeployOptions`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clipper_core import __version__
from clipper_core.container_manager import clipper_registry

if TYPE_CHECKING:
    from clipper_core.admin import ClipperConnection

logger = logging.getLogger(__name__)


def clipper_image(name: str) -> str:
    """``<registry>/<name>:<version>``: a Clipper image as ``clipper images build`` tags it."""
    return f"{clipper_registry()}/{name}:{__version__}"


@dataclass(frozen=True)
class DeployOptions:
    """The options every ``deploy_*`` function takes after its model, with the original's defaults."""

    base_image: str = "default"
    labels: list[str] | None = None
    registry: str | None = None
    num_replicas: int = 1
    batch_size: int = -1
    pkgs_to_install: list[str] | None = None


def deploy_dir(
    clipper_conn: ClipperConnection,
    name: str,
    version: Any,
    input_type: str,
    directory: str,
    options: DeployOptions,
    default_image: str,
) -> None:
    """``build_and_deploy_model`` of ``directory`` (``base_image="default"`` is ``default_image``); removes
    ``directory`` afterwards, whatever happens."""
    base_image = default_image if options.base_image == "default" else options.base_image
    try:
        clipper_conn.build_and_deploy_model(
            name,
            version,
            input_type,
            directory,
            base_image,
            options.labels,
            options.registry,
            options.num_replicas,
            options.batch_size,
            options.pkgs_to_install,
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def endpoint(
    clipper_conn: ClipperConnection,
    name: str,
    input_type: str,
    default_output: str,
    slo_micros: int,
    deploy: Callable[[], None],
    directory: str | None = None,
) -> None:
    """``create_endpoint``: register app ``name``, run ``deploy()`` (which deploys model ``name``), link the two.

    :param directory: a prepared model directory ``deploy`` would remove; removed here when registering fails.
    """
    try:
        clipper_conn.register_application(name, input_type, default_output, slo_micros)
    except BaseException:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    deploy()
    clipper_conn.link_model_to_app(name, name)
