"""The query frontend's one route table, shared by both HTTP servers so that their answers cannot drift apart.

``POST /<app>/predict`` and ``POST /<app>/update`` (a trailing slash allowed, the app name percent-decoded),
``GET /metrics`` and ``GET /healthz``; any other method on ``/<app>/predict`` or ``/<app>/update`` is a 405, any
other path a 404, both with the JSON ``{"error": ..., "cause": ...}`` body.

:meth:`QueryRoutes.dispatch` takes the raw method and request target as bytes and answers through a callback
``respond(status, payload, content_type=b"application/json")``, exactly once: the ``fast`` server passes a bound
method of its connection (no allocation per request), the Tornado handler a callback that completes a future.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from clipper_frontend.query.predict import QueryProcessor, error_response

logger = logging.getLogger(__name__)

JSON = b"application/json"
TEXT = b"text/plain"

Respond = Callable[..., None]
"""``respond(status: int, payload: bytes, content_type: bytes = JSON) -> None``."""


class QueryRoutes:
    """What the query frontend answers; ``metrics()`` and ``health()`` render the bodies of the two GET endpoints."""

    __slots__ = ("processor", "metrics", "health")

    def __init__(self, processor: QueryProcessor, metrics: Callable[[], bytes], health: Callable[[], bytes]) -> None:
        self.processor = processor
        self.metrics = metrics
        self.health = health

    def dispatch(self, method: bytes, target: bytes, body: bytes, respond: Respond) -> None:
        """Answer one request through ``respond``, exactly once (possibly later, for a prediction)."""
        path = target.split(b"?", 1)[0]
        if path.endswith(b"/"):
            path = path[:-1]
        parts = path.split(b"/")
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
                        self.processor.start_predict(app, body, respond)
                    else:
                        status, payload, is_json = self.processor.update(app, body)
                        respond(status, payload, JSON if is_json else TEXT)
                    return
            if path == b"/metrics" and method == b"GET":
                respond(200, self.metrics())
                return
            if path == b"/healthz" and method == b"GET":
                respond(200, self.health())
                return
            cause = f"No route for {method.decode('latin-1')} {target.decode('utf-8', 'replace')}"
            respond(*error_response(404, "Not found", cause))
        except Exception:
            logger.exception("unexpected error answering %s %s", method, target)
            respond(*error_response(500, "Internal error", "An unexpected error occurred!"))
