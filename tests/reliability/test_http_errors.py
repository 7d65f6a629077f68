"""Bad requests get exactly one clear answer, after the good ones pipelined before them, and cost no ERROR log line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from clipper_core.ports import free_port, wait_for_port
from tests._replica import ProtocolReplica
from tests.frontend_harness import Frontend, query_frontend


@pytest.fixture(scope="module", params=["fast", "tornado"])
def fe(
    request: pytest.FixtureRequest, redis_server: tuple[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Frontend]:
    redis.Redis(port=redis_server[1]).flushall()
    with query_frontend(redis_server[1], tmp_path_factory.mktemp("qe"), "--http-server", request.param) as frontend:
        frontend.add_app("plain", "doubles", "7")
        frontend.wait_for_app("plain")
        yield frontend


def _request(body: bytes, path: str = "/plain/predict", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _answers_until_close(sock: socket.socket, timeout: float = 5.0) -> list[tuple[int, bytes]]:
    """Every answer the server sends on ``sock`` until it closes the connection."""
    sock.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        buf += chunk
    out: list[tuple[int, bytes]] = []
    while b"\r\n\r\n" in buf:
        head, rest = buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        out.append((status, rest[:length]))
        buf = rest[length:]
    return out


def test_an_upgrade_request_gets_exactly_one_answer(fe: Frontend) -> None:
    body = b'{"input": [1.0]}'
    with socket.create_connection(("127.0.0.1", fe.port)) as sock:
        sock.sendall(_request(body, extra="Connection: Upgrade\r\nUpgrade: h2c\r\n"))
        answers = _answers_until_close(sock)
    assert len(answers) == 1, answers
    status, payload = answers[0]
    if "tornado" in fe.proc.args:  # Tornado serves it normally, ignoring the upgrade
        assert status == 200 and json.loads(payload)["output"] == 7
    else:  # the fast server refuses it with one clear 400
        assert status == 400
        assert json.loads(payload)["error"] == "Bad request" and "upgrade" in json.loads(payload)["cause"]


def test_a_malformed_request_after_pipelined_good_ones_comes_after_their_answers(fe: Frontend) -> None:
    """The good requests wait for a (slow) model, so they are still being answered when the garbage arrives."""
    import numpy as np

    def slow_sum(xs: list[bytes]) -> list[str]:
        time.sleep(0.05)
        return [repr(float(np.frombuffer(x, "<f8").sum())) for x in xs]

    fe.add_app("slow-sum", "doubles", "-1", 5_000_000)
    fe.add_model("slow-sum-model", "1")
    fe.link("slow-sum", "slow-sum-model")
    with ProtocolReplica(fe.rpc_port, "slow-sum-model", "1", 3, slow_sum) as replica:
        assert replica.registered.wait(10)
        fe.wait_until(
            lambda: fe.predict("slow-sum", {"input": [0.5]}).json().get("default") is False,
            what="slow-sum to be served",
        )
        good = b"".join(
            _request(json.dumps({"input": [float(i), 100.0]}).encode(), "/slow-sum/predict") for i in range(3)
        )
        with socket.create_connection(("127.0.0.1", fe.port)) as sock:
            sock.sendall(good + b"THIS IS NOT HTTP\r\n\r\n")
            answers = _answers_until_close(sock)
    assert [s for s, _ in answers] == [200, 200, 200, 400], answers
    assert [json.loads(p)["output"] for _, p in answers[:3]] == [100.0, 101.0, 102.0]


def test_get_state_with_a_personal_uid_is_not_logged_as_an_error(redis_server: tuple[str, int], tmp_path: Path) -> None:
    """uid != 0 is treated as 0, as the reference says, without an ERROR line per request."""
    port = free_port()
    log = tmp_path / "mgmt.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clipper_frontend.management",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--redis-ip",
                "127.0.0.1",
                "--redis-port",
                str(redis_server[1]),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_for_port(port, timeout=20, proc=proc)
        url = f"http://127.0.0.1:{port}/admin"
        body = {"name": "state-app", "input_type": "doubles", "default_output": "D", "latency_slo_micros": 1000}
        requests.post(f"{url}/add_app", json=body, timeout=10)
        for uid in range(1, 21):
            r = requests.post(f"{url}/get_state", json={"app_name": "state-app", "uid": uid}, timeout=10)
            assert (r.status_code, r.text) == (200, "D")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
    assert errors == []
