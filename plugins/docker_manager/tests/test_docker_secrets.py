"""The secrets of a Docker cluster: Redis password, RPC admission token, management bearer token (docs/security.md).

Real clusters on the Docker daemon (host networking, loopback ports), a raw RESP client and a raw ZeroMQ DEALER.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
import redis
import requests
import zmq
from clipper_deployers import python as python_deployer

from clipper_core.container_manager import CLIPPER_DOCKER_LABEL, CLIPPER_MODEL_CONTAINER_LABEL
from clipper_core.rpc import frames as rpc
from clipper_core.secrets import ENV_MANAGEMENT_TOKEN, ENV_REDIS_PASSWORD, ENV_RPC_TOKEN

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


def add_one(xs: list[Any]) -> list[str]:
    return [str(float(x[0]) + 1.0) for x in xs]


def predict(conn: Any, app: str, x: list[float]) -> dict[str, Any]:
    r = requests.post(f"http://{conn.get_query_addr()}/{app}/predict", json={"input": x}, timeout=30)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def cluster_containers(conn: Any) -> list[Any]:
    cm = conn.cm
    return list(
        cm.docker_client.containers.list(all=True, filters={"label": f"{CLIPPER_DOCKER_LABEL}={cm.cluster_name}"})
    )


def env_of(container: Any) -> dict[str, str]:
    return dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])


def raw_redis_reply(port: int, command: bytes) -> bytes:
    """One RESP reply of the Redis on 127.0.0.1:port to ``command``, sent without any AUTH."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(command)
        return s.recv(4096)


class RawDealer:
    """A replica that sends no token (a container written for the original), driven step by step."""

    def __init__(self, port: int) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def heartbeat(self) -> Any:
        self.sock.send_multipart(rpc.heartbeat_to_frontend())
        assert self.sock.poll(10_000), "the frontend did not answer a heartbeat"
        return rpc.parse_frontend_message(self.sock.recv_multipart())

    def register(self, name: str, version: str) -> None:
        self.sock.send_multipart(rpc.new_container(name, version, 3, None))

    def pending(self) -> bool:
        return bool(self.sock.poll(0))

    def close(self) -> None:
        self.sock.close(0)


def add_containerless(conn: Any, app: str, model: str) -> None:
    conn.register_application(app, "doubles", "default", 200_000)
    conn.register_model(model, "1", "doubles")
    conn.link_model_to_app(app, model)


def test_redis_requires_the_generated_password(cluster: Any) -> None:
    cm = cluster.cm
    secrets = cm.cluster_secrets()
    assert secrets is not None and secrets.redis_password and secrets.rpc_token
    assert secrets.management_token is None  # management auth is off by default
    assert secrets.redis_password not in repr(secrets) and secrets.rpc_token not in repr(secrets)
    for command in (b"PING\r\n", b"CONFIG SET dir /tmp\r\n", b"KEYS *\r\n"):
        assert raw_redis_reply(cm.redis_port, command).startswith(b"-NOAUTH"), command
    client = redis.Redis(host="127.0.0.1", port=cm.redis_port, password=secrets.redis_password)
    try:
        assert client.ping()
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
    finally:
        client.close()


def test_replicas_need_the_token_and_the_cluster_serves(cluster: Any) -> None:
    cm = cluster.cm
    python_deployer.create_endpoint(cluster, "secure", "doubles", add_one)
    assert predict(cluster, "secure", [1.5])["output"] == 2.5  # our runtime got CLIPPER_RPC_TOKEN and was admitted

    add_containerless(cluster, "rogue-app", "rogue")
    rogue = RawDealer(cm.clipper_rpc_port)
    try:
        assert rogue.heartbeat() == rpc.HeartbeatToContainer(request_metadata=True)
        rogue.register("rogue", "1")
        for _ in range(3):  # refused: not asked for metadata again
            assert rogue.heartbeat() == rpc.HeartbeatToContainer(request_metadata=False)
        for _ in range(3):
            out = predict(cluster, "rogue-app", [1.0])
            assert out["default"] is True and out["output"] == "default", out
        assert not rogue.pending()
    finally:
        rogue.close()
    assert not [r for r in cluster.get_all_model_replicas(verbose=True) if r.get("model_name") == "rogue"]


def test_no_secret_on_a_command_line_or_label(cluster: Any) -> None:
    cm = cluster.cm
    python_deployer.create_endpoint(cluster, "inspected", "doubles", add_one)
    secrets = cm.cluster_secrets()
    assert secrets is not None
    values = [secrets.redis_password, secrets.rpc_token]
    found = cluster_containers(cluster)
    assert len(found) >= 4
    for c in found:
        c.reload()
        config = c.attrs["Config"]
        visible = json.dumps([c.attrs.get("Path"), c.attrs.get("Args"), config.get("Cmd"), config.get("Entrypoint")])
        visible += json.dumps(config.get("Labels"))
        for value in values:
            assert value not in visible, f"a secret is on the command line or in a label of {c.name}"
        top = c.top()  # the processes as `ps` on the host shows them
        assert not [p for p in top["Processes"] if any(v in " ".join(p) for v in values)], c.name

    by_role = {c.name.split("-")[0]: env_of(c) for c in found}
    assert by_role["redis"][ENV_REDIS_PASSWORD] == secrets.redis_password
    assert by_role["query_frontend"][ENV_RPC_TOKEN] == secrets.rpc_token
    assert by_role["query_frontend"][ENV_REDIS_PASSWORD] == secrets.redis_password
    assert by_role["mgmt_frontend"][ENV_REDIS_PASSWORD] == secrets.redis_password
    assert ENV_RPC_TOKEN not in by_role["mgmt_frontend"] and ENV_MANAGEMENT_TOKEN not in by_role["mgmt_frontend"]
    replica_filter = {"label": [f"{CLIPPER_DOCKER_LABEL}={cm.cluster_name}", f"{CLIPPER_MODEL_CONTAINER_LABEL}"]}
    for replica in cm.docker_client.containers.list(filters=replica_filter):
        env = env_of(replica)
        assert env[ENV_RPC_TOKEN] == secrets.rpc_token
        assert ENV_REDIS_PASSWORD not in env and ENV_MANAGEMENT_TOKEN not in env


def test_connect_from_a_new_process_finds_the_secrets(cluster: Any) -> None:
    secrets = cluster.cm.cluster_secrets()
    assert secrets is not None
    expected = [secrets.redis_password, secrets.rpc_token]
    script = textwrap.dedent(
        f"""
        import json
        from clipper_admin import ClipperConnection, DockerContainerManager
        conn = ClipperConnection(DockerContainerManager(cluster_name={cluster.cm.cluster_name!r}))
        conn.connect()
        found = conn.cm.cluster_secrets()
        same = [found.redis_password, found.rpc_token] == {expected!r}
        print(json.dumps({{"apps": conn.get_all_apps(), "admission": conn.cm.rpc_admission, "same": same}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["same"] is True and result["admission"] == "token" and isinstance(result["apps"], list)


def test_open_admission_and_management_auth(clusters: Any) -> None:
    from clipper_admin import ClipperConnection, DockerContainerManager

    conn = clusters.make("openauth", rpc_admission="open", management_auth=True)
    cm = conn.cm
    secrets = cm.cluster_secrets()
    assert secrets is not None and secrets.management_token
    url = f"http://{cm.get_admin_addr()}/admin/get_all_applications"
    assert requests.post(url, json={"verbose": False}, timeout=10).status_code == 401
    add_containerless(conn, "legacy-app", "legacy")  # the manager's admin client sends the bearer token

    other = ClipperConnection(DockerContainerManager(cluster_name=cm.cluster_name, docker_network="host"))
    other.connect()  # finds out from the containers that management auth is on, and the token
    assert other.cm.management_auth and other.cm.rpc_admission == "open"
    assert other.get_all_apps() == ["legacy-app"]

    legacy = RawDealer(cm.clipper_rpc_port)  # no token: admitted in the open mode, and sent queries
    sender = threading.Thread(target=lambda: predict(conn, "legacy-app", [1.0]))
    try:
        assert legacy.heartbeat() == rpc.HeartbeatToContainer(request_metadata=True)
        legacy.register("legacy", "1")
        sender.start()
        received: list[Any] = []
        deadline = time.monotonic() + 30
        while not any(isinstance(m, rpc.PredictRequest) for m in received) and time.monotonic() < deadline:
            if legacy.sock.poll(1000):
                received.append(rpc.parse_frontend_message(legacy.sock.recv_multipart()))
        assert any(isinstance(m, rpc.PredictRequest) for m in received), received
    finally:
        sender.join(40)
        legacy.close()
