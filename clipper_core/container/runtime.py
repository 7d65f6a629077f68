"""The replica side of RPC protocol v3: a synchronous ZeroMQ DEALER loop around one predict function.

Session (as the original ``rpc.py``): connect, send a Heartbeat; answer RequestContainerMetadata with NewContainer
(plus the optional status frame); wait for messages with a timeout of ``heartbeat_interval_s``; on a timeout send
a heartbeat, and after ``activity_timeout_s`` without any message from the frontend replace the socket (a new
connection gets a new routing identity, so the frontend sees a new replica).

Differences from the original, on purpose:

* a predict exception or a result that is not one output per input becomes one ``ERROR_PREFIX`` output per input
  instead of killing the process (issue #541), and a model that failed to load keeps the replica connected and
  answering errors, so the failure is visible to clients and to the frontend (status frame);
* when predict raises for a batch, the batch is bisected to find the inputs it raises for: only those get errors
  (see :meth:`ContainerRuntime.isolate`);
* a predict call that runs longer than ``predict_timeout_s`` ends the process with status
  :data:`EXIT_PREDICT_TIMEOUT` and a log line saying so, so that the supervisor or Docker's restart policy starts
  a fresh replica instead of leaving a hung one connected;
* ``ZMQ_IMMEDIATE`` is set, so nothing is queued on a connection that is not up: heartbeats do not pile up while
  the frontend is down (each would trigger a duplicate registration), and a response for a frontend that went
  away is dropped instead of being delivered to its successor.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import zmq

from clipper_core.container._predict import (
    MAX_ERROR_CHARS,
    PredictFunction,
    PredictionError,
    bisect_failures,
    describe_exception,
    predict_method,
    resolve_input_type,
    to_outputs,
)
from clipper_core.container.config import (
    DEFAULT_ACTIVITY_TIMEOUT_S,
    DEFAULT_HEARTBEAT_INTERVAL_S,
    DEFAULT_PREDICT_TIMEOUT_S,
    ContainerConfig,
)
from clipper_core.input_types import InputType
from clipper_core.rpc import frames as rpc
from clipper_core.rpc.admission import with_token

logger = logging.getLogger(__name__)

__all__ = [
    "EXIT_PREDICT_TIMEOUT",
    "MAX_ERROR_CHARS",
    "ContainerRuntime",
    "PredictionError",
    "describe_exception",
    "predict_method",
    "resolve_input_type",
    "to_outputs",
]

#: After the first predict traceback, at most one more is logged per this many seconds.
ERROR_LOG_INTERVAL_S = 10.0
#: Exit status of a replica whose predict call ran past its time limit (non-zero: Docker's ``on-failure`` restarts it).
EXIT_PREDICT_TIMEOUT = 3


_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)


class _Stop(BaseException):
    """Raised from the SIGTERM/SIGINT handler to unwind the loop wherever it is blocked."""


class ContainerRuntime:
    """One replica's RPC loop.

    :param predict: called once per batch with ``input_type.decode_batch(payloads)`` (once per part while a failing
        batch is bisected); ``None`` when the model failed to load (then ``load_error`` must say why).
    :param ready_file: written with ``READY`` before serving (not when the model failed to load), removed on exit.
    :param predict_timeout_s: while :meth:`run` serves, a predict call running longer ends the whole process
        (status :data:`EXIT_PREDICT_TIMEOUT`), also when the runtime runs in a thread of a larger program.
    """

    def __init__(
        self,
        predict: PredictFunction | None,
        *,
        model_name: str,
        model_version: str,
        input_type: InputType | str = "doubles",
        ip: str = "127.0.0.1",
        port: int = 7000,
        load_error: str | None = None,
        ready_file: str | None = None,
        heartbeat_interval_s: float = DEFAULT_HEARTBEAT_INTERVAL_S,
        activity_timeout_s: float = DEFAULT_ACTIVITY_TIMEOUT_S,
        predict_timeout_s: float = DEFAULT_PREDICT_TIMEOUT_S,
        rpc_token: str | None = None,
    ) -> None:
        if predict is None and load_error is None:
            load_error = "no predict function"
        self.predict = predict
        self.load_error = load_error
        self.model_name = model_name
        self.model_version = str(model_version)
        self.input_type = resolve_input_type(input_type)
        self.ip = ip
        self.port = int(port)
        self.ready_file = ready_file
        self.heartbeat_interval_s = float(heartbeat_interval_s)
        self.activity_timeout_s = float(activity_timeout_s)
        self.predict_timeout_s = float(predict_timeout_s)
        #: time.monotonic() when the running predict call started, 0.0 between calls (read by the watchdog thread)
        self._busy_since = 0.0
        self._busy_inputs = 0
        #: the last isolation found no input the model answers: the next one only tries one split
        self._failing_all = False
        self._stopping = threading.Event()
        self._last_error_log = -float("inf")
        self._suppressed_errors = 0
        self.pid = os.getpid()
        status = with_token(self.status(), rpc_token)  # RPC admission (clipper_core.rpc.admission)
        self._new_container = rpc.new_container(model_name, self.model_version, self.input_type.code, status)

    @classmethod
    def from_config(
        cls, config: ContainerConfig, predict: PredictFunction | None, load_error: str | None = None
    ) -> ContainerRuntime:
        return cls(
            predict,
            model_name=config.model_name,
            model_version=config.model_version,
            input_type=config.input_type,
            ip=config.ip,
            port=config.port,
            load_error=load_error,
            ready_file=config.ready_file,
            heartbeat_interval_s=config.heartbeat_interval_s,
            activity_timeout_s=config.activity_timeout_s,
            predict_timeout_s=config.predict_timeout_s,
            rpc_token=config.rpc_token,
        )

    @property
    def address(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"tcp://{host}:{self.port}"

    def status(self) -> dict[str, object]:
        """The JSON object of NewContainer's optional sixth frame."""
        if self.load_error is not None:
            return {"status": "error", "error": self.load_error, "pid": self.pid}
        return {"status": "ready", "pid": self.pid}

    # ------------------------------------------------------------------ predictions

    def handle_batch(self, input_type_code: int, payloads: Sequence[bytes]) -> list[str]:
        """One output per input: predictions, or ``ERROR_PREFIX`` strings explaining why there are none."""
        n = len(payloads)
        if n == 0:
            return []
        if self.predict is None:
            return [rpc.ERROR_PREFIX + f"model failed to load: {self.load_error}"] * n
        if input_type_code != self.input_type.code:
            it = self.input_type
            msg = f"input type code {input_type_code} does not match this model's {it.name} ({it.code})"
            logger.error("Rejecting a batch: %s", msg)
            return [rpc.ERROR_PREFIX + f"PredictionError: {msg}"] * n
        try:
            outputs = self._call(payloads)
        except PredictionError as exc:  # not one output per input: no single input is to blame
            self._log_predict_error(exc, n)
            return [rpc.ERROR_PREFIX + describe_exception(exc)] * n
        except Exception as exc:  # noqa: BLE001 - a model error must never end the replica
            self._log_predict_error(exc, n)
            if n == 1:
                return [rpc.ERROR_PREFIX + describe_exception(exc)]
            return self.isolate(payloads, exc)
        if self._failing_all:
            self._failing_all = False
        return outputs

    def _call(self, payloads: Sequence[bytes]) -> list[str]:
        """Decode, predict and check one batch, under the watchdog's time limit."""
        self._busy_inputs = len(payloads)
        self._busy_since = time.monotonic()
        try:
            return to_outputs(self.predict(self.input_type.decode_batch(payloads)), len(payloads))  # type: ignore[misc]
        finally:
            self._busy_since = 0.0

    def isolate(self, payloads: Sequence[bytes], exc: Exception) -> list[str]:
        """Outputs for a batch that predict raised ``exc`` for, with errors only for the inputs it raises for on
        their own (see :func:`~clipper_core.container._predict.bisect_failures`). Once an isolation found no input
        that succeeds, the next one tries a single split, until a call succeeds again."""
        outputs, answered = bisect_failures(self._call, payloads, exc, probe_only=self._failing_all)
        self._failing_all = not answered
        logger.debug("Isolated a failing batch: %d of %d inputs answered", answered, len(payloads))
        return outputs

    def _log_predict_error(self, exc: BaseException, n: int) -> None:
        now = time.monotonic()
        if now - self._last_error_log < ERROR_LOG_INTERVAL_S:
            self._suppressed_errors += 1
            return
        suppressed, self._suppressed_errors, self._last_error_log = self._suppressed_errors, 0, now
        more = f" ({suppressed} more failed batches not logged)" if suppressed else ""
        logger.error("Prediction failed for a batch of %d inputs%s", n, more, exc_info=exc)

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask :meth:`run` to return (seen within one heartbeat interval); signal handlers stop at once."""
        self._stopping.set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGTERM and SIGINT stop :meth:`run` wherever it is blocked; returns the previous handlers."""

        def handler(signum: int, frame: object) -> None:
            if self._stopping.is_set():
                return
            self._stopping.set()
            raise _Stop

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def run(self, handle_signals: bool = False) -> None:
        """Serve until :meth:`stop`, or SIGTERM/SIGINT when ``handle_signals`` (main thread only)."""
        context = zmq.Context()
        sock: zmq.Socket[bytes] | None = None
        previous: dict[int, Any] = {}
        done = threading.Event()
        threading.Thread(target=self._watch, args=(done,), name="predict-watchdog", daemon=True).start()
        try:
            if handle_signals:
                previous = self._install_signal_handlers()
            if self.load_error is None:
                self._write_ready_file()
            self._log_start()
            while not self._stopping.is_set():
                sock = self._connect(context)
                self._session(sock)
                sock.close(linger=0)
                sock = None
        except _Stop:
            pass
        finally:
            done.set()
            if sock is not None:
                sock.close(linger=0)
            context.term()
            self._remove_ready_file()
            for sig, old in previous.items():
                signal.signal(sig, old)
            logger.info("Replica of %s:%s stopped", self.model_name, self.model_version)

    def _watch(self, done: threading.Event) -> None:
        """End the process when a predict call runs past ``predict_timeout_s``: a hung model cannot be interrupted
        from inside, and a fresh process started by the supervisor (or Docker) serves again."""
        limit = self.predict_timeout_s
        while not done.wait(min(1.0, limit / 10)):
            started = self._busy_since
            if started and time.monotonic() - started > limit:
                logger.critical(
                    "predict did not return within %g s (a batch of %d inputs, running for %.1f s); exiting with "
                    "status %d so that the replica is restarted (CLIPPER_PREDICT_TIMEOUT_S sets the limit)",
                    limit,
                    self._busy_inputs,
                    time.monotonic() - started,
                    EXIT_PREDICT_TIMEOUT,
                )
                self._remove_ready_file()
                for handler in logging.getLogger().handlers:
                    handler.flush()
                os._exit(EXIT_PREDICT_TIMEOUT)

    def _log_start(self) -> None:
        logger.info(
            "Serving %s:%s (%s inputs) for %s%s",
            self.model_name,
            self.model_version,
            self.input_type.name,
            self.address,
            "" if self.load_error is None else f"; model failed to load: {self.load_error}",
        )

    def _connect(self, context: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        timeout_ms = max(1, int(self.heartbeat_interval_s * 1000))
        sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        sock.setsockopt(zmq.SNDTIMEO, timeout_ms)  # heartbeats wait this long for the connection to come up
        if ":" in self.ip:
            sock.setsockopt(zmq.IPV6, 1)
        sock.connect(self.address)
        return sock

    def _session(self, sock: zmq.Socket[bytes]) -> None:
        """Serve one socket until the activity timeout (then the caller reconnects) or a stop request."""
        last_activity = time.monotonic()
        need_heartbeat = True
        heartbeat = rpc.heartbeat_to_frontend()
        while not self._stopping.is_set():
            if need_heartbeat:
                try:
                    sock.send_multipart(heartbeat)  # blocks until connected, at most one interval
                    need_heartbeat = False
                except zmq.Again:
                    pass
                if need_heartbeat:
                    if time.monotonic() - last_activity >= self.activity_timeout_s:
                        logger.warning("Cannot reach the frontend at %s; reconnecting", self.address)
                        return
                    continue
            try:
                frames = sock.recv_multipart()
            except zmq.Again:
                if time.monotonic() - last_activity >= self.activity_timeout_s:
                    logger.warning(
                        "No message from the frontend at %s for %.1f s; reconnecting with a new socket",
                        self.address,
                        self.activity_timeout_s,
                    )
                    return
                need_heartbeat = True
                continue
            self._dispatch(sock, frames)
            # Measured from the end of the handling, so a model slower than the timeout does not cause a reconnect.
            last_activity = time.monotonic()

    def _dispatch(self, sock: zmq.Socket[bytes], frames: list[bytes]) -> None:
        try:
            msg = rpc.parse_frontend_message(frames)
        except rpc.ProtocolError as exc:
            logger.error("Ignoring a malformed message from the frontend: %s", exc)
            return
        if isinstance(msg, rpc.PredictRequest):
            outputs = self.handle_batch(msg.input_type_code, msg.inputs)
            try:
                reply = rpc.prediction_response(msg.msg_id_frame, outputs)
            except UnicodeEncodeError as exc:  # e.g. lone surrogates in an output string
                self._log_predict_error(exc, len(outputs))
                error = rpc.ERROR_PREFIX + "PredictionError: output is not valid UTF-8: " + describe_exception(exc)
                reply = rpc.prediction_response(msg.msg_id_frame, [error] * len(outputs))
            self._send(sock, reply, "prediction response")
        elif msg.request_metadata:
            self._send(sock, self._new_container, "container metadata")
            logger.info("Sent container metadata for %s:%s", self.model_name, self.model_version)

    @staticmethod
    def _send(sock: zmq.Socket[bytes], frames: list[bytes], what: str) -> None:
        """Send without blocking. Plain-int flags: pyzmq's ``send_multipart`` ORs enum flags once per frame,
        which costs more than the send itself for a small response. ZeroMQ delivers a multipart message
        atomically, so only the first part can fail with EAGAIN."""
        last = len(frames) - 1
        try:
            for i, frame in enumerate(frames):
                sock.send(frame, _NOBLOCK_MORE if i < last else _NOBLOCK)
        except zmq.Again:
            # With ZMQ_IMMEDIATE this means the frontend that asked is gone: its successor must not get the reply.
            logger.warning("Dropped a %s: the frontend connection is down", what)

    # ------------------------------------------------------------------ readiness file

    def _write_ready_file(self) -> None:
        if not self.ready_file:
            return
        try:
            with open(self.ready_file, "w") as f:
                f.write("READY")
        except OSError as exc:
            logger.warning("Cannot write the readiness file %s: %s", self.ready_file, exc)

    def _remove_ready_file(self) -> None:
        if not self.ready_file or self.load_error is not None:
            return
        try:
            os.unlink(self.ready_file)
        except OSError:
            pass
