"""A minimal HTTP/1.1 server for the query frontend's REST API, on asyncio protocols and ``httptools``.

Tornado's general-purpose HTTP stack was about 70 % of the query frontend's CPU time under load (see
docs/performance.md). This server speaks exactly what the REST API needs — keep-alive, pipelining answered in
order, Content-Length bodies (and chunked bodies, which httptools decodes) — and routes straight to the
callback-based :class:`~clipper_frontend.query.predict.QueryProcessor` with no task, handler object or header
dictionary per request. ``--http-server tornado`` selects the Tornado application instead (same routes, same
answers).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from clipper_frontend.query.predict import QueryProcessor, error_response

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_URL_BYTES = 8192
MAX_PIPELINED = 32  # requests queued behind the one being answered before we stop reading
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 413: b"Payload Too Large",
            414: b"URI Too Long", 500: b"Internal Server Error"}


def _head(status: int, length: int, content_type: bytes, keep_alive: bool) -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        status,
        _REASONS.get(status, b"Unknown"),
        content_type,
        length,
        b"" if keep_alive else b"Connection: close\r\n",
    )


class Routes:
    """What the server answers besides predictions: ``GET /metrics``, ``GET /healthz``; plugged in by query.py."""

    def __init__(
        self,
        processor: QueryProcessor,
        metrics: Callable[[], bytes],
        health: Callable[[], bytes],
        idle_timeout: float = 300.0,
    ) -> None:
        self.processor = processor
        self.metrics = metrics
        self.health = health
        self.idle_timeout = idle_timeout


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "routes", "transport", "parser", "url", "body", "body_len", "queue", "busy", "closing", "too_big",
        "expect_continue", "idle", "last_activity", "paused", "loop", "keep_alive",
    )

    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.body_len = 0
        self.queue: deque[tuple[bytes, bytes, bytes, bool]] = deque()
        self.busy = False
        self.keep_alive = True  # of the request being answered (one at a time per connection)
        self.closing = False
        self.too_big = False
        self.expect_continue = False
        self.paused = False
        self.idle: asyncio.TimerHandle | None = None
        self.last_activity = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.last_activity = self.loop.time()
        self.idle = self.loop.call_later(self.routes.idle_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None
        self.parser = None  # type: ignore[assignment]  # it refers back to this protocol: no cycle left to collect
        if self.idle is not None:
            self.idle.cancel()

    def _check_idle(self) -> None:
        # One timer per connection, re-armed lazily: activity only stamps a time, it never touches the timer.
        if self.transport is None:
            return
        remaining = self.last_activity + self.routes.idle_timeout - self.loop.time()
        if remaining > 0 or self.busy:
            self.idle = self.loop.call_later(max(remaining, 1.0), self._check_idle)
            return
        self.closing = True
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_and_close(*error_response(400, "Bad request", "protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            self._reply_and_close(*error_response(400, "Bad request", f"malformed HTTP request: {exc}"))

    # -- httptools callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []
        self.body_len = 0
        self.too_big = False
        self.expect_continue = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self._reply_and_close(*error_response(414, "URI too long", f"request targets are limited to {MAX_URL_BYTES} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        # Clients such as curl wait (1 s) for this before sending a large body.
        if self.expect_continue and self.transport is not None and not self.closing:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.too_big:
            return
        self.body_len += len(body)
        if self.body_len > MAX_BODY_BYTES:
            self.too_big = True
            self.body = []
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        if self.too_big:
            self._reply_and_close(*error_response(413, "Payload too large", f"request bodies are limited to {MAX_BODY_BYTES} bytes"))
            return
        self.queue.append((self.parser.get_method(), self.url, body, self.parser.should_keep_alive()))
        if not self.busy:
            self._next()
        elif len(self.queue) >= MAX_PIPELINED and not self.paused and self.transport is not None:
            self.paused = True  # a client pipelining faster than we answer: stop reading until we catch up
            self.transport.pause_reading()

    # -- dispatch ----------------------------------------------------------------------------------

    def _next(self) -> None:
        # Pipelined requests are answered in order: one at a time per connection.
        while self.queue and not self.busy and not self.closing:
            method, url, body, keep_alive = self.queue.popleft()
            self.busy = True
            self._dispatch(method, url, body, keep_alive)
        if self.paused and len(self.queue) < MAX_PIPELINED // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _dispatch(self, method: bytes, url: bytes, body: bytes, keep_alive: bool) -> None:
        path = url.split(b"?", 1)[0]
        if path.endswith(b"/"):
            path = path[:-1]
        parts = path.split(b"/")
        self.keep_alive = keep_alive
        respond = self._respond  # a bound method, not a closure per request

        try:
            if len(parts) == 3 and parts[0] == b"":
                action = parts[2]
                if action == b"predict" or action == b"update":
                    if method != b"POST":
                        respond(*error_response(405, "Method not allowed", f"{path.decode()} accepts POST only"))
                        return
                    raw = parts[1]
                    app = (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8", "replace")
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
            respond(*error_response(404, "Not found", f"No route for {method.decode()} {url.decode('utf-8', 'replace')}"))
        except Exception:
            logger.exception("unexpected error answering %s %s", method, url)
            respond(*error_response(500, "Internal error", "An unexpected error occurred!"))

    def _respond(self, status: int, payload: bytes, content_type: bytes = b"application/json") -> None:
        self._write(status, payload, content_type, self.keep_alive)

    def _write(self, status: int, payload: bytes, content_type: bytes, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        self.last_activity = self.loop.time()
        transport.write(_head(status, len(payload), content_type, keep_alive) + payload)
        if not keep_alive:
            self.closing = True
            transport.close()
            return
        self.busy = False
        if self.queue:  # pipelined requests waiting behind this one
            self.loop.call_soon(self._next)

    def _reply_and_close(self, status: int, payload: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.closing:
            transport.write(_head(status, len(payload), b"application/json", False) + payload)
            self.closing = True
            transport.close()


async def start_server(routes: Routes, host: str, port: int) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: HttpProtocol(routes), host, port, reuse_address=True, backlog=1024)
