"""Process plumbing shared by both frontends: logging, the event loop, Redis start-up retries, signals."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from clipper_core.config_store import ConfigStore

logger = logging.getLogger(__name__)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop_event)`` on uvloop when installed; SIGTERM/SIGINT set the stop event."""

    async def runner() -> None:
        # Everything allocated at start-up lives for the whole process: keep it out of the collector's way, and
        # collect young objects less often (request-path objects are short-lived and acyclic).
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


async def connect_redis(host: str, port: int, stop: asyncio.Event | None = None) -> ConfigStore:
    """Retry every second until Redis answers, as the original frontends do."""
    store = ConfigStore(host, port)
    warned = False
    while True:
        try:
            await store.ping()
            return store
        except Exception as exc:
            if not warned:
                logger.warning("waiting for Redis at %s:%d (%s)", host, port, exc)
                warned = True
            if stop is not None and stop.is_set():
                raise
            await asyncio.sleep(1)
