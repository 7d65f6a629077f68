"""Two local clusters sharing one Redis (``redis_ip``) keep to their own desired replicas.

Every DB 8 key is scoped by the cluster name, so each supervisor runs only its own cluster's replicas, and
``stop_all()`` / ``stop_all_model_containers()`` of one cluster leave the other's keys and replicas alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
import redis

from clipper_core.config_store import LOCAL_DEPLOYMENT_DB
from clipper_core.local import LocalContainerManager
from clipper_core.local._state import pid_alive
from clipper_core.ports import free_ports

pytestmark = pytest.mark.cluster


def _echo_len() -> object:
    return lambda xs: [str(len(x)) for x in xs]  # a lambda: cloudpickle stores it by value


@pytest.fixture
def clusters(clipper_home: Path, clean_redis: tuple[str, int]) -> Iterator[list[LocalContainerManager]]:
    out = []
    for name in ("first", "second"):
        query, mgmt, rpc = free_ports(3)
        out.append(
            LocalContainerManager(
                cluster_name=name,
                clipper_query_port=query,
                clipper_management_port=mgmt,
                clipper_rpc_port=rpc,
                redis_ip=clean_redis[0],
                redis_port=clean_redis[1],
            )
        )
    try:
        yield out
    finally:
        for cm in out:
            cm.stop_all(graceful=False)


def _model(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    if not path.exists():
        (path / "modules").mkdir(parents=True)
        (path / "func.pkl").write_bytes(cloudpickle.dumps(_echo_len()))
    return path


def _desired(cm: LocalContainerManager) -> list[str]:
    client = redis.Redis(host=cm.redis_ip, port=cm.redis_port, db=LOCAL_DEPLOYMENT_DB, decode_responses=True)
    try:
        return sorted(client.scan_iter())
    finally:
        client.close()


def _deploy(cm: LocalContainerManager, tmp_path: Path, replicas: int) -> list[int]:
    image = cm.build_model("m", "1", str(_model(tmp_path)), "base")
    cm.deploy_model("m", "1", "doubles", image, num_replicas=replicas)
    return cm.replica_pids("m", "1")


def test_stop_all_of_one_cluster_leaves_the_other_alone(clusters: list[LocalContainerManager], tmp_path: Path) -> None:
    first, second = clusters
    first.start_clipper()
    first_pids = _deploy(first, tmp_path, 1)
    second.start_clipper()
    second_pids = _deploy(second, tmp_path, 2)  # the same model name and version in the other cluster
    assert len(first_pids) == 1 and len(second_pids) == 2
    assert first.replica_pids("m", "1") == first_pids, "the second cluster's deployment changed the first's"
    assert _desired(first) == ["first:m:1", "second:m:1"]

    second.stop_all()
    assert not any(pid_alive(p) for p in second_pids)
    assert _desired(first) == ["first:m:1"]
    # The first cluster keeps its replica: watch it for ten supervisor ticks (it would be retired in one).
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert first.replica_pids("m", "1") == first_pids and pid_alive(first_pids[0])
        time.sleep(0.1)


def test_stop_all_model_containers_is_scoped(clusters: list[LocalContainerManager], tmp_path: Path) -> None:
    first, second = clusters
    first.start_clipper()
    second.start_clipper()
    first_pids = _deploy(first, tmp_path, 1)
    second_pids = _deploy(second, tmp_path, 1)
    second.stop_all_model_containers()
    assert second.replica_pids("m", "1") == [] and not pid_alive(second_pids[0])
    assert _desired(first) == ["first:m:1"]
    assert first.replica_pids("m", "1") == first_pids and pid_alive(first_pids[0])
    first.stop_models({"m": ["1"]})
    assert _desired(first) == [] and first.replica_pids("m", "1") == []
