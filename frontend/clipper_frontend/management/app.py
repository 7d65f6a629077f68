"""The management frontend: the original's ``/admin/*`` REST API (reference §2) as a Tornado application.

Run it with::

    python -m clipper_frontend.management --host 127.0.0.1 --port 1338 --redis-ip 127.0.0.1 --redis-port 6379

Handlers are thin: :class:`~clipper_frontend.management.ops.ManagementOps` does the validation and the Redis work.
Every response is labelled ``application/json`` as the original's; success sentences and business errors are plain
text, getters return JSON. Unknown paths get a 404 with ``{"error": "Not found", "cause": ...}`` (the original
dropped the connection).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import orjson
import tornado.web
from redis.exceptions import RedisError

from clipper_core.config_store import EPOCH_HEADER, ConfigStore
from clipper_core.errors import ClipperException
from clipper_core.input_types import builtin_input_types
from clipper_core.registry import PluginHost
from clipper_core.secrets import ENV_MANAGEMENT_TOKEN, bearer_matches, env_secret
from clipper_frontend._serve import connect_redis, run, setup_logging
from clipper_frontend.management.ops import ManagementOps
from clipper_frontend.settings import ManagementSettings

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

    def initialize(self, ops: ManagementOps, token: str | None = None) -> None:
        self.ops = ops
        self.token = token

    def prepare(self) -> None:
        if self.token is not None and not bearer_matches(self.request.headers.get("Authorization"), self.token):
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Bearer realm="clipper-management"')
            cause = f"{self.request.path} needs the header 'Authorization: Bearer <the cluster's management token>'"
            self.finish(orjson.dumps({"error": "Unauthorized", "cause": cause}))

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


def make_management_app(
    store: ConfigStore, input_types: Any, token: str | None = None, **settings: Any
) -> tornado.web.Application:
    """The management API over ``store``; ``input_types`` is an ``InputTypeRegistry``. With a ``token`` every
    ``/admin/<endpoint>`` request must carry ``Authorization: Bearer <token>`` (``/admin/ping`` stays open)."""
    ops = ManagementOps(store, input_types)
    exact = "|".join(e for e in ops.endpoints() if e not in _PREFIX_ROUTES)
    prefix = "|".join(_PREFIX_ROUTES)
    routes: list[Any] = [
        (r"/admin/ping", PingHandler),
        (rf"/admin/({exact})", AdminHandler, {"ops": ops, "token": token}),
        (rf"/admin/({prefix}).*", AdminHandler, {"ops": ops, "token": token}),
    ]
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        compress_response=False,
        **settings,
    )


# -- process entry point ---------------------------------------------------------------------------


def load_input_types(host: PluginHost | None = None) -> Any:
    """The input types of every installed plugin; the built-ins alone if the plugin set cannot be loaded.

    The management frontend needs nothing but input types, so a broken unrelated plugin (a container manager, a
    deployer) is logged instead of keeping the cluster's admin API down.
    """
    try:
        return (host if host is not None else PluginHost()).input_types()
    except Exception:
        logger.exception("Loading plugins failed; only the built-in input types are available")
        return builtin_input_types()


async def serve(settings: ManagementSettings, stop: asyncio.Event, input_types: Any) -> None:
    """Run the management frontend until ``stop`` is set; ``input_types`` is an ``InputTypeRegistry``."""
    try:
        store = await connect_redis(settings.redis_ip, settings.redis_port, stop)
    except Exception:
        if stop.is_set():  # SIGTERM/SIGINT while still waiting for Redis
            logger.info("Management frontend stopped before Redis answered")
            return
        raise
    logger.info("Connected to Redis at %s:%d", settings.redis_ip, settings.redis_port)
    token = env_secret(ENV_MANAGEMENT_TOKEN)  # set by the container manager when management auth is on
    app = make_management_app(store, input_types, token)
    logger.info("Management API authentication: %s", "bearer token" if token else "off")
    server = app.listen(settings.port, address=settings.host, xheaders=False)
    logger.info("Management frontend listening on %s:%d", settings.host, settings.port)
    await stop.wait()
    logger.info("Management frontend shutting down")
    server.stop()
    await server.close_all_connections()
    await store.close()


def run_management_frontend(settings: ManagementSettings, host: PluginHost | None = None) -> int:
    """Run the management frontend in the foreground until SIGTERM/SIGINT; returns the exit status."""
    setup_logging(settings.log_level)
    input_types = load_input_types(host)
    run(lambda stop: serve(settings, stop, input_types))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_management_frontend(ManagementSettings.parse(argv))


if __name__ == "__main__":
    sys.exit(main())
