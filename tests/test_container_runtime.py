"""The model-container runtime as a real process speaking RPC v3 to a ZeroMQ ROUTER owned by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
import zmq

from clipper_core.container import ContainerConfig, ContainerRuntime, PredictionError, to_outputs
from clipper_core.container.config import ConfigError
from clipper_core.container.runtime import EXIT_PREDICT_TIMEOUT
from clipper_core.rpc import frames as rpc

# Functions defined in this module are pickled by value, so the replica does not need to import the tests.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

STARTUP_S = 30.0  # a cold interpreter importing numpy on a loaded CI machine
STEP_S = 10.0
DOUBLES, STRINGS, INTS = 3, 4, 1


def f64(*values: float) -> bytes:
    return np.asarray(values, dtype="<f8").tobytes()


class FakeFrontend:
    """The frontend side: a ROUTER bound on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if port is None:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        else:
            self.sock.bind(f"tcp://127.0.0.1:{port}")
            self.port = port

    def close(self) -> None:
        if not self.ctx.closed:
            self.sock.close(linger=0)
            self.ctx.term()

    def recv(self, timeout: float = STEP_S) -> tuple[bytes, Any]:
        """Next message as (identity, parsed); parsed is None for a heartbeat."""
        if not self.sock.poll(int(timeout * 1000)):
            msg = f"no message from the replica within {timeout} s"
            raise TimeoutError(msg)
        identity, *frames = self.sock.recv_multipart()
        return identity, rpc.parse_container_message(frames)

    def send(self, identity: bytes, frames: list[bytes]) -> None:
        self.sock.send_multipart([identity, *frames])

    def wait_for(self, want: Callable[[bytes, Any], bool], timeout: float = STEP_S) -> tuple[bytes, Any]:
        """Receive until ``want`` accepts a message; heartbeats on the way get a KeepAlive reply."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                msg = "the expected message did not arrive"
                raise TimeoutError(msg)
            identity, msg = self.recv(left)
            if want(identity, msg):
                return identity, msg
            if msg is None:
                self.send(identity, rpc.heartbeat_to_container(False))

    def register(self, timeout: float = STARTUP_S) -> tuple[bytes, rpc.NewContainer]:
        """Heartbeat -> RequestContainerMetadata -> NewContainer; returns the replica's identity."""
        identity, _ = self.wait_for(lambda i, m: m is None, timeout)
        self.send(identity, rpc.heartbeat_to_container(True))
        ident, msg = self.wait_for(lambda i, m: isinstance(m, rpc.NewContainer) and i == identity)
        return ident, msg

    def predict(self, identity: bytes, msg_id: int, code: int, inputs: list[bytes]) -> list[str]:
        self.send(identity, rpc.predict_request(msg_id, code, inputs))
        _, resp = self.wait_for(
            lambda i, m: i == identity and isinstance(m, rpc.PredictionResponse) and m.msg_id == msg_id
        )
        return [o.decode("utf-8") for o in resp.outputs]


class Replica:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, ready_file: Path) -> None:
        self.proc, self.log, self.ready_file = proc, log, ready_file

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def frontend() -> Iterator[FakeFrontend]:
    fe = FakeFrontend()
    yield fe
    fe.close()


@pytest.fixture
def spawn(tmp_path: Path, frontend: FakeFrontend) -> Iterator[Callable[..., Replica]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        func: Any = None, *, pkl: bytes | None = None, env: dict[str, str] | None = None, script: str | None = None
    ) -> Replica:
        n = len(procs)
        model = tmp_path / f"model{n}"
        model.mkdir(exist_ok=True)
        if pkl is not None:
            (model / "func.pkl").write_bytes(pkl)
        elif func is not None:
            with open(model / "func.pkl", "wb") as f:
                cloudpickle.dump(func, f)
        ready = tmp_path / f"ready{n}"
        full_env = {
            **os.environ,
            "CLIPPER_MODEL_NAME": "m",
            "CLIPPER_MODEL_VERSION": "7",
            "CLIPPER_IP": "127.0.0.1",
            "CLIPPER_PORT": str(frontend.port),
            "CLIPPER_MODEL_PATH": str(model),
            "CLIPPER_READY_FILE": str(ready),
            "PYTHONUNBUFFERED": "1",
        }
        full_env.update(env or {})
        full_env = {k: v for k, v in full_env.items() if v is not None}
        cmd = [sys.executable, "-m", "clipper_core.container"]
        if script is not None:
            path = tmp_path / f"container{n}.py"
            path.write_text(textwrap.dedent(script))
            cmd = [sys.executable, str(path)]
        log = tmp_path / f"replica{n}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return Replica(proc, log, ready)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- model functions


def shape_and_sum(xs: Any) -> list[str]:
    return [f"{type(xs).__name__}{getattr(xs, 'shape', '')}|{float(np.sum(x))}" for x in xs]


def upper(xs: Any) -> list[str]:
    return [f"{type(x).__name__}:{x.decode().upper()}" for x in xs]


def fails_on_negative(xs: Any) -> list[float]:
    if (np.asarray(xs) < 0).any():
        msg = "boom"
        raise ValueError(msg)
    return [float(x.sum()) for x in xs]


def one_output(xs: Any) -> list[str]:
    return ["only one"]


def returns_dict(xs: Any) -> dict[str, int]:
    return {"a": 1}


def identity_rows(xs: Any) -> np.ndarray:
    return xs[:, 0]


# --------------------------------------------------------------------------- process tests


def test_registration_and_readiness(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    replica = spawn(shape_and_sum)
    _, nc = frontend.register()
    assert (nc.model_name, nc.model_version, nc.input_type_code, nc.rpc_version) == ("m", "7", DOUBLES, 3)
    assert nc.status == {"status": "ready", "pid": replica.proc.pid}
    assert replica.ready_file.read_text() == "READY"


def test_doubles_batch_is_one_2d_array_and_ragged_batch_is_object_array(
    spawn: Callable[..., Replica], frontend: FakeFrontend
) -> None:
    spawn(shape_and_sum, env={"CLIPPER_INPUT_TYPE": "Double"})
    ident, nc = frontend.register()
    assert nc.input_type_code == DOUBLES
    out = frontend.predict(ident, 0, DOUBLES, [f64(1, 2), f64(3, 4), f64(5, 6)])
    assert out == ["ndarray(3, 2)|3.0", "ndarray(3, 2)|7.0", "ndarray(3, 2)|11.0"]
    out = frontend.predict(ident, 1, DOUBLES, [f64(1), f64(2, 3)])
    assert out == ["ndarray(2,)|1.0", "ndarray(2,)|5.0"]


def test_strings_batch(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    spawn(upper, env={"CLIPPER_INPUT_TYPE": "STRINGS"})
    ident, nc = frontend.register()
    assert nc.input_type_code == STRINGS
    assert frontend.predict(ident, 5, STRINGS, ["héllo".encode(), b"", b"x"]) == ["bytes:HÉLLO", "bytes:", "bytes:X"]


def test_ndarray_result_is_accepted(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    spawn(identity_rows)
    ident, _ = frontend.register()
    assert frontend.predict(ident, 0, DOUBLES, [f64(1.5, 0), f64(2, 0)]) == ["1.5", "2.0"]


def test_predict_exception_fails_only_the_inputs_it_is_raised_for_and_replica_survives(
    spawn: Callable[..., Replica], frontend: FakeFrontend
) -> None:
    replica = spawn(fails_on_negative)
    ident, _ = frontend.register()
    out = frontend.predict(ident, 0, DOUBLES, [f64(1, 0), f64(-1, 0), f64(2, 3)])
    assert out == ["1.0", rpc.ERROR_PREFIX + "ValueError: boom", "5.0"]
    assert frontend.predict(ident, 1, DOUBLES, [f64(1, 2), f64(3, 4)]) == ["3.0", "7.0"]
    assert replica.proc.poll() is None
    log = replica.stderr()
    assert "Traceback" in log and "ValueError: boom" in log


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (one_output, "PredictionError: Expected model to return 2 outputs, found 1 outputs"),
        (returns_dict, "PredictionError: Model did not return a list (returned dict)"),
    ],
)
def test_bad_result_becomes_error_outputs(
    spawn: Callable[..., Replica], frontend: FakeFrontend, func: Any, expected: str
) -> None:
    replica = spawn(func)
    ident, _ = frontend.register()
    assert frontend.predict(ident, 0, DOUBLES, [f64(1), f64(2)]) == [rpc.ERROR_PREFIX + expected] * 2
    assert frontend.predict(ident, 1, DOUBLES, [f64(1), f64(2)]) == [rpc.ERROR_PREFIX + expected] * 2
    assert replica.proc.poll() is None


def test_unloadable_model_registers_with_error_status(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    replica = spawn(pkl=b"\x00 definitely not a pickle")
    ident, nc = frontend.register()
    assert nc.status is not None and nc.status["status"] == "error" and nc.status["pid"] == replica.proc.pid
    error = str(nc.status["error"])
    assert error.startswith("UnpicklingError: ")
    out = frontend.predict(ident, 0, DOUBLES, [f64(1)])
    assert out == [rpc.ERROR_PREFIX + "model failed to load: " + error]
    assert replica.proc.poll() is None
    assert "Model failed to load" in replica.stderr() and "UnpicklingError" in replica.stderr()
    assert not replica.ready_file.exists()


def test_modules_dir_is_on_sys_path(spawn: Callable[..., Replica], frontend: FakeFrontend, tmp_path: Path) -> None:
    modules = tmp_path / "model0" / "modules"
    modules.mkdir(parents=True)
    (modules / "clipper_test_helper_mod.py").write_text("def label(x):\n    return 'helper:' + str(float(x.sum()))\n")
    sys.path.insert(0, str(modules))
    try:
        import clipper_test_helper_mod  # type: ignore[import-not-found]

        helper = clipper_test_helper_mod.label  # pickled by reference: the replica must import the module

        def func(xs: Any) -> list[str]:
            return [helper(x) for x in xs]

        spawn(func)
    finally:
        sys.path.remove(str(modules))
        sys.modules.pop("clipper_test_helper_mod", None)
    ident, nc = frontend.register()
    assert nc.status is not None and nc.status["status"] == "ready"
    assert frontend.predict(ident, 0, DOUBLES, [f64(1, 2)]) == ["helper:3.0"]


def test_metadata_names_the_container_class(
    spawn: Callable[..., Replica], frontend: FakeFrontend, tmp_path: Path
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "clipper_test_container_mod.py").write_text(
        "import os\n"
        "class Doubler:\n"
        "    def __init__(self, model_path):\n"
        "        self.factor = float(open(os.path.join(model_path, 'factor.txt')).read())\n"
        "    def predict_doubles(self, xs):\n"
        "        return [str(self.factor * float(x.sum())) for x in xs]\n"
    )
    model = tmp_path / "model0"
    model.mkdir()
    (model / "factor.txt").write_text("2")
    (model / "metadata.json").write_text('{"container": "clipper_test_container_mod:Doubler"}')
    spawn(env={"PYTHONPATH": os.pathsep.join([str(lib), os.environ.get("PYTHONPATH", "")])})
    ident, nc = frontend.register()
    assert nc.status is not None and nc.status["status"] == "ready"
    assert frontend.predict(ident, 0, DOUBLES, [f64(1, 2), f64(4)]) == ["6.0", "8.0"]


def test_unimportable_container_class_is_a_load_error(
    spawn: Callable[..., Replica], frontend: FakeFrontend, tmp_path: Path
) -> None:
    model = tmp_path / "model0"
    model.mkdir()
    (model / "metadata.json").write_text('{"container": "clipper_no_such_deployer.container:Model"}')
    replica = spawn(upper)
    ident, nc = frontend.register()
    assert nc.status is not None and nc.status["status"] == "error"
    error = str(nc.status["error"])
    assert error.startswith("ModelLoadError: this model needs clipper_no_such_deployer.container to run"), error
    out = frontend.predict(ident, 0, DOUBLES, [f64(1)])
    assert out == [rpc.ERROR_PREFIX + "model failed to load: " + error]
    assert replica.proc.poll() is None


def test_answered_heartbeats_keep_the_session(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    spawn(shape_and_sum, env={"CLIPPER_HEARTBEAT_INTERVAL_S": "0.1", "CLIPPER_ACTIVITY_TIMEOUT_S": "0.5"})
    ident, _ = frontend.register()
    deadline = time.monotonic() + 1.5
    heartbeats = 0
    while time.monotonic() < deadline:
        who, msg = frontend.recv()
        assert who == ident and msg is None
        heartbeats += 1
        frontend.send(who, rpc.heartbeat_to_container(False))
    assert heartbeats >= 5


def test_reconnects_with_new_identity_after_silence(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    spawn(shape_and_sum, env={"CLIPPER_HEARTBEAT_INTERVAL_S": "0.1", "CLIPPER_ACTIVITY_TIMEOUT_S": "0.6"})
    first, _ = frontend.register()
    # Stay silent: the replica heartbeats on the old socket, then replaces it.
    deadline = time.monotonic() + STEP_S
    while True:
        who, msg = frontend.recv(max(0.01, deadline - time.monotonic()))
        assert msg is None
        if who != first:
            break
    frontend.send(who, rpc.heartbeat_to_container(True))
    second, nc = frontend.wait_for(lambda i, m: isinstance(m, rpc.NewContainer))
    assert second == who != first and nc.status is not None and nc.status["status"] == "ready"
    assert frontend.predict(second, 0, DOUBLES, [f64(2, 2)]) == ["ndarray(1, 2)|4.0"]


def test_reregisters_after_frontend_restart(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    spawn(shape_and_sum, env={"CLIPPER_HEARTBEAT_INTERVAL_S": "0.1", "CLIPPER_ACTIVITY_TIMEOUT_S": "30"})
    frontend.register()
    port = frontend.port
    frontend.close()
    restarted = FakeFrontend(port)
    try:
        ident, nc = restarted.register(timeout=STEP_S)
        assert nc.model_name == "m"
        assert restarted.predict(ident, 0, DOUBLES, [f64(1)]) == ["ndarray(1, 1)|1.0"]
    finally:
        restarted.close()


def test_replica_started_before_frontend_registers(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    port = frontend.port
    frontend.close()
    replica = spawn(shape_and_sum, env={"CLIPPER_HEARTBEAT_INTERVAL_S": "0.2", "CLIPPER_ACTIVITY_TIMEOUT_S": "30"})
    deadline = time.monotonic() + STARTUP_S
    while "Serving m:7" not in replica.stderr():  # the replica is up and trying to reach the frontend
        assert time.monotonic() < deadline, replica.stderr()
        with pytest.raises(subprocess.TimeoutExpired):
            replica.proc.wait(timeout=0.05)
    late = FakeFrontend(port)
    try:
        ident, nc = late.register(timeout=STEP_S)
        assert nc.status is not None and nc.status["status"] == "ready"
        assert late.predict(ident, 0, DOUBLES, [f64(3)]) == ["ndarray(1, 1)|3.0"]
    finally:
        late.close()


def slow(xs: Any) -> list[str]:
    time.sleep(0.8)
    return ["slow"] * len(xs)


def test_slow_model_does_not_cause_reconnect(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    spawn(slow, env={"CLIPPER_HEARTBEAT_INTERVAL_S": "0.1", "CLIPPER_ACTIVITY_TIMEOUT_S": "0.5"})
    ident, _ = frontend.register()
    assert frontend.predict(ident, 0, DOUBLES, [f64(1)]) == ["slow"]
    who, msg = frontend.recv()
    assert who == ident and msg is None  # the next heartbeat still comes over the same connection


def sleeps_on_negative(xs: Any) -> list[str]:
    if (np.asarray(xs) < 0).any():
        time.sleep(600)
    return ["ok"] * len(xs)


def test_predict_past_its_time_limit_ends_the_process(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    replica = spawn(sleeps_on_negative, env={"CLIPPER_PREDICT_TIMEOUT_S": "0.5"})
    ident, _ = frontend.register()
    assert frontend.predict(ident, 0, DOUBLES, [f64(1)]) == ["ok"]
    assert replica.ready_file.exists()
    frontend.send(ident, rpc.predict_request(1, DOUBLES, [f64(1), f64(-1)]))
    assert replica.proc.wait(timeout=STEP_S) == EXIT_PREDICT_TIMEOUT
    log = replica.stderr()
    assert "predict did not return within 0.5 s (a batch of 2 inputs" in log and "CLIPPER_PREDICT_TIMEOUT_S" in log
    assert not replica.ready_file.exists()


def test_sigterm_exits_cleanly(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    replica = spawn(shape_and_sum)
    frontend.register()
    assert replica.ready_file.exists()
    replica.proc.send_signal(signal.SIGTERM)
    assert replica.proc.wait(timeout=STEP_S) == 0
    assert not replica.ready_file.exists()


@pytest.mark.parametrize("missing", ["CLIPPER_MODEL_NAME", "CLIPPER_MODEL_VERSION"])
def test_missing_required_env_var_exits_1(spawn: Callable[..., Replica], missing: str) -> None:
    replica = spawn(shape_and_sum, env={missing: None})  # type: ignore[dict-item]
    assert replica.proc.wait(timeout=STARTUP_S) == 1
    assert f"{missing} environment variable must be set" in replica.stderr()


def test_unknown_input_type_exits_1(spawn: Callable[..., Replica]) -> None:
    replica = spawn(shape_and_sum, env={"CLIPPER_INPUT_TYPE": "tensors"})
    assert replica.proc.wait(timeout=STARTUP_S) == 1
    assert "'tensors'" in replica.stderr()


def test_model_container_base_and_rpc_service(spawn: Callable[..., Replica], frontend: FakeFrontend) -> None:
    script = """
        from clipper_core.container import ModelContainerBase, RPCService

        class Adder(ModelContainerBase):
            def predict_ints(self, inputs):
                return [str(int(x.sum())) for x in inputs]

        RPCService().start(Adder())
    """
    replica = spawn(env={"CLIPPER_INPUT_TYPE": "ints"}, script=script)
    ident, nc = frontend.register()
    assert nc.input_type_code == INTS and nc.status is not None and nc.status["status"] == "ready"
    ints = [np.asarray(v, dtype="<i4").tobytes() for v in ([1, 2], [3, 4, 5])]
    assert frontend.predict(ident, 9, INTS, ints) == ["3", "12"]
    replica.proc.send_signal(signal.SIGTERM)
    assert replica.proc.wait(timeout=STEP_S) == 0


# --------------------------------------------------------------------------- in-process units


def test_to_outputs() -> None:
    assert to_outputs(["a", 1, 2.5], 3) == ["a", "1", "2.5"]
    assert to_outputs((1, 2), 2) == ["1", "2"]
    assert to_outputs(np.array([1.5, 2.0]), 2) == ["1.5", "2.0"]
    with pytest.raises(PredictionError, match="Expected model to return 3 outputs, found 2"):
        to_outputs([1, 2], 3)
    with pytest.raises(PredictionError, match="did not return a list"):
        to_outputs(np.float64(1.0), 1)
    with pytest.raises(PredictionError, match="returned generator"):
        to_outputs((x for x in [1]), 1)


def test_handle_batch_rejects_other_input_type_and_empty_batch() -> None:
    rt = ContainerRuntime(lambda xs: [1] * len(xs), model_name="m", model_version="1", input_type="d")
    assert rt.handle_batch(DOUBLES, []) == []
    out = rt.handle_batch(STRINGS, [b"x"])
    assert len(out) == 1 and out[0].startswith(rpc.ERROR_PREFIX) and "does not match" in out[0]
    assert rt.handle_batch(DOUBLES, [f64(1)]) == ["1"]


class CountingModel:
    """Raises for inputs whose first value is negative (for every input when ``always``); counts its calls."""

    def __init__(self, always: bool = False) -> None:
        self.always = always
        self.calls = 0

    def __call__(self, xs: Any) -> list[str]:
        self.calls += 1
        if self.always or (np.asarray(xs)[:, 0] < 0).any():
            msg = "bad input"
            raise ValueError(msg)
        return [str(float(x[0])) for x in xs]


def test_isolation_bisects_a_failing_batch() -> None:
    model = CountingModel()
    rt = ContainerRuntime(model, model_name="m", model_version="1", input_type="doubles")
    batch = [f64(-float(i) if i == 11 else float(i)) for i in range(16)]
    out = rt.handle_batch(DOUBLES, batch)
    assert out == [rpc.ERROR_PREFIX + "ValueError: bad input" if i == 11 else str(float(i)) for i in range(16)]
    assert model.calls == 1 + 2 * 4  # the whole batch, then both halves at each of log2(16) levels


def test_isolation_of_a_model_that_fails_everything_stays_cheap() -> None:
    model = CountingModel(always=True)
    rt = ContainerRuntime(model, model_name="m", model_version="1", input_type="doubles")
    batch = [f64(float(i)) for i in range(16)]
    error = rpc.ERROR_PREFIX + "ValueError: bad input"
    assert rt.handle_batch(DOUBLES, batch) == [error] * 16
    assert model.calls == 2 * 16 - 1  # the first time, every input is tried on its own
    for _ in range(3):
        model.calls = 0
        assert rt.handle_batch(DOUBLES, batch) == [error] * 16
        assert model.calls == 3  # after that: the batch and its two halves
    model.always, model.calls = False, 0
    batch[5] = f64(-5.0)
    out = rt.handle_batch(DOUBLES, batch)  # a half succeeds again: full isolation
    assert out == [error if i == 5 else str(float(i)) for i in range(16)]
    assert model.calls == 9


def test_a_wrong_number_of_outputs_is_not_isolated() -> None:
    calls = []
    rt = ContainerRuntime(lambda xs: calls.append(len(xs)) or ["x"], model_name="m", model_version="1")
    out = rt.handle_batch(DOUBLES, [f64(1), f64(2)])
    assert out == [rpc.ERROR_PREFIX + "PredictionError: Expected model to return 2 outputs, found 1 outputs"] * 2
    assert calls == [2]


def test_config_from_env() -> None:
    cfg = ContainerConfig.from_env({"CLIPPER_MODEL_NAME": "a", "CLIPPER_MODEL_VERSION": "2"})
    assert (cfg.ip, cfg.port, cfg.input_type, cfg.model_path, cfg.ready_file) == (
        "127.0.0.1",
        7000,
        "doubles",
        "/model",
        "/model_is_ready.check",
    )
    assert (cfg.heartbeat_interval_s, cfg.activity_timeout_s, cfg.predict_timeout_s) == (5.0, 30.0, 60.0)
    env = {"CLIPPER_MODEL_NAME": "a", "CLIPPER_MODEL_VERSION": "2", "CLIPPER_READY_FILE": ""}
    assert ContainerConfig.from_env(env).ready_file is None
    with pytest.raises(ConfigError, match="CLIPPER_PORT"):
        ContainerConfig.from_env({**env, "CLIPPER_PORT": "x"})
    with pytest.raises(ConfigError, match="CLIPPER_ACTIVITY_TIMEOUT_S"):
        ContainerConfig.from_env({**env, "CLIPPER_ACTIVITY_TIMEOUT_S": "0"})
    assert ContainerConfig.from_env({**env, "CLIPPER_PREDICT_TIMEOUT_S": "2.5"}).predict_timeout_s == 2.5
    with pytest.raises(ConfigError, match="CLIPPER_PREDICT_TIMEOUT_S"):
        ContainerConfig.from_env({**env, "CLIPPER_PREDICT_TIMEOUT_S": "soon"})
