"""``--http-server tornado``: the query frontend's REST API as a Tornado application over the shared route table.

One handler answers every path and method through :meth:`~clipper_frontend.query.routes.QueryRoutes.dispatch`,
so the answers are those of the ``fast`` server. The limits (docs/architecture.md, "Limits") are enforced as far as
Tornado allows:

- ``--max-connections``: a new connection beyond it gets the 503 answer and is closed;
- ``--header-timeout``: Tornado has one deadline for "waiting for and reading a request's headers", so it also bounds
  how long an idle keep-alive connection stays open (the smaller of it and ``--timeout-content``); a connection past
  it is closed without an answer;
- ``--body-timeout``: a deadline from the end of the headers; closed without an answer;
- ``--max-body-bytes`` and ``--max-pending-bytes``: checked against ``Content-Length`` when the headers arrive (413
  and 503 with the JSON body, then the connection is closed); a chunked body over the size limit gets Tornado's bare
  400 and is not counted against the budget while it arrives;
- unread answers: Tornado reads a connection's next request only once the previous answer is written, so a client
  that does not read is not read from.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.web

from clipper_frontend.query.routes import JSON, QueryRoutes
from clipper_frontend.settings import QuerySettings

logger = logging.getLogger(__name__)

_UNLIMITED = 1 << 62


class _Budget:
    """Request-body bytes reserved at the headers and released when the request's connection answers or closes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.held: dict[object, int] = {}

    def reserve(self, key: object, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        self.held[key] = n
        return True

    def release(self, key: object) -> None:
        self.used -= self.held.pop(key, 0)


class QueryHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")  # type: ignore[assignment]

    def initialize(self, routes: QueryRoutes, budget: _Budget) -> None:
        self.routes = routes
        self.budget = budget

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")

    def compute_etag(self) -> None:
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(orjson.dumps({"error": self._reason, "cause": self._reason}))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, tornado.web.HTTPError):
            return
        super().log_exception(typ, value, tb)

    def on_finish(self) -> None:
        self.budget.release(self.request.connection)

    def on_connection_close(self) -> None:
        self.budget.release(self.request.connection)

    async def _answer(self, *_: str) -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[int, bytes, bytes]] = loop.create_future()

        def respond(status: int, payload: bytes, content_type: bytes = JSON) -> None:
            if not answer.done():
                answer.set_result((status, payload, content_type))

        request = self.request
        self.routes.dispatch(request.method.encode("latin-1"), request.uri.encode("latin-1"), request.body, respond)
        status, payload, content_type = await answer
        self.set_status(status)
        if content_type != JSON:
            self.set_header("Content-Type", content_type.decode("latin-1"))
        self.finish(payload)

    get = head = post = delete = patch = put = options = _answer


class _Refusal(tornado.httputil.HTTPMessageDelegate):
    """Answers a request refused at its headers and discards its body while the connection closes."""

    def data_received(self, chunk: bytes) -> None:
        return None


class _LimitedDelegate(tornado.httputil.HTTPMessageDelegate):
    """The application's delegate for one request, behind the body-size and pending-bytes checks."""

    def __init__(
        self, inner: tornado.httputil.HTTPMessageDelegate, conn: Any, settings: QuerySettings, budget: _Budget
    ) -> None:
        self.inner = inner
        self.conn = conn
        self.settings = settings
        self.budget = budget

    def headers_received(self, start_line: Any, headers: tornado.httputil.HTTPHeaders) -> Any:
        try:
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            length = 0  # Tornado answers it with a 400 itself
        if length > self.settings.max_body_bytes:
            limit = self.settings.max_body_bytes
            return self._refuse(
                413,
                "Payload Too Large",
                "Payload too large",
                f"request bodies are limited to {limit} bytes (--max-body-bytes)",
            )
        if length > 0 and not self.budget.reserve(self.conn, length):
            return self._refuse(
                503,
                "Service Unavailable",
                "Service unavailable",
                f"the frontend holds its limit of {self.budget.limit} bytes of request bodies "
                "(--max-pending-bytes); retry later",
            )
        return self.inner.headers_received(start_line, headers)

    def _refuse(self, status: int, reason: str, error: str, cause: str) -> None:
        payload = orjson.dumps({"error": error, "cause": cause})
        self.inner = _Refusal()
        # Tornado reads the body after this method returns; our answer is the only one, and it closes the connection.
        self.conn.set_max_body_size(_UNLIMITED)
        start = tornado.httputil.ResponseStartLine("HTTP/1.1", status, reason)
        self.conn.write_headers(
            start,
            tornado.httputil.HTTPHeaders(
                {"Content-Type": "application/json", "Content-Length": str(len(payload)), "Connection": "close"}
            ),
            payload,
        )
        self.conn.finish()

    def data_received(self, chunk: bytes) -> Any:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.budget.release(self.conn)
        self.inner.on_connection_close()


class _LimitedApplication(tornado.httputil.HTTPServerConnectionDelegate):
    def __init__(self, app: tornado.web.Application, settings: QuerySettings, budget: _Budget) -> None:
        self.app = app
        self.settings = settings
        self.budget = budget

    def start_request(self, server_conn: object, request_conn: tornado.httputil.HTTPConnection) -> Any:
        return _LimitedDelegate(
            self.app.start_request(server_conn, request_conn), request_conn, self.settings, self.budget
        )

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


class _Server(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with a connection limit."""

    def initialize(self, *args: Any, max_connections: int, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        self.refusal = _refusal_bytes(max_connections)

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        if len(self._connections) >= self.max_connections:
            stream.write(self.refusal).add_done_callback(lambda _: stream.close())
            return
        super().handle_stream(stream, address)


def _refusal_bytes(max_connections: int) -> bytes:
    payload = orjson.dumps(
        {
            "error": "Service unavailable",
            "cause": f"the frontend holds its limit of {max_connections} connections (--max-connections); retry later",
        }
    )
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n%s" % (len(payload), payload)
    )


def make_query_app(routes: QueryRoutes, budget: _Budget | None = None) -> tornado.web.Application:
    return tornado.web.Application(
        [(r".*", QueryHandler, {"routes": routes, "budget": budget or _Budget(_UNLIMITED)})],
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    if status >= 500:
        logger.error("%d %s %.1fms", status, handler._request_summary(), 1000 * handler.request.request_time())
    elif status >= 400:
        logger.debug("%d %s", status, handler._request_summary())  # a bad client must not flood the log


def start_server(routes: QueryRoutes, settings: QuerySettings, max_connections: int) -> tornado.httpserver.HTTPServer:
    budget = _Budget(settings.max_pending_bytes)
    app = make_query_app(routes, budget)
    server = _Server(
        _LimitedApplication(app, settings, budget),
        max_connections=max_connections,
        idle_connection_timeout=min(settings.timeout_content, settings.header_timeout),
        body_timeout=settings.body_timeout,
        max_body_size=settings.max_body_bytes,
    )
    server.listen(settings.port, address=settings.host)
    return server
