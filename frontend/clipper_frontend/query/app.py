"""The query frontend's wiring: ``POST /<app>/predict``, ``POST /<app>/update``, ``GET /metrics``, ``GET /healthz``.

Run it with ``python -m clipper_frontend.query --port 1337 --rpc-port 7000 --redis-ip 127.0.0.1 --redis-port 6379``
or ``clipper query-frontend`` (same options, :class:`~clipper_frontend.settings.QuerySettings`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import orjson

from clipper_core.input_types import InputTypeRegistry
from clipper_core.rpc.admission import Admission, admission_or_exit, required_token
from clipper_frontend._serve import connect_redis, connection_limit, run, setup_logging
from clipper_frontend.query.engine import Engine
from clipper_frontend.query.metrics import MetricsRegistry
from clipper_frontend.query.predict import QueryProcessor
from clipper_frontend.query.routes import QueryRoutes
from clipper_frontend.query.rpc_server import RPCServer
from clipper_frontend.query.state import ClusterView
from clipper_frontend.settings import QuerySettings

logger = logging.getLogger(__name__)


def render_metrics(metrics: MetricsRegistry) -> bytes:
    return orjson.dumps(metrics.render())


def render_health(view: ClusterView, rpc: RPCServer | None, engine: Engine) -> bytes:
    return orjson.dumps(
        {
            # "ok" while everything is fine; "degraded" while Redis is away (serving goes on from memory)
            "status": "ok" if view.redis_available else "degraded",
            "redis": "ok" if view.redis_available else "unavailable",
            "apps": len(view.apps),
            "replicas": len(rpc.replicas) if rpc is not None else 0,
            "config_epoch": view.epoch,
            "models": {f"{n}:{v}": q.describe() for (n, v), q in engine.queues.items()},
        }
    )


async def serve(
    settings: QuerySettings, stop: asyncio.Event, input_types: InputTypeRegistry, admission: Admission | None = None
) -> None:
    """Run the query frontend until ``stop`` is set."""
    store = await connect_redis(settings.redis_ip, settings.redis_port, stop)
    metrics = MetricsRegistry()
    engine = Engine(metrics, cache_size=settings.cache_size, max_in_flight=settings.max_in_flight)
    view = ClusterView(store, input_types)
    view.on_model_removed.append(engine.remove_model)
    view.on_model_changed.append(lambda info: engine.set_batch_size(info.name, info.version, info.batch_size))
    await view.start()
    admission = admission or Admission(required_token(settings.rpc_admission))
    rpc = RPCServer(
        engine, store, view, input_types, settings.host, settings.rpc_port, settings.activity_timeout, admission
    )
    await rpc.start()
    processor = QueryProcessor(view, engine, metrics, max_batch_items=settings.max_batch_items)
    view.on_app_removed.append(processor.forget_app)
    engine.is_registered = lambda name, version: (name, version) in view.models
    routes = QueryRoutes(processor, lambda: render_metrics(metrics), lambda: render_health(view, rpc, engine))
    server: Any
    if settings.http_server == "fast":
        from clipper_frontend.query import fast_http

        server = await fast_http.start_server(routes, settings)
    else:
        from clipper_frontend.query import tornado_http

        server = tornado_http.start_server(routes, settings, connection_limit(settings.max_connections))
    logger.info(
        "query frontend (%s HTTP server) listening on http://%s:%d", settings.http_server, settings.host, settings.port
    )

    async def tick() -> None:
        while True:
            await asyncio.sleep(5)
            metrics.tick()

    ticker = asyncio.get_running_loop().create_task(tick())
    await stop.wait()
    logger.info("query frontend shutting down")
    ticker.cancel()
    server.close() if settings.http_server == "fast" else server.stop()
    await rpc.stop()
    await view.stop()
    await store.close()


def run_query_frontend(settings: QuerySettings, input_types: InputTypeRegistry) -> None:
    """Run the query frontend in the foreground until SIGTERM/SIGINT."""
    setup_logging(settings.log_level)
    admission = admission_or_exit(settings.rpc_admission)  # who may register replicas (docs/security.md)
    run(lambda stop: serve(settings, stop, input_types, admission))


def main(argv: Sequence[str] | None = None) -> None:
    from clipper_core.registry import PluginHost

    settings = QuerySettings.parse(argv)
    run_query_frontend(settings, PluginHost().input_types())


if __name__ == "__main__":
    main()
