"""The cluster's Redis requires the cluster secret: a client without it can neither read, write nor reconfigure
Redis (``NOAUTH``), while every component of the cluster authenticates and the cluster serves end to end.

Real redis-server, real frontends, supervisor and replica processes of a local cluster.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
import requests

from clipper_admin import ClipperConnection, LocalContainerManager
from clipper_admin.deployers import python as python_deployer
from clipper_core.files import read_json
from clipper_core.local._state import recorded_pids
from clipper_core.local.redis_server import redis_command, stop_process
from clipper_core.ports import free_port, free_ports, wait_for_port
from clipper_core.secrets import ENV_REDIS_PASSWORD, SECRETS_FILE, read_secrets, write_redis_config

pytestmark = pytest.mark.cluster


def feature_sum(xs: list[list[float]]) -> list[str]:
    return [str(sum(x)) for x in xs]


def raw_redis(port: int, *commands: list[str]) -> list[bytes]:
    """Send RESP commands on a fresh connection without AUTH; one raw reply line each."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for cmd in commands:
            parts = [f"${len(p.encode())}\r\n{p}\r\n" for p in cmd]
            sock.sendall(f"*{len(cmd)}\r\n{''.join(parts)}".encode())
            replies.append(reader.readline().rstrip(b"\r\n"))
    return replies


def serve_end_to_end(conn: ClipperConnection, app: str = "sum") -> None:
    conn.register_application(app, "doubles", "default", 3_000_000)
    python_deployer.deploy_python_closure(conn, "summer", 1, "doubles", feature_sum)
    conn.link_model_to_app(app, "summer")
    r = requests.post(f"http://{conn.get_query_addr()}/{app}/predict", json={"input": [1.0, 2.0, 3.5]}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["output"] == 6.5 and r.json()["default"] is False, r.text


@pytest.fixture
def conn(clipper_home: Path) -> Iterator[ClipperConnection]:
    query, mgmt, rpc, redis_port = free_ports(4)
    c = ClipperConnection(LocalContainerManager("sec", query, mgmt, rpc, redis_port=redis_port))
    c.start_clipper()
    try:
        yield c
    finally:
        c.stop_all(graceful=False)


def test_redis_refuses_clients_without_the_cluster_secret(conn: ClipperConnection, tmp_path: Path) -> None:
    cm = conn.cm
    assert isinstance(cm, LocalContainerManager)
    serve_end_to_end(conn)
    secrets = read_secrets(cm.cluster_dir)
    assert secrets is not None and secrets.redis_password
    for name in (SECRETS_FILE, "redis.conf"):
        assert stat.S_IMODE(os.stat(cm.cluster_dir / name).st_mode) == 0o600, name

    target = tmp_path / "written-by-redis"
    target.mkdir()
    replies = raw_redis(
        cm.redis_port,
        ["CONFIG", "SET", "dir", str(target)],
        ["SAVE"],
        ["SELECT", "5"],
        ["KEYS", "*"],
        ["HGETALL", "sum"],
        ["SET", "injected", "1"],
        ["AUTH", "wrong-password"],
        ["FLUSHALL"],
    )
    assert all(r.startswith(b"-NOAUTH") for i, r in enumerate(replies) if i != 6), replies
    assert replies[6].startswith(b"-WRONGPASS"), replies
    assert list(target.iterdir()) == []

    # The state is untouched and the cluster keeps answering.
    apps = redis.Redis(port=cm.redis_port, db=5, password=secrets.redis_password)
    assert apps.hget("sum", "input_type") == b"doubles"
    assert apps.config_get("dir")["dir"] != str(target)
    apps.close()
    r = requests.post(f"http://{conn.get_query_addr()}/sum/predict", json={"input": [2.0]}, timeout=30)
    assert r.json()["output"] == 2.0, r.text

    # No secret is on a command line or in a log, and the password is in no replica's environment.
    pids = recorded_pids(read_json(cm.cluster_dir / "processes.json"))
    assert len(pids) >= 5
    every = (secrets.redis_password, secrets.rpc_token, secrets.management_token)
    for pid in pids:
        cmdline = " ".join(psutil.Process(pid).cmdline())
        assert not [s for s in every if s in cmdline], cmdline
    for log in (cm.cluster_dir / "logs").iterdir():
        text = log.read_text(errors="replace")
        assert not [s for s in every if s in text], log
    for pid in cm.replica_pids("summer", "1"):
        assert ENV_REDIS_PASSWORD not in psutil.Process(pid).environ()


def test_external_redis_with_a_password(clipper_home: Path, tmp_path: Path) -> None:
    password = "external-redis-pw"
    port = free_port()
    cmd = redis_command(port, tmp_path)
    cmd.insert(1, str(write_redis_config(tmp_path / "ext.conf", password)))
    with open(tmp_path / "ext-redis.log", "wb") as log:
        ext = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    conn = None
    try:
        wait_for_port(port, proc=ext)
        assert raw_redis(port, ["KEYS", "*"])[0].startswith(b"-NOAUTH")
        query, mgmt, rpc = free_ports(3)
        cm = LocalContainerManager(
            "ext-pw", query, mgmt, rpc, redis_ip="127.0.0.1", redis_port=port, redis_password=password
        )
        conn = ClipperConnection(cm)
        conn.start_clipper()
        serve_end_to_end(conn)
        assert json.loads((cm.cluster_dir / SECRETS_FILE).read_text())["redis_password"] == password
        client = redis.Redis(port=port, db=8, password=password)
        assert client.hget("ext-pw:summer:1", "num_replicas") == b"1"  # <cluster>:<name>:<version>
        client.close()
    finally:
        if conn is not None:
            conn.stop_all(graceful=False)
        stop_process(ext)
