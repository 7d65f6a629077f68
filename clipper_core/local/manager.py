"""``LocalContainerManager``: a Clipper cluster made of local processes, owned by a detached supervisor.

See docs/architecture.md, "The local cluster". The manager itself only writes ``cluster.json``, starts
``python -m clipper_core.local.supervisor CLUSTER_DIR`` and talks to it through Redis DB 8 (desired replicas)
and ``processes.json`` (live pids).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import redis

from clipper_core.config_store import LOCAL_DEPLOYMENT_DB, deployment_key, deployment_pattern, model_key
from clipper_core.container_manager import (
    DEFAULT_CACHE_SIZE,
    STANDARD_OPTIONS,
    ContainerManager,
    ManagerOption,
    cluster_exists_error,
    validate_model_name,
)
from clipper_core.errors import ClipperException, ContainerManagerError, DeploymentError
from clipper_core.files import read_json, tail, write_json_atomic
from clipper_core.local._build import build_local_model
from clipper_core.local._lifecycle import accepts, check_ports, clear_stale, stop_cluster, wait_until_up
from clipper_core.local._state import ENV_CLUSTER_DIR, ClusterPaths, image_model_dir, is_supervisor
from clipper_core.local._waits import wait_for_replicas
from clipper_core.names import check_path_component
from clipper_core.rpc.admission import MODES as ADMISSION_MODES
from clipper_core.secrets import (
    bearer_header,
    generate,
    read_secrets,
    redis_password,
    without_secrets,
    write_secrets,
)

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0
DEPLOY_TIMEOUT = 60.0


FRONTEND_PACKAGE = "clipper_frontend"
FRONTEND_DISTRIBUTION = "clipper-frontend"


def require_frontend() -> None:
    """Raise a :class:`ContainerManagerError` saying what to install when the frontends cannot be run here."""
    if importlib.util.find_spec(FRONTEND_PACKAGE) is None:
        msg = (
            f"A local cluster runs the query and management frontends of the {FRONTEND_DISTRIBUTION!r} distribution, "
            f"which is not installed here: pip install {FRONTEND_DISTRIBUTION}"
        )
        raise ContainerManagerError(msg)


class LocalContainerManager(ContainerManager):
    """Runs Redis, both frontends and every model replica as local processes under one supervisor."""

    PLUGIN_NAME: ClassVar[str] = "local"

    @classmethod
    def cli_options(cls) -> Sequence[ManagerOption]:
        return (
            *STANDARD_OPTIONS,
            ManagerOption("host", "address the frontends bind (default 127.0.0.1)"),
            ManagerOption("rpc_admission", "'token' (default): only replicas with the cluster's RPC token; 'open'"),
        )

    def __init__(
        self,
        cluster_name: str = "default",
        clipper_query_port: int = 1337,
        clipper_management_port: int = 1338,
        clipper_rpc_port: int = 7000,
        redis_ip: str | None = None,
        redis_port: int = 6379,
        host: str = "127.0.0.1",
        redis_password: str | None = None,
        rpc_admission: str = "token",
        management_auth: bool = False,
    ) -> None:
        self.cluster_name = cluster_name
        self.cluster_identifier = cluster_name
        self.paths = ClusterPaths.for_cluster(cluster_name)
        self.clipper_query_port = int(clipper_query_port)
        self.clipper_management_port = int(clipper_management_port)
        self.clipper_rpc_port = int(clipper_rpc_port)
        self.redis_ip = redis_ip
        self.redis_port = int(redis_port)
        self.host = host
        self.redis_password = redis_password  # of an external Redis; the cluster's own gets a generated one
        if rpc_admission not in ADMISSION_MODES:
            msg = f"rpc_admission must be one of {', '.join(ADMISSION_MODES)}, got {rpc_admission!r}"
            raise ClipperException(msg)
        self.rpc_admission = rpc_admission  # "open" admits containers written for the original (docs/security.md)
        self.management_auth = bool(management_auth)  # the management API requires the cluster's bearer token
        self.start_timeout = START_TIMEOUT
        self.deploy_timeout = DEPLOY_TIMEOUT
        self._supervisor_proc: subprocess.Popen[bytes] | None = None

    @property
    def cluster_dir(self) -> Path:
        """Where this cluster keeps its state, logs and model store."""
        return self.paths.root

    # -- addresses -----------------------------------------------------------------------------------

    @property
    def _connect_host(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host

    @property
    def _redis_host(self) -> str:
        return self.redis_ip or "127.0.0.1"

    def get_admin_addr(self) -> str:
        return f"{self._connect_host}:{self.clipper_management_port}"

    def get_query_addr(self) -> str:
        return f"{self._connect_host}:{self.clipper_query_port}"

    def get_metric_addr(self) -> str:
        return self.get_query_addr()  # /metrics is served by the query frontend

    # -- state ---------------------------------------------------------------------------------------

    def _cluster_config(self) -> dict[str, Any] | None:
        return read_json(self.paths.cluster_json)

    def _processes(self) -> dict[str, Any]:
        return read_json(self.paths.processes_json) or {}

    def _supervisor_pid(self) -> int | None:
        config = self._cluster_config() or {}
        pid = config.get("supervisor_pid")
        return int(pid) if pid and is_supervisor(pid, self.paths.root) else None

    def _redis(self, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis(
            host=self._redis_host,
            port=self.redis_port,
            db=LOCAL_DEPLOYMENT_DB,
            password=redis_password(self.paths.root) or self.redis_password,
            socket_connect_timeout=timeout,
            socket_timeout=2 * timeout,
        )

    def _redis_unreachable(self, action: str, exc: redis.RedisError) -> ContainerManagerError:
        where = f"{self._redis_host}:{self.redis_port}"
        if self.redis_ip:
            hint = f"Check that the external Redis at {where} is up and reachable, then retry."
        else:
            hint = (
                "The cluster's supervisor restarts its Redis by itself: retry in a few seconds. If it keeps failing, "
                f"see {self.paths.logs / 'redis.log'} and {self.paths.logs / 'supervisor.log'}, or restart the "
                "cluster with stop_all() and start_clipper()."
            )
        return ContainerManagerError(
            f"Could not {action}: the Redis of Clipper cluster '{self.cluster_name}' at {where} failed ({exc}). {hint}"
        )

    def is_running(self) -> bool:
        return self._supervisor_pid() is not None

    def admin_headers(self) -> dict[str, str]:
        config = self._cluster_config() or {}
        found = read_secrets(self.paths.root) if config.get("management_auth") else None
        return bearer_header(found.management_token) if found else {}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        processes = self._processes()
        info.update(
            {
                "running": self.is_running(),
                "cluster_dir": str(self.paths.root),
                "rpc_port": self.clipper_rpc_port,
                "redis": f"{self._redis_host}:{self.redis_port}",
                "external_redis": bool(self.redis_ip),
                "rpc_admission": self.rpc_admission,
                "management_auth": self.management_auth,
                "metric": self.get_metric_addr(),
                "pids": {
                    "supervisor": processes.get("supervisor"),
                    "redis": processes.get("redis"),
                    "management": processes.get("management"),
                    "query": processes.get("query"),
                    "replicas": {k: [e["pid"] for e in v] for k, v in (processes.get("replicas") or {}).items()},
                },
            }
        )
        return info

    def replica_pids(self, name: str, version: str) -> list[int]:
        """Pids of the live replica processes of a model version, by slot (replicas being stopped excluded)."""
        entries = (self._processes().get("replicas") or {}).get(model_key(name, str(version)), [])
        live = [e for e in entries if e.get("pid") and not e.get("stopping")]
        return [int(e["pid"]) for e in sorted(live, key=lambda e: e.get("slot", 0))]

    # -- lifecycle -----------------------------------------------------------------------------------

    def start_clipper(
        self,
        query_frontend_image: str = "",
        mgmt_frontend_image: str = "",
        frontend_exporter_image: str = "",
        cache_size: int = DEFAULT_CACHE_SIZE,
        qf_http_thread_pool_size: int = 1,
        qf_http_timeout_request: int = 5,
        qf_http_timeout_content: int = 300,
        num_frontend_replicas: int = 1,
    ) -> None:
        require_frontend()
        if num_frontend_replicas != 1:
            msg = "The local container manager runs exactly one query frontend (num_frontend_replicas must be 1)"
            raise ContainerManagerError(msg)
        if self.is_running():
            raise cluster_exists_error(self.cluster_name)
        clear_stale(self.paths)
        self._check_ports()
        self.paths.make_dirs()
        config = {
            "cluster_name": self.cluster_name,
            "host": self.host,
            "query_port": self.clipper_query_port,
            "management_port": self.clipper_management_port,
            "rpc_port": self.clipper_rpc_port,
            "redis_ip": self.redis_ip,
            "redis_port": self.redis_port,
            "cache_size": int(cache_size),
            "rpc_admission": self.rpc_admission,
            "management_auth": self.management_auth,
            "python": sys.executable,
            "supervisor_pid": None,
            "state": "starting",
            "started_at": time.time(),
        }
        write_json_atomic(self.paths.cluster_json, config)
        write_secrets(self.paths.root, generate(self.redis_password, external_redis=bool(self.redis_ip)))
        with open(self.paths.logs / "supervisor.log", "ab") as log:
            self._supervisor_proc = subprocess.Popen(
                [sys.executable, "-m", "clipper_core.local.supervisor", str(self.paths.root)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.paths.root,
                env={**without_secrets(os.environ), ENV_CLUSTER_DIR: str(self.paths.root)},
                start_new_session=True,
            )
        config.update(supervisor_pid=self._supervisor_proc.pid, state="running")
        write_json_atomic(self.paths.cluster_json, config)
        logger.info("started supervisor %s for cluster %s", self._supervisor_proc.pid, self.cluster_name)
        try:
            self._wait_until_up()
        except BaseException:  # also on Ctrl-C: do not leave a half-started cluster behind
            self.stop_all(graceful=True)
            raise
        logger.info(
            "Clipper cluster %s is running (query %s, admin %s)",
            self.cluster_name,
            self.get_query_addr(),
            self.get_admin_addr(),
        )

    def _check_ports(self) -> None:
        wanted = [
            (self.clipper_query_port, "the query frontend (clipper_query_port)", self.host),
            (self.clipper_management_port, "the management frontend (clipper_management_port)", self.host),
            (self.clipper_rpc_port, "model container RPC (clipper_rpc_port)", self.host),
        ]
        if not self.redis_ip:
            wanted.append((self.redis_port, "Redis (redis_port)", "127.0.0.1"))
        check_ports(self.cluster_name, wanted)

    def _wait_until_up(self) -> None:
        checks: list[tuple[str, Callable[[], bool]]] = [
            ("redis", self._redis_ping),
            ("management", lambda: accepts(self._connect_host, self.clipper_management_port)),
            ("query", lambda: accepts(self._connect_host, self.clipper_query_port)),
        ]
        wait_until_up(self.paths, self.cluster_name, checks, self._supervisor_proc, self.start_timeout)

    def _redis_ping(self) -> bool:
        client = self._redis(0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def connect(self) -> None:
        config = self._cluster_config()
        if config is None or not is_supervisor(config.get("supervisor_pid"), self.paths.root):
            msg = (
                f"Clipper cluster '{self.cluster_name}' is not running (no live supervisor for {self.paths.root}). "
                "Start it with ClipperConnection(LocalContainerManager(...)).start_clipper() "
                f"or `clipper start --cluster-name {self.cluster_name}`."
            )
            raise ContainerManagerError(msg)
        self.host = config.get("host", self.host)
        self.clipper_query_port = int(config["query_port"])
        self.clipper_management_port = int(config["management_port"])
        self.clipper_rpc_port = int(config["rpc_port"])
        self.redis_ip = config.get("redis_ip")
        self.redis_port = int(config["redis_port"])
        self.rpc_admission = config.get("rpc_admission") or self.rpc_admission
        self.management_auth = bool(config.get("management_auth"))
        logger.info("connected to local cluster %s (query %s)", self.cluster_name, self.get_query_addr())

    def stop_all(self, graceful: bool = True) -> None:
        config = self._cluster_config() or {}
        sup = config.get("supervisor_pid")
        if config.get("redis_ip") and is_supervisor(sup, self.paths.root):
            try:  # an external Redis outlives the cluster: forget its desired replicas, as stopped containers would
                self._clear_desired(timeout=1.0)
            except ClipperException as exc:
                logger.warning("could not clear the desired replicas in the external Redis: %s", exc)
        stop_cluster(self.paths, config, self._supervisor_proc, graceful)
        if config:
            config.update(supervisor_pid=None, state="stopped", stopped_at=time.time())
            write_json_atomic(self.paths.cluster_json, config)
        self._supervisor_proc = None
        logger.info("stopped local cluster %s", self.cluster_name)

    # -- models --------------------------------------------------------------------------------------

    def build_model(
        self,
        name: str,
        version: str,
        model_data_path: str,
        base_image: str,
        container_registry: str | None = None,
        pkgs_to_install: list[str] | None = None,
    ) -> str:
        validate_model_name(name)
        validate_model_name(str(version), "model version")
        return build_local_model(
            self.paths,
            self.cluster_name,
            name,
            str(version),
            model_data_path,
            base_image,
            container_registry,
            pkgs_to_install,
        )

    def _require_running(self) -> None:
        if not self.is_running():
            msg = (
                f"Clipper cluster '{self.cluster_name}' is not running. "
                "Start it with start_clipper() or connect to a running cluster."
            )
            raise ContainerManagerError(msg)

    def _check_image(self, image: str) -> None:
        model_dir = image_model_dir(image)
        if model_dir is None or not (model_dir / "build.json").is_file():
            msg = (
                f"Image {image} not found in the local model store of cluster {self.cluster_name}; "
                "build it with build_model"
            )
            raise DeploymentError(msg)

    def deploy_model(self, name: str, version: str, input_type: str, image: str, num_replicas: int = 1) -> None:
        """Start the replicas and wait until the first one is connected to the query frontend.

        A replica that reports that its model failed to load, or that keeps exiting, raises a
        :class:`DeploymentError` naming the cause; the replicas this call started are stopped again.
        """
        version = str(version)
        try:
            self._set_desired(name, version, input_type, image, num_replicas)
            self._wait_for_replicas({model_key(name, version): int(num_replicas)}, min_connected=1)
        except ClipperException as exc:
            self._stop_quietly(name, version)
            if isinstance(exc, DeploymentError):
                raise
            raise DeploymentError(exc.msg) from exc

    def set_num_replicas(self, name: str, version: str, input_type: str, image: str, num_replicas: int) -> None:
        """Scale to ``num_replicas`` and wait until that many replicas are connected (and any extra ones gone)."""
        version = str(version)
        self._set_desired(name, version, input_type, image, num_replicas)
        self._wait_for_replicas({model_key(name, version): int(num_replicas)})

    def _set_desired(self, name: str, version: str, input_type: str, image: str, num_replicas: int) -> None:
        check_path_component(name, "model name")  # it becomes file names (logs, model store)
        check_path_component(version, "model version")
        num_replicas = int(num_replicas)
        if num_replicas < 0:
            msg = f"num_replicas must be >= 0, got {num_replicas}"
            raise ContainerManagerError(msg)
        self._check_image(image)
        self._require_running()
        client = self._redis()
        try:
            client.hset(
                self._deployment_key(name, version),
                mapping={"image": image, "input_type": input_type, "num_replicas": str(num_replicas)},
            )
            if not self.redis_ip:
                client.delete(model_key(name, version))  # the older unscoped layout
        except redis.RedisError as exc:
            action = f"set {num_replicas} replicas for model {name}:{version}"
            raise self._redis_unreachable(action, exc) from exc
        finally:
            client.close()

    def _deployment_key(self, name: str, version: str) -> str:
        return deployment_key(self.cluster_name, name, str(version))

    def _stop_quietly(self, name: str, version: str) -> None:
        try:
            self.stop_models({name: [version]})
        except ClipperException as exc:
            logger.warning("could not stop the replicas of %s:%s: %s", name, version, exc.msg)

    def get_num_replicas(self, name: str, version: str) -> int:
        return len(self.replica_pids(name, version))

    def stop_models(self, models: dict[str, list[str]]) -> None:
        pairs = [(name, str(v)) for name, versions in models.items() for v in versions]
        if not pairs or not self.is_running():
            return
        keys = [self._deployment_key(name, version) for name, version in pairs]
        if not self.redis_ip:
            keys += [model_key(name, version) for name, version in pairs]  # the older unscoped layout
        client = self._redis()
        try:
            client.delete(*keys)
        except redis.RedisError as exc:
            action = f"stop models {', '.join(model_key(*p) for p in pairs)}"
            raise self._redis_unreachable(action, exc) from exc
        finally:
            client.close()
        self._wait_for_replicas({model_key(name, version): 0 for name, version in pairs})

    def stop_all_model_containers(self) -> None:
        if not self.is_running():
            return
        self._clear_desired()
        deadline = time.monotonic() + self.deploy_timeout
        while self._processes().get("replicas"):
            if time.monotonic() >= deadline or not self.is_running():
                msg = f"Model replicas of cluster {self.cluster_name} did not stop within {self.deploy_timeout:.0f} s"
                raise ContainerManagerError(msg)
            time.sleep(0.1)

    def _clear_desired(self, timeout: float = 5.0) -> None:
        """Delete this cluster's desired replicas (and nothing another cluster sharing the Redis owns)."""
        client = self._redis(timeout)
        try:
            keys = list(client.scan_iter(match=deployment_pattern(self.cluster_name), count=1000))
            if not self.redis_ip:  # the cluster's own Redis: keys of the older unscoped layout are ours too
                keys += [k for k in client.scan_iter(match="*", count=1000) if k.count(b":") == 1]
            if keys:
                client.delete(*keys)
        except redis.RedisError as exc:
            action = "stop the model replicas"
            raise self._redis_unreachable(action, exc) from exc
        finally:
            client.close()

    def _wait_for_replicas(self, wanted: dict[str, int], min_connected: int | None = None) -> None:
        wait_for_replicas(self, wanted, min_connected)

    # -- logs ----------------------------------------------------------------------------------------

    def replica_log_hint(self, name: str, version: str) -> str:
        log = self.paths.replica_log(name, version, 0)
        pattern = self.paths.logs / f"{name}_{version}-*.log"
        hint = f"Check the replica logs with ClipperConnection.get_clipper_logs() or in {pattern}"
        last = tail(log, 15).rstrip()
        return f"{hint}. Last lines of {log.name}:\n{last}" if last else hint + "."

    def get_logs(self, logging_dir: str) -> list[str]:
        os.makedirs(logging_dir, exist_ok=True)
        out = []
        if self.paths.logs.is_dir():
            for path in sorted(self.paths.logs.iterdir()):
                if path.is_file():
                    dest = os.path.join(logging_dir, path.name)
                    shutil.copyfile(path, dest)
                    out.append(dest)
        return out
