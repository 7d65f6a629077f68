"""A minimal HTTP/1.1 server for the query frontend's REST API, on asyncio protocols and ``httptools``.

Tornado's general-purpose HTTP stack was about 70 % of the query frontend's CPU time under load (see
docs/performance.md). This server speaks exactly what the REST API needs — keep-alive, pipelining answered in
order, Content-Length bodies (and chunked bodies, which httptools decodes) — and routes straight to the
callback-based :class:`~clipper_frontend.predict.QueryProcessor` with no task, handler object or header
dictionary per request. ``--http-server tornado`` selects the Tornado application instead (same routes, same
answers).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import httptools
import orjson

from clipper_frontend.predict import QueryProcessor

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 413: b"Payload Too Large",
            500: b"Internal Server Error"}


def _head(status: int, length: int, content_type: bytes, keep_alive: bool) -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        status,
        _REASONS.get(status, b"Unknown"),
        content_type,
        length,
        b"" if keep_alive else b"Connection: close\r\n",
    )


def _json_error(status: int, error: str, cause: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": error, "cause": cause})


class Routes:
    """What the server answers besides predictions: ``GET /metrics``, ``GET /healthz``; plugged in by query.py."""

    def __init__(self, processor: QueryProcessor, metrics: Callable[[], bytes], health: Callable[[], bytes]) -> None:
        self.processor = processor
        self.metrics = metrics
        self.health = health


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("routes", "transport", "parser", "url", "body", "queue", "busy", "closing", "too_big")

    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.queue: deque[tuple[bytes, bytes, bytes, bool]] = deque()
        self.busy = False
        self.closing = False
        self.too_big = False

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_and_close(*_json_error(400, "Bad request", "protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            self._reply_and_close(*_json_error(400, "Bad request", f"malformed HTTP request: {exc}"))

    # -- httptools callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []
        self.too_big = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        if not self.too_big:
            self.body.append(body)
            if sum(map(len, self.body)) > MAX_BODY_BYTES:
                self.too_big = True
                self.body = []

    def on_message_complete(self) -> None:
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        if self.too_big:
            self._reply_and_close(*_json_error(413, "Payload too large", f"request bodies are limited to {MAX_BODY_BYTES} bytes"))
            return
        self.queue.append((self.parser.get_method(), self.url, body, self.parser.should_keep_alive()))
        if not self.busy:
            self._next()

    # -- dispatch ----------------------------------------------------------------------------------

    def _next(self) -> None:
        # Pipelined requests are answered in order: one at a time per connection.
        while self.queue and not self.busy and not self.closing:
            method, url, body, keep_alive = self.queue.popleft()
            self.busy = True
            self._dispatch(method, url, body, keep_alive)

    def _dispatch(self, method: bytes, url: bytes, body: bytes, keep_alive: bool) -> None:
        path = url.split(b"?", 1)[0]
        if path.endswith(b"/"):
            path = path[:-1]
        parts = path.split(b"/")

        def respond(status: int, payload: bytes, content_type: bytes = b"application/json") -> None:
            self._write(status, payload, content_type, keep_alive)

        try:
            if len(parts) == 3 and parts[0] == b"":
                action = parts[2]
                if action == b"predict" or action == b"update":
                    if method != b"POST":
                        respond(*_json_error(405, "Method not allowed", f"{path.decode()} accepts POST only"))
                        return
                    app = parts[1].decode("utf-8", "replace")
                    if action == b"predict":
                        self.routes.processor.start_predict(app, body, respond)
                    else:
                        status, payload, is_json = self.routes.processor.update(app, body)
                        respond(status, payload, b"application/json" if is_json else b"text/plain")
                    return
            if path == b"/metrics" and method == b"GET":
                respond(200, self.routes.metrics())
                return
            if path == b"/healthz" and method == b"GET":
                respond(200, self.routes.health())
                return
            respond(*_json_error(404, "Not found", f"No route for {method.decode()} {url.decode('utf-8', 'replace')}"))
        except Exception:
            logger.exception("unexpected error answering %s %s", method, url)
            respond(*_json_error(500, "Internal error", "An unexpected error occurred!"))

    def _write(self, status: int, payload: bytes, content_type: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        transport.write(_head(status, len(payload), content_type, keep_alive) + payload)
        if not keep_alive:
            self.closing = True
            transport.close()
            return
        self.busy = False
        if self.queue:  # pipelined requests waiting behind this one
            asyncio.get_running_loop().call_soon(self._next)

    def _reply_and_close(self, status: int, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.closing:
            transport.write(_head(status, len(payload), b"application/json", False) + payload)
            self.closing = True
            transport.close()


async def start_server(routes: Routes, host: str, port: int) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(routes), host, port, reuse_address=True, backlog=1024)
