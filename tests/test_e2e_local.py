"""End to end on a real local cluster: Redis, both frontends, supervisor and one process per replica."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clipper_admin import ClipperConnection, ClipperException, LocalContainerManager
from clipper_admin.deployers import python as python_deployer
from clipper_core.errors import DeploymentError
from clipper_core.files import read_json
from clipper_core.local._state import pid_alive, recorded_pids
from clipper_core.ports import free_ports
from tests._wait import wait_until

pytestmark = pytest.mark.cluster


def ports() -> dict[str, int]:
    names = ("clipper_query_port", "clipper_management_port", "clipper_rpc_port", "redis_port")
    return dict(zip(names, free_ports(4), strict=True))


def cluster_pids(cm: LocalContainerManager) -> list[int]:
    return recorded_pids(read_json(Path(cm.cluster_dir) / "processes.json"))


@pytest.fixture
def conn(clipper_home: Path) -> Iterator[ClipperConnection]:
    cm = LocalContainerManager(cluster_name="e2e", **ports())
    c = ClipperConnection(cm)
    c.start_clipper()
    pids = cluster_pids(cm)
    try:
        yield c
    finally:
        c.stop_all()
        wait_until(lambda: not any(pid_alive(p) for p in pids), 20, "cluster processes to exit")


def predict(c: ClipperConnection, app: str, body: dict) -> dict:
    r = httpx.post(f"http://{c.get_query_addr()}/{app}/predict", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def version_one(xs: list[Any]) -> list[str]:
    return ["1" for _ in xs]


def version_two(xs: list[Any]) -> list[str]:
    return ["2" for _ in xs]


def feature_sum(xs: list[Any]) -> list[str]:
    return [str(sum(x)) for x in xs]


def test_versions_pinning_rollback_scaling_and_restart(conn: ClipperConnection) -> None:
    c = conn
    c.register_application("app", "doubles", "-1.0", 2_000_000)
    python_deployer.deploy_python_closure(c, "model", 1, "doubles", version_one)
    c.link_model_to_app("app", "model")
    assert predict(c, "app", {"input": [1.0]})["output"] == 1

    python_deployer.deploy_python_closure(c, "model", 2, "doubles", version_two)
    assert c.get_current_model_version("model") == "2"
    assert predict(c, "app", {"input": [1.0]})["output"] == 2
    pinned = predict(c, "app", {"input": [1.0], "version": "1"})
    assert pinned["output"] == 1 and pinned["default"] is False
    r = httpx.post(f"http://{c.get_query_addr()}/app/predict", json={"input": [1.0], "version": "9"}, timeout=10)
    assert r.status_code == 400 and r.json()["cause"] == "Requested version: 9 does not exist for model: model"

    c.set_model_version("model", "1")  # roll back
    wait_until(lambda: predict(c, "app", {"input": [2.0]})["output"] == 1, 5, "roll back to v1")
    c.set_model_version("model", "2")
    wait_until(lambda: predict(c, "app", {"input": [3.0]})["output"] == 2, 5, "roll forward to v2")

    c.set_num_replicas("model", 3)
    assert c.get_num_replicas("model") == 3
    wait_until(
        lambda: len([r for r in c.get_all_model_replicas(verbose=True) if r["model_version"] == "2"]) == 3,
        30,
        "3 connected replicas",
    )
    c.set_num_replicas("model", 1)
    assert c.get_num_replicas("model") == 1
    wait_until(
        lambda: len([r for r in c.get_all_model_replicas(verbose=True) if r["model_version"] == "2"]) == 1,
        30,
        "1 connected replica",
    )

    cm = c.cm
    [pid] = cm.replica_pids("model", "2")
    os.kill(pid, signal.SIGKILL)
    new = wait_until(lambda: [p for p in cm.replica_pids("model", "2") if p != pid], 30, "a restarted replica")
    assert pid_alive(new[0])
    wait_until(lambda: predict(c, "app", {"input": [time.time()]})["output"] == 2, 30, "the restarted replica to serve")

    c.stop_inactive_model_versions(["model"])
    assert [m for m in c.get_all_models()] == ["model:2"]
    assert cm.replica_pids("model", "1") == []


def test_cluster_outlives_its_starter_and_connect_reattaches(clipper_home: Path) -> None:
    p = ports()
    script = (
        "from clipper_admin import ClipperConnection, LocalContainerManager\n"
        f"ClipperConnection(LocalContainerManager(cluster_name='detached', **{p!r})).start_clipper()\n"
    )
    c = ClipperConnection(LocalContainerManager(cluster_name="detached", **p))
    pids: set[int] = set()
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120, env=os.environ.copy())
        c.connect()
        pids = cluster_pids(c.cm)
        c.register_application("late", "doubles", "0", 1_000_000)
        python_deployer.deploy_python_closure(c, "adder", 1, "doubles", feature_sum)
        c.link_model_to_app("late", "adder")
        assert predict(c, "late", {"input": [1.5, 2.5]})["output"] == 4.0
    finally:
        LocalContainerManager(cluster_name="detached").stop_all()  # by name: also when start or connect() failed
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), 20, "no process of the cluster left")


def test_redis_restart_keeps_apps_models_and_replicas(conn: ClipperConnection) -> None:
    c = conn
    cm = c.cm
    python_deployer.create_endpoint(c, "durable", "doubles", feature_sum, slo_micros=2_000_000)
    c.set_num_replicas("durable", 2)
    assert predict(c, "durable", {"input": [1.0, 2.0]})["output"] == 3.0
    apps, models, replicas = c.get_all_apps(), c.get_all_models(), cm.replica_pids("durable", "1")
    assert len(replicas) == 2

    old = read_json(cm.paths.processes_json)["redis"]
    os.kill(old, signal.SIGKILL)
    wait_until(
        lambda: (read_json(cm.paths.processes_json) or {}).get("redis") not in (None, old), 30, "redis to restart"
    )
    wait_until(lambda: cm._redis_ping(), 30, "the restarted redis to answer")
    wait_until(
        lambda: predict(c, "durable", {"input": [2.0, 2.0]}).get("output") == 4.0, 30, "a prediction after the restart"
    )
    # the supervisor read DB 8 back from the persisted Redis: nothing was retired or restarted
    assert cm.replica_pids("durable", "1") == replicas and cm.get_num_replicas("durable", "1") == 2
    assert sorted(c.get_all_apps()) == sorted(apps) and sorted(c.get_all_models()) == sorted(models)
    assert apps and models


def test_unloadable_function_fails_the_deploy(conn: ClipperConnection, tmp_path: Path) -> None:
    c = conn
    model_dir = tmp_path / "broken"
    model_dir.mkdir()
    (model_dir / "func.pkl").write_bytes(b"this is not a pickle")
    image = c.build_model("broken", "1", str(model_dir), "default")
    c.register_application("broken-app", "doubles", "DEFAULT", 1_000_000)
    with pytest.raises(DeploymentError, match=r"broken:1 failed to load in its replica .*UnpicklingError"):
        c.deploy_model("broken", "1", "doubles", image)
    assert c.cm.replica_pids("broken", "1") == []  # what the deploy started is stopped again
    assert c.get_model_info("broken", "1") is None  # and the version is not registered
    r = predict(c, "broken-app", {"input": [1.0]})
    assert r["default"] is True and r["output"] == "DEFAULT"
    logs = c.get_clipper_logs(str(tmp_path / "logs"))
    assert any("broken" in Path(f).name and "failed to load" in Path(f).read_text() for f in logs)


def test_predict_exception_keeps_replica_alive(conn: ClipperConnection) -> None:
    def picky(xs: list[Any]) -> list[str]:
        if any(x[0] < 0 for x in xs):
            msg = "negative input"
            raise ValueError(msg)
        return [str(x[0]) for x in xs]

    c = conn
    python_deployer.create_endpoint(c, "picky", "doubles", picky, default_output="-1", slo_micros=2_000_000)
    [pid] = c.cm.replica_pids("picky", "1")
    r = predict(c, "picky", {"input": [-1.0]})
    assert r["default"] is True and "ValueError: negative input" in r["default_explanation"]
    assert predict(c, "picky", {"input": [5.0]})["output"] == 5.0
    assert c.cm.replica_pids("picky", "1") == [pid]


def test_bad_names_and_stopped_cluster_raise_before_starting_anything(clipper_home: Path) -> None:
    c = ClipperConnection(LocalContainerManager(cluster_name="never-started", **ports()))
    with pytest.raises(ClipperException, match="not running"):
        c.connect()
    with pytest.raises(ClipperException, match="DNS-1123"):
        python_deployer.deploy_python_closure(c, "Bad_Name", 1, "doubles", feature_sum)
    c.connected = True  # pretend, to reach the manager's own check
    with pytest.raises(ClipperException, match="not running"):
        python_deployer.deploy_python_closure(c, "good-name", 1, "doubles", feature_sum)
    assert not (clipper_home / "clusters" / "never-started" / "processes.json").exists()


def test_two_clusters_side_by_side(clipper_home: Path) -> None:
    conns = [ClipperConnection(LocalContainerManager(cluster_name=f"tenant-{i}", **ports())) for i in (1, 2)]
    started: list[ClipperConnection] = []
    try:
        for c in conns:
            c.start_clipper()
            started.append(c)
            python_deployer.create_endpoint(c, "testapp0-model", "doubles", feature_sum)
        for c in conns:
            r = predict(c, "testapp0-model", {"input": [1.0, 2.0]})
            assert r["default"] is False and r["output"] == 3.0
        conns[0].stop_all()
        started.remove(conns[0])
        assert predict(conns[1], "testapp0-model", {"input": [2.0, 2.0]})["output"] == 4.0
    finally:
        for c in started:
            c.stop_all()
