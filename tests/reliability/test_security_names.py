"""Hostile application and model names: refused by the management API, ignored in Redis DB 8, never a file path.

Runs a real local cluster (Redis, both frontends, supervisor, replica processes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest
import redis
import requests

from clipper_core.errors import ClipperException
from clipper_core.local import LocalContainerManager
from clipper_core.ports import free_ports
from tests._wait import wait_until

pytestmark = pytest.mark.cluster

HOSTILE_MODEL_NAMES = ["../../x", "..", ".", "a/b", "a\\b", "x\x00y", "a b", "a\nb", "*", "m[1]", "", "a:b", "a,b"]
HOSTILE_APP_NAMES = ["..", "a\\b", "x\x00y", "a*", "a/../b"]
# Keys of DB 8 (``<cluster>:<name>:<version>``, and the older ``<name>:<version>``) whose name or version would
# leave the cluster directory as a path.
HOSTILE_DB8_KEYS = ["names:../../x:1", "names:..:1", "names:m:../../../y", "../../z:1", "a/b:1", "evil:.."]


@pytest.fixture
def cluster(clipper_home: Path) -> Iterator[LocalContainerManager]:
    query, mgmt, rpc, redis_port = free_ports(4)
    cm = LocalContainerManager("names", query, mgmt, rpc, redis_port=redis_port)
    cm.start_clipper()
    try:
        yield cm
    finally:
        cm.stop_all(graceful=False)


def redis_db(cm: LocalContainerManager, db: int) -> redis.Redis:
    from clipper_core.secrets import redis_password

    return redis.Redis(port=cm.redis_port, db=db, password=redis_password(cm.cluster_dir), socket_timeout=5)


def files_outside(home: Path, cluster_dir: Path) -> set[Path]:
    return {p for p in home.rglob("*") if cluster_dir not in p.parents and p != cluster_dir}


def model_dir(tmp: Path) -> Path:
    path = tmp / "model"
    path.mkdir()
    (path / "func.pkl").write_bytes(cloudpickle.dumps(lambda xs: [str(len(x)) for x in xs]))
    return path


def admin(cm: LocalContainerManager, endpoint: str, body: dict) -> requests.Response:
    return requests.post(f"http://{cm.get_admin_addr()}/admin/{endpoint}", data=json.dumps(body), timeout=10)


def test_name_checks_for_paths_and_container_names() -> None:
    from clipper_core.names import check_container_name_part, check_path_component

    for bad in ["../../x", "..", "a/b", "a\\b", "x\x00y", "", ".hidden", "a b", "a" * 201]:
        with pytest.raises(ClipperException, match="Invalid model name"):
            check_path_component(bad, "model name")
        with pytest.raises(ClipperException, match="Invalid model name"):
            check_container_name_part(bad, "model name")
    with pytest.raises(ClipperException, match="container name"):
        check_container_name_part("m+1", "model name")
    assert check_path_component("Model_A.v2+x", "model name") == "Model_A.v2+x"
    assert check_container_name_part("Model_A.v2-x", "model name") == "Model_A.v2-x"


def test_management_api_refuses_hostile_names(cluster: LocalContainerManager) -> None:
    base = {
        "labels": [],
        "input_type": "doubles",
        "container_name": "NO_CONTAINER",
        "model_data_path": "DEPRECATED",
        "batch_size": -1,
    }
    for name in HOSTILE_MODEL_NAMES:
        r = admin(cluster, "add_model", {**base, "model_name": name, "model_version": "1"})
        assert r.status_code == 400, (name, r.text)
        assert r.text.startswith("Invalid model name supplied: "), r.text
        r = admin(cluster, "add_model", {**base, "model_name": "m", "model_version": name})
        assert r.status_code == 400, (name, r.text)
        assert r.text.startswith("Invalid model version supplied: "), r.text
    for name in HOSTILE_APP_NAMES:
        r = admin(
            cluster,
            "add_app",
            {"name": name, "input_type": "doubles", "default_output": "x", "latency_slo_micros": 100000},
        )
        assert r.status_code == 400, (name, r.text)
        assert r.text.startswith("Invalid application name supplied: "), r.text
    assert admin(cluster, "get_all_models", {"verbose": False}).json() == []
    assert admin(cluster, "get_all_applications", {"verbose": False}).json() == []
    # Ordinary names still work.
    r = admin(cluster, "add_model", {**base, "model_name": "Model_A.v2+x", "model_version": "1.0-rc1"})
    assert r.status_code == 200, r.text


def test_local_manager_refuses_hostile_names(cluster: LocalContainerManager, tmp_path: Path) -> None:
    image = cluster.build_model("m", "1", str(model_dir(tmp_path)), "base")
    for name, version in (("../../x", "1"), ("m", "../1"), ("..", "1")):
        with pytest.raises(ClipperException, match="Invalid model"):
            cluster.set_num_replicas(name, version, "doubles", image, 1)
        with pytest.raises(ClipperException, match="Invalid (model|value)"):
            cluster.build_model(name, version, str(tmp_path / "model"), "base")


def test_supervisor_ignores_hostile_db8_keys(
    cluster: LocalContainerManager, clipper_home: Path, tmp_path: Path
) -> None:
    image = cluster.build_model("m", "1", str(model_dir(tmp_path)), "base")
    before = files_outside(clipper_home, cluster.cluster_dir)
    db8 = redis_db(cluster, 8)
    for key in HOSTILE_DB8_KEYS:  # as a process with Redis access could write them
        db8.hset(key, mapping={"image": image, "input_type": "doubles", "num_replicas": "1"})
    log = cluster.paths.logs / "supervisor.log"
    for key in HOSTILE_DB8_KEYS:
        wait_until(lambda k=key: f"ignoring desired replicas for {k!r}" in log.read_text(), 20, f"{key} to be refused")
    # The supervisor goes on serving good keys next to the bad ones (several reconcile rounds pass meanwhile).
    cluster.deploy_model("m", "1", "doubles", image, num_replicas=2)
    assert cluster.get_num_replicas("m", "1") == 2
    text = log.read_text()
    for key in HOSTILE_DB8_KEYS:
        assert text.count(f"ignoring desired replicas for {key!r}") == 1, text[-3000:]
    processes = json.loads(cluster.paths.processes_json.read_text())
    assert set(processes["replicas"]) == {"m:1"}
    assert files_outside(clipper_home, cluster.cluster_dir) == before
    db8.close()
