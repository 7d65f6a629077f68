"""RPC admission: the query frontend registers a replica only when its NewContainer carries the cluster's RPC token.

A real local cluster (token admission, the default of clusters our managers start) with real replicas, plus foreign
ZeroMQ DEALERs speaking RPC v3; and a standalone query frontend for the compatible ``open`` mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import requests
import zmq

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer
from clipper_core.ports import free_ports
from clipper_core.rpc import frames as rpc
from clipper_core.secrets import ENV_RPC_TOKEN, read_secrets
from tests._replica import ProtocolReplica
from tests._wait import wait_until
from tests.frontend_harness import query_frontend

pytestmark = pytest.mark.cluster


def doubles_sum(inputs: list[bytes]) -> list[str]:
    return [repr(float(np.frombuffer(x, "<f8").sum())) for x in inputs]


def feature_sum(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


@pytest.fixture
def conn(clipper_home: Path) -> Iterator[ClipperConnection]:
    query, mgmt, rpc_port, redis_port = free_ports(4)
    c = ClipperConnection(LocalContainerManager("rpc", query, mgmt, rpc_port, redis_port=redis_port))
    c.start_clipper()
    try:
        yield c
    finally:
        c.stop_all(graceful=False)


class RawDealer:
    """A foreign replica driven step by step from the test."""

    def __init__(self, port: int) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def heartbeat(self) -> rpc.HeartbeatToContainer | rpc.PredictRequest:
        self.sock.send_multipart(rpc.heartbeat_to_frontend())
        assert self.sock.poll(10_000), "the frontend did not answer a heartbeat"
        return rpc.parse_frontend_message(self.sock.recv_multipart())

    def register(self, name: str, version: str, status: dict | None = None) -> None:
        self.sock.send_multipart(rpc.new_container(name, version, 3, status))

    def pending(self) -> bool:
        return bool(self.sock.poll(0))

    def close(self) -> None:
        self.sock.close(0)


def predict(c: ClipperConnection, app: str, x: list[float]) -> dict:
    r = requests.post(f"http://{c.get_query_addr()}/{app}/predict", json={"input": x}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def add_containerless(c: ClipperConnection, app: str, model: str) -> None:
    c.register_application(app, "doubles", "default", 200_000)
    c.register_model(model, "1", "doubles")
    c.link_model_to_app(app, model)


def test_only_replicas_with_the_token_get_queries(conn: ClipperConnection) -> None:
    cm = conn.cm
    assert isinstance(cm, LocalContainerManager)
    secrets = read_secrets(cm.cluster_dir)
    assert secrets is not None
    log = cm.cluster_dir / "logs" / "query.log"

    # Our runtime (started by the supervisor with CLIPPER_RPC_TOKEN) registers and serves.
    python_deployer.create_endpoint(conn, "real", "doubles", feature_sum)
    assert predict(conn, "real", [1.0, 2.0])["output"] == 3.0

    # A foreign DEALER without the token: asked for its metadata once, refused, logged once, never sent a query.
    add_containerless(conn, "rogue-app", "rogue")
    rogue = RawDealer(cm.clipper_rpc_port)
    try:
        assert rogue.heartbeat() == rpc.HeartbeatToContainer(request_metadata=True)
        rogue.register("rogue", "1")
        wait_until(lambda: "refused replica rogue:1" in log.read_text(), 10, "the refusal to be logged")
        for _ in range(3):  # no more metadata requests, and registering again changes nothing
            assert rogue.heartbeat() == rpc.HeartbeatToContainer(request_metadata=False)
            rogue.register("rogue", "1")
        for _ in range(5):
            out = predict(conn, "rogue-app", [1.0])
            assert out["default"] is True and out["output"] == "default", out
        assert not rogue.pending()
        assert log.read_text().count("refused replica rogue:1") == 1

        wrong = RawDealer(cm.clipper_rpc_port)
        assert wrong.heartbeat() == rpc.HeartbeatToContainer(request_metadata=True)
        wrong.register("rogue", "1", {"status": "ready", "token": secrets.rpc_token[:-1] + "x"})
        wait_until(lambda: "carries a wrong RPC token" in log.read_text(), 10, "the wrong token to be logged")
        assert predict(conn, "rogue-app", [1.0])["default"] is True
        assert not wrong.pending()
        wrong.close()
    finally:
        rogue.close()
    replicas = conn.get_all_model_replicas(verbose=True)
    assert [r["model_name"] for r in replicas] == ["real"], replicas

    # The same foreign replica with the cluster's token serves, and the token is not stored with its record.
    add_containerless(conn, "ok-app", "ok")
    status = {"status": "ready", "token": secrets.rpc_token}
    with ProtocolReplica(cm.clipper_rpc_port, "ok", "1", 3, doubles_sum, status):
        wait_until(
            lambda: any(r["model_name"] == "ok" for r in conn.get_all_model_replicas(verbose=True)),
            10,
            "the replica with the token to register",
        )
        out = predict(conn, "ok-app", [2.0, 3.0])
        assert out["default"] is False and out["output"] == 5.0, out
        db3 = redis.Redis(port=cm.redis_port, db=3, password=secrets.redis_password)
        for key in db3.keys("*"):
            assert secrets.rpc_token.encode() not in b"".join(db3.hgetall(key).values())
        db3.close()


def test_open_admission_accepts_original_containers(
    redis_server: tuple[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis.Redis(port=redis_server[1]).flushall()
    # The frontend has a token, but open admission lets a replica without one register.
    with query_frontend(redis_server[1], tmp_path, "--rpc-admission", "open", env={ENV_RPC_TOKEN: "the-token"}) as fe:
        fe.add_app("open-app")
        fe.add_model("open-model", "1")
        fe.link("open-app", "open-model")
        fe.wait_for_app("open-app")
        with ProtocolReplica(fe.rpc_port, "open-model", "1", 3, doubles_sum) as replica:  # no status frame at all
            assert replica.registered.wait(10)
            fe.wait_until(
                lambda: fe.predict("open-app", {"input": [4.0]}).json()["default"] is False,
                what="the original-style replica to serve",
            )
            assert replica.calls >= 1


def test_token_admission_without_a_token_does_not_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_RPC_TOKEN}
    env["CLIPPER_RPC_ADMISSION"] = "token"
    proc = subprocess.run(
        [sys.executable, "-m", "clipper_frontend.query", "--port", "1", "--rpc-port", "2", "--redis-port", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"RPC admission 'token' needs the cluster's RPC token in ${ENV_RPC_TOKEN}" in proc.stderr


def test_local_cluster_in_open_admission(clipper_home: Path) -> None:
    query, mgmt, rpc_port, redis_port = free_ports(4)
    c = ClipperConnection(
        LocalContainerManager("rpc-open", query, mgmt, rpc_port, redis_port=redis_port, rpc_admission="open")
    )
    c.start_clipper()
    try:
        assert c.cm.describe()["rpc_admission"] == "open"
        add_containerless(c, "legacy-app", "legacy")
        with ProtocolReplica(rpc_port, "legacy", "1", 3, doubles_sum) as replica:  # as an original container
            assert replica.registered.wait(10)
            wait_until(lambda: predict(c, "legacy-app", [1.5])["default"] is False, 10, "the legacy replica to serve")
            assert replica.calls >= 1
    finally:
        c.stop_all(graceful=False)
