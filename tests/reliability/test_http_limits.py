"""One client cannot starve the rest: the query frontend's HTTP limits against misbehaving clients, on loopback.

Each test starts its own frontend with small limits (through the settings) so that the load stays small: a few
hundred connections, tens of MiB. The figures each test measures are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import redis

from tests.frontend_harness import Frontend, query_frontend

MIB = 1024 * 1024


@pytest.fixture
def redis_port(redis_server: tuple[str, int]) -> int:
    redis.Redis(port=redis_server[1]).flushall()
    return redis_server[1]


@pytest.fixture(params=["fast", "tornado"])
def http_server(request: pytest.FixtureRequest) -> str:
    return request.param


@contextmanager
def _start(redis_port: int, tmp: Path, *extra: str, **kw: int) -> Iterator[Frontend]:
    with query_frontend(redis_port, tmp, *extra, **kw) as fe:
        fe.add_app("plain", "doubles", "7")
        fe.wait_for_app("plain")
        yield fe


def _request(body: bytes, path: str = "/plain/predict", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _read_one(sock: socket.socket, timeout: float) -> bytes:
    """One whole answer (head and Content-Length body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _length(raw: bytes) -> int:
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0


def _body_json(raw: bytes) -> dict:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def _rss(fe: Frontend) -> int:
    return psutil.Process(fe.proc.pid).memory_info().rss


def _probe(port: int, timeout: float) -> int:
    """GET /healthz on a new connection: the status, or 0 if no answer came within ``timeout``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(timeout)
            return _status(_read_one(sock, timeout))
    except OSError:
        return 0


# -- slow clients ------------------------------------------------------------------------------------------------


def test_headers_trickled_byte_by_byte_are_cut_off_at_the_header_deadline(
    redis_port: int, tmp_path: Path, http_server: str
) -> None:
    """Each byte used to restart the idle timer, so a client sending one header byte a second held its slot forever."""
    with query_frontend(redis_port, tmp_path, "--http-server", http_server, "--header-timeout", "1") as fe:
        with socket.create_connection(("127.0.0.1", fe.port)) as sock:
            start = time.monotonic()
            sock.sendall(b"POST /plain/predict HTTP/1.1\r\n")
            closed_after = None
            while time.monotonic() - start < 6:
                try:
                    sock.sendall(b"X")
                except OSError:
                    closed_after = time.monotonic() - start
                    break
                ready, _, _ = select.select([sock], [], [], 0.1)
                if ready:
                    data = _read_all(sock, 1.0)
                    closed_after = time.monotonic() - start
                    if http_server == "fast":
                        assert _status(data) == 408 and _body_json(data)["error"] == "Request timeout"
                    break
        print(f"\n[{http_server}] trickled headers: connection closed after {closed_after} s (--header-timeout 1)")
        assert closed_after is not None and closed_after < 3.0, "the header deadline did not cut the request off"


def test_body_trickled_byte_by_byte_is_cut_off_at_the_body_deadline(
    redis_port: int, tmp_path: Path, http_server: str
) -> None:
    with query_frontend(redis_port, tmp_path, "--http-server", http_server, "--body-timeout", "1") as fe:
        with socket.create_connection(("127.0.0.1", fe.port)) as sock:
            sock.sendall(b"POST /plain/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            start = time.monotonic()
            closed_after = None
            while time.monotonic() - start < 6:
                try:
                    sock.sendall(b" ")
                except OSError:
                    closed_after = time.monotonic() - start
                    break
                ready, _, _ = select.select([sock], [], [], 0.1)
                if ready:
                    data = _read_all(sock, 1.0)
                    closed_after = time.monotonic() - start
                    if http_server == "fast":
                        assert _status(data) == 408 and "--body-timeout" in _body_json(data)["cause"]
                    break
        print(f"\n[{http_server}] trickled body: connection closed after {closed_after} s (--body-timeout 1)")
        assert closed_after is not None and closed_after < 3.0, "the body deadline did not cut the request off"


def test_slowloris_does_not_lock_out_new_or_existing_clients(redis_port: int, tmp_path: Path, http_server: str) -> None:
    """450 slow connections against a process allowed 400 files, a 100-connection limit and a 2 s header timeout.

    Without a connection limit below the open-file limit the frontend cannot accept anything once the slow
    connections hold every descriptor; with it, a new connection is refused at once with a 503 and a client that
    was already connected keeps being served.
    """
    extra = ("--http-server", http_server, "--max-connections", "100", "--header-timeout", "2")
    with _start(redis_port, tmp_path, *extra, max_open_files=400) as fe:
        keep_alive = socket.create_connection(("127.0.0.1", fe.port), timeout=5)
        attackers: list[socket.socket] = []
        try:
            existing: list[tuple[float, int]] = []
            start = time.monotonic()

            def ask_existing() -> None:
                keep_alive.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    existing.append((time.monotonic() - start, _status(_read_one(keep_alive, 2.0))))
                except OSError:
                    existing.append((time.monotonic() - start, 0))

            for i in range(450):
                if i % 50 == 0:
                    ask_existing()  # also keeps it from idling out (Tornado's idle timeout is the header timeout)
                try:
                    s = socket.create_connection(("127.0.0.1", fe.port), timeout=2)
                    s.setblocking(False)
                    s.send(b"POST /plain/predict HTTP/1.1\r\nHost: x\r\n")
                    attackers.append(s)
                except OSError:
                    break
            stop = threading.Event()

            def trickle() -> None:
                while not stop.wait(0.25):
                    for s in attackers:
                        try:
                            s.send(b"X")
                        except OSError:
                            pass

            trickler = threading.Thread(target=trickle, daemon=True)
            trickler.start()
            fresh: list[tuple[float, int]] = []
            start = time.monotonic()
            try:
                while not stop.wait(0.02) and time.monotonic() - start < 5:  # ~40 probes a second, no more
                    t0 = time.monotonic()
                    fresh.append((t0 - start, _probe(fe.port, 2.0)))
                    ask_existing()
            finally:
                stop.set()
                trickler.join(5)
        finally:
            keep_alive.close()
            for s in attackers:
                s.close()
        answered = [s for _, s in fresh if s]
        print(
            f"\n[{http_server}] slowloris: {len(attackers)} slow connections; fresh probes answered "
            f"{len(answered)}/{len(fresh)} (200: {answered.count(200)}, 503: {answered.count(503)}); "
            f"existing connection answered {sum(1 for _, s in existing if s == 200)}/{len(existing)}"
        )
        assert len(attackers) > 400
        assert all(s in (200, 503) for _, s in fresh), fresh  # every new client gets an answer at once
        assert any(s == 200 for t, s in fresh if t > 2.5), fresh  # and is served once the slow ones are cut off
        assert all(s == 200 for _, s in existing), existing


# -- memory --------------------------------------------------------------------------------------------------------


def test_held_bodies_are_bounded_by_the_pending_bytes_budget(redis_port: int, tmp_path: Path, http_server: str) -> None:
    """30 clients each announce an 8 MiB body, send all of it but the last byte, and hold it."""
    extra = ("--http-server", http_server, "--max-body-bytes", str(8 * MIB), "--max-pending-bytes", str(32 * MIB))
    with _start(redis_port, tmp_path, *extra) as fe:
        # A single body over the per-request limit: a 413 before any of it is sent.
        with socket.create_connection(("127.0.0.1", fe.port)) as sock:
            sock.sendall(b"POST /plain/predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (9 * MIB))
            data = _read_all(sock, 3.0)
        assert _status(data) == 413 and "--max-body-bytes" in _body_json(data)["cause"], data[:300]

        body = b'{"input": [1.0]}' + b" " * (8 * MIB - 17)
        rss_before = _rss(fe)
        socks = [socket.create_connection(("127.0.0.1", fe.port)) for _ in range(30)]
        try:
            for s in socks:
                s.sendall(b"POST /plain/predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
            refused = 0
            peak = rss_before
            for s in socks:
                ready, _, _ = select.select([s], [], [], 0.3)
                if ready:
                    data = _read_all(s, 1.0)
                    assert _status(data) == 503, data[:300]
                    assert "--max-pending-bytes" in _body_json(data)["cause"]
                    refused += 1
                    continue
                try:
                    s.sendall(body[:-1])
                except OSError:
                    pass
                peak = max(peak, _rss(fe))
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:  # let the frontend read whatever it accepted
                peak = max(peak, _rss(fe))
                time.sleep(0.05)
            growth = (peak - rss_before) / MIB
            print(
                f"\n[{http_server}] 30 held 8 MiB bodies: {refused} refused with 503; RSS {rss_before / MIB:.0f} MiB "
                f"-> peak {peak / MIB:.0f} MiB (+{growth:.0f} MiB; budget 32 MiB)"
            )
            assert refused >= 25, refused
            assert growth < 80, growth
        finally:
            for s in socks:
                s.close()
        # The budget is released when the held connections go away.
        small = b'{"input": [1.0]}' + b" " * MIB

        def served() -> bool:
            with socket.create_connection(("127.0.0.1", fe.port), timeout=5) as sock:
                sock.sendall(_request(small))
                return _status(_read_one(sock, 2.0)) == 200

        fe.wait_until(served, timeout=10, what="a request once the held bodies are gone")


def test_a_client_that_never_reads_its_pipelined_answers_is_not_read_from(redis_port: int, tmp_path: Path) -> None:
    """Pipelined GET /metrics without ever reading: the answers used to pile up in the frontend's write buffer."""
    with _start(redis_port, tmp_path, "--write-buffer-high-water", "65536") as fe:
        one = len(_metrics_answer(fe.port))
        rss_before = _rss(fe)
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        flood = socket.create_connection(("127.0.0.1", fe.port))
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        flood.settimeout(0.5)
        sent = 0
        latencies: list[float] = []
        peak = rss_before
        start = time.monotonic()
        try:
            chunk = request * 2000
            while time.monotonic() - start < 6 and sent < 300_000:
                try:
                    flood.sendall(chunk)
                    sent += 2000
                except TimeoutError:
                    pass  # the frontend stopped reading us: what we want; keep trying until the time is up
                t0 = time.monotonic()
                assert _probe(fe.port, 1.0) == 200
                latencies.append(time.monotonic() - t0)
                peak = max(peak, _rss(fe))
        finally:
            flood.close()
        growth = (peak - rss_before) / MIB
        print(
            f"\nunread pipeline: {sent} requests written ({sent * one / MIB:.0f} MiB of answers, {one} B each); "
            f"frontend RSS {rss_before / MIB:.0f} -> peak {peak / MIB:.0f} MiB (+{growth:.0f} MiB); other client's "
            f"probe max {max(latencies) * 1000:.0f} ms over {len(latencies)} probes"
        )
        assert growth < 60, growth
        assert max(latencies) < 1.0


def _metrics_answer(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_all(sock, 5.0)


# -- CPU -------------------------------------------------------------------------------------------------------------


def test_a_huge_input_batch_is_refused_without_stalling_the_loop(redis_port: int, tmp_path: Path) -> None:
    """200k inputs in one request used to block the event loop for seconds; the default limit is 10 000."""
    with _start(redis_port, tmp_path) as fe:
        body = json.dumps({"input_batch": [[1.0]] * 200_000}).encode()
        result: dict[str, object] = {}

        def send() -> None:
            with socket.create_connection(("127.0.0.1", fe.port)) as sock:
                sock.sendall(_request(body))
                result["raw"] = _read_one(sock, 10.0)

        sender = threading.Thread(target=send)
        sender.start()
        worst = 0.0
        while sender.is_alive():
            t0 = time.monotonic()
            assert _probe(fe.port, 5.0) == 200
            worst = max(worst, time.monotonic() - t0)
        sender.join()
        raw = result["raw"]
        assert isinstance(raw, bytes)
        print(f"\n200k-item input_batch: answered {_status(raw)}; slowest concurrent probe {worst * 1000:.0f} ms")
        assert _status(raw) == 413, raw[:300]
        assert "--max-batch-items" in _body_json(raw)["cause"] and "10000" in _body_json(raw)["cause"]
        assert worst < 0.5
        ok = fe.predict("plain", {"input_batch": [[1.0]] * 10_000})
        assert ok.status_code == 200 and len(ok.json()["batch_predictions"]) == 10_000
