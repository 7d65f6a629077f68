"""The query frontend's in-memory view of the cluster state, kept current by Redis keyspace notifications.

Nothing on the request path reads Redis: handlers read :class:`ClusterView` attributes only. The view also watches
whether Redis answers (:attr:`ClusterView.redis_available`, reported by ``/healthz``) and tells its
``on_redis_restored`` callbacks when Redis is back after an outage or a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from clipper_core.config_store import (
    APP_MODEL_LINKS_DB,
    APPLICATION_DB,
    CONFIG_EPOCH_CHANNEL,
    CURRENT_VERSION_PREFIX,
    METADATA_DB,
    MODEL_DB,
    ConfigStore,
)
from clipper_core.input_types import InputType, InputTypeRegistry

logger = logging.getLogger(__name__)

PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 0.5


def parse_output(text: str) -> Any:
    """The original embeds an output string that parses as JSON as that JSON value, else as a string."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@dataclass
class AppInfo:
    name: str
    input_type: InputType
    default_output: str
    default_value: Any
    slo_micros: int
    policy: str
    linked_models: list[str] = field(default_factory=list)

    @property
    def slo_seconds(self) -> float:
        return self.slo_micros / 1e6


@dataclass
class ModelInfo:
    name: str
    version: str
    input_type: str
    batch_size: int
    container_name: str


class ClusterView:
    """Applications, links, models and current versions, loaded at start and updated from keyspace events."""

    def __init__(self, store: ConfigStore, input_types: InputTypeRegistry) -> None:
        self.store = store
        self.input_types = input_types
        self.apps: dict[str, AppInfo] = {}
        self.links: dict[str, list[str]] = {}
        self.models: dict[tuple[str, str], ModelInfo] = {}
        self.current_versions: dict[str, str] = {}
        #: the management epoch whose changes this view has applied (notifications arrive in order)
        self.epoch = 0
        self.on_model_removed: list[Callable[[str, str], None]] = []
        self.on_model_changed: list[Callable[[ModelInfo], None]] = []
        self.on_app_removed: list[Callable[[str], None]] = []
        #: called after Redis came back (and the view was reloaded): a restarted Redis may have lost or kept records
        self.on_redis_restored: list[Callable[[], None]] = []
        #: whether Redis answered the last probe (``/healthz`` reports it)
        self.redis_available = True
        self._task: asyncio.Task[None] | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._run_id: str | None = None  # the Redis server's run_id: a new one means Redis restarted
        self._pubsub: Any = None

    async def start(self) -> None:
        """Subscribe first, then load everything, so no change between the two is missed."""
        await self.store.enable_notifications()
        self._pubsub = self.store.pubsub()
        await self._pubsub.psubscribe(
            *(f"__keyspace@{db}__:*" for db in (MODEL_DB, APPLICATION_DB, METADATA_DB, APP_MODEL_LINKS_DB))
        )
        await self._pubsub.subscribe(CONFIG_EPOCH_CHANNEL)
        await self.reload_all()
        try:
            self._run_id = await self._server_run_id()
        except Exception as exc:  # noqa: BLE001 - the watcher below tells
            logger.warning("Redis at %s:%d did not answer INFO (%s)", *self._addr, exc)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._listen())
        self._health_task = loop.create_task(self._watch_redis())

    async def stop(self) -> None:
        for task in (self._task, self._health_task):
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._pubsub is not None:
            await self._pubsub.aclose()

    async def reload_all(self) -> None:
        """Re-read everything; entries that disappeared from Redis (e.g. after a Redis restart) are dropped."""
        epoch = await self.store.get_epoch()
        models = await self.store.list_models()
        for name, version in set(self.models) - set(models):
            del self.models[(name, version)]
            for callback in self.on_model_removed:
                callback(name, version)
        for name, version in models:
            await self._reload_model(name, version)
        self.current_versions = await self.store.all_current_versions()
        apps = await self.store.list_applications()
        for gone in set(self.apps) - set(apps):
            del self.apps[gone]
            self.links.pop(gone, None)
            for callback in self.on_app_removed:
                callback(gone)
        for app in apps:
            await self._reload_links(app)
            await self._reload_app(app)
        self.epoch = max(self.epoch, epoch)

    async def _listen(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    kind = message.get("type")
                    if kind == "message":  # the epoch announcement: everything before it has been applied
                        self.epoch = max(self.epoch, int(message["data"]))
                        continue
                    if kind != "pmessage":
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    prefix, _, key = channel.partition("__:")
                    db = int(prefix.rsplit("@", 1)[1])
                    await self._on_event(db, key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.redis_available = False
                logger.warning("lost the Redis notification stream (%s); reloading state in 1 s", exc)
                await asyncio.sleep(1)
                try:
                    await self._restored()
                except Exception as exc2:  # noqa: BLE001 - still away: the stream reconnects on the next read
                    logger.warning("state reload failed (%s); Redis at %s:%d is unavailable", exc2, *self._addr)

    @property
    def _addr(self) -> tuple[str, int]:
        return (self.store.host, self.store.port)

    async def _server_run_id(self) -> str:
        """The Redis server's ``run_id``, asked on a throw-away connection without redis-py's retries and backoff."""
        probe = aioredis.Redis(
            host=self.store.host,
            port=self.store.port,
            password=self.store.password,
            socket_connect_timeout=PROBE_TIMEOUT,
            socket_timeout=PROBE_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return str((await probe.info("server")).get("run_id", ""))
        finally:
            await probe.aclose()

    async def _restored(self) -> None:
        """Redis answers again: re-enable notifications (a restarted Redis forgets CONFIG SET), reload, resync."""
        self._run_id = await self._server_run_id()
        await self.store.enable_notifications()
        await self.reload_all()
        if not self.redis_available:
            logger.info("Redis at %s:%d is available again", *self._addr)
        self.redis_available = True
        for callback in self.on_redis_restored:
            callback()

    async def _watch_redis(self) -> None:
        """Probe Redis every second (no retries, short timeout) so ``/healthz`` tells when it is away, and notice a
        restart (a new ``run_id``) even when it was too quick for a probe to fail."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                run_id = await self._server_run_id()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - anything but an answer means "away"
                if self.redis_available:
                    logger.warning("Redis at %s:%d is unavailable (%s)", *self._addr, exc)
                self.redis_available = False
                continue
            if run_id != self._run_id:
                logger.warning("Redis at %s:%d restarted", *self._addr)
                self.redis_available = False
            if not self.redis_available:
                try:
                    await self._restored()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - went away again: the next probe retries
                    logger.warning("state reload after a Redis outage failed (%s)", exc)

    async def _on_event(self, db: int, key: str) -> None:
        if db == APPLICATION_DB:
            await self._reload_app(key)
        elif db == APP_MODEL_LINKS_DB:
            await self._reload_links(key)
        elif db == METADATA_DB and key.startswith(CURRENT_VERSION_PREFIX):
            name = key[len(CURRENT_VERSION_PREFIX) :]
            version = await self.store.get_current_version(name)
            if version is None:
                self.current_versions.pop(name, None)
            else:
                self.current_versions[name] = version
        elif db == MODEL_DB:
            name, _, version = key.partition(":")
            await self._reload_model(name, version)

    async def _reload_app(self, name: str) -> None:
        raw = await self.store.get_application(name)
        if raw is None:
            if self.apps.pop(name, None) is not None:
                logger.info("application %s removed", name)
                for callback in self.on_app_removed:
                    callback(name)
            return
        try:
            input_type = self.input_types.parse(raw["input_type"])
        except Exception:
            logger.error("application %s has unknown input type %r; not serving it", name, raw.get("input_type"))
            self.apps.pop(name, None)
            return
        default = raw.get("default_output", "None")
        self.apps[name] = AppInfo(
            name=name,
            input_type=input_type,
            default_output=default,
            default_value=parse_output(default),
            slo_micros=int(raw.get("latency_slo_micros", "100000")),
            policy=raw.get("policy", "DefaultOutputSelectionPolicy"),
            linked_models=self.links.get(name, []),
        )

    async def _reload_links(self, app: str) -> None:
        links = await self.store.get_linked_models(app)
        self.links[app] = links
        info = self.apps.get(app)
        if info is not None:
            info.linked_models = links

    async def _reload_model(self, name: str, version: str) -> None:
        raw = await self.store.get_model(name, version)
        if raw is None or "valid" not in raw:
            if self.models.pop((name, version), None) is not None:
                logger.info("model %s:%s removed", name, version)
                for callback in self.on_model_removed:
                    callback(name, version)
            return
        info = ModelInfo(
            name=name,
            version=version,
            input_type=raw.get("input_type", ""),
            batch_size=int(raw.get("batch_size", "-1") or -1),
            container_name=raw.get("container_name", ""),
        )
        self.models[(name, version)] = info
        for callback in self.on_model_changed:
            callback(info)
