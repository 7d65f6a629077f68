"""The local cluster's supervisor: ``python -m clipper_core.local.supervisor CLUSTER_DIR``.

Started detached by :meth:`clipper_core.local.LocalContainerManager.start_clipper`. It starts Redis (unless the
cluster uses an external one), the management and the query frontend, then every ~0.2 s reconciles model replica
processes against the desired state in Redis DB 8, restarts any child that exited (with a growing back-off), and
rewrites ``processes.json`` whenever something changed. SIGTERM/SIGINT stop every child and exit 0.

The cluster's own Redis keeps an append-only file in ``CLUSTER_DIR/redis/``: a Redis that crashes and is restarted
comes back with every application, model and desired replica count (rather than an empty DB 8, which would retire
every replica). The supervisor empties that directory once, when it starts, so every new cluster starts clean.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clipper_core.config_store import LOCAL_DEPLOYMENT_DB, _s, deployment_pattern, model_key, parse_deployment_key
from clipper_core.container_manager import DEFAULT_CACHE_SIZE
from clipper_core.files import read_json, write_json_atomic
from clipper_core.local._child import STOP_GRACE, Child, stop_children
from clipper_core.local._state import ENV_CLUSTER_DIR, ClusterPaths, image_model_dir
from clipper_core.local.redis_server import redis_command
from clipper_core.names import is_path_component
from clipper_core.ports import wait_for_port
from clipper_core.secrets import (
    ENV_MANAGEMENT_TOKEN,
    ENV_REDIS_PASSWORD,
    ENV_RPC_TOKEN,
    REDIS_CONFIG_FILE,
    read_secrets,
    without_secrets,
    write_redis_config,
)

logger = logging.getLogger("clipper_core.local.supervisor")

TICK = 0.2
# Redis reads fail fast (no redis-py retries with backoff, which make one refused call take ~4 s): a tick that
# waits on a Redis that is down would delay restarting it and every replica.
REDIS_CONNECT_TIMEOUT = 0.5
REDIS_SOCKET_TIMEOUT = 1.0


@functools.lru_cache(maxsize=4)
def keeps_environment_with(redis_server: str) -> bool:
    """Whether ``redis_server`` understands ``--set-proc-title no`` (Redis >= 6.2).

    Otherwise Redis rewrites its process title over its environment, which then no longer shows
    ``CLIPPER_CLUSTER_DIR`` (:func:`clipper_core.local._state.looks_like_ours` falls back to the command line).
    """
    try:
        out = subprocess.run([redis_server, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    match = re.search(r"v=(\d+)\.(\d+)", out)
    return match is not None and (int(match.group(1)), int(match.group(2))) >= (6, 2)


class Supervisor:
    def __init__(self, root: Path) -> None:
        self.paths = ClusterPaths(root)
        config = read_json(self.paths.cluster_json)
        if config is None:
            msg = f"no readable cluster.json in {root}"
            raise SystemExit(msg)
        self.config = config
        self.cluster_name: str = config.get("cluster_name") or root.name
        self.host: str = config.get("host", "127.0.0.1")
        self.connect_host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        self.external_redis = bool(config.get("redis_ip"))
        self.redis_ip: str = config.get("redis_ip") or "127.0.0.1"
        self.redis_port = int(config["redis_port"])
        self.python: str = config.get("python") or sys.executable
        self.base_env = without_secrets(os.environ)
        self.base_env[ENV_CLUSTER_DIR] = str(root)
        self.secrets = read_secrets(root)
        self.redis_password = self.secrets.redis_password if self.secrets else None
        self.base_env.setdefault("PYTHONUNBUFFERED", "1")
        self.stopping = False
        self.services: dict[str, Child] = {}
        self.replicas: dict[str, dict[int, Child]] = {}
        self.replica_specs: dict[str, dict[int, tuple[str, str]]] = {}
        self.retiring: list[Child] = []
        self.retire_deadline: dict[int, float] = {}
        self._redis: redis.Redis | None = None
        self._redis_error_logged = 0.0
        self._last_written: dict[str, Any] | None = None
        self._refused: set[str] = set()

    # -- services -------------------------------------------------------------------------------------

    def _service(self, name: str, cmd: list[str], secret_env: dict[str, str | None] | None = None) -> Child:
        env = {**self.base_env, **{k: v for k, v in (secret_env or {}).items() if v}}
        return Child(name, cmd, env, self.paths.logs / f"{name}.log", self.paths.root)

    def start_services(self) -> None:
        redis_args = ["--redis-ip", self.redis_ip, "--redis-port", str(self.redis_port)]
        if not self.external_redis:
            data = self.paths.redis_data
            shutil.rmtree(data, ignore_errors=True)  # a new cluster starts empty; restarts below keep the data
            data.mkdir(parents=True, exist_ok=True)
            cmd = redis_command(self.redis_port, data, persist=True)
            cmd.insert(1, str(write_redis_config(self.paths.root / REDIS_CONFIG_FILE, self.redis_password)))
            if keeps_environment_with(cmd[0]):
                cmd += ["--set-proc-title", "no"]  # keep /proc/<pid>/environ (and CLIPPER_CLUSTER_DIR) readable
            self.services["redis"] = self._service("redis", cmd)
            self.services["redis"].start()
            try:
                wait_for_port(self.redis_port, timeout=15.0, proc=self.services["redis"].proc)
            except Exception as exc:  # the main loop restarts it; the frontends retry Redis themselves
                logger.error("redis did not come up: %s", exc)
        mgmt = [
            self.python,
            "-m",
            "clipper_frontend.management",
            "--host",
            self.host,
            "--port",
            str(self.config["management_port"]),
            *redis_args,
        ]
        query = [
            self.python,
            "-m",
            "clipper_frontend.query",
            "--host",
            self.host,
            "--port",
            str(self.config["query_port"]),
            "--rpc-port",
            str(self.config["rpc_port"]),
            *redis_args,
            "--cache-size",
            str(self.config.get("cache_size", DEFAULT_CACHE_SIZE)),
            "--rpc-admission",
            str(self.config.get("rpc_admission") or "token"),
        ]
        sec = self.secrets
        mgmt_token = sec.management_token if sec and self.config.get("management_auth") else None
        self.services["management"] = self._service(
            "management", mgmt, {ENV_REDIS_PASSWORD: self.redis_password, ENV_MANAGEMENT_TOKEN: mgmt_token}
        )
        self.services["query"] = self._service(
            "query", query, {ENV_REDIS_PASSWORD: self.redis_password, ENV_RPC_TOKEN: sec.rpc_token if sec else None}
        )
        self.services["management"].start()
        self.services["query"].start()

    # -- desired state --------------------------------------------------------------------------------

    def redis_client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis(
                host=self.redis_ip,
                port=self.redis_port,
                db=LOCAL_DEPLOYMENT_DB,
                password=self.redis_password,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                socket_timeout=REDIS_SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
        return self._redis

    def desired(self) -> dict[str, dict[str, str]] | None:
        """This cluster's DB 8 entries as ``{"<name>:<version>": {image, input_type, num_replicas}}``.

        Only keys scoped by this cluster's name are read (other clusters may share the Redis); a cluster with its
        own Redis also reads keys of the older unscoped layout. ``None`` when Redis is unreachable.
        """
        try:
            client = self.redis_client()
            out: dict[str, dict[str, str]] = {}
            legacy: dict[str, dict[str, str]] = {}
            pattern = "*" if not self.external_redis else deployment_pattern(self.cluster_name)
            for key in client.scan_iter(match=pattern, count=1000):
                parsed = parse_deployment_key(key)
                if parsed is None or parsed[0] not in (None, self.cluster_name):
                    continue
                if _s(client.type(key)) != "hash" or not self._acceptable(_s(key), parsed[1], parsed[2]):
                    continue
                target = legacy if parsed[0] is None else out
                target[model_key(parsed[1], parsed[2])] = {_s(k): _s(v) for k, v in client.hgetall(key).items()}
            return {**legacy, **out}
        except redis.RedisError as exc:
            now = time.monotonic()
            if now - self._redis_error_logged > 10.0:
                logger.warning("Redis at %s:%s unreachable (%s); retrying", self.redis_ip, self.redis_port, exc)
                self._redis_error_logged = now
            if self._redis is not None:
                self._redis.close()
                self._redis = None
            return None

    def _acceptable(self, key: str, name: str, version: str) -> bool:
        """Whether a DB-8 key names a model version whose name and version are safe file names (logged once)."""
        if is_path_component(name) and is_path_component(version):
            return True
        if key not in self._refused:
            self._refused.add(key)
            logger.error(
                "ignoring desired replicas for %r in Redis DB %d: model names and versions must be safe file names "
                "(letters, digits, '-', '_', '.', '+'; no '..')",
                key,
                LOCAL_DEPLOYMENT_DB,
            )
        return False

    def _replica(self, key: str, slot: int, spec: dict[str, str]) -> Child:
        name, _, version = key.partition(":")
        image = spec.get("image", "")
        model_dir = image_model_dir(image) or self.paths.model_dir(name, version)
        build = read_json(model_dir / "build.json") or {}
        python = build.get("python") or self.python
        if not os.path.exists(python):
            python = self.python
        env = dict(self.base_env)
        env.update(
            {
                "CLIPPER_MODEL_NAME": name,
                "CLIPPER_MODEL_VERSION": version,
                "CLIPPER_IP": self.connect_host,
                "CLIPPER_PORT": str(self.config["rpc_port"]),
                "CLIPPER_INPUT_TYPE": spec.get("input_type", "doubles"),
                "CLIPPER_MODEL_PATH": str(model_dir),
                "CLIPPER_READY_FILE": str(self.paths.ready_file(name, version, slot)),
            }
        )
        if self.secrets is not None:
            env[ENV_RPC_TOKEN] = self.secrets.rpc_token
        child = Child(
            f"replica {key}#{slot}",
            [python, "-m", "clipper_core.container"],
            env,
            self.paths.replica_log(name, version, slot),
            self.paths.root,
        )
        ready = self.paths.ready_file(name, version, slot)
        child.before_start = lambda: ready.unlink(missing_ok=True)
        return child

    def _retire(self, child: Child) -> None:
        child.terminate(signal.SIGTERM)
        if child.proc is not None:
            self.retiring.append(child)
            self.retire_deadline[id(child)] = time.monotonic() + STOP_GRACE

    def reconcile(self, now: float) -> None:
        desired = self.desired()
        if desired is not None:
            for key in list(self.replicas):
                if key not in desired:
                    for slot in sorted(self.replicas[key], reverse=True):
                        self._retire(self.replicas[key].pop(slot))
                    del self.replicas[key]
                    self.replica_specs.pop(key, None)
            for key, spec in desired.items():
                try:
                    wanted = max(0, int(spec.get("num_replicas", "0")))
                except ValueError:
                    wanted = 0
                slots = self.replicas.setdefault(key, {})
                specs = self.replica_specs.setdefault(key, {})
                signature = (spec.get("image", ""), spec.get("input_type", ""))
                for slot in sorted(slots, reverse=True):  # scale down from the highest slot; replace changed specs
                    if slot >= wanted or specs.get(slot) != signature:
                        self._retire(slots.pop(slot))
                        specs.pop(slot, None)
                for slot in range(wanted):
                    if slot not in slots:
                        slots[slot] = self._replica(key, slot, spec)
                        specs[slot] = signature
                        slots[slot].next_start = 0.0
        for child in list(self.services.values()):
            child.check(now)
        for slots in self.replicas.values():
            for child in slots.values():
                child.check(now)
        for child in list(self.retiring):
            if child.proc is None or child.proc.poll() is not None:
                self.retiring.remove(child)
                self.retire_deadline.pop(id(child), None)
            elif now >= self.retire_deadline.get(id(child), now):
                logger.warning("%s (pid %s) ignored SIGTERM; killing it", child.name, child.proc.pid)
                child.terminate(signal.SIGKILL)

    # -- processes.json ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        replicas: dict[str, list[dict[str, Any]]] = {}
        for key, slots in self.replicas.items():
            name, _, version = key.partition(":")
            entries = []
            for slot in sorted(slots):
                child = slots[slot]
                if child.pid is not None:
                    entries.append(
                        {
                            "pid": child.pid,
                            "slot": slot,
                            "restarts": child.restarts,
                            "ready": self.paths.ready_file(name, version, slot).exists(),
                        }
                    )
            if entries:
                replicas[key] = entries
        for child in self.retiring:  # still alive while stopping: listed so callers wait until they are gone
            if child.pid is not None:
                key = f"{child.env['CLIPPER_MODEL_NAME']}:{child.env['CLIPPER_MODEL_VERSION']}"
                replicas.setdefault(key, []).append(
                    {"pid": child.pid, "slot": -1, "restarts": child.restarts, "ready": False, "stopping": True}
                )
        services = {
            name: self.services[name].pid if name in self.services else None
            for name in ("redis", "management", "query")
        }
        return {
            "supervisor": os.getpid(),
            **services,
            "replicas": replicas,
            "restarts": {name: child.restarts for name, child in self.services.items()},
        }

    def write_processes(self, force: bool = False) -> None:
        if not self.paths.root.is_dir():
            return
        snap = self.snapshot()
        if force or snap != self._last_written:
            try:
                write_json_atomic(self.paths.processes_json, snap)
                self._last_written = snap
            except OSError as exc:
                logger.error("could not write %s: %s", self.paths.processes_json, exc)

    # -- main loop -----------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        logger.info("received signal %s; stopping the cluster", signum)
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.paths.make_dirs()
        logger.info("supervisor %s for %s", os.getpid(), self.paths.root)
        self.write_processes(force=True)
        try:
            if not self.stopping:
                self.start_services()
            while not self.stopping:
                if not self.paths.cluster_json.exists():
                    logger.warning("%s was removed; stopping the cluster", self.paths.cluster_json)
                    break
                try:
                    self.reconcile(time.monotonic())
                except Exception:  # never let one bad tick take the cluster down
                    logger.exception("reconcile failed")
                self.write_processes()
                time.sleep(TICK)
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        replicas = [c for slots in self.replicas.values() for c in slots.values()] + self.retiring
        frontends = [self.services[n] for n in ("query", "management") if n in self.services]
        stop_children(replicas + frontends)
        self.write_processes()
        if "redis" in self.services:
            stop_children([self.services["redis"]])
        if self._redis is not None:
            self._redis.close()
        self.paths.processes_json.unlink(missing_ok=True)
        logger.info("supervisor %s stopped", os.getpid())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m clipper_core.local.supervisor CLUSTER_DIR", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=os.environ.get("CLIPPER_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s [supervisor] %(message)s",
        stream=sys.stderr,
    )
    return Supervisor(Path(os.path.abspath(args[0]))).run()  # no resolve(): keep the manager's spelling


if __name__ == "__main__":
    sys.exit(main())
