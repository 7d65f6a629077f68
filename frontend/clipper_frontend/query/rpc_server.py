"""The ZeroMQ ROUTER side of RPC protocol v3, driven by the event loop's reader callbacks (no polling thread).

Replicas register with a heartbeat -> metadata request -> NewContainer handshake. A replica is removed when its
TCP connection drops (socket monitor, matched to the routing identity through the peer's file descriptor) or after
``activity_timeout`` seconds of silence, whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

import zmq
from zmq.utils.monitor import parse_monitor_message

from clipper_core.config_store import ConfigStore
from clipper_core.input_types import InputTypeRegistry
from clipper_core.rpc import frames as rpc
from clipper_core.rpc.admission import Admission, without_token
from clipper_frontend.query._replica_records import ReplicaRecords
from clipper_frontend.query.engine import Engine, Replica

if TYPE_CHECKING:
    from clipper_frontend.query.state import ClusterView

logger = logging.getLogger(__name__)

_HB_KEEPALIVE = rpc.heartbeat_to_container(False)
_HB_METADATA = rpc.heartbeat_to_container(True)


class RPCServer:
    def __init__(
        self,
        engine: Engine,
        store: ConfigStore,
        view: ClusterView,
        input_types: InputTypeRegistry,
        host: str = "127.0.0.1",
        port: int = 7000,
        activity_timeout: float = 30.0,
        admission: Admission | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.view = view
        self.input_types = input_types
        self.host = host
        self.port = port
        # Unique per process and machine: query frontends in separate containers or pods all bind 0.0.0.0:7000 and
        # often run as pid 1, and each must recognise only its own earlier records as stale.
        self._record_prefix = f"{socket.gethostname()}:{host}:{port}:"
        self.frontend_id = f"{self._record_prefix}{os.getpid()}"
        self.activity_timeout = activity_timeout
        self.admission = admission or Admission(None)  # who may register (clipper_core.rpc.admission)
        self.ctx = zmq.Context.instance()
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.replicas: dict[bytes, Replica] = {}
        self.fds: dict[int, bytes] = {}
        self.last_seen: dict[bytes, float] = {}
        self._conn_ids = 0
        self._drain_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Replica records are written (and deleted) in the background, retried while Redis is away.
        self.records = ReplicaRecords(store, self.frontend_id, self._record_prefix)
        view.on_redis_restored.append(self.records.resync)
        engine.sender = self.send_batch

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._forget_stale_records()
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        self.monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sock.bind(f"tcp://{self.host}:{self.port}")
        self.sock = sock
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.getsockopt(zmq.FD), self._drain)
        loop.add_reader(self.monitor.getsockopt(zmq.FD), self._drain_monitor)
        self._spawn(self._liveness_loop())
        self._spawn(self.records.run())
        # Reading EVENTS once arms ZeroMQ's edge-triggered descriptors.
        self._drain()
        self._drain_monitor()
        logger.info("RPC service listening on tcp://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        for task in list(self._tasks):
            task.cancel()
        if self.sock is not None:
            loop.remove_reader(self.sock.getsockopt(zmq.FD))
            if self.monitor is not None:
                loop.remove_reader(self.monitor.getsockopt(zmq.FD))
                self.sock.disable_monitor()
                self.monitor.close(0)
            self.sock.close(0)
        try:
            for replica in list(self.replicas.values()):
                if replica.replica_id >= 0:
                    await self.store.delete_container(replica.name, replica.version, replica.replica_id)
        except Exception as exc:  # noqa: BLE001 - Redis away: the next start of this frontend deletes them
            logger.warning("could not delete the replica records: %s", exc)

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forget_stale_records(self) -> None:
        """Replica records left by an earlier run of this frontend describe connections that no longer exist."""
        for record in await self.store.list_containers():
            if record.get("frontend", "").startswith(self._record_prefix):
                await self.store.delete_container(
                    record["model_name"], record["model_version"], record["model_replica_id"]
                )

    # -- receiving ------------------------------------------------------------------------------

    def _schedule_drain(self) -> None:
        # ZMQ_FD is edge-triggered: a send can consume the readiness notification, so look again soon.
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        sock = self.sock
        if sock is None:
            return
        now = time.monotonic()
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            ident_frame = sock.recv(copy=False)
            identity = ident_frame.bytes
            frames = sock.recv_multipart() if ident_frame.more else []
            self.last_seen[identity] = now
            if identity not in self.replicas:  # handshake: remember the connection's fd for disconnect events
                try:
                    self.fds[ident_frame.get(zmq.SRCFD)] = identity
                except zmq.ZMQError:
                    pass
            try:
                msg = rpc.parse_container_message(frames)
                if msg is None:
                    known = identity in self.replicas or self.admission.refused(identity)
                    self._send(identity, _HB_KEEPALIVE if known else _HB_METADATA)
                elif type(msg) is rpc.PredictionResponse:
                    self.engine.on_response(msg.msg_id, msg.outputs)
                elif type(msg) is rpc.NewContainer:
                    self._on_new_container(identity, msg)
            except rpc.ProtocolError as exc:
                logger.error("malformed RPC message from %r: %s", identity, exc)
            except Exception:
                # Whatever went wrong with one message, the loop must go on reading the ones behind it.
                logger.exception("error handling an RPC message from %r", identity)

    def _drain_monitor(self) -> None:
        mon = self.monitor
        if mon is None:
            return
        while mon.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            event = parse_monitor_message(mon.recv_multipart())
            if event["event"] == zmq.EVENT_DISCONNECTED:
                identity = self.fds.pop(int(event["value"]), None)
                if identity is not None:
                    self._remove(identity, "connection closed")

    def _send(self, identity: bytes, frames: list[bytes]) -> bool:
        assert self.sock is not None
        try:
            self.sock.send_multipart([identity, *frames], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            logger.warning("cannot send to replica %r: %s", identity, exc)
            self._schedule_drain()
            return False
        self._schedule_drain()
        return True

    def send_batch(self, replica: Replica, msg_id: int, payloads: list[bytes]) -> bool:
        ok = self._send(replica.identity, rpc.predict_request(msg_id, replica.input_code, payloads))
        if not ok:
            asyncio.get_running_loop().call_soon(self._remove, replica.identity, "unreachable")
        return ok

    # -- registration and removal ---------------------------------------------------------------

    def _on_new_container(self, identity: bytes, msg: rpc.NewContainer) -> None:
        if msg.rpc_version != rpc.RPC_VERSION:
            logger.error(
                "container %s:%s speaks RPC version %d, expected %d; not registered",
                msg.model_name,
                msg.model_version,
                msg.rpc_version,
                rpc.RPC_VERSION,
            )
            return
        if identity in self.replicas:
            return
        if not self.admission.admits(identity, msg.model_name, msg.model_version, msg.status):
            return
        try:
            input_type = self.input_types.by_code(msg.input_type_code)
        except Exception:
            logger.error(
                "container %s:%s sent unknown input type %d", msg.model_name, msg.model_version, msg.input_type_code
            )
            return
        status = without_token(msg.status)  # the token is never stored nor shown
        replica = Replica(identity, msg.model_name, msg.model_version, input_type.code, status=status)
        self.replicas[identity] = replica
        self._register(replica, input_type.name)

    def _register(self, replica: Replica, input_type: str) -> None:
        """Serve the replica at once; its record (and replica id) is written to Redis as soon as Redis allows."""
        self._conn_ids += 1
        status = replica.status
        fields = {
            "zmq_connection_id": str(self._conn_ids),
            "input_type": input_type,
            "frontend": self.frontend_id,
            "status": str(status.get("status", "ready")),
            "error": str(status.get("error", "")),
            "pid": str(status.get("pid", "")),
        }
        self.records.add(replica, fields)
        info = self.view.models.get(replica.key)
        queue = self.engine.queue(replica.name, replica.version)
        if info is not None:
            queue.batch_size = info.batch_size
        self.engine.add_replica(replica)
        logger.info("replica of %s:%s connected (%s)", replica.name, replica.version, fields["status"])
        if status.get("error"):
            logger.warning("replica of %s:%s reports: %s", replica.name, replica.version, status["error"])

    def _remove(self, identity: bytes, why: str) -> None:
        self.last_seen.pop(identity, None)
        self.admission.forget(identity)
        replica = self.replicas.pop(identity, None)
        for fd in [fd for fd, ident in self.fds.items() if ident == identity]:
            del self.fds[fd]
        if replica is None:
            return
        logger.info("replica %d of %s:%s removed: %s", replica.replica_id, replica.name, replica.version, why)
        self.engine.remove_replica(replica, why)
        self.records.remove(replica)

    async def _liveness_loop(self) -> None:
        interval = min(5.0, max(0.5, self.activity_timeout / 3))
        while True:
            await asyncio.sleep(interval)
            cutoff = time.monotonic() - self.activity_timeout
            for identity, seen in list(self.last_seen.items()):
                if seen < cutoff:
                    self._remove(identity, f"silent for more than {self.activity_timeout:.0f} s")
