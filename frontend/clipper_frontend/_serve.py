"""Process plumbing shared by both frontends: logging, the event loop, Redis start-up retries, signals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from clipper_core.config_store import ConfigStore
from clipper_core.secrets import ENV_REDIS_PASSWORD, env_secret

logger = logging.getLogger(__name__)

_RETRY_INTERVAL = 1.0


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,  # under ``clipper query-frontend`` the command has configured logging already
    )


def run(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop_event)`` on uvloop when installed; SIGTERM/SIGINT set the stop event."""

    async def runner() -> None:
        # Everything allocated at start-up lives for the whole process: keep it out of the collector's way. The
        # request path creates no reference cycles and keeps no tracked object per query once it is answered (see
        # docs/performance.md), so young objects rarely survive: a high first threshold means no collection at all
        # under steady load, where a low one promoted in-flight requests and triggered full collections that walk
        # the whole prediction cache (pauses of 50-120 ms).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        import uvloop
    except ImportError:
        asyncio.run(runner())
    else:
        uvloop.run(runner())


def connection_limit(requested: int) -> int:
    """``requested``, kept below the open-file limit so that a server can always accept (and refuse) a connection."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return requested
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, soft - 128))


async def _probe(host: str, port: int, timeout: float, password: str | None = None) -> None:
    """One PING on a throw-away connection without redis-py's retries and backoff (which make a refused attempt
    take ~4 s), so attempts really come once per interval."""
    probe = aioredis.Redis(
        host=host,
        port=port,
        password=password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,  # a Redis that accepts but never answers (stopped, half-open) must not hang us
        retry=Retry(NoBackoff(), 0),
    )
    try:
        await probe.ping()
    finally:
        await probe.aclose()


async def connect_redis(
    host: str, port: int, stop: asyncio.Event | None = None, password: str | None = None
) -> ConfigStore:
    """Retry every second until Redis answers, as the original frontends do.

    ``password`` defaults to ``$CLIPPER_REDIS_PASSWORD`` (the cluster's Redis password, never a command-line flag).

    The first failure (and any failure with a different cause) is logged at WARNING, repeats at DEBUG. When ``stop``
    is set while waiting, the last connection error is raised.
    """
    password = password or env_secret(ENV_REDIS_PASSWORD)
    store = ConfigStore(host, port, password)
    last: str | None = None
    while True:
        try:
            await _probe(host, port, _RETRY_INTERVAL, password)
            await store.ping()
            return store
        except Exception as exc:  # noqa: BLE001 - anything but an answer means "not yet"
            cause = str(exc)
            level = logging.DEBUG if cause == last else logging.WARNING
            last = cause
            logger.log(level, "failed to connect to Redis at %s:%d (%s). Retrying in 1 second...", host, port, cause)
            if stop is None:
                await asyncio.sleep(_RETRY_INTERVAL)
                continue
            if not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), _RETRY_INTERVAL)
            if stop.is_set():
                await store.close()
                raise
