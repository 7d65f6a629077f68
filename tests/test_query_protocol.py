"""Wire-level behaviour of the query frontend: HTTP/1.1 details of the fast server, and RPC robustness."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator

import pytest
import zmq

from clipper_core.rpc import frames as rpc
from tests.frontend_harness import Frontend, query_frontend


@pytest.fixture(scope="module")
def fe(redis_server: tuple[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frontend]:
    import redis

    redis.Redis(port=redis_server[1]).flushall()
    with query_frontend(redis_server[1], tmp_path_factory.mktemp("qp"), "--timeout-content", "1") as frontend:
        frontend.add_app("plain", "doubles", "7")
        frontend.add_app("caf\u00e9", "doubles", "8")
        frontend.wait_for_app("plain")
        yield frontend


def _request(body: bytes, path: str = "/plain/predict", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _read_responses(sock: socket.socket, n: int, timeout: float = 5.0) -> list[tuple[int, bytes]]:
    sock.settimeout(timeout)
    buf = b""
    out: list[tuple[int, bytes]] = []
    while len(out) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            status = int(head.split(b" ", 2)[1])
            if status == 100:
                buf = rest
                continue
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            if len(rest) < length:
                break
            out.append((status, rest[:length]))
            buf = rest[length:]
    return out


def test_pipelined_requests_are_answered_in_order(fe: Frontend) -> None:
    with socket.create_connection(("127.0.0.1", fe.port)) as sock:
        sock.sendall(
            b"".join(_request(json.dumps({"input": [float(i)]}).encode()) for i in range(5))
            + _request(b"{bad")
            + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        responses = _read_responses(sock, 7)
    assert [s for s, _ in responses] == [200] * 5 + [400, 200]
    ids = [json.loads(b)["query_id"] for _, b in responses[:5]]
    assert ids == sorted(ids)
    assert json.loads(responses[6][1])["status"] == "ok"


def test_expect_100_continue_is_answered(fe: Frontend) -> None:
    body = json.dumps({"input": [1.0] * 1000}).encode()
    with socket.create_connection(("127.0.0.1", fe.port)) as sock:
        sock.sendall(
            _request(b"", extra="Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", b"Content-Length: %d" % len(body)
            )
        )
        sock.settimeout(2)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        [(status, payload)] = _read_responses(sock, 1)
    assert status == 200 and json.loads(payload)["output"] == 7


def test_percent_encoded_app_names(fe: Frontend) -> None:
    with socket.create_connection(("127.0.0.1", fe.port)) as sock:
        sock.sendall(_request(b'{"input": [1.0]}', path="/caf%C3%A9/predict"))
        [(status, payload)] = _read_responses(sock, 1)
    assert status == 200 and json.loads(payload)["output"] == 8


def test_malformed_http_gets_400_and_close(fe: Frontend) -> None:
    with socket.create_connection(("127.0.0.1", fe.port)) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        [(status, payload)] = _read_responses(sock, 1)
        assert status == 400 and json.loads(payload)["error"] == "Bad request"
        assert sock.recv(10) == b""


def test_wrong_method_is_405_json(fe: Frontend) -> None:
    with socket.create_connection(("127.0.0.1", fe.port)) as sock:
        sock.sendall(b"GET /plain/predict HTTP/1.1\r\nHost: x\r\n\r\n")
        [(status, payload)] = _read_responses(sock, 1)
    assert status == 405 and json.loads(payload)["error"] == "Method not allowed"


def test_idle_connections_are_closed(fe: Frontend) -> None:
    with socket.create_connection(("127.0.0.1", fe.port)) as sock:
        sock.settimeout(5)
        start = time.monotonic()
        assert sock.recv(10) == b""  # closed by the server after --timeout-content (1 s) of silence
        assert time.monotonic() - start < 4


def test_a_malformed_rpc_message_does_not_stall_the_rpc_loop(fe: Frontend) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{fe.rpc_port}")
    try:
        # A prediction response whose msg id frame is 2 bytes, and a NewContainer with a non-UTF-8 name...
        sock.send_multipart([b"", struct.pack("<I", 1), b"xx", struct.pack("<Q", 8), struct.pack("<Q", 0)])
        sock.send_multipart([b"", struct.pack("<I", 0), b"\xff\xfe", b"1", b"3", struct.pack("<I", 3)])
        # ...and the heartbeat behind them is still answered.
        sock.send_multipart(rpc.heartbeat_to_frontend())
        assert sock.poll(3000), "heartbeat not answered"
        reply = rpc.parse_frontend_message(sock.recv_multipart())
        assert isinstance(reply, rpc.HeartbeatToContainer) and reply.request_metadata
    finally:
        sock.close(0)
