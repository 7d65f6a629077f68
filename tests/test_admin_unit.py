"""ClipperConnection, the Python closure deployer, the compat package and the CLI, without a real cluster.

A recording ContainerManager stands in for the cluster; where HTTP matters, a tiny threaded HTTP server plays the
management frontend (real sockets, real requests).
"""

from __future__ import annotations

import json
import os
import pickle
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from clipper_core.admin import ClipperConnection
from clipper_core.container_manager import ContainerManager
from clipper_core.errors import ClipperException, ManagementError, UnconnectedException
from clipper_core.ports import free_port


@pytest.fixture(autouse=True)
def _plugins_without_missing_builtins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Entry points on, and a fresh plugin host for every test."""
    monkeypatch.delenv("CLIPPER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    yield


class RecordingManager(ContainerManager):
    """Records every call; addresses point wherever the test says."""

    PLUGIN_NAME = "recording"

    def __init__(self, admin_addr: str = "", running: bool = True) -> None:
        self.cluster_name = self.cluster_identifier = "test"
        self.admin_addr = admin_addr or f"127.0.0.1:{free_port()}"  # nothing listens there
        self.running = running
        self.calls: list[tuple[Any, ...]] = []
        self.on_deploy: Callable[[str, str], None] | None = None

    def start_clipper(self, *args: Any) -> None:
        self.calls.append(("start_clipper", *args))

    def connect(self) -> None:
        self.calls.append(("connect",))

    def build_model(
        self,
        name: str,
        version: str,
        model_data_path: str,
        base_image: str,
        container_registry: str | None = None,
        pkgs_to_install: list[str] | None = None,
    ) -> str:
        files = sorted(os.listdir(model_data_path))
        self.last_model_path = model_data_path
        with open(os.path.join(model_data_path, "func.pkl"), "rb") as f:
            self.built_func = pickle.load(f)
        self.calls.append(("build_model", name, version, files, base_image, container_registry, pkgs_to_install))
        return f"local:test/{name}:{version}"

    def deploy_model(self, name: str, version: str, input_type: str, image: str, num_replicas: int = 1) -> None:
        self.calls.append(("deploy_model", name, version, input_type, image, num_replicas))
        if self.on_deploy is not None:
            self.on_deploy(name, version)

    def get_num_replicas(self, name: str, version: str) -> int:
        return 0

    def set_num_replicas(self, name: str, version: str, input_type: str, image: str, num_replicas: int) -> None:
        self.calls.append(("set_num_replicas", name, version, input_type, image, num_replicas))

    def get_logs(self, logging_dir: str) -> list[str]:
        return []

    def stop_models(self, models: dict[str, list[str]]) -> None:
        self.calls.append(("stop_models", models))

    def stop_all_model_containers(self) -> None:
        self.calls.append(("stop_all_model_containers",))

    def stop_all(self, graceful: bool = True) -> None:
        self.calls.append(("stop_all", graceful))

    def get_admin_addr(self) -> str:
        return self.admin_addr

    def get_query_addr(self) -> str:
        return self.admin_addr

    def get_metric_addr(self) -> str:
        return self.admin_addr

    def is_running(self) -> bool:
        return self.running

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


class FakeManagement:
    """A minimal management frontend: records POST bodies, answers from ``routes`` (path -> (status, body))."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.routes: dict[str, Callable[[Any], tuple[int, Any]]] = {"/admin/get_model": lambda b: (200, {})}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((self.path, body))
                status, answer = fake.routes.get(self.path, lambda b: (200, "ok"))(body)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [p for p, _ in self.requests]


@pytest.fixture
def mgmt() -> Iterator[FakeManagement]:
    fake = FakeManagement()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def connected(cm: ContainerManager) -> ClipperConnection:
    conn = ClipperConnection(cm)
    conn.connect()
    return conn


# ---------------------------------------------------------------------------- validation before anything starts


@pytest.mark.parametrize(
    ("name", "version"),
    [("Bad_Name", "1"), ("model.v1", "1"), ("-m", "1"), ("m", "v_1"), ("m", "V1"), ("m", "")],
)
def test_deploy_model_rejects_bad_names_before_starting_anything(name: str, version: str) -> None:
    cm = RecordingManager()
    conn = connected(cm)
    with pytest.raises(ClipperException, match="a valid DNS-1123  subdomain"):
        conn.deploy_model(name, version, "doubles", "img")
    assert cm.names() == ["connect"]


def test_build_model_validates_and_needs_no_connection(tmp_path: Any) -> None:
    cm = RecordingManager()
    conn = ClipperConnection(cm)
    with pytest.raises(ClipperException, match="Invalid value: My_Model: a model name"):
        conn.build_model("My_Model", 1, str(tmp_path), "base")
    with pytest.raises(ClipperException, match="Invalid value: 1.0: a model version"):
        conn.build_model("m", 1.0, str(tmp_path), "base")
    assert cm.calls == []
    (tmp_path / "func.pkl").write_bytes(pickle.dumps(len))
    assert conn.build_model("m", 3, str(tmp_path), "base", "reg", ["six"]) == "local:test/m:3"
    assert cm.calls == [("build_model", "m", "3", ["func.pkl"], "base", "reg", ["six"])]


def test_deploy_model_rejects_unknown_input_type_naming_valid_ones() -> None:
    cm = RecordingManager()
    conn = connected(cm)
    with pytest.raises(ClipperException, match="not a valid type. Valid types: .*doubles"):
        conn.deploy_model("m", 1, "tensor", "img")
    with pytest.raises(ClipperException, match="Valid types"):
        conn.build_and_deploy_model("m", 1, "Doubles", "/nonexistent", "base")
    assert cm.names() == ["connect"]


def test_deploy_to_stopped_cluster_is_a_clipper_exception() -> None:
    cm = RecordingManager(running=False)
    conn = connected(cm)
    with pytest.raises(ClipperException, match="is not running"):
        conn.deploy_model("m", 1, "doubles", "img")
    assert "deploy_model" not in cm.names()


def test_unreachable_cluster_is_a_clipper_exception_not_a_requests_traceback() -> None:
    cm = RecordingManager()
    conn = connected(cm)
    with pytest.raises(ClipperException, match=r"at 127\.0\.0\.1:\d+ is not reachable.*clipper start") as info:
        conn.deploy_model("m", 1, "doubles", "img")
    assert isinstance(info.value, ManagementError)  # a ClipperException, not an HTTP-client traceback
    with pytest.raises(ClipperException, match="not reachable"):
        conn.get_all_apps()
    with pytest.raises(ClipperException, match="not reachable"):
        conn.inspect_instance()


def test_start_clipper_times_out_with_a_clear_error() -> None:
    cm = RecordingManager()
    conn = ClipperConnection(cm)
    conn.start_timeout_s = 0.3
    with pytest.raises(ClipperException, match=r"did not become ready within 0\.3 s .*admin/ping"):
        conn.start_clipper()
    assert cm.calls[0][0] == "start_clipper" and cm.calls[0][4] == 33554432
    assert conn.connected is False


# ---------------------------------------------------------------------------- connection required


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("register_application", ("a", "doubles", "0", 1000)),
        ("unregister_application", ("a",)),
        ("delete_application", ("a",)),
        ("link_model_to_app", ("a", "m")),
        ("unlink_model_from_app", ("a", "m")),
        ("build_and_deploy_model", ("m", 1, "doubles", "/tmp", "base")),
        ("deploy_model", ("m", 1, "doubles", "img")),
        ("register_model", ("m", 1, "doubles")),
        ("get_current_model_version", ("m",)),
        ("get_num_replicas", ("m",)),
        ("set_num_replicas", ("m", 2)),
        ("get_all_apps", ()),
        ("get_app_info", ("a",)),
        ("get_linked_models", ("a",)),
        ("get_all_models", ()),
        ("get_model_info", ("m", 1)),
        ("get_all_model_replicas", ()),
        ("get_model_replica_info", ("m", 1, 0)),
        ("get_clipper_logs", ()),
        ("inspect_instance", ()),
        ("set_model_version", ("m", 1)),
        ("get_query_addr", ()),
        ("get_metric_addr", ()),
        ("stop_models", (["m"],)),
        ("stop_versioned_models", ({"m": ["1"]},)),
        ("stop_inactive_model_versions", (["m"],)),
        ("stop_all_model_containers", ()),
    ],
)
def test_methods_need_a_connection(method: str, args: tuple[Any, ...]) -> None:
    cm = RecordingManager()
    with pytest.raises(UnconnectedException, match="No connection to Clipper cluster. Call ClipperConnection.connect"):
        getattr(ClipperConnection(cm), method)(*args)
    assert cm.calls == []


def test_stop_all_needs_no_connection() -> None:
    cm = RecordingManager()
    ClipperConnection(cm).stop_all(graceful=False)
    assert cm.calls == [("stop_all", False)]


# ---------------------------------------------------------------------------- HTTP behaviour (fake management frontend)


def test_register_model_and_error_status(mgmt: FakeManagement) -> None:
    conn = connected(RecordingManager(mgmt.addr))
    conn.register_model("m", 2, "doubles", labels=["a"], batch_size=4)
    path, body = mgmt.requests[-1]
    assert path == "/admin/add_model"
    assert body == {
        "model_name": "m",
        "model_version": "2",
        "labels": ["a"],
        "input_type": "doubles",
        "container_name": "NO_CONTAINER",
        "model_data_path": "DEPRECATED",
        "batch_size": 4,
    }
    mgmt.routes["/admin/add_app"] = lambda b: (400, f"application '{b['name']}' already exists")
    with pytest.raises(ClipperException) as info:
        conn.register_application("a", "doubles", "0", 100)
    assert info.value.msg == "Received error status code: 400 and message: application 'a' already exists"
    mgmt.routes["/admin/get_application"] = lambda b: (200, {})
    assert conn.get_app_info("a") is None


def test_deploy_waits_for_a_connected_replica_then_registers(mgmt: FakeManagement) -> None:
    cm = RecordingManager(mgmt.addr)
    polls = {"n": 0}

    def containers(body: Any) -> tuple[int, Any]:
        polls["n"] += 1
        if polls["n"] < 3:
            return 200, []
        return 200, [{"model_name": "m", "model_version": "7", "model_replica_id": 0, "input_type": "doubles"}]

    mgmt.routes["/admin/get_all_containers"] = containers
    conn = connected(cm)
    conn.deploy_model("m", 7, "doubles", "img", num_replicas=2)
    assert cm.calls[-1] == ("deploy_model", "m", "7", "doubles", "img", 2)
    assert polls["n"] == 3
    assert mgmt.paths()[-1] == "/admin/add_model"


def test_deploy_without_replica_stops_them_and_does_not_register(mgmt: FakeManagement) -> None:
    cm = RecordingManager(mgmt.addr)
    mgmt.routes["/admin/get_all_containers"] = lambda b: (200, [])
    conn = connected(cm)
    conn.deploy_timeout_s = 0.3
    with pytest.raises(ClipperException, match="No replica of model m:1 connected.*get_clipper_logs"):
        conn.deploy_model("m", 1, "doubles", "img")
    assert cm.calls[-1] == ("stop_models", {"m": ["1"]})
    assert "/admin/add_model" not in mgmt.paths()


def test_deploy_existing_version_or_failing_manager(mgmt: FakeManagement) -> None:
    cm = RecordingManager(mgmt.addr)
    conn = connected(cm)
    mgmt.routes["/admin/get_model"] = lambda b: (200, {"model_name": "m", "model_version": "1"})
    with pytest.raises(ClipperException, match="model with name 'm' and version '1' already exists"):
        conn.deploy_model("m", 1, "doubles", "img")
    assert "deploy_model" not in cm.names()  # a running version is never touched
    mgmt.routes["/admin/get_model"] = lambda b: (200, {})

    def fail(name: str, version: str) -> None:
        msg = "replica crashed"
        raise ClipperException(msg)

    cm.on_deploy = fail
    with pytest.raises(ClipperException, match="replica crashed"):
        conn.deploy_model("m", 2, "doubles", "img")
    assert cm.calls[-1] == ("stop_models", {"m": ["2"]})
    assert "/admin/add_model" not in mgmt.paths()


def test_set_num_replicas_errors(mgmt: FakeManagement) -> None:
    cm = RecordingManager(mgmt.addr)
    conn = connected(cm)
    mgmt.routes["/admin/get_model"] = lambda b: (200, {})
    with pytest.raises(ClipperException, match="Cannot add container for non-registered model m:1"):
        conn.set_num_replicas("m", 2, 1)
    info = {"model_name": "m", "model_version": "1", "input_type": "doubles", "container_name": "NO_CONTAINER"}
    mgmt.routes["/admin/get_model"] = lambda b: (200, info)
    with pytest.raises(ClipperException, match="Cannot resize the replica set for containerless model m:1"):
        conn.set_num_replicas("m", 2, 1)
    mgmt.routes["/admin/get_model"] = lambda b: (200, {**info, "container_name": "img"})
    conn.set_num_replicas("m", 3, 1)
    assert cm.calls[-1] == ("set_num_replicas", "m", "1", "doubles", "img", 3)


def test_stop_inactive_versions_stops_then_unregisters(mgmt: FakeManagement) -> None:
    cm = RecordingManager(mgmt.addr)
    models = [
        {"model_name": "m", "model_version": "1", "is_current_version": False},
        {"model_name": "m", "model_version": "2", "is_current_version": True},
        {"model_name": "other", "model_version": "1", "is_current_version": False},
    ]
    mgmt.routes["/admin/get_all_models"] = lambda b: (200, models)
    conn = connected(cm)
    conn.stop_inactive_model_versions(["m"])
    assert cm.calls[-1] == ("stop_models", {"m": ["1"]})
    assert mgmt.requests[-1] == ("/admin/delete_versioned_model", {"model_name": "m", "model_version": "1"})
    assert conn.get_current_model_version("m") == "2"
    with pytest.raises(ClipperException, match="No versions of model nope registered with Clipper"):
        conn.get_current_model_version("nope")


# ---------------------------------------------------------------------------- test_predict_function


def _sums(xs: Any) -> list[float]:
    return [float(np.sum(x)) for x in xs]


def test_predict_function_doubles_single_and_batch() -> None:
    conn = ClipperConnection(RecordingManager())
    assert conn.test_predict_function({"input": [1.1, 2.2, 3.3]}, _sums, "doubles") == [pytest.approx(6.6)]
    out = conn.test_predict_function({"input_batch": [[1.0, 2.0], [3.0, 4.0, 5.0]]}, _sums, "doubles")
    assert out == [3.0, 12.0]
    seen = conn.test_predict_function({"input": [1.0, 2.0]}, lambda xs: [(x.dtype.name, x.tolist()) for x in xs], "d")
    assert seen == [("float64", [1.0, 2.0])]


def test_predict_function_ints_and_strings() -> None:
    conn = ClipperConnection(RecordingManager())

    def keep(xs: Any) -> list[str]:
        return [str(len(x)) for x in xs]

    assert conn.test_predict_function({"input": [1, 2, 3]}, keep, "ints") == ["3"]
    dtypes = conn.test_predict_function({"input_batch": [[1], [2, 3]]}, lambda xs: [x.dtype.name for x in xs], "i")
    assert dtypes == ["int32", "int32"]
    assert conn.test_predict_function({"input": "hi"}, lambda xs: [type(x).__name__ for x in xs], "s") == ["bytes"]
    assert conn.test_predict_function({"input_batch": ["ab", "cde"]}, keep, "strings") == ["2", "3"]
    assert conn.test_predict_function({"input": [1.5]}, keep, "integers") == "Invalid input type"
    assert conn.test_predict_function({"input": 5}, keep, "strings") == "Invalid input type"
    assert conn.test_predict_function({"input": "abc"}, keep, "doubles") == "Invalid input type or JSON key"
    assert conn.test_predict_function({"input": ["a"]}, keep, "doubles") == "Invalid input type"
    assert conn.test_predict_function({"inputs": [1.0]}, keep, "doubles") == "Invalid input type or JSON key"
    assert conn.test_predict_function({"input_batch": 3}, keep, "doubles") == "Invalid input type or JSON key"
    with pytest.raises(ClipperException, match="Valid types"):
        conn.test_predict_function({"input": [1.0]}, keep, "tensor")


def test_predict_function_uses_a_pickled_copy() -> None:
    state = {"calls": 0}

    def count(xs: Any) -> list[int]:
        state["calls"] += 1
        return [state["calls"]] * len(xs)

    conn = ClipperConnection(RecordingManager())
    assert conn.test_predict_function({"input": [1.0]}, count, "doubles") == [1]
    assert state["calls"] == 0  # the closure ran on a cloudpickle round trip, like a deployed model


# ---------------------------------------------------------------------------- deployer


def test_save_python_function_writes_a_loadable_func_pkl() -> None:
    import shutil

    from clipper_deployers.python import save_python_function

    offset = 10
    path = save_python_function("m", lambda xs: [x + offset for x in xs])
    try:
        assert path.endswith("clipper") and os.listdir(path) == ["func.pkl"]
        with open(os.path.join(path, "func.pkl"), "rb") as f:
            func = pickle.load(f)
        assert func([1, 2]) == [11, 12]
    finally:
        shutil.rmtree(path)


def test_functions_of_source_modules_are_pickled_by_value(tmp_path: Any) -> None:
    import shutil
    import subprocess
    import sys

    import cloudpickle
    from clipper_deployers.python import local_source_package, save_python_function

    assert local_source_package(_sums) is sys.modules[__name__.partition(".")[0]]
    assert local_source_package(json.dumps) is None and local_source_package(np.sum) is None
    path = save_python_function("m", _sums)
    try:
        assert __name__.partition(".")[0] not in cloudpickle.list_registry_pickle_by_value()
        code = "import pickle, sys; print(pickle.load(open(sys.argv[1], 'rb'))([[1.0, 2.0]]))"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run(
            [sys.executable, "-c", code, os.path.join(path, "func.pkl")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[3.0]"
    finally:
        shutil.rmtree(path)


def test_deploy_python_closure_builds_and_removes_temp_dir(mgmt: FakeManagement) -> None:
    from clipper_admin.deployers import python as python_deployer

    cm = RecordingManager(mgmt.addr)
    mgmt.routes["/admin/get_all_containers"] = lambda b: (200, [{"model_name": "app", "model_version": "1"}])
    conn = connected(cm)
    python_deployer.create_endpoint(conn, "app", "doubles", _sums, pkgs_to_install=["six"])
    build = next(c for c in cm.calls if c[0] == "build_model")
    assert build[1:4] == ("app", "1", ["func.pkl"])
    assert build[4] == f"{os.environ.get('CLIPPER_REGISTRY', 'clipper')}/python-closure-container:0.5.0"
    assert build[6] == ["six"]
    assert cm.built_func([[1.0, 2.0]]) == [3.0]
    assert mgmt.paths() == [
        "/admin/add_app",
        "/admin/get_model",
        "/admin/get_all_containers",
        "/admin/add_model",
        "/admin/add_model_links",
    ]
    assert cm.last_model_path.endswith("clipper") and not os.path.exists(cm.last_model_path)


def test_deploy_python_closure_removes_temp_dir_on_failure(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from clipper_deployers.python import deploy_python_closure

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    conn = connected(RecordingManager(running=False))
    with pytest.raises(ClipperException, match="is not running"):
        deploy_python_closure(conn, "m", 1, "doubles", _sums, base_image="img")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- compat package and CLI


def test_compat_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    import clipper_admin
    from clipper_admin import CLIPPER_TEMP_DIR, DEFAULT_LABEL, DEFAULT_PREDICTION_CACHE_SIZE_BYTES
    from clipper_admin import ClipperConnection as Conn
    from clipper_admin import ClipperException as Exc
    from clipper_admin import UnconnectedException as Unc
    from clipper_admin.deployers import python as python_deployer

    assert Conn is ClipperConnection and Exc is ClipperException and Unc is UnconnectedException
    assert (CLIPPER_TEMP_DIR, DEFAULT_PREDICTION_CACHE_SIZE_BYTES, DEFAULT_LABEL) == ("/tmp/clipper", 33554432, [])
    assert clipper_admin.__version__ == "0.5.0"
    assert clipper_admin.__registry__ == os.environ.get("CLIPPER_REGISTRY", "clipper")
    assert python_deployer.PLUGIN_NAME == "python_closure"
    assert python_deployer.deploy is python_deployer.deploy_python_closure
    assert clipper_admin.deployers.python is python_deployer
    import clipper_docker.manager

    assert clipper_admin.DockerContainerManager is clipper_docker.manager.DockerContainerManager  # plugin installed
    import clipper_k8s.manager

    assert clipper_admin.KubernetesContainerManager is clipper_k8s.manager.KubernetesContainerManager
    # A manager whose plugin is not installed names the distribution to install.
    monkeypatch.setitem(clipper_admin._LAZY, "AbsentContainerManager", ("clipper_absent", "clipper-absent"))
    with pytest.raises(ImportError, match="pip install clipper-absent"):
        clipper_admin.AbsentContainerManager  # noqa: B018
    with pytest.raises(AttributeError):
        clipper_admin.NoSuchThing  # noqa: B018


def test_cli_plugins_lists_builtin_input_types_and_deployers(capsys: pytest.CaptureFixture[str]) -> None:
    from clipper_core.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "clipper-core (built-in) 0.5.0" in lines["clipper_core.input_types"]
    assert "clipper_register_input_types" in lines["clipper_core.input_types"]
    assert "clipper-deployers 0.5.0" in lines["python_closure"]
    assert "clipper_register_deployers" in lines["python_closure"]
    assert main(["plugins", "--json"]) == 0
    names = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert names["python_closure"]["version"] == "0.5.0"


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from clipper_core.cli import main

    assert main(["status", "--manager", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown container manager 'nope'. Installed container managers:")
    assert err.count("\n") == 1
    assert main(["predict", "app", "[1.0]", "--addr", f"127.0.0.1:{free_port()}"]) == 1
    err = capsys.readouterr().err
    assert "not reachable" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["predict", "app", "{not json", "--addr", "127.0.0.1:1"]) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_cli_parse_query() -> None:
    from clipper_core.cli.builtin import parse_query

    assert parse_query('{"input": [1.0, 2.0]}') == {"input": [1.0, 2.0]}
    assert parse_query('{"input_batch": [[1.0]]}') == {"input_batch": [[1.0]]}
    assert parse_query("[1.0, 2.0]") == {"input": [1.0, 2.0]}
    assert parse_query('"hello"') == {"input": "hello"}


# ---------------------------------------------------------------------------- one end-to-end run on a local cluster


@pytest.mark.cluster
def test_cli_and_admin_against_a_local_cluster(clipper_home: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from clipper_admin import LocalContainerManager
    from clipper_admin.deployers import python as python_deployer
    from clipper_core.cli import main
    from clipper_core.ports import free_ports

    ports = [str(p) for p in free_ports(4)]
    where = ["--cluster-name", "admin-e2e"]
    start = ["start", *where, "--query-port", ports[0], "--mgmt-port", ports[1], "--rpc-port", ports[2]]
    assert main([*start, "--redis-port", ports[3]]) == 0
    try:
        conn = ClipperConnection(LocalContainerManager(cluster_name="admin-e2e"))
        conn.connect()

        def total(xs: Any) -> list[float]:
            return [float(sum(x)) for x in xs]

        python_deployer.create_endpoint(conn, "sum-app", "doubles", total, default_output="-1.0")
        capsys.readouterr()
        # registered only once a replica is connected: the very first query is answered by the model
        assert main(["predict", *where, "sum-app", "[1.5, 2.0]"]) == 0
        live = json.loads(capsys.readouterr().out)
        assert live["default"] is False
        assert [live["output"]] == conn.test_predict_function({"input": [1.5, 2.0]}, total, "doubles")

        python_deployer.deploy_python_closure(conn, "sum-app", 2, "doubles", lambda xs: [-1.0 for _ in xs])
        assert conn.get_current_model_version("sum-app") == "2"
        conn.stop_inactive_model_versions(["sum-app"])
        assert conn.get_all_models() == ["sum-app:2"]

        assert main(["status", *where, "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["applications"][0]["current_versions"] == {"sum-app": "2"}
        models = [(m["version"], m["current"], len(m["connected_replicas"])) for m in status["models"]]
        assert models == [("2", True, 1)]

        with pytest.raises(ClipperException, match="Valid types"):
            conn.deploy_model("sum-app", 3, "tensors", "local:admin-e2e/sum-app:2")
        assert conn.get_num_replicas("sum-app") == 1
    finally:
        assert main(["stop", *where]) == 0
    assert main(["status", *where]) == 1
    assert "is not running" in capsys.readouterr().err
