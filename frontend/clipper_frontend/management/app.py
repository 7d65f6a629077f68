"""The management frontend: the original's ``/admin/*`` REST API (reference §2) as a Tornado application.

Run it with::

    python -m clipper_frontend.management --host 127.0.0.1 --port 1338 --redis-ip 127.0.0.1 --redis-port 6379

Handlers are thin: :class:`~clipper_frontend.management.ops.ManagementOps` does the validation and the Redis work.
Every response is labelled ``application/json`` as the original's; success sentences and business errors are plain
text, getters return JSON. Unknown paths get a 404 with ``{"error": "Not found", "cause": ...}`` (the original
dropped the connection).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import tornado.web
from redis.exceptions import RedisError

from clipper_core.config_store import EPOCH_HEADER, ConfigStore
from clipper_core.container_manager import CLIPPER_MANAGEMENT_PORT, REDIS_PORT
from clipper_core.errors import ClipperException
from clipper_core.input_types import builtin_input_types
from clipper_core.registry import PluginHost
from clipper_frontend._serve import connect_redis, run, setup_logging
from clipper_frontend.management.ops import ManagementOps

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"
# get_linked_models and delete_versioned_model are prefix matches in the original (their regexes lack the "$").
_PREFIX_ROUTES = ("get_linked_models", "delete_versioned_model")


class _JsonErrorsMixin(tornado.web.RequestHandler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)

    def compute_etag(self) -> None:
        return None


    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 404:
            cause = f"No management endpoint at {self.request.method} {self.request.path}"
            self.finish(orjson.dumps({"error": "Not found", "cause": cause}))
        elif status_code == 405:
            cause = f"{self.request.path} does not accept {self.request.method}"
            self.finish(orjson.dumps({"error": "Method not allowed", "cause": cause}))
        elif isinstance(exc, RedisError):
            self.set_status(503)
            self.finish(orjson.dumps({"error": "Redis unavailable", "cause": str(exc)}))
        else:
            self.finish(orjson.dumps({"error": self._reason, "cause": str(exc) if exc else self._reason}))


class AdminHandler(_JsonErrorsMixin):
    """``POST /admin/<endpoint>`` with a JSON body."""

    def initialize(self, ops: ManagementOps) -> None:
        self.ops = ops

    async def post(self, endpoint: str) -> None:
        try:
            result, epoch = await self.ops.call(endpoint, self.request.body)
        except ClipperException as e:
            logger.info("%s refused: %s", endpoint, e.msg)
            self.set_status(e.status_code)
            self.finish(e.msg.encode("utf-8"))
            return
        if epoch is not None:
            self.set_header(EPOCH_HEADER, str(epoch))
        if isinstance(result, str):
            self.finish(result.encode("utf-8"))
        else:
            self.finish(orjson.dumps(result))


class PingHandler(_JsonErrorsMixin):
    """``GET /admin/ping`` -> ``PONG`` (the health check ``start_clipper`` polls)."""

    def get(self) -> None:
        self.finish(b"PONG")


class NotFoundHandler(_JsonErrorsMixin):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


def make_management_app(store: ConfigStore, input_types: Any, **settings: Any) -> tornado.web.Application:
    """The management API over ``store``; ``input_types`` is an ``InputTypeRegistry``."""
    ops = ManagementOps(store, input_types)
    exact = "|".join(e for e in ops.endpoints() if e not in _PREFIX_ROUTES)
    prefix = "|".join(_PREFIX_ROUTES)
    routes: list[Any] = [
        (r"/admin/ping", PingHandler),
        (rf"/admin/({exact})", AdminHandler, {"ops": ops}),
        (rf"/admin/({prefix}).*", AdminHandler, {"ops": ops}),
    ]
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        compress_response=False,
        **settings,
    )


# -- process entry point ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m clipper_frontend.management", description="Clipper management frontend (REST, port 1338)"
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0, as the original)")
    parser.add_argument("--port", type=int, default=CLIPPER_MANAGEMENT_PORT, help="port to bind (default 1338)")
    parser.add_argument("--redis-ip", "--redis_ip", dest="redis_ip", default="localhost", help="Redis host")
    parser.add_argument("--redis-port", "--redis_port", dest="redis_port", type=int, default=REDIS_PORT)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser.parse_args(argv)


def load_input_types() -> Any:
    """The input types of every installed plugin; the built-ins alone if the plugin set cannot be loaded.

    The management frontend needs nothing but input types, so a broken unrelated plugin (a container manager, a
    deployer) is logged instead of keeping the cluster's admin API down.
    """
    try:
        return PluginHost().input_types()
    except Exception:
        logger.exception("Loading plugins failed; only the built-in input types are available")
        return builtin_input_types()


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    try:
        store = await connect_redis(args.redis_ip, args.redis_port, stop)
    except Exception:
        if stop.is_set():  # SIGTERM/SIGINT while still waiting for Redis
            logger.info("Management frontend stopped before Redis answered")
            return
        raise
    logger.info("Connected to Redis at %s:%d", args.redis_ip, args.redis_port)
    app = make_management_app(store, load_input_types())
    server = app.listen(args.port, address=args.host, xheaders=False)
    logger.info("Management frontend listening on %s:%d", args.host, args.port)
    await stop.wait()
    logger.info("Management frontend shutting down")
    server.stop()
    await server.close_all_connections()
    await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    run(lambda stop: serve(args, stop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
