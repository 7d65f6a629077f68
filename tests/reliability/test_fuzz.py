"""Fuzzed query bodies and raw HTTP bytes against a real query frontend: never a 5xx, always a JSON error body.

Bounded: a fixed seed and a fixed number of cases per run (``CLIPPER_FUZZ_CASES``, default 1500), loopback only.
"""

from __future__ import annotations

import json
import os
import random
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.frontend_harness import Frontend, query_frontend

CASES = int(os.environ.get("CLIPPER_FUZZ_CASES", "1500"))
INPUT_TYPES = ("doubles", "floats", "ints", "strings", "bytes")
_ATOMS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**31,
    -(2**31) - 1,
    2**63,
    10**400,
    1.5,
    -0.0,
    1e308,
    "",
    "x",
    "é\u2603",
    "\x00",
    "AAAA====",
    "not base64!",
    [],
    {},
    [[]],
    [None],
    ["a", 1],
    {"input": 1},
]


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.45:
        return rng.choice(_ATOMS)
    if roll < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    if roll < 0.85:
        return [rng.uniform(-1e6, 1e6) for _ in range(rng.randint(0, 50))]
    return {rng.choice(["input", "input_batch", "uid", "label", "x"]): _value(rng, depth + 1) for _ in range(3)}


def _body(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.15:  # not JSON at all, or truncated JSON
        good = json.dumps({"input": [1.0, 2.0]}).encode()
        return (
            bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
            if rng.random() < 0.5
            else good[: rng.randint(0, len(good))]
        )
    key = rng.choice(["input", "input_batch", "uid", "nothing"])
    body: dict[str, Any] = {key: _value(rng)}
    if rng.random() < 0.3:
        body[rng.choice(["input", "input_batch", "label", "uid"])] = _value(rng)
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def frontend(redis_server: tuple[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frontend]:
    import redis

    redis.Redis(port=redis_server[1]).flushall()
    with query_frontend(redis_server[1], tmp_path_factory.mktemp("fuzz")) as fe:
        for it in INPUT_TYPES:
            fe.add_app(f"fuzz-{it}", input_type=it, slo_micros=20000)
        for it in INPUT_TYPES:
            fe.wait_for_app(f"fuzz-{it}")
        yield fe


def _assert_json_error(r: requests.Response) -> None:
    body = r.json()
    assert isinstance(body, dict) and "error" in body and "cause" in body, (r.status_code, r.text[:300])


def test_fuzzed_bodies_get_answers_or_json_errors_never_5xx(frontend: Frontend, tmp_path: Path) -> None:
    rng = random.Random(20261202)
    statuses: Counter[int] = Counter()
    session = requests.Session()
    for i in range(CASES):
        app = f"fuzz-{rng.choice(INPUT_TYPES)}"
        path = "update" if rng.random() < 0.1 else "predict"
        body = _body(rng)
        r = session.post(f"{frontend.url}/{app}/{path}", data=body, timeout=10)
        statuses[r.status_code] += 1
        assert r.status_code < 500, (i, body[:200], r.status_code, r.text[:300])
        if r.status_code >= 400 and path == "predict":
            _assert_json_error(r)
    assert frontend.proc.poll() is None, "the frontend died"
    # Both kinds of answer happened: the fuzzer reached the model path and the validation path.
    assert statuses[200] > 0 and sum(n for s, n in statuses.items() if 400 <= s < 500) > 0, statuses
    r = frontend.predict("fuzz-doubles", {"input": [1.0, 2.0]})
    assert r.status_code == 200 and r.json()["default"] is True  # no replica: the default output at the SLO


def test_raw_garbage_on_the_socket_never_kills_the_frontend(frontend: Frontend) -> None:
    rng = random.Random(7)
    head = b"POST /fuzz-doubles/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    for _ in range(max(50, CASES // 10)):
        kind = rng.random()
        if kind < 0.3:
            payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200)))
        elif kind < 0.6:
            payload = (
                head + b"Content-Length: " + str(rng.randint(-5, 50)).encode() + b"\r\n\r\n" + b"{" * rng.randint(0, 60)
            )
        else:
            payload = rng.choice(
                [
                    b"GET / HTTP/1.1\r\n\r\n",
                    b"\r\n\r\n",
                    b"POST  HTTP/1.1\r\n\r\n",
                    head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                    b"BREW /pot HTCPCP/1.0\r\n\r\n",
                ]
            )
        with socket.create_connection(("127.0.0.1", frontend.port), timeout=5) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            try:
                answer = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                answer = b""
        assert not answer.startswith(b"HTTP/1.1 5"), (payload[:100], answer[:200])
    assert frontend.proc.poll() is None, "the frontend died"
    r = frontend.predict("fuzz-doubles", {"input": [1.0]})
    assert r.status_code == 200
