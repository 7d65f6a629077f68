"""Redis-backed cluster state, with the original's meaning and database numbers (reference §5).

| DB | content | key | value |
|----|---------|-----|-------|
| 1  | selection state | ``<app>:0:0`` | JSON ``{"y_hat": "<default_output>"}`` |
| 2  | models | ``<name>:<version>`` | hash (model_name, model_version, load, input_type, labels, container_name, model_data_path, batch_size, valid) |
| 3  | replicas | ``<name>,<version>,<replica_id>`` | hash (model_id, model_name, model_version, model_replica_id, zmq_connection_id, batch_size, input_type, status, error, frontend) |
| 5  | applications | ``<app>`` | hash (input_type, policy, default_output, latency_slo_micros) |
| 6  | metadata | ``CURRENT_MODEL_VERSION:<name>``, ``REPLICA_ID_COUNTER:<name>:<version>``, ``CONFIG_EPOCH`` | strings |
| 7  | app -> model links | ``<app>`` | set of model names |
| 8  | desired replicas (extension) | ``<cluster>:<name>:<version>`` | hash (image, input_type, num_replicas) |

DB 8 keys are scoped by the cluster that owns them (:func:`deployment_key`), so clusters sharing one Redis never
read or remove each other's desired replicas. Keys of the older unscoped layout (``<name>:<version>``) are still
understood by the local manager when the Redis is the cluster's own.

The frontends learn of changes through keyspace notifications (``notify-keyspace-events AKE``).
This class is async (``redis.asyncio``) because both frontends run it on their event loop.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

logger = logging.getLogger(__name__)

STATE_DB = 1
MODEL_DB = 2
CONTAINER_DB = 3
APPLICATION_DB = 5
METADATA_DB = 6
APP_MODEL_LINKS_DB = 7
LOCAL_DEPLOYMENT_DB = 8

DEFAULT_POLICY = "DefaultOutputSelectionPolicy"
CURRENT_VERSION_PREFIX = "CURRENT_MODEL_VERSION:"
REPLICA_COUNTER_PREFIX = "REPLICA_ID_COUNTER:"
CONFIG_EPOCH_KEY = "CONFIG_EPOCH"  # bumped after every management mutation (read-your-writes for clients)
CONFIG_EPOCH_CHANNEL = "clipper:config_epoch"
#: response header of a management mutation: the configuration epoch it produced (read-your-writes for clients)
EPOCH_HEADER = "X-Clipper-Config-Epoch"
NO_CONTAINER = "NO_CONTAINER"
PROHIBITED_CHARS = (",", ":")


def model_key(name: str, version: str) -> str:
    return f"{name}:{version}"


def deployment_key(cluster: str, name: str, version: str) -> str:
    """DB 8 key of a cluster's desired replicas of ``name:version`` (no cluster name contains ``:``)."""
    return f"{cluster}:{name}:{version}"


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def deployment_pattern(cluster: str) -> str:
    """A ``SCAN MATCH`` pattern for every DB 8 key of ``cluster`` (glob characters in the name escaped)."""
    return _glob_escape(cluster) + ":*:*"


def parse_deployment_key(key: str | bytes) -> tuple[str | None, str, str] | None:
    """``<cluster>:<name>:<version>`` -> ``(cluster, name, version)``; old ``<name>:<version>`` -> ``(None, ...)``."""
    parts = _s(key).split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None


def container_key(name: str, version: str, replica_id: int | str) -> str:
    return f"{name},{version},{replica_id}"


def _s(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _hash(raw: dict[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


class ConfigStore:
    """Async access to the cluster state in one Redis server."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, password: str | None = None) -> None:
        self.host = host
        self.port = port
        self.password = password  # the cluster's Redis password (clipper_core.secrets), None without one
        self._clients: dict[int, aioredis.Redis] = {}

    def db(self, number: int) -> aioredis.Redis:
        client = self._clients.get(number)
        if client is None:
            client = aioredis.Redis(
                host=self.host, port=self.port, db=number, password=self.password, socket_connect_timeout=5
            )
            self._clients[number] = client
        return client

    async def ping(self) -> bool:
        return bool(await self.db(0).ping())

    async def enable_notifications(self) -> None:
        await self.db(0).config_set("notify-keyspace-events", "AKE")

    def pubsub(self) -> Any:
        return self.db(0).pubsub()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    # -- applications -------------------------------------------------------------------------------

    async def add_application(self, name: str, input_type: str, default_output: str, slo_micros: int) -> None:
        await self.db(APPLICATION_DB).hset(
            name,
            mapping={
                "input_type": input_type,
                "policy": DEFAULT_POLICY,
                "default_output": default_output,
                "latency_slo_micros": str(slo_micros),
            },
        )

    async def get_application(self, name: str) -> dict[str, str] | None:
        raw = await self.db(APPLICATION_DB).hgetall(name)
        return _hash(raw) if raw else None

    async def delete_application(self, name: str) -> None:
        await self.db(APPLICATION_DB).delete(name)
        await self.db(APP_MODEL_LINKS_DB).delete(name)
        await self.db(STATE_DB).delete(f"{name}:0:0")

    async def list_applications(self) -> list[str]:
        return sorted(_s(k) for k in await self.db(APPLICATION_DB).keys("*"))

    # -- links ---------------------------------------------------------------------------------------

    async def get_linked_models(self, app: str) -> list[str]:
        return sorted(_s(m) for m in await self.db(APP_MODEL_LINKS_DB).smembers(app))

    async def add_links(self, app: str, models: Iterable[str]) -> None:
        await self.db(APP_MODEL_LINKS_DB).sadd(app, *models)

    async def delete_links(self, app: str, models: Iterable[str]) -> None:
        await self.db(APP_MODEL_LINKS_DB).srem(app, *models)

    async def apps_linked_to(self, model: str) -> list[str]:
        out = []
        for app in await self.list_applications():
            if await self.db(APP_MODEL_LINKS_DB).sismember(app, model):
                out.append(app)
        return out

    # -- models --------------------------------------------------------------------------------------

    async def add_model(
        self,
        name: str,
        version: str,
        input_type: str,
        labels: list[str],
        container_name: str,
        model_data_path: str,
        batch_size: int,
    ) -> None:
        await self.db(MODEL_DB).hset(
            model_key(name, version),
            mapping={
                "model_name": name,
                "model_version": version,
                "load": "0.000000",
                "input_type": input_type,
                "labels": ",".join(labels),
                "container_name": container_name,
                "model_data_path": model_data_path,
                "batch_size": str(batch_size),
                "valid": "",
            },
        )

    async def get_model(self, name: str, version: str) -> dict[str, str] | None:
        raw = await self.db(MODEL_DB).hgetall(model_key(name, version))
        return _hash(raw) if raw else None

    async def list_models(self) -> list[tuple[str, str]]:
        """All registered (name, version) pairs that are still valid."""
        out = []
        for key in await self.db(MODEL_DB).keys("*"):
            name, _, version = _s(key).partition(":")
            out.append((name, version))
        return sorted(out)

    async def get_model_versions(self, name: str) -> list[str]:
        return [v for n, v in await self.list_models() if n == name]

    async def delete_model(self, name: str, version: str) -> None:
        await self.db(MODEL_DB).delete(model_key(name, version))
        # The desired replicas of this version, whichever cluster deployed it (and the old unscoped key).
        deployments = self.db(LOCAL_DEPLOYMENT_DB)
        keys = [model_key(name, version)]
        async for key in deployments.scan_iter(match=f"*:{_glob_escape(name)}:{_glob_escape(version)}", count=1000):
            parsed = parse_deployment_key(key)
            if parsed is not None and parsed[0] is not None and parsed[1:] == (name, version):
                keys.append(_s(key))
        await deployments.delete(*keys)

    async def get_current_version(self, name: str) -> str | None:
        raw = await self.db(METADATA_DB).get(CURRENT_VERSION_PREFIX + name)
        return _s(raw) if raw is not None else None

    async def set_current_version(self, name: str, version: str) -> None:
        await self.db(METADATA_DB).set(CURRENT_VERSION_PREFIX + name, version)

    async def clear_current_version(self, name: str) -> None:
        await self.db(METADATA_DB).delete(CURRENT_VERSION_PREFIX + name)

    async def all_current_versions(self) -> dict[str, str]:
        out = {}
        for key in await self.db(METADATA_DB).keys(CURRENT_VERSION_PREFIX + "*"):
            value = await self.db(METADATA_DB).get(key)
            if value is not None:
                out[_s(key)[len(CURRENT_VERSION_PREFIX) :]] = _s(value)
        return out

    # -- replicas ------------------------------------------------------------------------------------

    async def next_replica_id(self, name: str, version: str) -> int:
        """Replica ids are never reused, even across frontend restarts."""
        return int(await self.db(METADATA_DB).incr(f"{REPLICA_COUNTER_PREFIX}{name}:{version}")) - 1

    async def add_container(self, name: str, version: str, replica_id: int, fields: dict[str, str]) -> None:
        mapping: dict[FieldT, EncodableT] = {
            "model_id": model_key(name, version),
            "model_name": name,
            "model_version": version,
            "model_replica_id": str(replica_id),
            "batch_size": "1",
        }
        for field, value in fields.items():  # (a loop: redis-py's mapping type is invariant in its key type)
            mapping[field] = value
        await self.db(CONTAINER_DB).hset(container_key(name, version, replica_id), mapping=mapping)

    async def update_container(self, name: str, version: str, replica_id: int, fields: dict[str, str]) -> None:
        key = container_key(name, version, replica_id)
        if await self.db(CONTAINER_DB).exists(key):
            mapping: dict[FieldT, EncodableT] = {}
            for field, value in fields.items():
                mapping[field] = value
            await self.db(CONTAINER_DB).hset(key, mapping=mapping)

    async def get_container(self, name: str, version: str, replica_id: int | str) -> dict[str, str] | None:
        raw = await self.db(CONTAINER_DB).hgetall(container_key(name, version, replica_id))
        return _hash(raw) if raw else None

    async def list_containers(self) -> list[dict[str, str]]:
        out = []
        for key in await self.db(CONTAINER_DB).keys("*"):
            raw = await self.db(CONTAINER_DB).hgetall(key)
            if raw:
                out.append(_hash(raw))
        out.sort(key=lambda c: (c.get("model_name", ""), c.get("model_version", ""), int(c.get("model_replica_id", 0))))
        return out

    async def delete_container(self, name: str, version: str, replica_id: int | str) -> None:
        await self.db(CONTAINER_DB).delete(container_key(name, version, replica_id))

    # -- configuration epoch --------------------------------------------------------------------------

    async def bump_epoch(self) -> int:
        """Count one more applied mutation and announce its number on :data:`CONFIG_EPOCH_CHANNEL`.

        The announcement carries the number itself and is published after the mutation's keyspace events, so a
        subscriber that has handled it has handled every change up to that epoch (reading the key back instead
        could report a later epoch whose events are still queued).
        """
        epoch = int(await self.db(METADATA_DB).incr(CONFIG_EPOCH_KEY))
        await self.db(METADATA_DB).publish(CONFIG_EPOCH_CHANNEL, str(epoch))
        return epoch

    async def get_epoch(self) -> int:
        raw = await self.db(METADATA_DB).get(CONFIG_EPOCH_KEY)
        return int(raw) if raw is not None else 0

    # -- selection state -----------------------------------------------------------------------------

    async def set_selection_state(self, app: str, default_output: str) -> None:
        import json

        await self.db(STATE_DB).set(f"{app}:0:0", json.dumps({"y_hat": default_output}))
