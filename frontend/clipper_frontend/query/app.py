"""The query frontend: ``POST /<app>/predict``, ``POST /<app>/update``, ``GET /metrics``, ``GET /healthz``.

Run it with ``python -m clipper_frontend.query --port 1337 --rpc-port 7000 --redis-ip 127.0.0.1 --redis-port 6379``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import orjson
import tornado.httpserver
import tornado.web

from clipper_core.container_manager import DEFAULT_CACHE_SIZE
from clipper_core.input_types import InputTypeRegistry
from clipper_core.registry import PluginHost
from clipper_frontend._serve import connect_redis, run, setup_logging
from clipper_frontend.query.engine import Engine
from clipper_frontend.query.metrics import MetricsRegistry
from clipper_frontend.query.predict import QueryProcessor
from clipper_frontend.query.rpc_server import RPCServer
from clipper_frontend.query.state import ClusterView

logger = logging.getLogger(__name__)


class _Base(tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(orjson.dumps({"error": self._reason, "cause": self._reason}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return
        super().log_exception(typ, value, tb)


class PredictHandler(_Base):
    def initialize(self, processor: QueryProcessor) -> None:
        self.processor = processor

    async def post(self, app: str) -> None:
        try:
            status, body = await self.processor.predict(app, self.request.body)
        except Exception:
            logger.exception("unexpected error while predicting for %s", app)
            status, body = 500, orjson.dumps({"error": "Internal error", "cause": "An unexpected error occurred!"})
        self.set_status(status)
        self.finish(body)


class UpdateHandler(_Base):
    def initialize(self, processor: QueryProcessor) -> None:
        self.processor = processor

    def post(self, app: str) -> None:
        status, body, is_json = self.processor.update(app, self.request.body)
        self.set_status(status)
        if not is_json:
            self.set_header("Content-Type", "text/plain")
        self.finish(body)


def render_metrics(metrics: MetricsRegistry) -> bytes:
    return orjson.dumps(metrics.render())


def render_health(view: ClusterView, rpc: RPCServer | None, engine: Engine) -> bytes:
    return orjson.dumps(
        {
            "status": "ok",
            "apps": len(view.apps),
            "replicas": len(rpc.replicas) if rpc is not None else 0,
            "config_epoch": view.epoch,
            "models": {f"{n}:{v}": q.describe() for (n, v), q in engine.queues.items()},
        }
    )


class MetricsHandler(_Base):
    def initialize(self, metrics: MetricsRegistry) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.finish(render_metrics(self.metrics))


class HealthHandler(_Base):
    def initialize(self, view: ClusterView, rpc: RPCServer | None, engine: Engine) -> None:
        self.view = view
        self.rpc = rpc
        self.engine = engine

    def get(self) -> None:
        self.finish(render_health(self.view, self.rpc, self.engine))


class NotFoundHandler(_Base):
    def prepare(self) -> None:
        self.set_status(404)
        self.finish(
            orjson.dumps({"error": "Not found", "cause": f"No route for {self.request.method} {self.request.path}"})
        )


def make_query_app(
    processor: QueryProcessor, metrics: MetricsRegistry, view: ClusterView, rpc: RPCServer | None = None
) -> tornado.web.Application:
    deps = {"processor": processor}
    return tornado.web.Application(
        [
            (r"/metrics", MetricsHandler, {"metrics": metrics}),
            (r"/healthz", HealthHandler, {"view": view, "rpc": rpc, "engine": processor.engine}),
            (r"/([^/]+)/predict/?", PredictHandler, deps),
            (r"/([^/]+)/update/?", UpdateHandler, deps),
        ],
        default_handler_class=NotFoundHandler,
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    if status >= 500:
        logger.error("%d %s %.1fms", status, handler._request_summary(), 1000 * handler.request.request_time())
    elif status >= 400:
        logger.debug("%d %s", status, handler._request_summary())  # a bad client must not flood the log


async def serve(args: argparse.Namespace, stop: asyncio.Event, input_types: InputTypeRegistry | None = None) -> None:
    input_types = input_types or PluginHost().input_types()
    store = await connect_redis(args.redis_ip, args.redis_port, stop)
    metrics = MetricsRegistry()
    engine = Engine(metrics, cache_size=args.cache_size, max_in_flight=args.max_in_flight)
    view = ClusterView(store, input_types)
    view.on_model_removed.append(engine.remove_model)
    view.on_model_changed.append(lambda info: engine.set_batch_size(info.name, info.version, info.batch_size))
    await view.start()
    rpc = RPCServer(engine, store, view, input_types, args.host, args.rpc_port, args.activity_timeout)
    await rpc.start()
    processor = QueryProcessor(view, engine, metrics)
    view.on_app_removed.append(processor.forget_app)
    engine.is_registered = lambda name, version: (name, version) in view.models
    if args.http_server == "fast":
        from clipper_frontend.query.fast_http import Routes, start_server

        routes = Routes(
            processor, lambda: render_metrics(metrics), lambda: render_health(view, rpc, engine), args.timeout_content
        )
        server: Any = await start_server(routes, args.host, args.port)
    else:
        app = make_query_app(processor, metrics, view, rpc)
        server = tornado.httpserver.HTTPServer(app, idle_connection_timeout=args.timeout_content)
        server.listen(args.port, address=args.host)
    logger.info("query frontend (%s HTTP server) listening on http://%s:%d", args.http_server, args.host, args.port)

    async def tick() -> None:
        while True:
            await asyncio.sleep(5)
            metrics.tick()

    ticker = asyncio.get_running_loop().create_task(tick())
    await stop.wait()
    logger.info("query frontend shutting down")
    ticker.cancel()
    server.close() if args.http_server == "fast" else server.stop()
    await rpc.stop()
    await view.stop()
    await store.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="clipper-query-frontend", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to bind REST and RPC (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=1337, help="REST port (default 1337)")
    p.add_argument("--rpc-port", "--rpc_service_port", dest="rpc_port", type=int, default=7000)
    p.add_argument("--redis-ip", "--redis_ip", dest="redis_ip", default="127.0.0.1")
    p.add_argument("--redis-port", "--redis_port", dest="redis_port", type=int, default=6379)
    p.add_argument(
        "--cache-size", "--prediction_cache_size", dest="cache_size", type=int, default=DEFAULT_CACHE_SIZE,
        help="prediction cache size in bytes; 0 disables the cache",
    )
    p.add_argument("--max-in-flight", type=int, default=2, help="batches in flight per replica (default 2)")
    p.add_argument("--activity-timeout", type=float, default=30.0, help="seconds of silence before a replica is dropped")
    p.add_argument("--timeout-content", "--timeout_content", dest="timeout_content", type=float, default=300.0)
    p.add_argument("--thread_pool_size", "--timeout_request", dest="_ignored", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--http-server", choices=("fast", "tornado"), default=_default_http_server(),
        help="REST server: 'fast' (asyncio + httptools, the default when httptools is installed) or 'tornado'",
    )
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def _default_http_server() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "tornado"
    return "fast"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.log_level)
    run(lambda stop: serve(args, stop))


if __name__ == "__main__":
    main()
