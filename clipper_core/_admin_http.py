"""Helpers of :class:`~clipper_core.admin.ClipperConnection`: JSON POSTs to the management frontend, predict bodies.

Requests follow the original client (``POST`` with a JSON body, ``Content-type: application/json``; any status other
than 200 raises ``ClipperException("Received error status code: ...")``, here its subclass ``ManagementError``).
Unlike the original, every request has a timeout, and a cluster that cannot be reached raises a
:class:`ManagementError` that says so instead of a raw HTTP-client traceback. The HTTP client is ``httpx``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import numpy as np

from clipper_core.errors import InputDecodeError, ManagementError
from clipper_core.input_types import InputType

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
JSON_HEADERS = {"Content-type": "application/json"}
_BAD_TYPE = "Invalid input type"
_BAD_TYPE_OR_KEY = "Invalid input type or JSON key"


def unreachable_error(addr: str, exc: BaseException, what: str = "Clipper cluster") -> ManagementError:
    """The error raised when nothing answers at ``addr``."""
    msg = (
        f"The {what} at {addr} is not reachable ({type(exc).__name__}). Is the cluster running? Start it with "
        "`clipper start` or ClipperConnection.start_clipper(), or check the cluster name and ports."
    )
    return ManagementError(msg)


def status_error(r: httpx.Response) -> ManagementError:
    msg = f"Received error status code: {r.status_code} and message: {r.text}"
    logger.error("%s", msg)
    return ManagementError(msg)


def request(method: str, url: str, addr: str, timeout: float = DEFAULT_TIMEOUT_S, **kwargs: Any) -> httpx.Response:
    """Send one request; connection problems and timeouts become :class:`ManagementError`."""
    try:
        r = httpx.request(method, url, timeout=timeout, **kwargs)
    except httpx.TimeoutException as exc:
        msg = f"Request to {url} timed out after {timeout} s. The Clipper cluster at {addr} is not responding."
        raise ManagementError(msg) from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise unreachable_error(addr, exc) from exc
    except httpx.HTTPError as exc:
        msg = f"Request to {url} failed: {exc}"
        raise ManagementError(msg) from exc
    logger.debug("%s %s -> %s %s", method, url, r.status_code, r.text[:500])
    return r


def post_admin(
    addr: str,
    path: str,
    body: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT_S,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """``POST http://<addr>/admin/<path>`` with a JSON body; a non-200 answer raises :class:`ManagementError`.
    ``headers`` come on top of the JSON content type (``Authorization`` when management auth is on)."""
    url = f"http://{addr}/admin/{path}"
    all_headers = {**JSON_HEADERS, **(headers or {})}
    r = request("POST", url, addr, timeout=timeout, headers=all_headers, content=json.dumps(body))
    if r.status_code != httpx.codes.OK:
        raise status_error(r)
    return r


def wait_for_epoch(query_addr: str, epoch: int, timeout: float = 5.0) -> bool:
    """Poll the query frontend's ``/healthz`` until it has applied configuration ``epoch``.

    A frontend that cannot be reached or is slow only costs the timeout and a warning: the change is stored and
    will be served once the frontend catches up.
    """
    import time

    deadline = time.monotonic() + timeout
    url = f"http://{query_addr}/healthz"
    with httpx.Client(timeout=1.0) as session:
        while True:
            try:
                applied = int(session.get(url, timeout=1.0).json().get("config_epoch", epoch))
            except (httpx.HTTPError, ValueError, AttributeError):
                applied = -1
            if applied >= epoch:
                return True
            if time.monotonic() >= deadline:
                logger.warning("the query frontend at %s has not applied configuration %d yet", query_addr, epoch)
                return False
            time.sleep(0.005)


def post_admin_json(
    addr: str,
    path: str,
    body: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT_S,
    headers: dict[str, str] | None = None,
) -> Any:
    """Like :func:`post_admin`, returning the decoded JSON answer."""
    r = post_admin(addr, path, body, timeout, headers)
    try:
        return r.json()
    except ValueError as exc:
        msg = f"The management frontend at {addr} answered /admin/{path} with invalid JSON: {r.text[:200]!r}"
        raise ManagementError(msg) from exc


def get_json(addr: str, path: str, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
    """``GET http://<addr><path>`` and decode the JSON answer; non-200 raises :class:`ManagementError`."""
    r = request("GET", f"http://{addr}{path}", addr, timeout=timeout)
    if r.status_code != httpx.codes.OK:
        raise status_error(r)
    return r.json()


def probe(url: str, timeout: float = 5.0) -> str | None:
    """``GET url`` once; ``None`` when it answered 200, otherwise a short description of what went wrong."""
    try:
        r = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}"
    if r.status_code != httpx.codes.OK:
        return f"HTTP {r.status_code}"
    return None


def predict_inputs(query: Any, it: InputType) -> list[Any] | str:
    """For ``test_predict_function``: the inputs of a predict body as a replica would hand them to ``func``.

    :returns: one object per input (``InputType.from_python``), or the original's error string.
    """
    if not isinstance(query, dict):
        return _BAD_TYPE_OR_KEY
    if "input_batch" in query:
        raw = query["input_batch"]
        if not isinstance(raw, (list, tuple)):
            return _BAD_TYPE_OR_KEY
    elif "input" in query:
        raw = [query["input"]]
    else:
        return _BAD_TYPE_OR_KEY
    out = []
    for x in raw:
        if isinstance(x, np.ndarray):
            x = x.tolist()
        elif isinstance(x, tuple):
            x = list(x)
        if it.json_container == "Array" and not isinstance(x, list):
            return _BAD_TYPE_OR_KEY
        try:
            if not (isinstance(x, (bytes, bytearray)) and it.name == "bytes"):
                it.encode(x)
            out.append(it.from_python(x))
        except (InputDecodeError, ValueError, TypeError):
            return _BAD_TYPE
    return out
