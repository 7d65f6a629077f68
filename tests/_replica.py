"""A protocol-level model replica for frontend tests: a real ZeroMQ DEALER in a thread, speaking RPC v3 exactly as
an original Clipper container does (including none of our extensions unless asked). Counts every call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from clipper_core.rpc import frames as rpc


class ProtocolReplica:
    def __init__(
        self,
        port: int,
        name: str,
        version: str,
        input_code: int,
        func: Callable[[list[bytes]], list[str]],
        status: dict[str, Any] | None = None,
    ) -> None:
        self.port = port
        self.name = name
        self.version = version
        self.input_code = input_code
        self.func = func
        self.status = status
        self.calls = 0
        self.batches: list[int] = []
        self.registered = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProtocolReplica:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{self.port}")
        sock.send_multipart(rpc.heartbeat_to_frontend())
        last_hb = time.monotonic()
        try:
            while not self._stop.is_set():
                if not sock.poll(50):
                    if time.monotonic() - last_hb > 1.0:
                        sock.send_multipart(rpc.heartbeat_to_frontend())
                        last_hb = time.monotonic()
                    continue
                msg = rpc.parse_frontend_message(sock.recv_multipart())
                if isinstance(msg, rpc.HeartbeatToContainer):
                    if msg.request_metadata:
                        sock.send_multipart(rpc.new_container(self.name, self.version, self.input_code, self.status))
                        self.registered.set()
                    continue
                self.calls += len(msg.inputs)
                self.batches.append(len(msg.inputs))
                outputs = self.func(msg.inputs)
                sock.send_multipart(rpc.prediction_response(msg.msg_id_frame, outputs))
        finally:
            sock.close(0)
