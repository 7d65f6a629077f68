"""``deploy_model`` and ``set_num_replicas`` of the local manager return only once replicas serve.

A replica whose function cannot be loaded (it raises while unpickling, or imports a module that is not installed)
or that keeps exiting makes ``deploy_model`` fail with a :class:`DeploymentError` naming the cause, and leaves
nothing running. ``set_num_replicas`` returns once the requested number of replicas are connected to the query
frontend, so the first query right after it is answered by the model.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import httpx
import pytest
import redis

from clipper_core.admin import ClipperConnection
from clipper_core.config_store import CONTAINER_DB, LOCAL_DEPLOYMENT_DB
from clipper_core.errors import DeploymentError
from clipper_core.local import LocalContainerManager
from clipper_core.local._state import pid_alive
from clipper_core.ports import free_ports
from clipper_core.secrets import redis_password
from tests._wait import wait_until

pytestmark = pytest.mark.cluster


class _RaisesOnLoad:
    def __reduce__(self) -> tuple[type[int], tuple[str]]:
        return (int, ("this is not a number",))  # unpickling calls int(...) -> ValueError


def _model_dir(root: Path, name: str, payload: bytes) -> Path:
    path = root / name
    (path / "modules").mkdir(parents=True)
    (path / "func.pkl").write_bytes(payload)
    return path


def _echo_len() -> object:
    return lambda xs: [str(len(x)) for x in xs]  # a lambda: cloudpickle stores it by value


@pytest.fixture
def cm(clipper_home: Path) -> Iterator[LocalContainerManager]:
    query, mgmt, rpc, redis_port = free_ports(4)
    manager = LocalContainerManager(
        cluster_name="waits",
        clipper_query_port=query,
        clipper_management_port=mgmt,
        clipper_rpc_port=rpc,
        redis_port=redis_port,
    )
    manager.deploy_timeout = 30.0
    manager.start_clipper()
    try:
        yield manager
    finally:
        manager.stop_all(graceful=False)


def _desired_keys(cm: LocalContainerManager) -> list[bytes]:
    client = redis.Redis(port=cm.redis_port, db=LOCAL_DEPLOYMENT_DB, password=redis_password(cm.cluster_dir))
    try:
        return list(client.scan_iter())
    finally:
        client.close()


def _assert_cleaned_up(cm: LocalContainerManager, name: str) -> None:
    assert cm.replica_pids(name, "1") == []
    assert not (cm._processes().get("replicas") or {}), "replica processes left running"
    assert _desired_keys(cm) == [], "desired replicas left in Redis"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (pickle.dumps(_RaisesOnLoad()), r"ValueError.*this is not a number"),
        (b"cclipper_missing_module_for_tests\npredict\n.", r"No module named 'clipper_missing_module_for_tests'"),
    ],
    ids=["raises-on-load", "missing-module"],
)
def test_deploy_fails_when_the_model_cannot_load(
    cm: LocalContainerManager, tmp_path: Path, payload: bytes, expected: str
) -> None:
    image = cm.build_model("broken", "1", str(_model_dir(tmp_path, "broken", payload)), "base")
    started = time.monotonic()
    with pytest.raises(DeploymentError, match=rf"(?s)broken:1 failed to load.*{expected}"):
        cm.deploy_model("broken", "1", "doubles", image, num_replicas=2)
    assert time.monotonic() - started < 20, "the load error must be reported as soon as the replica connects"
    _assert_cleaned_up(cm, "broken")


def test_deploy_fails_when_the_replica_keeps_exiting(cm: LocalContainerManager, tmp_path: Path) -> None:
    image = cm.build_model("exits", "1", str(_model_dir(tmp_path, "exits", cloudpickle.dumps(_echo_len()))), "base")
    with pytest.raises(DeploymentError, match=r"(?s)exits:1 exited \d+ times before connecting.*exits_1-0\.log"):
        cm.deploy_model("exits", "1", "no-such-input-type", image)  # the runtime exits on an unknown input type
    _assert_cleaned_up(cm, "exits")


def test_deploy_of_a_good_model_waits_until_it_is_connected(cm: LocalContainerManager, tmp_path: Path) -> None:
    image = cm.build_model("good", "1", str(_model_dir(tmp_path, "good", cloudpickle.dumps(_echo_len()))), "base")
    cm.deploy_model("good", "1", "doubles", image)
    (pid,) = cm.replica_pids("good", "1")
    client = redis.Redis(
        port=cm.redis_port, db=CONTAINER_DB, password=redis_password(cm.cluster_dir), decode_responses=True
    )
    try:
        records = [client.hgetall(k) for k in client.scan_iter("good,1,*")]
    finally:
        client.close()
    assert [r["pid"] for r in records] == [str(pid)] and records[0]["status"] == "ready"


def test_set_num_replicas_returns_once_the_replicas_serve(cm: LocalContainerManager, tmp_path: Path) -> None:
    conn = ClipperConnection(cm)
    conn.connect()
    conn.register_application("app", "doubles", "-1.0", 5_000_000)
    image = conn.build_model("m", "1", str(_model_dir(tmp_path, "m", cloudpickle.dumps(_echo_len()))), "base")
    conn.deploy_model("m", "1", "doubles", image)
    conn.link_model_to_app("app", "m")
    url = f"http://{cm.get_query_addr()}/app/predict"
    for i in range(2):  # new inputs every time: the prediction cache must not answer
        conn.set_num_replicas("m", 0)
        assert cm.replica_pids("m", "1") == []
        answer = httpx.post(url, json={"input": [1.0, 10.0 + i]}, timeout=10).json()
        assert answer["default"] is True  # nothing serves now
        conn.set_num_replicas("m", 2)
        answer = httpx.post(url, json={"input": [1.0, 20.0 + i]}, timeout=10).json()
        assert answer == {"query_id": answer["query_id"], "output": 2, "default": False}, answer
    pids = cm.replica_pids("m", "1")
    conn.set_num_replicas("m", 1)  # scaling down: returns once the extra replica is gone
    assert cm.replica_pids("m", "1") == pids[:1] and not pid_alive(pids[1])
    wait_until(lambda: len(conn.get_all_model_replicas()) == 1, 10, "the removed replica's record to go")
