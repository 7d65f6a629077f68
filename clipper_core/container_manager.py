"""The ContainerManager interface every cluster backend implements (local processes, Docker, Kubernetes).

Method names, parameters and defaults follow the original ``clipper_admin.container_manager`` (reference §6.2).
``build_model`` and ``is_running`` are additions: building a model artefact is the manager's business here,
because only it knows whether an "image" is a Docker image or a directory in a local model store.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from clipper_core.errors import ContainerManagerError, DeploymentError

# re-exported: the container managers import them from here
from clipper_core.names import validate_app_name as validate_app_name
from clipper_core.names import validate_model_name as validate_model_name

logger = logging.getLogger(__name__)

CLIPPER_QUERY_PORT = 1337
CLIPPER_MANAGEMENT_PORT = 1338
CLIPPER_RPC_PORT = 7000
CLIPPER_METRIC_PORT = 1390
REDIS_PORT = 6379
DEFAULT_CACHE_SIZE = 33554432  # bytes of prediction cache per query frontend, as in the original
#: Name of the base image (``<registry>/<name>:<version>``) that ``base_image="default"`` resolves to.
DEFAULT_BASE_IMAGE_NAME = "python-closure-container"

CLIPPER_DOCKER_LABEL = "ai.clipper.container.label"
CLIPPER_MODEL_CONTAINER_LABEL = "ai.clipper.model_container.label"
CLIPPER_QUERY_FRONTEND_CONTAINER_LABEL = "ai.clipper.query_frontend.label"
CLIPPER_MGMT_FRONTEND_CONTAINER_LABEL = "ai.clipper.management_frontend.label"
CLIPPER_NAME_LABEL = "ai.clipper.name"
CONTAINERLESS_MODEL_IMAGE = "NO_CONTAINER"


def clipper_registry() -> str:
    """The image registry prefix: ``$CLIPPER_REGISTRY``, else ``clipper`` (as the original)."""
    return os.environ.get("CLIPPER_REGISTRY", "clipper")


def default_base_image() -> str:
    """The image ``base_image="default"`` stands for: ``<registry>/python-closure-container:<version>``."""
    from clipper_core import __version__

    return f"{clipper_registry()}/{DEFAULT_BASE_IMAGE_NAME}:{__version__}"


def cluster_exists_error(cluster_name: str) -> ContainerManagerError:
    """What ``start_clipper`` raises when a cluster of that name is already running (the original's text)."""
    return ContainerManagerError(
        f"Cluster {cluster_name} cannot be started because it already exists. "
        "Please use ClipperConnection.connect() to connect to it."
    )


def check_model_data_path(model_data_path: str) -> str:
    """``build_model``'s check that the model directory exists; returns it unchanged."""
    if not model_data_path or not os.path.isdir(model_data_path):
        msg = f"Model data path {model_data_path!r} does not exist or is not a directory"
        raise DeploymentError(msg)
    return model_data_path


def model_label(name: str, version: str) -> str:
    return f"{name}_{version}"


@dataclass(frozen=True)
class ManagerOption:
    """One constructor argument of a container manager that the ``clipper`` command exposes as a flag.

    :ivar name: the constructor's keyword (``docker_network``).
    :ivar help: one line for ``--help``.
    :ivar type: converts the command-line string (``int``, ``str``, ...).
    :ivar flag: the option's spelling; ``--`` plus ``name`` with dashes when empty.

    The flag's default is always "not given": the manager's own constructor default applies then.
    """

    name: str
    help: str
    type: Callable[[str], Any] = str
    flag: str = ""

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


#: Options most managers share; a manager lists those its constructor takes in :meth:`ContainerManager.cli_options`.
QUERY_PORT_OPTION = ManagerOption("clipper_query_port", "query frontend REST port", int, "--query-port")
MANAGEMENT_PORT_OPTION = ManagerOption("clipper_management_port", "management frontend port", int, "--mgmt-port")
RPC_PORT_OPTION = ManagerOption("clipper_rpc_port", "model-container RPC port", int, "--rpc-port")
REDIS_IP_OPTION = ManagerOption("redis_ip", "use the Redis at this address instead of starting one")
REDIS_PORT_OPTION = ManagerOption("redis_port", "Redis port", int)
STANDARD_OPTIONS: tuple[ManagerOption, ...] = (
    QUERY_PORT_OPTION,
    MANAGEMENT_PORT_OPTION,
    RPC_PORT_OPTION,
    REDIS_IP_OPTION,
    REDIS_PORT_OPTION,
)


class ContainerManager(ABC):
    """Starts and stops the processes (or containers, or pods) of one Clipper cluster."""

    PLUGIN_NAME: ClassVar[str] = ""

    cluster_name: str
    cluster_identifier: str

    @classmethod
    def cli_options(cls) -> Sequence[ManagerOption]:
        """The constructor arguments ``clipper --manager NAME`` accepts as flags (besides ``--cluster-name``).

        Flags with the same spelling are shared between managers, so reuse :data:`STANDARD_OPTIONS` where they fit.
        """
        return ()

    @abstractmethod
    def start_clipper(
        self,
        query_frontend_image: str,
        mgmt_frontend_image: str,
        frontend_exporter_image: str,
        cache_size: int,
        qf_http_thread_pool_size: int,
        qf_http_timeout_request: int,
        qf_http_timeout_content: int,
        num_frontend_replicas: int = 1,
    ) -> None:
        """Start Redis (unless external), the management frontend and the query frontend."""

    @abstractmethod
    def connect(self) -> None:
        """Attach to a running cluster of this name; raise :class:`ClipperException` when none runs."""

    @abstractmethod
    def build_model(
        self,
        name: str,
        version: str,
        model_data_path: str,
        base_image: str,
        container_registry: str | None = None,
        pkgs_to_install: list[str] | None = None,
    ) -> str:
        """Package ``model_data_path`` so replicas can run it; return the image reference."""

    @abstractmethod
    def deploy_model(self, name: str, version: str, input_type: str, image: str, num_replicas: int = 1) -> None:
        """Start ``num_replicas`` replicas of a model version."""

    @abstractmethod
    def get_num_replicas(self, name: str, version: str) -> int:
        """How many replicas of the model version run now."""

    @abstractmethod
    def set_num_replicas(self, name: str, version: str, input_type: str, image: str, num_replicas: int) -> None:
        """Scale the model version to exactly ``num_replicas`` replicas."""

    @abstractmethod
    def get_logs(self, logging_dir: str) -> list[str]:
        """Copy every cluster log into ``logging_dir``; return the file paths."""

    def replica_log_hint(self, name: str, version: str) -> str:
        """Where to look when a replica of ``name:version`` did not come up (ends an error message)."""
        return "Check the replica logs with ClipperConnection.get_clipper_logs()."

    @abstractmethod
    def stop_models(self, models: dict[str, list[str]]) -> None:
        """Stop the replicas of the given ``{name: [versions]}``."""

    @abstractmethod
    def stop_all_model_containers(self) -> None:
        """Stop every model replica of the cluster."""

    @abstractmethod
    def stop_all(self, graceful: bool = True) -> None:
        """Stop everything the cluster runs."""

    @abstractmethod
    def get_admin_addr(self) -> str:
        """``host:port`` of the management frontend."""

    @abstractmethod
    def get_query_addr(self) -> str:
        """``host:port`` of the query frontend's REST API."""

    @abstractmethod
    def get_metric_addr(self) -> str:
        """``host:port`` where metrics are served."""

    def is_running(self) -> bool:
        """Whether the cluster's frontends are up (used for clear errors before talking to them)."""
        return True

    def admin_headers(self) -> dict[str, str]:
        """HTTP headers every management request carries (``Authorization`` when the management API needs the
        cluster's bearer token, see docs/security.md)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Addresses and settings for ``clipper status``."""
        return {
            "manager": self.PLUGIN_NAME,
            "cluster_name": self.cluster_name,
            "query": self.get_query_addr(),
            "admin": self.get_admin_addr(),
        }
