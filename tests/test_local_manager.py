"""LocalContainerManager + local supervisor: real Redis, frontends and replica processes on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import psutil
import pytest

from clipper_core.errors import ClipperException
from clipper_core.files import write_json_atomic
from clipper_core.local import LocalContainerManager
from clipper_core.local._lifecycle import accepts
from clipper_core.local._state import ENV_CLUSTER_DIR, looks_like_ours, pid_alive, recorded_pids
from clipper_core.ports import free_port, free_ports
from tests._wait import wait_until

pytestmark = pytest.mark.cluster


def new_manager(name: str) -> LocalContainerManager:
    query, mgmt, rpc, redis_port = free_ports(4)
    return LocalContainerManager(
        cluster_name=name,
        clipper_query_port=query,
        clipper_management_port=mgmt,
        clipper_rpc_port=rpc,
        redis_port=redis_port,
    )


@pytest.fixture
def managers(clipper_home: Path) -> Iterator[list[LocalContainerManager]]:
    """Managers created by a test; every one is stopped (by its recorded pids) afterwards."""
    created: list[LocalContainerManager] = []
    yield created
    for cm in created:
        cm.stop_all(graceful=False)


@pytest.fixture
def cluster(managers: list[LocalContainerManager]) -> LocalContainerManager:
    cm = new_manager("test-cluster")
    managers.append(cm)
    cm.start_clipper()
    return cm


def make_model_dir(root: Path, name: str = "model") -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "func.pkl").write_bytes(cloudpickle.dumps(lambda xs: [str(len(x)) for x in xs]))
    (path / "modules").mkdir()
    (path / "modules" / "helper.py").write_text("X = 1\n")
    return path


def all_pids(cm: LocalContainerManager) -> list[int]:
    return recorded_pids(json.loads(cm.paths.processes_json.read_text()))


# -- no cluster needed ----------------------------------------------------------------------------------


def test_registered_as_builtin_plugin() -> None:
    from clipper_core.plugins import get_plugin_manager
    from clipper_core.registry import PluginHost

    registry = PluginHost(get_plugin_manager(load_entrypoints=False)).container_managers()
    assert registry.get("local") is LocalContainerManager


def test_addresses_and_identifier(clipper_home: Path) -> None:
    cm = LocalContainerManager("addr", clipper_query_port=1, clipper_management_port=2, clipper_rpc_port=3)
    assert cm.cluster_identifier == cm.cluster_name == "addr"
    addrs = (cm.get_query_addr(), cm.get_admin_addr(), cm.get_metric_addr())
    assert addrs == ("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1")
    assert cm.paths.root == clipper_home / "clusters" / "addr"
    assert not cm.is_running()


def test_connect_to_non_running_cluster_fails(clipper_home: Path) -> None:
    with pytest.raises(ClipperException, match="'ghost' is not running"):
        LocalContainerManager("ghost").connect()


def test_stop_all_without_cluster_is_a_no_op(clipper_home: Path) -> None:
    cm = LocalContainerManager("nothing")
    cm.stop_all()
    cm.stop_all(graceful=False)
    assert not cm.is_running() and not cm.paths.root.exists()


def test_port_conflict_fails_before_anything_starts(managers: list[LocalContainerManager]) -> None:
    cm = new_manager("conflict")
    managers.append(cm)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cm.clipper_rpc_port = busy.getsockname()[1]
        with pytest.raises(ClipperException, match=rf"port {cm.clipper_rpc_port} for model container RPC"):
            cm.start_clipper()
    assert not cm.paths.cluster_json.exists()
    assert not (cm.paths.logs / "supervisor.log").exists()
    assert not accepts("127.0.0.1", cm.clipper_query_port) and not accepts("127.0.0.1", cm.clipper_management_port)


def test_build_model_copies_directory(clipper_home: Path, tmp_path: Path) -> None:
    cm = LocalContainerManager("builder")
    src = make_model_dir(tmp_path)
    image = cm.build_model("m", "1", str(src), "python:3.11", container_registry="ignored")
    assert image == "local:builder/m:1"
    dest = cm.paths.model_dir("m", "1")
    assert (dest / "func.pkl").read_bytes() == (src / "func.pkl").read_bytes()
    assert (dest / "modules" / "helper.py").read_text() == "X = 1\n"
    build = json.loads((dest / "build.json").read_text())
    assert build["image"] == image and build["base_image"] == "python:3.11" and build["python"] == sys.executable
    # a rebuild replaces the earlier copy
    (src / "modules" / "helper.py").unlink()
    (src / "new.txt").write_text("new")
    assert cm.build_model("m", "1", str(src), "python:3.11") == image
    assert not (dest / "modules" / "helper.py").exists() and (dest / "new.txt").read_text() == "new"


def test_build_model_copy_failure_is_a_clipper_exception(clipper_home: Path, tmp_path: Path) -> None:
    cm = LocalContainerManager("builder")
    src = make_model_dir(tmp_path)
    (src / "dangling").symlink_to(tmp_path / "does-not-exist")
    with pytest.raises(ClipperException, match="could not copy") as info:
        cm.build_model("m", "1", str(src), "base")
    assert isinstance(info.value.__cause__, OSError)
    assert not cm.paths.model_dir("m", "1").exists()
    assert not list(cm.paths.models.joinpath("m").glob(".*building*"))


def test_looks_like_ours_needs_the_cluster_dir(
    clipper_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cluster"
    port = free_port()
    write_json_atomic(root / "cluster.json", {"redis_port": port, "query_port": 1, "management_port": 2, "rpc_port": 3})
    sleeper = "import time; time.sleep(60)"
    base = {k: v for k, v in os.environ.items() if k != ENV_CLUSTER_DIR}
    procs = {
        "unrelated": subprocess.Popen([sys.executable, "-c", sleeper, "clipper_core.container"], env=base),
        "other-cluster": subprocess.Popen(
            [sys.executable, "-c", sleeper, "clipper_core.container", str(port)],
            env={**base, ENV_CLUSTER_DIR: str(tmp_path / "other")},
        ),
        "ours": subprocess.Popen([sys.executable, "-c", sleeper], env={**base, ENV_CLUSTER_DIR: str(root)}),
        "marker-and-port": subprocess.Popen(
            [sys.executable, "-c", sleeper, "clipper_core.container", "--port", str(port)], env=base
        ),
        # One of the cluster's ports (2) as digits inside a path is not the port.
        "digit-in-a-path": subprocess.Popen(
            [sys.executable, "-c", sleeper, "clipper_core.container", str(tmp_path / "clone2" / "x")], env=base
        ),
    }
    try:
        # Until a child has exec'ed, it still shows this process's command line and environment.
        for proc in procs.values():
            wait_until(lambda proc=proc: sleeper in psutil.Process(proc.pid).cmdline(), what="the child to exec")
        # a readable environment decides, whatever the command line says
        verdicts = {name: looks_like_ours(proc.pid, root) for name, proc in procs.items()}
        assert verdicts == {
            "unrelated": False,
            "other-cluster": False,
            "ours": True,
            "marker-and-port": False,
            "digit-in-a-path": False,
        }

        def denied(self: psutil.Process) -> dict[str, str]:
            raise psutil.AccessDenied(self.pid)

        monkeypatch.setattr(psutil.Process, "environ", denied)
        # unreadable: a cluster marker *and* the cluster's dir or one of its ports are needed
        verdicts = {name: looks_like_ours(proc.pid, root) for name, proc in procs.items()}
        assert verdicts == {
            "unrelated": False,
            "other-cluster": True,
            "ours": False,
            "marker-and-port": True,
            "digit-in-a-path": False,
        }
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_build_model_rejects_missing_directory(clipper_home: Path, tmp_path: Path) -> None:
    cm = LocalContainerManager("builder")
    with pytest.raises(ClipperException, match="does not exist"):
        cm.build_model("m", "1", str(tmp_path / "missing"), "base")
    with pytest.raises(ClipperException, match=r"Invalid value: \.\./evil: a model name must be a valid DNS-1123"):
        cm.build_model("../evil", "1", str(tmp_path), "base")


def _tiny_wheel(directory: Path) -> Path:
    """A pure-Python wheel built by hand: installing it needs neither network nor a build backend."""
    wheel = directory / "tinypkg_clipper_test-0.1-py3-none-any.whl"
    files = {
        "tinypkg_clipper_test/__init__.py": "VALUE = 42\n",
        "tinypkg_clipper_test-0.1.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: tinypkg-clipper-test\nVersion: 0.1\n"
        ),
        "tinypkg_clipper_test-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "tinypkg_clipper_test-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr("tinypkg_clipper_test-0.1.dist-info/RECORD", record)
    return wheel


def test_build_model_with_pkgs_creates_venv(clipper_home: Path, tmp_path: Path) -> None:
    cm = LocalContainerManager("venvs")
    wheel = _tiny_wheel(tmp_path)
    cm.build_model("m", "2", str(make_model_dir(tmp_path)), "base", pkgs_to_install=[str(wheel)])
    build = json.loads((cm.paths.model_dir("m", "2") / "build.json").read_text())
    venv_python = build["python"]
    assert Path(venv_python).parent.parent == cm.paths.venv_dir("m", "2")
    code = textwrap.dedent(
        """
        import sys, tinypkg_clipper_test, clipper_core, numpy, cloudpickle
        assert tinypkg_clipper_test.VALUE == 42
        assert sys.prefix != sys.base_prefix
        print(tinypkg_clipper_test.__file__)
        """
    )
    out = subprocess.run([venv_python, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(cm.paths.venv_dir("m", "2")))


def test_build_model_pip_failure(clipper_home: Path, tmp_path: Path) -> None:
    cm = LocalContainerManager("venvs")
    with pytest.raises(ClipperException, match="pip install"):
        cm.build_model("m", "3", str(make_model_dir(tmp_path)), "base", pkgs_to_install=[str(tmp_path / "nope.whl")])
    assert not cm.paths.model_dir("m", "3").exists()


# -- running clusters -----------------------------------------------------------------------------------


def test_start_describe_and_refuse_second_start(cluster: LocalContainerManager) -> None:
    assert cluster.is_running()
    assert accepts("127.0.0.1", cluster.clipper_query_port) and accepts("127.0.0.1", cluster.clipper_management_port)
    info = cluster.describe()
    assert info["running"] and info["cluster_dir"] == str(cluster.paths.root)
    assert all(info["pids"][k] for k in ("supervisor", "redis", "management", "query"))
    for k in ("supervisor", "redis", "management", "query"):
        assert psutil.Process(info["pids"][k]).environ()[ENV_CLUSTER_DIR] == str(cluster.paths.root)
    with pytest.raises(ClipperException, match="cannot be started because it already exists"):
        new_manager("test-cluster").start_clipper()


def test_supervisor_outlives_starting_process(managers: list[LocalContainerManager]) -> None:
    cm = new_manager("detached")
    managers.append(cm)
    code = textwrap.dedent(
        f"""
        from clipper_core.local import LocalContainerManager
        LocalContainerManager("detached", {cm.clipper_query_port}, {cm.clipper_management_port},
                              {cm.clipper_rpc_port}, redis_port={cm.redis_port}).start_clipper()
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=os.environ.copy())
    attached = LocalContainerManager("detached", clipper_query_port=1, clipper_management_port=2)
    attached.connect()
    assert attached.get_query_addr() == f"127.0.0.1:{cm.clipper_query_port}"
    assert attached.get_admin_addr() == f"127.0.0.1:{cm.clipper_management_port}"
    assert attached.is_running() and accepts("127.0.0.1", cm.clipper_query_port)


def test_deploy_restart_scale_and_stop(cluster: LocalContainerManager, tmp_path: Path) -> None:
    image = cluster.build_model("m", "1", str(make_model_dir(tmp_path)), "base")
    with pytest.raises(ClipperException, match="not found in the local model store"):
        cluster.deploy_model("m", "1", "doubles", "local:test-cluster/other:1")
    cluster.deploy_model("m", "1", "doubles", image, num_replicas=1)
    assert cluster.get_num_replicas("m", "1") == 1
    (pid,) = cluster.replica_pids("m", "1")
    proc = psutil.Process(pid)
    assert proc.environ()["CLIPPER_MODEL_PATH"] == str(cluster.paths.model_dir("m", "1"))
    assert proc.environ()["CLIPPER_PORT"] == str(cluster.clipper_rpc_port)
    assert proc.environ()["CLIPPER_CLUSTER_DIR"] == str(cluster.paths.root)
    ready = cluster.paths.ready_file("m", "1", 0)
    wait_until(ready.exists, what="the replica's readiness file")

    os.kill(pid, signal.SIGKILL)
    new = wait_until(lambda: [p for p in cluster.replica_pids("m", "1") if p != pid], what="a restarted replica")
    assert len(new) == 1 and not pid_alive(pid)

    cluster.set_num_replicas("m", "1", "doubles", image, 3)
    pids = cluster.replica_pids("m", "1")
    assert len(pids) == 3 and cluster.get_num_replicas("m", "1") == 3
    cluster.set_num_replicas("m", "1", "doubles", image, 1)
    assert cluster.replica_pids("m", "1") == pids[:1]  # highest slots go first
    assert not any(pid_alive(p) for p in pids[1:])

    cluster.stop_models({"m": ["1"]})
    assert cluster.get_num_replicas("m", "1") == 0 and not pid_alive(pids[0])

    cluster.deploy_model("m", "1", "doubles", image, num_replicas=2)
    cluster.stop_all_model_containers()
    assert cluster.get_num_replicas("m", "1") == 0

    out = cluster.get_logs(str(tmp_path / "logs"))
    names = {Path(p).name for p in out}
    assert {"supervisor.log", "redis.log", "query.log", "management.log", "m_1-0.log"} <= names
    assert all(Path(p).is_file() for p in out)


def test_stop_all_leaves_no_process(cluster: LocalContainerManager, tmp_path: Path) -> None:
    image = cluster.build_model("m", "1", str(make_model_dir(tmp_path)), "base")
    cluster.deploy_model("m", "1", "doubles", image, num_replicas=2)
    pids = all_pids(cluster)
    assert len(pids) == 6  # supervisor, redis, two frontends, two replicas
    cluster.stop_all()
    assert not [p for p in pids if pid_alive(p)]
    assert not cluster.is_running() and not cluster.paths.processes_json.exists()
    cluster.stop_all()  # idempotent
    with pytest.raises(ClipperException, match="not running"):
        cluster.connect()


def test_stop_all_after_supervisor_was_killed(cluster: LocalContainerManager, tmp_path: Path) -> None:
    image = cluster.build_model("m", "1", str(make_model_dir(tmp_path)), "base")
    cluster.deploy_model("m", "1", "doubles", image, num_replicas=1)
    pids = all_pids(cluster)
    sup = json.loads(cluster.paths.processes_json.read_text())["supervisor"]
    os.kill(sup, signal.SIGKILL)
    wait_until(lambda: not cluster.is_running(), what="the supervisor to die")
    cluster.stop_all()
    assert not [p for p in pids if pid_alive(p)]


def test_two_clusters_side_by_side(managers: list[LocalContainerManager], tmp_path: Path) -> None:
    a, b = new_manager("alpha"), new_manager("beta")
    managers.extend([a, b])
    a.start_clipper()
    b.start_clipper()
    model = make_model_dir(tmp_path)
    a.deploy_model("m", "1", "doubles", a.build_model("m", "1", str(model), "base"), 1)
    b.deploy_model("m", "1", "doubles", b.build_model("m", "1", str(model), "base"), 2)
    assert (a.get_num_replicas("m", "1"), b.get_num_replicas("m", "1")) == (1, 2)
    a_pids = all_pids(a)
    b.stop_all()
    assert a.is_running() and all(pid_alive(p) for p in a_pids)
    assert accepts("127.0.0.1", a.clipper_query_port) and not accepts("127.0.0.1", b.clipper_query_port)


def test_restart_after_supervisor_was_killed(cluster: LocalContainerManager, tmp_path: Path) -> None:
    image = cluster.build_model("m", "1", str(make_model_dir(tmp_path)), "base")
    cluster.deploy_model("m", "1", "doubles", image, num_replicas=1)
    old = all_pids(cluster)
    os.kill(json.loads(cluster.paths.processes_json.read_text())["supervisor"], signal.SIGKILL)
    wait_until(lambda: not cluster.is_running(), what="the supervisor to die")
    cluster.start_clipper()  # the orphans holding the ports are cleaned up first
    assert cluster.is_running() and not [p for p in old if pid_alive(p)]
    assert cluster.get_num_replicas("m", "1") == 0


def test_external_redis(managers: list[LocalContainerManager], clean_redis: tuple[str, int], tmp_path: Path) -> None:
    import redis

    host, port = clean_redis
    cm = LocalContainerManager("ext", *free_ports(3), redis_ip=host, redis_port=port)
    managers.append(cm)
    cm.start_clipper()
    assert json.loads(cm.paths.processes_json.read_text())["redis"] is None
    image = cm.build_model("m", "1", str(make_model_dir(tmp_path)), "base")
    cm.deploy_model("m", "1", "doubles", image, num_replicas=1)
    client = redis.Redis(host=host, port=port, db=8)
    assert client.hgetall("ext:m:1")[b"num_replicas"] == b"1"  # DB 8 keys are scoped by the cluster name
    cm.stop_all()
    assert client.ping() and not client.keys("*")
    client.close()


def test_replica_runs_in_model_venv(cluster: LocalContainerManager, tmp_path: Path) -> None:
    image = cluster.build_model(
        "v", "1", str(make_model_dir(tmp_path)), "base", pkgs_to_install=[str(_tiny_wheel(tmp_path))]
    )
    cluster.deploy_model("v", "1", "doubles", image, num_replicas=1)
    (pid,) = cluster.replica_pids("v", "1")
    assert psutil.Process(pid).cmdline()[0] == str(cluster.paths.venv_dir("v", "1") / "bin" / "python")
    wait_until(cluster.paths.ready_file("v", "1", 0).exists, what="the venv replica to load its model")


def test_services_are_restarted(cluster: LocalContainerManager) -> None:
    def pid_of(name: str) -> int | None:
        data = json.loads(cluster.paths.processes_json.read_text())
        return data.get(name)

    for name in ("redis", "query", "management"):
        old = pid_of(name)
        assert old is not None
        os.kill(old, signal.SIGKILL)
        wait_until(lambda n=name, o=old: pid_of(n) not in (None, o), what=f"{name} to be restarted")
    wait_until(
        lambda: all(
            accepts("127.0.0.1", port) for port in (cluster.clipper_query_port, cluster.clipper_management_port)
        ),
        what="the frontends to listen again",
    )
    assert cluster.is_running()


def test_supervisor_survives_unreachable_redis(managers: list[LocalContainerManager], tmp_path: Path) -> None:
    from clipper_core.local.redis_server import redis_command
    from clipper_core.ports import wait_for_port

    port = free_port()
    with open(tmp_path / "ext-redis.log", "wb") as log:
        ext = subprocess.Popen(redis_command(port, tmp_path), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc=ext)
        cm = LocalContainerManager("flaky", *free_ports(3), redis_ip="127.0.0.1", redis_port=port)
        managers.append(cm)
        cm.start_clipper()
        image = cm.build_model("m", "1", str(make_model_dir(tmp_path)), "base")
        sup = json.loads(cm.paths.processes_json.read_text())["supervisor"]
        ext.kill()
        ext.wait()
        log = cm.paths.logs / "supervisor.log"
        wait_until(
            lambda: f"Redis at 127.0.0.1:{port} unreachable" in log.read_text(errors="replace"),
            what="the supervisor to notice the dead Redis",
        )
        assert pid_alive(sup) and cm.is_running()
        # callers get a ClipperException that says what to do, not a redis traceback
        with pytest.raises(ClipperException, match=rf"Could not set 1 replicas .* 127\.0\.0\.1:{port}") as info:
            cm.set_num_replicas("m", "1", "doubles", image, 1)
        assert "external Redis" in str(info.value)
        with pytest.raises(ClipperException, match="Could not stop models m:1"):
            cm.stop_models({"m": ["1"]})
        with pytest.raises(ClipperException, match="Could not stop the model replicas"):
            cm.stop_all_model_containers()
        cm.stop_all()
        assert not pid_alive(sup)
    finally:
        if ext.poll() is None:
            ext.kill()
            ext.wait()


def test_supervisor_stops_when_its_cluster_dir_is_removed(cluster: LocalContainerManager) -> None:
    import shutil

    pids = all_pids(cluster)
    shutil.rmtree(cluster.paths.root)
    wait_until(lambda: not [p for p in pids if pid_alive(p)], what="every process of the removed cluster to exit")
