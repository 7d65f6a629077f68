"""Query processing for ``POST /<app>/predict`` and ``/<app>/update``, independent of the HTTP server.

Everything here reads the in-memory :class:`~clipper_frontend.query.state.ClusterView`; no Redis, no hook calls.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

import orjson

from clipper_core.errors import InputDecodeError
from clipper_frontend.query.engine import Engine
from clipper_frontend.query.metrics import MetricsRegistry
from clipper_frontend.query.state import AppInfo, ClusterView, parse_output
from clipper_frontend.query.tasks import ModelError, NoReplica, Pending
from clipper_frontend.settings import QuerySettings

logger = logging.getLogger(__name__)

PREDICTION_JSON_SCHEMA = '\n  {\n   "input" := [double] | [int] | [string] | [byte] | [float],\n  }\n'
UPDATE_JSON_SCHEMA = (
    '\n  {\n   "uid" := string,\n   "input" := [double] | [int] | [string] | [byte] | [float],\n'
    '   "label" := double\n  }\n'
)
NO_CONNECTED_MODELS = "No connected models found for query"
SLO_MISSED = "Failed to retrieve a prediction response within the specified latency SLO"

Response = tuple[int, bytes]


def error_response(status: int, error: str, cause: str) -> Response:
    """The ``{"error": ..., "cause": ...}`` body every 4xx/5xx answer of the query frontend carries."""
    return status, orjson.dumps({"error": error, "cause": cause})


def json_error(message: str) -> Response:
    cause = f"Error parsing JSON: {message}. Expected JSON schema: {PREDICTION_JSON_SCHEMA}"
    return error_response(400, "Json error", cause)


def not_found(app: str) -> Response:
    return error_response(404, "Not found", f"No application named '{app}' is registered with this Clipper cluster")


class _AppMetrics:
    __slots__ = ("latency", "throughput", "num", "default_ratio")

    def __init__(self, metrics: MetricsRegistry, app: str) -> None:
        prefix = f"app:{app}:"
        self.latency = metrics.histogram(prefix + "prediction_latency")
        self.throughput = metrics.meter(prefix + "prediction_throughput")
        self.num = metrics.counter(prefix + "num_predictions")
        self.default_ratio = metrics.ratio_counter(prefix + "default_prediction_ratio")


class Deadlines:
    """SLO timers without a timer handle per query.

    Queries of one SLO arrive in deadline order (deadline = arrival + SLO, on a monotonic clock), so one FIFO and one
    armed timer per distinct SLO suffice. Each FIFO is a pair of deques (deadlines and integer tokens, neither of
    which the garbage collector tracks) and the callbacks live in one dict until they fire or are cancelled: a query
    answered early releases its state at once and leaves nothing behind that a collection has to walk (at 1 s SLOs
    and tens of thousands of queries a second, a tracked entry per query made collections take tens of ms).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._fifos: dict[float, tuple[deque[float], deque[int]]] = {}
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._tokens = itertools.count()

    def add(self, slo: float, deadline: float, callback: Callable[[], None]) -> int:
        """Schedule ``callback`` at ``deadline``; returns a token for :meth:`cancel`."""
        fifo = self._fifos.get(slo)
        if fifo is None:
            fifo = self._fifos[slo] = (deque(), deque())
        token = next(self._tokens)
        self._callbacks[token] = callback
        fifo[0].append(deadline)
        fifo[1].append(token)
        if len(fifo[0]) == 1:  # the FIFO was empty, so no timer is armed for it
            self.loop.call_at(deadline, self._fire, slo)
        return token

    def cancel(self, token: int) -> None:
        self._callbacks.pop(token, None)

    def _fire(self, slo: float) -> None:
        deadlines, tokens = self._fifos[slo]
        callbacks = self._callbacks
        # uvloop's clock has millisecond resolution: treat what is due within it as due now.
        now = self.loop.time() + 0.001
        while deadlines and deadlines[0] <= now:
            deadlines.popleft()
            callback = callbacks.pop(tokens.popleft(), None)
            if callback is not None:
                callback()
        if deadlines:
            self.loop.call_at(deadlines[0], self._fire, slo)


class _Gather:
    """Waits for the pending outputs of one request, or its deadline, then calls ``then()`` exactly once.

    An object rather than a pair of closures that refer to each other: it drops every reference it holds when it
    completes, so a request's state forms no reference cycle and is freed at once instead of piling up for the
    garbage collector (whose pauses showed up as periodic latency spikes of 10-20 ms under load).
    """

    __slots__ = ("pending", "remaining", "then", "deadlines", "token")

    def __init__(self, pending: list[Pending], then: Callable[[], None], deadlines: Deadlines) -> None:
        self.pending: list[Pending] | None = pending
        self.remaining = len(pending)
        self.then: Callable[[], None] | None = then
        self.deadlines = deadlines
        self.token = -1

    def one_done(self, _: Pending) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.complete()

    def complete(self) -> None:
        then = self.then
        if then is None:
            return
        self.then = None
        self.deadlines.cancel(self.token)  # the deadline held this object's bound method
        pending, self.pending = self.pending, None
        if self.remaining and pending is not None:
            for p in pending:
                p.remove_done_callback(self.one_done)
        then()


class QueryProcessor:
    def __init__(
        self,
        view: ClusterView,
        engine: Engine,
        metrics: MetricsRegistry,
        max_batch_items: int = QuerySettings.max_batch_items,
    ) -> None:
        self.view = view
        self.max_batch_items = max_batch_items
        self.engine = engine
        self.metrics = metrics
        self.loop = engine.loop
        self.query_ids = itertools.count()
        self._app_metrics: dict[str, _AppMetrics] = {}
        self.deadlines = Deadlines(self.loop)

    def forget_app(self, app: str) -> None:
        """Drop a deleted application's metrics."""
        if self._app_metrics.pop(app, None) is not None:
            self.metrics.remove_prefix(f"app:{app}:")

    def app_metrics(self, app: str) -> _AppMetrics:
        m = self._app_metrics.get(app)
        if m is None:
            m = self._app_metrics[app] = _AppMetrics(self.metrics, app)
        return m

    async def predict(self, app_name: str, body: bytes) -> Response:
        """Answer one ``POST /<app>/predict`` body; see :meth:`start_predict`."""
        fut: asyncio.Future[Response] = self.loop.create_future()
        self.start_predict(app_name, body, lambda status, payload: fut.set_result((status, payload)))
        return await fut

    def start_predict(self, app_name: str, body: bytes, respond: Callable[[int, bytes], None]) -> None:
        """Validate, schedule and eventually ``respond(status, body)``, exactly once.

        Callback-based so the HTTP layer needs no task or coroutine per request: a cached or default answer is
        given synchronously, otherwise when the last query resolves or the SLO deadline fires, whichever is first.
        """
        app = self.view.apps.get(app_name)
        if app is None:
            respond(*not_found(app_name))
            return
        start = self.loop.time()  # deadlines are on the loop's clock
        started = perf_counter()  # latency is measured with a finer one
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            respond(*json_error(f"JSON parse error: {exc}"))
            return
        if type(obj) is not dict:
            respond(*json_error("the request body must be a JSON object"))
            return
        input_type = app.input_type
        batch = False
        try:
            if "input" in obj:
                payloads = [input_type.encode(obj["input"])]
            elif "input_batch" in obj:
                values = obj["input_batch"]
                if type(values) is not list:
                    respond(
                        *json_error(
                            "Type mismatch! JSON key input_batch expected type Arraybut found type "
                            f"{_json_type(values)}"
                        )
                    )
                    return
                if len(values) > self.max_batch_items:
                    # Encoding, queueing and rendering run on the event loop: a huge batch would stall every client.
                    respond(
                        *error_response(
                            413,
                            "Payload too large",
                            f"input_batch holds {len(values)} inputs; at "
                            f"most {self.max_batch_items} are accepted per request (--max-batch-items)"
                            ": split it into several requests",
                        )
                    )
                    return
                payloads = [input_type.encode_batch_item(v) for v in values]
                batch = True
            else:
                respond(*json_error("JSON object does not have required keys input or input_batch"))
                return
        except InputDecodeError as exc:
            respond(*json_error(str(exc)))
            return

        selected = self._select(app, obj.get("version"))
        if type(selected[0]) is int:
            respond(*selected)  # type: ignore[arg-type]
            return
        model, version = selected

        if model is None:
            results: list[Any] = [None] * len(payloads)
        else:
            deadline = start + app.slo_seconds
            submit = self.engine.submit
            slo = app.slo_seconds
            results = [submit(model, version, p, deadline, slo) for p in payloads]
            waiting = [r for r in results if r is not None and type(r) is not str and not r.done()]
            if waiting:
                self._wait(waiting, deadline, slo, lambda: self._finish(app, results, batch, started, respond))
                return
        self._finish(app, results, batch, started, respond)

    def _finish(
        self, app: AppInfo, results: list[Any], batch: bool, start: float, respond: Callable[[int, bytes], None]
    ) -> None:
        m = self.app_metrics(app.name)
        outs = [self._render(app, r, m) for r in results]
        m.latency.insert((perf_counter() - start) * 1e6)
        respond(200, orjson.dumps({"batch_predictions": outs} if batch else outs[0]))

    def _select(self, app: AppInfo, version: Any) -> tuple[str | None, str | None] | Response:
        links = app.linked_models
        if version is not None:
            version = str(version)
            if len(links) > 1:
                cause = f"Too many models linked to application {app.name}"
                return error_response(400, "Query processing error", cause)
            if not links:
                return None, None
            model = links[0]
            if (model, version) not in self.view.models:
                return error_response(
                    400, "Query processing error", f"Requested version: {version} does not exist for model: {model}"
                )
            return model, version
        if not links:
            return None, None
        model = links[0]
        current = self.view.current_versions.get(model)
        if current is None or (model, current) not in self.view.models:
            return None, None
        return model, current

    def _wait(self, pending: list[Pending], deadline: float, slo: float, then: Callable[[], None]) -> None:
        """Call ``then()`` once, when every pending output is done or at ``deadline``, whichever comes first."""
        gather = _Gather(pending, then, self.deadlines)
        gather.token = self.deadlines.add(slo, deadline, gather.complete)
        for p in pending:
            p.add_done_callback(gather.one_done)

    def _render(self, app: AppInfo, result: Any, m: _AppMetrics) -> dict[str, Any]:
        m.num.count += 1
        m.throughput.count += 1
        m.default_ratio.denominator += 1
        qid = next(self.query_ids)
        if type(result) is str:
            return {"query_id": qid, "output": parse_output(result), "default": False}
        if result is None:
            explanation = NO_CONNECTED_MODELS
        elif not result.done():
            explanation = SLO_MISSED
        else:
            value = result.result()
            if type(value) is str:
                return {"query_id": qid, "output": parse_output(value), "default": False}
            if isinstance(value, ModelError):
                explanation = f"Model error: {value}"
            elif isinstance(value, NoReplica):
                explanation = NO_CONNECTED_MODELS
            else:
                explanation = SLO_MISSED
        m.default_ratio.numerator += 1
        return {"query_id": qid, "output": app.default_value, "default": True, "default_explanation": explanation}

    def update(self, app_name: str, body: bytes) -> tuple[int, bytes, bool]:
        """Feedback. Returns (status, body, is_json); success and errors are plain text as in the original."""
        app = self.view.apps.get(app_name)
        if app is None:
            status, payload = not_found(app_name)
            return status, payload, True

        def bad(message: str) -> tuple[int, bytes, bool]:
            return 400, f"Error parsing JSON: {message}. Expected JSON schema: {UPDATE_JSON_SCHEMA}".encode(), False

        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return bad(f"JSON parse error: {exc}")
        if type(obj) is not dict:
            return bad("the request body must be a JSON object")
        for key in ("uid", "input", "label"):
            if key not in obj:
                return bad(f"JSON object does not have required key {key}")
        if type(obj["uid"]) is not int:
            return bad(f"Type mismatch! JSON key uid expected type Numberbut found type {_json_type(obj['uid'])}")
        if type(obj["label"]) not in (int, float):
            return bad(f"Type mismatch! JSON key label expected type Numberbut found type {_json_type(obj['label'])}")
        try:
            app.input_type.encode(obj["input"])
        except InputDecodeError as exc:
            return bad(str(exc))
        next(self.query_ids)
        return 200, b"Feedback received? 1", False


def _json_type(value: Any) -> str:
    from clipper_core.input_types import json_type_name

    return json_type_name(value)
