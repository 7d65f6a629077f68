"""``ClipperConnection``: the admin API of a Clipper cluster (reference §6.1), same methods, defaults and errors.

It drives the management frontend over HTTP exactly like the original client and asks the container manager to
start, scale and stop replicas. Deliberate differences: every request has a timeout and an unreachable cluster
raises a :class:`ClipperException` saying so; ``start_clipper`` gives up after a deadline; ``connect`` fails when no
cluster runs; ``deploy_model`` checks the input type before starting anything and registers the version (making it
current) only once one of its replicas is connected (zero-downtime rollout).
"""

from __future__ import annotations

import logging
import pickle
import time
from typing import Any

import cloudpickle

from clipper_core import __version__
from clipper_core._admin_http import (
    get_json,
    post_admin,
    post_admin_json,
    predict_inputs,
    probe,
    wait_for_epoch,
)
from clipper_core.config_store import EPOCH_HEADER
from clipper_core.container_manager import (
    CONTAINERLESS_MODEL_IMAGE,
    DEFAULT_CACHE_SIZE,
    ContainerManager,
    clipper_registry,
    validate_model_name,
)
from clipper_core.errors import (
    ClipperException,
    ContainerManagerError,
    DeploymentError,
    InputDecodeError,
    ManagementError,
    UnconnectedException,
)
from clipper_core.input_types import InputType
from clipper_core.registry import PluginHost

logger = logging.getLogger(__name__)

DEFAULT_LABEL: list[str] = []
DEFAULT_PREDICTION_CACHE_SIZE_BYTES = DEFAULT_CACHE_SIZE
CLIPPER_TEMP_DIR = "/tmp/clipper"
CLIPPER_REGISTRY = clipper_registry()


def _validate_versioned_model_name(name: str, version: str) -> None:
    validate_model_name(name, "model name")
    validate_model_name(version, "model version")


class ClipperConnection:
    """A client for one Clipper cluster, run by ``container_manager``.

    Call :meth:`connect` (existing cluster) or :meth:`start_clipper` (new cluster) before the other methods.
    """

    #: Seconds ``start_clipper`` waits for both frontends to answer.
    start_timeout_s: float = 120.0
    #: Seconds ``deploy_model`` waits for the first replica of the new version to connect.
    deploy_timeout_s: float = 60.0
    #: Timeout of each admin HTTP request.
    http_timeout_s: float = 30.0

    def __init__(self, container_manager: ContainerManager, *, plugins: PluginHost | None = None) -> None:
        self.connected = False
        self.cm = container_manager
        self._plugins = plugins

    @property
    def plugins(self) -> PluginHost:
        """The plugins this connection resolves input types (and deployers) with; built on first use."""
        if self._plugins is None:
            self._plugins = PluginHost()
        return self._plugins

    # ------------------------------------------------------------------ helpers

    def _require_connection(self) -> None:
        if not self.connected:
            raise UnconnectedException()

    def _post(self, path: str, body: dict[str, Any]) -> str:
        self._require_connection()
        r = post_admin(self.cm.get_admin_addr(), path, body, self.http_timeout_s, self.cm.admin_headers())
        epoch = r.headers.get(EPOCH_HEADER)
        if epoch is not None:
            # Return only once the query frontend serves this change, so a predict right after sees it.
            wait_for_epoch(self.cm.get_query_addr(), int(epoch))
        return r.text

    def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        self._require_connection()
        return post_admin_json(self.cm.get_admin_addr(), path, body, self.http_timeout_s, self.cm.admin_headers())

    def _input_type(self, input_type: str) -> InputType:
        """Resolve ``input_type`` against the installed input types; unknown names raise ``ClipperException``."""
        try:
            return self.plugins.input_types().parse(str(input_type))
        except InputDecodeError as exc:
            raise ManagementError(exc.msg) from exc

    # ------------------------------------------------------------------ cluster lifecycle

    def start_clipper(
        self,
        query_frontend_image: str = f"{CLIPPER_REGISTRY}/query_frontend:{__version__}",
        mgmt_frontend_image: str = f"{CLIPPER_REGISTRY}/management_frontend:{__version__}",
        frontend_exporter_image: str = f"{CLIPPER_REGISTRY}/frontend-exporter:{__version__}",
        cache_size: int = DEFAULT_PREDICTION_CACHE_SIZE_BYTES,
        qf_http_thread_pool_size: int = 1,
        qf_http_timeout_request: int = 5,
        qf_http_timeout_content: int = 300,
        num_frontend_replicas: int = 1,
    ) -> None:
        """Start a new cluster with the container manager and wait until both frontends answer."""
        try:
            self.cm.start_clipper(
                query_frontend_image,
                mgmt_frontend_image,
                frontend_exporter_image,
                cache_size,
                qf_http_thread_pool_size,
                qf_http_timeout_request,
                qf_http_timeout_content,
                num_frontend_replicas,
            )
        except ClipperException as exc:
            logger.warning("Error starting Clipper: %s", exc.msg)
            raise
        urls = [f"http://{self.cm.get_query_addr()}/metrics", f"http://{self.cm.get_admin_addr()}/admin/ping"]
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            problems = {url: err for url in urls if (err := probe(url, timeout=5.0)) is not None}
            if not problems:
                break
            if time.monotonic() >= deadline:
                detail = "; ".join(f"{url}: {err}" for url, err in problems.items())
                msg = (
                    f"Clipper did not become ready within {self.start_timeout_s:g} s ({detail}). Inspect the logs "
                    "with ClipperConnection.get_clipper_logs() and stop the cluster with stop_all() / `clipper stop`."
                )
                raise ContainerManagerError(msg)
            logger.info("Clipper still initializing.")
            time.sleep(0.25)
        self.connected = True
        logger.info("Clipper is running")

    def connect(self) -> None:
        """Connect to a running cluster; raises :class:`ClipperException` when none runs."""
        self.cm.connect()
        self.connected = True
        logger.info("Successfully connected to Clipper cluster at %s", self.cm.get_query_addr())

    def stop_all(self, graceful: bool = True) -> None:
        """Stop every process of the cluster (no connection needed)."""
        self.cm.stop_all(graceful=graceful)
        logger.info("Stopped all Clipper cluster and all model containers")

    # ------------------------------------------------------------------ applications

    def register_application(self, name: str, input_type: str, default_output: str, slo_micros: int) -> None:
        body = {"name": name, "input_type": input_type, "default_output": default_output}
        self._post("add_app", {**body, "latency_slo_micros": slo_micros})
        logger.info("Application %s was successfully registered", name)

    def unregister_application(self, name: str) -> None:
        self._post("delete_app", {"name": name})
        logger.info("Application %s was successfully unregistered", name)

    def delete_application(self, name: str) -> None:
        """Deprecated alias of :meth:`unregister_application`."""
        logger.warning("delete_application is deprecated; use unregister_application instead")
        self.unregister_application(name)

    def link_model_to_app(self, app_name: str, model_name: str) -> None:
        self._post("add_model_links", {"app_name": app_name, "model_names": [model_name]})
        logger.info("Model %s is now linked to application %s", model_name, app_name)

    def unlink_model_from_app(self, app_name: str, model_name: str) -> None:
        self._post("delete_model_links", {"app_name": app_name, "model_names": [model_name]})
        logger.info("Model %s is now removed from application %s", model_name, app_name)

    def get_all_apps(self, verbose: bool = False) -> list[Any]:
        apps: list[Any] = self._post_json("get_all_applications", {"verbose": verbose})
        return apps

    def get_app_info(self, name: str) -> dict[str, Any] | None:
        info: dict[str, Any] = self._post_json("get_application", {"name": name})
        if not info:
            logger.warning("Application %s is not registered with Clipper", name)
            return None
        return info

    def get_linked_models(self, app_name: str) -> list[str]:
        models: list[Any] = self._post_json("get_linked_models", {"app_name": app_name})
        return models

    # ------------------------------------------------------------------ models

    def build_and_deploy_model(
        self,
        name: str,
        version: Any,
        input_type: str,
        model_data_path: str,
        base_image: str,
        labels: list[str] | None = None,
        container_registry: str | None = None,
        num_replicas: int = 1,
        batch_size: int = -1,
        pkgs_to_install: list[str] | None = None,
    ) -> None:
        """:meth:`build_model`, then :meth:`deploy_model`."""
        _validate_versioned_model_name(name, str(version))
        self._input_type(input_type)
        self._require_connection()
        image = self.build_model(name, version, model_data_path, base_image, container_registry, pkgs_to_install)
        self.deploy_model(name, version, input_type, image, labels, num_replicas, batch_size)

    def build_model(
        self,
        name: str,
        version: Any,
        model_data_path: str,
        base_image: str,
        container_registry: str | None = None,
        pkgs_to_install: list[str] | None = None,
    ) -> str:
        """Package ``model_data_path`` with the container manager; returns the image (needs no connection)."""
        version = str(version)
        _validate_versioned_model_name(name, version)
        image = self.cm.build_model(name, version, model_data_path, base_image, container_registry, pkgs_to_install)
        logger.info("Built model %s:%s as %s", name, version, image)
        return image

    def deploy_model(
        self,
        name: str,
        version: Any,
        input_type: str,
        image: str,
        labels: list[str] | None = None,
        num_replicas: int = 1,
        batch_size: int = -1,
    ) -> None:
        """Start replicas of ``image`` and register the version once one of them is connected."""
        version = str(version)
        _validate_versioned_model_name(name, version)
        self._input_type(input_type)
        self._require_connection()
        if not self.cm.is_running():
            msg = (
                f"The Clipper cluster {getattr(self.cm, 'cluster_name', '')!r} is not running. Start it with "
                "ClipperConnection.start_clipper() or `clipper start` before deploying models."
            )
            raise DeploymentError(msg)
        if self._post_json("get_model", {"model_name": name, "model_version": version}):
            msg = f"model with name '{name}' and version '{version}' already exists"
            raise DeploymentError(msg)
        try:
            self.cm.deploy_model(name, version, input_type, image, num_replicas=num_replicas)
            if num_replicas > 0:
                self._wait_for_replica(name, version)
            self.register_model(name, version, input_type, image=image, labels=labels, batch_size=batch_size)
        except BaseException:  # an error, Ctrl-C: no replica is left running for a version that is not registered
            self._stop_quietly(name, version)
            raise
        logger.info("Done deploying model %s:%s", name, version)

    def _wait_for_replica(self, name: str, version: str) -> None:
        deadline = time.monotonic() + self.deploy_timeout_s
        while True:
            for r in self.get_all_model_replicas(verbose=True):
                if r.get("model_name") == name and str(r.get("model_version")) == version:
                    if r.get("status") != "error":
                        return
                    self._stop_quietly(name, version)  # connected, but its function failed to load
                    msg = (
                        f"Model {name}:{version} failed to load in its replica: {r.get('error')}. The replicas were "
                        f"stopped and the version was not registered. {self.cm.replica_log_hint(name, version)}"
                    )
                    raise DeploymentError(msg)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        self._stop_quietly(name, version)
        msg = (
            f"No replica of model {name}:{version} connected to the query frontend within "
            f"{self.deploy_timeout_s:g} s; the replicas were stopped and the version was not registered. "
            f"{self.cm.replica_log_hint(name, version)}"
        )
        raise DeploymentError(msg)

    def _stop_quietly(self, name: str, version: str) -> None:
        try:
            self.cm.stop_models({name: [version]})
        except ClipperException as exc:
            logger.warning("Could not stop the replicas of %s:%s: %s", name, version, exc.msg)

    def register_model(
        self,
        name: str,
        version: Any,
        input_type: str,
        image: str | None = None,
        labels: list[str] | None = None,
        batch_size: int = -1,
    ) -> None:
        """Register a model version with the management frontend; it becomes the current version."""
        version = str(version)
        body = {
            "model_name": name,
            "model_version": version,
            "labels": labels or DEFAULT_LABEL,
            "input_type": input_type,
            "container_name": image or CONTAINERLESS_MODEL_IMAGE,
            "model_data_path": "DEPRECATED",
            "batch_size": batch_size,
        }
        self._post("add_model", body)
        logger.info("Successfully registered model %s:%s", name, version)

    def get_current_model_version(self, name: str) -> str:
        for m in self.get_all_models(verbose=True):
            if m["model_name"] == name and m["is_current_version"]:
                return str(m["model_version"])
        msg = f"No versions of model {name} registered with Clipper"
        raise ManagementError(msg)

    def get_num_replicas(self, name: str, version: Any = None) -> int:
        self._require_connection()
        version = self.get_current_model_version(name) if version is None else str(version)
        return self.cm.get_num_replicas(name, version)

    def set_num_replicas(self, name: str, num_replicas: int, version: Any = None) -> None:
        self._require_connection()
        version = self.get_current_model_version(name) if version is None else str(version)
        info = self.get_model_info(name, version)
        if info is None:
            msg = f"Cannot add container for non-registered model {name}:{version}"
            raise ManagementError(msg)
        if info["container_name"] == CONTAINERLESS_MODEL_IMAGE:
            msg = f"Cannot resize the replica set for containerless model {name}:{version}"
            raise ManagementError(msg)
        self.cm.set_num_replicas(name, version, info["input_type"], info["container_name"], num_replicas)

    def set_model_version(self, name: str, version: Any, num_replicas: int | None = None) -> None:
        version = str(version)
        self._post("set_model_version", {"model_name": name, "model_version": version})
        if num_replicas is not None:
            self.set_num_replicas(name, num_replicas, version)

    def get_all_models(self, verbose: bool = False) -> list[Any]:
        models: list[Any] = self._post_json("get_all_models", {"verbose": verbose})
        return models

    def get_model_info(self, name: str, version: Any) -> dict[str, Any] | None:
        version = str(version)
        info: dict[str, Any] = self._post_json("get_model", {"model_name": name, "model_version": version})
        if not info:
            logger.warning("Model %s:%s is not registered with Clipper.", name, version)
            return None
        return info

    def get_all_model_replicas(self, verbose: bool = False) -> list[Any]:
        replicas: list[Any] = self._post_json("get_all_containers", {"verbose": verbose})
        return replicas

    def get_model_replica_info(self, name: str, version: Any, replica_id: int) -> dict[str, Any] | None:
        version = str(version)
        body = {"model_name": name, "model_version": version, "replica_id": replica_id}
        info: dict[str, Any] = self._post_json("get_container", body)
        if not info:
            logger.warning("No model replica with ID %s found for model %s:%s", replica_id, name, version)
            return None
        return info

    # ------------------------------------------------------------------ stopping models

    def _model_versions(self, model_names: list[str] | None, inactive_only: bool = False) -> dict[str, list[str]]:
        """``{name: [versions]}`` of the registered models (all of them when ``model_names`` is None)."""
        out: dict[str, list[str]] = {}
        for m in self.get_all_models(verbose=True):
            wanted = model_names is None or m["model_name"] in model_names
            if wanted and not (inactive_only and m["is_current_version"]):
                out.setdefault(m["model_name"], []).append(str(m["model_version"]))
        return out

    def _unregister_versioned_models(self, model_versions_dict: dict[str, list[Any]]) -> None:
        for name, versions in model_versions_dict.items():
            for version in versions:
                self._post("delete_versioned_model", {"model_name": name, "model_version": str(version)})

    def stop_models(self, model_names: list[str]) -> None:
        """Stop and unregister every version of the given models."""
        self._require_connection()
        model_dict = self._model_versions(list(model_names))
        self.cm.stop_models(model_dict)
        self._unregister_versioned_models(model_dict)
        logger.info("Stopped all containers for these models and versions: %s", model_dict)

    def stop_versioned_models(self, model_versions_dict: dict[str, list[Any]]) -> None:
        """Stop and unregister the given ``{name: [versions]}``."""
        self._require_connection()
        model_dict = {name: [str(v) for v in versions] for name, versions in model_versions_dict.items()}
        self.cm.stop_models(model_dict)
        self._unregister_versioned_models(model_dict)
        logger.info("Stopped all containers for these models and versions: %s", model_dict)

    def stop_inactive_model_versions(self, model_names: list[str]) -> None:
        """Stop and unregister every version of the given models except the current one."""
        self._require_connection()
        model_dict = self._model_versions(list(model_names), inactive_only=True)
        self.cm.stop_models(model_dict)
        self._unregister_versioned_models(model_dict)
        logger.info("Stopped all containers for these models and versions: %s", model_dict)

    def stop_all_model_containers(self) -> None:
        """Stop every model replica and unregister every model version."""
        self._require_connection()
        self.cm.stop_all_model_containers()
        model_dict = self._model_versions(None)
        self._unregister_versioned_models(model_dict)
        logger.info("Stopped all Clipper model containers")

    # ------------------------------------------------------------------ addresses, logs, metrics

    def get_clipper_logs(self, logging_dir: str = "clipper_logs/") -> list[str]:
        self._require_connection()
        return self.cm.get_logs(logging_dir)

    def inspect_instance(self) -> Any:
        """The query frontend's ``GET /metrics`` document."""
        self._require_connection()
        return get_json(self.cm.get_query_addr(), "/metrics", self.http_timeout_s)

    def get_query_addr(self) -> str:
        self._require_connection()
        return self.cm.get_query_addr()

    def get_metric_addr(self) -> str:
        self._require_connection()
        return self.cm.get_metric_addr()

    # ------------------------------------------------------------------ local check of a predict function

    def test_predict_function(self, query: dict[str, Any], func: Any, input_type: str) -> Any:
        """Run ``func`` locally on ``query`` the way a replica would see it.

        ``query`` is a predict body (``{"input": x}`` or ``{"input_batch": [x, ...]}``). ``func`` makes a
        cloudpickle round trip first, as it would when deployed. Bad queries return the original's error strings
        ``"Invalid input type"`` / ``"Invalid input type or JSON key"`` instead of raising.
        """
        it = self._input_type(input_type)
        data = predict_inputs(query, it)
        if isinstance(data, str):
            return data
        reloaded = pickle.loads(cloudpickle.dumps(func))
        return reloaded(data)
