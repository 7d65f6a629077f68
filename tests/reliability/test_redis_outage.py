"""A local cluster keeps serving through Redis outages and recovers from them, and from killed processes.

* A replica that registers while Redis is down serves at once; its record is written once Redis is back, and the
  record of a replica that died during the outage is deleted then. ``/healthz`` says Redis is unavailable meanwhile.
* The supervisor's Redis reads fail fast, so a killed Redis and a replica killed with it are restarted at once.
* Recovery times (kill -9 of a replica under load, of the query frontend, of Redis) are measured and bounded.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import httpx
import pytest
import redis

from clipper_core.admin import ClipperConnection
from clipper_core.config_store import CONTAINER_DB
from clipper_core.files import read_json
from clipper_core.local import LocalContainerManager
from clipper_core.local.redis_server import redis_command
from clipper_core.ports import free_port, free_ports, wait_for_port
from tests._wait import wait_until

pytestmark = pytest.mark.cluster


def _feature_sum() -> object:
    return lambda xs: [str(sum(x)) for x in xs]  # a lambda: cloudpickle stores it by value


class RedisProcess:
    """A redis-server the test owns, with an append-only file, killed with SIGKILL and restarted on its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int | None = None) -> None:
        with open(self.workdir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                redis_command(port or self.port, self.workdir, persist=True), stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(port or self.port, proc=self.proc)

    def edit_offline(self, db: int) -> None:
        """While the server is down: empty database ``db`` in its data, on a port no cluster knows."""
        port = free_port()
        self.start(port)
        client = redis.Redis(port=port, db=db)
        try:
            client.flushdb()
        finally:
            client.close()
        self.flush_to_disk(port)
        self.kill9()

    def flush_to_disk(self, port: int | None = None) -> None:
        """Rewrite the append-only file so that everything written so far survives a SIGKILL."""
        client = redis.Redis(port=port or self.port)
        try:
            client.bgrewriteaof()
            wait_until(
                lambda: (
                    not int(client.info("persistence")["aof_rewrite_in_progress"])
                    and not int(client.info("persistence")["aof_rewrite_scheduled"])
                ),
                10,
                "the AOF rewrite",
            )
        finally:
            client.close()

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.kill9()


def _start_cluster(cm: LocalContainerManager, tmp_path: Path, replicas: int = 1) -> ClipperConnection:
    conn = ClipperConnection(cm)
    conn.start_clipper()
    conn.register_application("app", "doubles", "-1.0", 5_000_000)
    model = tmp_path / "model"
    (model / "modules").mkdir(parents=True)
    (model / "func.pkl").write_bytes(cloudpickle.dumps(_feature_sum()))
    image = conn.build_model("m", "1", str(model), "base")
    conn.deploy_model("m", "1", "doubles", image, num_replicas=replicas)
    conn.link_model_to_app("app", "m")
    assert _predict(cm)["default"] is False
    return conn


_inputs = itertools.count(1)


def _predict(cm: LocalContainerManager, timeout: float = 10.0) -> dict:
    """One prediction of ``[x, 2.0]`` with a new ``x`` each time (the prediction cache must not answer it)."""
    x = float(next(_inputs))
    r = httpx.post(f"http://{cm.get_query_addr()}/app/predict", json={"input": [x, 2.0]}, timeout=timeout)
    assert r.status_code == 200, r.text
    answer = r.json()
    if answer.get("default") is False:
        assert answer["output"] == x + 2.0, answer
    return answer


def _served(cm: LocalContainerManager) -> bool:
    """Whether the model itself answers a new query."""
    try:
        answer = _predict(cm, timeout=2.0)
    except (httpx.HTTPError, AssertionError):
        return False
    return answer.get("default") is False


def _health(cm: LocalContainerManager) -> dict:
    try:
        return httpx.get(f"http://{cm.get_query_addr()}/healthz", timeout=2.0).json()
    except httpx.HTTPError:
        return {}


def _processes(cm: LocalContainerManager) -> dict:
    return read_json(Path(cm.cluster_dir) / "processes.json") or {}


def _records(port: int) -> list[dict[str, str]]:
    client = redis.Redis(port=port, db=CONTAINER_DB, decode_responses=True)
    try:
        return [client.hgetall(k) for k in client.scan_iter("m,1,*")]
    finally:
        client.close()


@pytest.fixture
def external_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_cluster(clipper_home: Path) -> Iterator[LocalContainerManager]:
    query, mgmt, rpc, redis_port = free_ports(4)
    cm = LocalContainerManager("outage", query, mgmt, rpc, redis_port=redis_port)
    try:
        yield cm
    finally:
        cm.stop_all(graceful=False)


def test_replica_registering_while_redis_is_down_serves(
    clipper_home: Path, external_redis: RedisProcess, tmp_path: Path
) -> None:
    query, mgmt, rpc = free_ports(3)
    cm = LocalContainerManager("outage", query, mgmt, rpc, redis_ip="127.0.0.1", redis_port=external_redis.port)
    try:
        _start_cluster(cm, tmp_path)
        assert _health(cm).get("status") == "ok"
        (old_pid,) = cm.replica_pids("m", "1")
        external_redis.flush_to_disk()

        external_redis.kill9()
        os.kill(old_pid, signal.SIGKILL)  # it dies during the outage; the supervisor starts a new one
        new_pid = wait_until(lambda: [p for p in cm.replica_pids("m", "1") if p != old_pid], 10, "a new replica")[0]
        wait_until(lambda: _served(cm), 20, "the replica that registered during the outage to answer")
        health = wait_until(lambda: (h := _health(cm)).get("redis") == "unavailable" and h, 10, "healthz to say so")
        assert health["status"] == "degraded"

        external_redis.start()  # with the records of before the outage (the append-only file)
        wait_until(lambda: _health(cm).get("status") == "ok", 15, "healthz to report Redis back")
        wait_until(
            lambda: [r.get("pid") for r in _records(external_redis.port)] == [str(new_pid)],
            15,
            "exactly the live replica's record (the dead one's deleted)",
        )
        assert _health(cm)["redis"] == "ok" and _served(cm)
    finally:
        cm.stop_all(graceful=False)


def test_redis_restart_loses_records_and_they_come_back(
    clipper_home: Path, external_redis: RedisProcess, tmp_path: Path
) -> None:
    query, mgmt, rpc = free_ports(3)
    cm = LocalContainerManager("outage", query, mgmt, rpc, redis_ip="127.0.0.1", redis_port=external_redis.port)
    try:
        _start_cluster(cm, tmp_path)
        (pid,) = cm.replica_pids("m", "1")
        external_redis.flush_to_disk()
        external_redis.kill9()
        external_redis.edit_offline(CONTAINER_DB)  # it comes back with everything but the replica records
        external_redis.start()
        wait_until(
            lambda: [r.get("pid") for r in _records(external_redis.port)] == [str(pid)],
            15,
            "the live replica's record to be written again",
        )
        assert _served(cm)
    finally:
        cm.stop_all(graceful=False)


def test_supervisor_restarts_redis_and_replicas_without_stalling(
    own_cluster: LocalContainerManager, tmp_path: Path
) -> None:
    cm = own_cluster
    _start_cluster(cm, tmp_path)
    before = _processes(cm)
    redis_pid, (replica_pid,) = before["redis"], cm.replica_pids("m", "1")
    started = time.monotonic()
    os.kill(redis_pid, signal.SIGKILL)
    os.kill(replica_pid, signal.SIGKILL)
    wait_until(lambda: _processes(cm).get("redis") not in (None, redis_pid), 10, "a new Redis")
    redis_back = time.monotonic() - started
    wait_until(lambda: [p for p in cm.replica_pids("m", "1") if p != replica_pid], 10, "a new replica")
    replica_back = time.monotonic() - started
    wait_until(lambda: _served(cm), 30, "predictions by the model")
    served = time.monotonic() - started
    print(
        f"\nRedis + replica kill -9: Redis restarted after {redis_back:.2f} s, replica after {replica_back:.2f} s, "
        f"model answers after {served:.2f} s"
    )
    # Before the fix both stalled 7-9 s behind the supervisor's retried Redis reads; quiet runs take 0.3-0.5 s.
    assert redis_back < 4.0, f"Redis restart stalled {redis_back:.1f} s"
    assert replica_back < 4.0, f"replica restart stalled {replica_back:.1f} s"


class _Load:
    """Closed-loop predictions from one thread, bounded in time; remembers when each answer came from the model."""

    def __init__(self, cm: LocalContainerManager, limit_s: float = 60.0) -> None:
        self.url = f"http://{cm.get_query_addr()}/app/predict"
        self.limit_s = limit_s
        self.answers: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                x = float(next(_inputs))
                try:
                    ok = client.post(self.url, json={"input": [x, 2.0]}).json().get("output") == x + 2.0
                except (httpx.HTTPError, ValueError):
                    ok = False
                    time.sleep(0.01)  # the frontend is away: do not spin
                self.answers.append((time.monotonic(), ok))

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def recovered_after(self, since: float, timeout: float = 30.0) -> float:
        """Seconds from ``since`` until the model answers again after a failed answer (or at once)."""

        def check() -> float | None:
            after = [(t, ok) for t, ok in self.answers if t > since]
            failed = [t for t, ok in after if not ok]
            if not failed:
                return None
            good = [t for t, ok in after if ok and t > failed[0]]
            return (good[0] - since) if good else None

        return wait_until(check, timeout, "the model to answer again")


def test_recovery_times(own_cluster: LocalContainerManager, tmp_path: Path) -> None:
    cm = own_cluster
    _start_cluster(cm, tmp_path, replicas=1)
    times = {}
    with _Load(cm) as load:
        wait_until(lambda: any(ok for _, ok in load.answers), 10, "load to be answered")
        (pid,) = cm.replica_pids("m", "1")
        kill = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        times["replica kill -9 under load"] = load.recovered_after(kill)

        kill = time.monotonic()
        os.kill(_processes(cm)["query"], signal.SIGKILL)
        times["query frontend kill -9"] = load.recovered_after(kill)

        redis_pid = _processes(cm)["redis"]
        kill = time.monotonic()
        os.kill(redis_pid, signal.SIGKILL)
        wait_until(lambda: _processes(cm).get("redis") not in (None, redis_pid), 10, "a new Redis")
        times["Redis kill -9: Redis restarted"] = time.monotonic() - kill
        # Predictions do not need Redis (the frontend serves from memory): they must go on being answered.
        wait_until(lambda: any(ok and t > kill for t, ok in load.answers), 15, "the model to answer")
        times["Redis kill -9: first model answer"] = min(t for t, ok in load.answers if ok and t > kill) - kill
        wait_until(lambda: _health(cm).get("status") == "ok", 15, "the frontend to see Redis again")
        times["Redis kill -9: frontend in sync again"] = time.monotonic() - kill
        failed = [t for t, ok in load.answers if t > kill and not ok]
        answered = len([t for t, ok in load.answers if t > kill and ok])
    print(
        "\nrecovery seconds: "
        + ", ".join(f"{k}: {v:.2f}" for k, v in times.items())
        + f"; answers after the Redis kill: {answered} by the model, {len(failed)} failed"
    )
    assert times["replica kill -9 under load"] < 10
    assert times["query frontend kill -9"] < 15
    assert not failed, "predictions must not fail while Redis restarts"
