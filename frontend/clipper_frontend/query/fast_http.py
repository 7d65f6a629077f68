"""A minimal HTTP/1.1 server for the query frontend's REST API, on asyncio protocols and ``httptools``.

Tornado's general-purpose HTTP stack was about 70 % of the query frontend's CPU time under load (see
docs/performance.md). This server speaks exactly what the REST API needs — keep-alive, pipelining answered in
order, Content-Length bodies (and chunked bodies, which httptools decodes) — and routes through the shared
:class:`~clipper_frontend.query.routes.QueryRoutes` with no task, handler object or header dictionary per request.
``--http-server tornado`` selects the Tornado server instead (same routes, same answers).

What one client can hold is bounded (docs/architecture.md, "Limits"): open connections, the time to send headers and
body (deadlines that further bytes do not push back), body size, the request bytes held across all connections, and
unsent answers (a connection whose client does not read is not read from either). Errors found while reading a
request (malformed HTTP, an upgrade, a limit) are answered in order after the requests pipelined before it, and then
the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import httptools
import orjson

from clipper_frontend._serve import connection_limit
from clipper_frontend.query.routes import JSON, QueryRoutes
from clipper_frontend.settings import QuerySettings

logger = logging.getLogger(__name__)

MAX_URL_BYTES = 8192
MAX_PIPELINED = 32  # requests queued behind the one being answered before we stop reading
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Payload Too Large",
    414: b"URI Too Long",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


def _head(status: int, length: int, content_type: bytes, keep_alive: bool) -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        status,
        _REASONS.get(status, b"Unknown"),
        content_type,
        length,
        b"" if keep_alive else b"Connection: close\r\n",
    )


def _error(status: int, error: str, cause: str) -> bytes:
    """A complete ``Connection: close`` answer with the JSON error body."""
    payload = orjson.dumps({"error": error, "cause": cause})
    return _head(status, len(payload), JSON, False) + payload


class HttpServer:
    """What every connection shares: the routes, the limits, the open connections and the bytes they hold."""

    def __init__(self, routes: QueryRoutes, settings: QuerySettings, max_connections: int) -> None:
        self.routes = routes
        self.settings = settings
        self.max_connections = max_connections
        self.idle_timeout = settings.timeout_content
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.max_body = settings.max_body_bytes
        self.max_pending = settings.max_pending_bytes
        self.high_water = settings.write_buffer_high_water
        self.connections: set[HttpProtocol] = set()
        self.pending = 0  # request-body bytes held by all connections (reserved at the headers, freed at the answer)
        self.refused = _error(
            503,
            "Service unavailable",
            f"the frontend holds its limit of {max_connections} connections (--max-connections); retry later",
        )
        self.loop = asyncio.get_running_loop()
        # One sweep for all connections instead of a timer per connection or per request: deadlines are checked
        # against stamps the request path writes anyway.
        self.interval = max(0.05, min(1.0, self.header_timeout / 4, self.body_timeout / 4, self.idle_timeout / 4))
        self._sweeper: asyncio.TimerHandle | None = self.loop.call_later(self.interval, self._sweep)
        self._server: asyncio.AbstractServer | None = None

    async def listen(self, host: str, port: int) -> None:
        self._server = await self.loop.create_server(
            lambda: HttpProtocol(self), host, port, reuse_address=True, backlog=1024
        )

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._server is not None:
            self._server.close()

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.connections):
            conn.check_deadlines(now)
        self._sweeper = self.loop.call_later(self.interval, self._sweep)


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "server",
        "routes",
        "transport",
        "parser",
        "url",
        "body",
        "body_len",
        "queue",
        "busy",
        "closing",
        "broken",
        "expect_continue",
        "last_activity",
        "read_paused",
        "write_paused",
        "loop",
        "keep_alive",
        "request_start",
        "body_start",
        "content_length",
        "reserved",
        "answering",
        "started",
    )

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.routes = server.routes
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.body_len = 0
        # (method, target, body, keep_alive, bytes reserved); method None: an error answer (payload in ``target``).
        self.queue: deque[tuple[bytes | None, bytes, bytes, bool, int]] = deque()
        self.busy = False
        self.keep_alive = True  # of the request being answered (one at a time per connection)
        self.closing = False
        self.broken = False  # an error answer is queued: nothing more is read from this connection
        self.expect_continue = False
        self.read_paused = False
        self.write_paused = False
        self.last_activity = 0.0
        self.request_start = 0.0  # first byte of the request being received (0: none)
        self.started = False  # a byte of that request has arrived
        self.body_start = 0.0  # end of its headers (0: not there yet)
        self.content_length = -1
        self.reserved = 0  # bytes of the budget held by the request being received
        self.answering = 0  # ... and by the request being answered

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        if len(server.connections) >= server.max_connections:
            self.closing = self.broken = True
            transport.write(server.refused)  # type: ignore[attr-defined]
            transport.close()
            return
        server.connections.add(self)
        transport.set_write_buffer_limits(high=server.high_water)  # type: ignore[attr-defined]
        self.last_activity = self.request_start = self.loop.time()  # the first request's clock starts now

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None
        self.parser = None  # type: ignore[assignment]  # it refers back to this protocol: no cycle left to collect
        server = self.server
        server.connections.discard(self)
        server.pending -= self.reserved + self.answering + sum(item[4] for item in self.queue)
        self.reserved = self.answering = 0
        self.queue.clear()
        self.body = []

    def pause_writing(self) -> None:
        # The client does not read its answers: stop reading (and so answering) its requests until it does.
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()
        if self.queue and not self.busy:
            self._next()

    def check_deadlines(self, now: float) -> None:
        """Called by the server's sweep: close a connection past its header, body or idle deadline."""
        transport = self.transport
        if transport is None or self.closing:
            return
        if self.request_start and not self.read_paused:  # a request is being received (and we are reading)
            if self.body_start:
                if now - self.body_start > self.server.body_timeout:
                    self._time_out(
                        f"the request body was not complete within {self.server.body_timeout:g} s of "
                        "its headers (--body-timeout)"
                    )
            elif self.started:
                if now - self.request_start > self.server.header_timeout:
                    self._time_out(
                        f"the request line and headers were not complete within "
                        f"{self.server.header_timeout:g} s (--header-timeout)"
                    )
            elif now - self.request_start > min(self.server.header_timeout, self.server.idle_timeout):
                self.closing = True  # a new connection that sent nothing: as an idle one, closed without an answer
                transport.close()
        elif now - self.last_activity > self.server.idle_timeout and (
            self.write_paused or not (self.busy or self.queue)
        ):
            self.closing = True
            transport.abort() if transport.get_write_buffer_size() else transport.close()

    def _time_out(self, cause: str) -> None:
        transport = self.transport
        assert transport is not None
        self.closing = True
        if not self.busy and not self.queue:  # nothing answered before it is lost by answering now
            transport.write(_error(408, "Request timeout", cause))
            transport.close()
        else:
            transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.broken:
            return
        self.last_activity = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if not self.broken:
                self._reject(400, "Bad request", "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self.broken:
                self._reject(400, "Bad request", f"malformed HTTP request: {exc}")

    # -- httptools callbacks -----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []
        self.body_len = 0
        self.expect_continue = False
        self.content_length = -1
        self.started = True
        if not self.request_start:
            self.request_start = self.last_activity

    def on_url(self, url: bytes) -> None:
        if self.broken:
            return
        self.url += url
        if len(self.url) > MAX_URL_BYTES:
            self._reject(414, "URI too long", f"request targets are limited to {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        n = len(name)
        if n == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True
        elif n == 14 and name.lower() == b"content-length":
            try:
                self.content_length = int(value)
            except ValueError:
                pass  # httptools rejects it itself

    def on_headers_complete(self) -> None:
        if self.broken:
            return
        if self.parser.should_upgrade():
            self._reject(400, "Bad request", "protocol upgrades are not supported")
            return
        server = self.server
        length = self.content_length
        if length > server.max_body:
            self._too_big()
            return
        if length > 0:
            if server.pending + length > server.max_pending:
                self._over_budget()
                return
            server.pending += length
            self.reserved = length
        self.body_start = self.last_activity
        # Clients such as curl wait (1 s) for this before sending a large body.
        if self.expect_continue and self.transport is not None and not self.closing:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.broken:
            return
        n = len(body)
        self.body_len += n
        if self.body_len > self.reserved:  # a chunked body: reserve as it comes
            server = self.server
            if self.body_len > server.max_body:
                self._too_big()
                return
            if server.pending + n > server.max_pending:
                self._over_budget()
                return
            server.pending += n
            self.reserved += n
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.broken:
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        self.queue.append((self.parser.get_method(), self.url, body, self.parser.should_keep_alive(), self.reserved))
        self.reserved = 0
        self.request_start = self.body_start = 0.0
        self.started = False
        if not self.busy:
            self._next()
        elif len(self.queue) >= MAX_PIPELINED:
            self._update_reading()

    # -- errors found while reading ----------------------------------------------------------------

    def _too_big(self) -> None:
        limit = self.server.max_body
        self._reject(413, "Payload too large", f"request bodies are limited to {limit} bytes (--max-body-bytes)")

    def _over_budget(self) -> None:
        limit = self.server.max_pending
        self._reject(
            503,
            "Service unavailable",
            f"the frontend holds its limit of {limit} bytes of request bodies (--max-pending-bytes); retry later",
        )

    def _reject(self, status: int, error: str, cause: str) -> None:
        """Answer ``status`` after every request before it, then close; read nothing more."""
        self.broken = True
        self.body = []
        self.server.pending -= self.reserved
        self.reserved = 0
        self.request_start = self.body_start = 0.0
        self.queue.append((None, _error(status, error, cause), b"", False, 0))
        self._update_reading()
        if not self.busy:
            self._next()

    # -- dispatch ----------------------------------------------------------------------------------

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        if self.read_paused:
            if not (self.write_paused or self.broken) and len(self.queue) < MAX_PIPELINED // 2:
                self.read_paused = False
                transport.resume_reading()
        elif self.write_paused or self.broken or len(self.queue) >= MAX_PIPELINED:
            self.read_paused = True  # a client pipelining faster than we answer, or not reading: wait for it
            transport.pause_reading()

    def _next(self) -> None:
        # Pipelined requests are answered in order: one at a time per connection.
        while self.queue and not self.busy and not self.closing and not self.write_paused:
            method, url, body, keep_alive, reserved = self.queue.popleft()
            if method is None:  # an error found while reading: the last answer on this connection
                transport = self.transport
                if transport is not None:
                    self.closing = True
                    transport.write(url)
                    transport.close()
                return
            self.busy = True
            self.keep_alive = keep_alive
            self.answering = reserved
            self.routes.dispatch(method, url, body, self._respond)
        self._update_reading()

    def _respond(self, status: int, payload: bytes, content_type: bytes = JSON) -> None:
        if self.answering:
            self.server.pending -= self.answering
            self.answering = 0
        transport = self.transport
        if transport is None or self.closing:
            return
        keep_alive = self.keep_alive
        self.last_activity = self.loop.time()
        transport.write(_head(status, len(payload), content_type, keep_alive) + payload)
        if not keep_alive:
            self.closing = True
            transport.close()
            return
        self.busy = False
        if self.queue:  # pipelined requests waiting behind this one
            self.loop.call_soon(self._next)


async def start_server(routes: QueryRoutes, settings: QuerySettings) -> Any:
    server = HttpServer(routes, settings, connection_limit(settings.max_connections))
    await server.listen(settings.host, settings.port)
    if server.max_connections < settings.max_connections:
        logger.info("accepting at most %d REST connections (the open-file limit)", server.max_connections)
    return server
