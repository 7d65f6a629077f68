"""The query frontend as a real process, against real Redis and real ZeroMQ peers speaking RPC v3."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from clipper_core.rpc.frames import ERROR_PREFIX
from tests._replica import ProtocolReplica
from tests.frontend_harness import Frontend, query_frontend

NO_MODELS = "No connected models found for query"
SLO_MISSED = "Failed to retrieve a prediction response within the specified latency SLO"


@pytest.fixture(scope="module", params=["fast", "tornado"])
def fe(
    request: pytest.FixtureRequest, redis_server: tuple[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Frontend]:
    """The same behaviour is required of both HTTP servers."""
    import redis

    redis.Redis(port=redis_server[1]).flushall()
    with query_frontend(redis_server[1], tmp_path_factory.mktemp("qf"), "--http-server", request.param) as frontend:
        yield frontend


def doubles_sum(inputs: list[bytes]) -> list[str]:
    return [repr(float(np.frombuffer(x, "<f8").sum())) for x in inputs]


def serve(
    fe: Frontend,
    app: str,
    model: str,
    func: Callable[[list[bytes]], list[str]] = doubles_sum,
    version: str = "1",
    input_type: str = "doubles",
    code: int = 3,
    batch_size: int = -1,
    slo_micros: int = 2_000_000,
    default: str = "-1.0",
) -> ProtocolReplica:
    fe.add_app(app, input_type, default, slo_micros)
    fe.add_model(model, version, input_type, batch_size)
    fe.link(app, model)
    replica = ProtocolReplica(fe.rpc_port, model, version, code, func).__enter__()
    assert replica.registered.wait(10)

    probe = {3: [0.5], 4: "x", 16: {"a": 0}}[code]
    fe.wait_until(
        lambda: fe.predict(app, {"input": probe}).json().get("default") is False,
        what=f"{app} to be served by {model}:{version}",
    )
    return replica


def test_unknown_app_is_404_json(fe: Frontend) -> None:
    r = fe.predict("no-such-app", {"input": [1.0]})
    assert r.status_code == 404
    assert r.json()["error"] == "Not found"
    assert "no-such-app" in r.json()["cause"]


def test_unknown_path_is_404_json(fe: Frontend) -> None:
    r = requests.get(f"{fe.url}/nothing/here", timeout=5)
    assert r.status_code == 404 and r.json()["error"] == "Not found"


def test_healthz(fe: Frontend) -> None:
    r = requests.get(f"{fe.url}/healthz", timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_bad_input_gets_400_with_cause(fe: Frontend) -> None:
    fe.add_app("bad-input", "doubles")
    fe.wait_for_app("bad-input")
    url = f"{fe.url}/bad-input/predict"
    r = requests.post(url, data=b"{not json", timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "Json error"
    assert r.json()["cause"].startswith("Error parsing JSON: JSON parse error")
    assert "Expected JSON schema" in r.json()["cause"]

    r = fe.predict("bad-input", {"inputs": [1.0]})
    assert r.status_code == 400
    assert "JSON object does not have required keys input or input_batch" in r.json()["cause"]

    r = fe.predict("bad-input", {"input": "abc"})
    assert r.status_code == 400
    assert "Type mismatch! JSON key input expected type Arraybut found type String" in r.json()["cause"]

    r = fe.predict("bad-input", {"input": [1.0, "x"]})
    assert r.status_code == 400
    assert "Array input of type String is not of type double" in r.json()["cause"]

    r = fe.predict("bad-input", {"input_batch": [[1.0], 3]})
    assert r.status_code == 400
    assert "Array input of type Number is not of type array" in r.json()["cause"]

    r = fe.predict("bad-input", {"input": [True]})
    assert r.status_code == 400 and "of type True is not of type double" in r.json()["cause"]


def test_integers_reject_decimals(fe: Frontend) -> None:
    fe.add_app("ints-app", "ints")
    fe.wait_for_app("ints-app")
    r = fe.predict("ints-app", {"input": [1, 2.5]})
    assert r.status_code == 400 and "Array input of type Number is not of type int" in r.json()["cause"]
    r = fe.predict("ints-app", {"input": [1, 2]})
    assert r.status_code == 200 and r.json()["default"] is True


def test_unlinked_app_returns_default_output(fe: Frontend) -> None:
    fe.add_app("lonely", "doubles", default="DEFAULT")
    fe.wait_for_app("lonely")
    r = fe.predict("lonely", {"input": [1.0]})
    body = r.json()
    assert r.status_code == 200
    assert body["output"] == "DEFAULT" and body["default"] is True
    assert body["default_explanation"] == NO_MODELS
    assert isinstance(body["query_id"], int)


def test_prediction_single_and_batches(fe: Frontend) -> None:
    with serve(fe, "sum-app", "sum-model"):
        r = fe.predict("sum-app", {"input": [1.0, 2, 3.5]})  # ints accepted for doubles
        assert r.status_code == 200
        assert r.json()["output"] == 6.5 and r.json()["default"] is False
        assert "default_explanation" not in r.json()

        r = fe.predict("sum-app", {"input_batch": [[1.0], [2.0, 2.0], [3.0], [4.0]]}).json()
        assert [p["output"] for p in r["batch_predictions"]] == [1.0, 4.0, 3.0, 4.0]
        ids = [p["query_id"] for p in r["batch_predictions"]]
        assert len(set(ids)) == 4

        # One element stays wrapped (the original unwrapped it).
        r = fe.predict("sum-app", {"input_batch": [[7.0]]}).json()
        assert list(r) == ["batch_predictions"] and r["batch_predictions"][0]["output"] == 7.0

        assert fe.predict("sum-app", {"input_batch": []}).json() == {"batch_predictions": []}

        # Trailing slash, as the original's tests use.
        r = requests.post(f"{fe.url}/sum-app/predict/", json={"input": [1.0]}, timeout=5)
        assert r.json()["output"] == 1.0


def test_version_pinning_and_unknown_version(fe: Frontend) -> None:
    one = ProtocolReplica(fe.rpc_port, "pinned", "v1", 3, lambda xs: ["1"] * len(xs)).__enter__()
    two = ProtocolReplica(fe.rpc_port, "pinned", "v2", 3, lambda xs: ["2"] * len(xs)).__enter__()
    try:
        fe.add_app("pin-app", "doubles", "-1", 2_000_000)
        fe.add_model("pinned", "v1")
        fe.add_model("pinned", "v2")  # current
        fe.link("pin-app", "pinned")
        fe.wait_until(lambda: fe.predict("pin-app", {"input": [1.0]}).json().get("output") == 2, what="v2 to serve")
        fe.wait_until(lambda: _healthz_has(fe, "pinned:v1"), what="the v1 replica to register")
        r = fe.predict("pin-app", {"input": [2.0], "version": "v1"}).json()
        assert r["output"] == 1 and r["default"] is False
        r = fe.predict("pin-app", {"input": [3.0]}).json()
        assert r["output"] == 2
        r = fe.predict("pin-app", {"input": [1.0], "version": "nope"})
        assert r.status_code == 400
        assert r.json() == {
            "error": "Query processing error",
            "cause": "Requested version: nope does not exist for model: pinned",
        }
        # Roll back: the current-version pointer moves and the next query follows it.
        fe.db(6).set("CURRENT_MODEL_VERSION:pinned", "v1")
        fe.wait_until(lambda: fe.predict("pin-app", {"input": [4.0]}).json()["output"] == 1, what="roll back")
    finally:
        one.stop()
        two.stop()


def test_slow_model_gets_default_at_slo(fe: Frontend) -> None:
    def slow(xs: list[bytes]) -> list[str]:
        time.sleep(0.5)
        return ["late"] * len(xs)

    fe.add_app("slow-app", "doubles", "-1.0", 100_000)
    fe.add_model("slow-model", "1")
    fe.link("slow-app", "slow-model")
    with ProtocolReplica(fe.rpc_port, "slow-model", "1", 3, slow) as replica:
        assert replica.registered.wait(10)
        fe.wait_until(lambda: _healthz_has(fe, "slow-model:1"), what="the slow replica to register")
        start = time.monotonic()
        r = fe.predict("slow-app", {"input": [1.25]}).json()
        elapsed = time.monotonic() - start
        assert r["default"] is True and r["output"] == -1.0
        assert r["default_explanation"] == SLO_MISSED
        assert 0.09 <= elapsed < 0.4, elapsed


def test_model_error_gives_default_with_explanation_and_replica_keeps_serving(fe: Frontend) -> None:
    def flaky(xs: list[bytes]) -> list[str]:
        return [ERROR_PREFIX + "ValueError: boom" if np.frombuffer(x, "<f8")[0] < 0 else "ok" for x in xs]

    with serve(fe, "flaky-app", "flaky-model", flaky):
        r = fe.predict("flaky-app", {"input": [-1.0]}).json()
        assert r["default"] is True
        assert "ValueError: boom" in r["default_explanation"] and "flaky-model" in r["default_explanation"]
        assert fe.predict("flaky-app", {"input": [3.0]}).json()["output"] == "ok"


def test_cache_hits_skip_the_model(fe: Frontend) -> None:
    with serve(fe, "cache-app", "cache-model") as replica:
        before = replica.calls
        for _ in range(5):
            assert fe.predict("cache-app", {"input": [42.0, 1.0]}).json()["output"] == 43.0
        assert replica.calls - before == 1


def test_cache_size_zero_disables_cache(redis_server: tuple[str, int], tmp_path: Path) -> None:
    with query_frontend(redis_server[1], tmp_path, "--cache-size", "0") as fe2:
        with serve(fe2, "nocache-app", "nocache-model") as replica:
            before = replica.calls
            for _ in range(3):
                fe2.predict("nocache-app", {"input": [5.0]})
            assert replica.calls - before == 3


def test_fixed_batch_size_is_honoured_exactly(fe: Frontend) -> None:
    def batch_len(xs: list[bytes]) -> list[str]:
        time.sleep(0.05)
        return [str(len(xs))] * len(xs)

    with serve(fe, "batch-app", "batch-model", batch_len, batch_size=9, slo_micros=30_000_000) as replica:
        replica.batches.clear()
        queries = [[float(i), 0.001 * i] for i in range(450)]
        r = fe.predict("batch-app", {"input_batch": queries}).json()["batch_predictions"]
        outputs = [p["output"] for p in r]
        assert len(outputs) == 450 and not any(p["default"] for p in r)
        assert max(replica.batches) == 9
        assert sum(1 for o in outputs if o == 9) >= 0.7 * 450


def test_deleted_app_stops_serving_at_once(fe: Frontend) -> None:
    fe.add_app("doomed", "doubles")
    fe.wait_for_app("doomed")
    fe.db(5).delete("doomed")
    fe.wait_until(lambda: fe.predict("doomed", {"input": [1.0]}).status_code == 404, timeout=2, what="404")


def test_unlinked_model_stops_receiving_queries(fe: Frontend) -> None:
    with serve(fe, "unlink-app", "unlink-model") as replica:
        fe.db(7).srem("unlink-app", "unlink-model")
        fe.wait_until(
            lambda: fe.predict("unlink-app", {"input": [time.time()]}).json()["default"], timeout=2, what="default"
        )
        calls = replica.calls
        r = fe.predict("unlink-app", {"input": [123.0]}).json()
        assert r["default_explanation"] == NO_MODELS and replica.calls == calls


def test_dropped_connection_removes_replica_quickly(fe: Frontend) -> None:
    replica = serve(fe, "drop-app", "drop-model")
    assert fe.db(3).keys("drop-model,1,*")
    replica.stop()
    fe.wait_until(lambda: not fe.db(3).keys("drop-model,1,*"), timeout=5, what="replica record removal")
    r = fe.predict("drop-app", {"input": [77.0]}).json()
    assert r["default"] is True and r["default_explanation"] == NO_MODELS


def test_replica_status_extension_is_recorded(fe: Frontend) -> None:
    with ProtocolReplica(fe.rpc_port, "status-model", "1", 3, doubles_sum, {"status": "error", "error": "boom"}):
        fe.wait_until(lambda: fe.db(3).keys("status-model,1,*"), what="registration")
        record = fe.db(3).hgetall(fe.db(3).keys("status-model,1,*")[0])
        assert record["status"] == "error" and record["error"] == "boom"
        assert record["model_id"] == "status-model:1" and record["input_type"] == "doubles"


def test_strings_and_bytes_inputs(fe: Frontend) -> None:
    with serve(fe, "str-app", "str-model", lambda xs: [x.decode().upper() for x in xs], input_type="strings", code=4):
        assert fe.predict("str-app", {"input": "abc"}).json()["output"] == "ABC"
        r = fe.predict("str-app", {"input": ["abc"]})
        assert r.status_code == 400 and "expected type Stringbut found type Array" in r.json()["cause"]
        r = fe.predict("str-app", {"input_batch": ["a", 1]})
        assert r.status_code == 400 and "Array input of type Number is not of type string" in r.json()["cause"]
    fe.add_app("bytes-app", "bytes")
    fe.add_model("bytes-model", "1", "bytes")
    fe.link("bytes-app", "bytes-model")
    with ProtocolReplica(fe.rpc_port, "bytes-model", "1", 0, lambda xs: [str(len(x)) for x in xs]) as rep:
        assert rep.registered.wait(10)
        payload = base64.b64encode(b"hello").decode()
        fe.wait_until(lambda: fe.predict("bytes-app", {"input": payload}).json().get("output") == 5, what="bytes")


def test_json_input_type_from_third_party_plugin(fe: Frontend) -> None:
    import orjson

    with serve(
        fe, "json-app", "json-model", lambda xs: [str(orjson.loads(x)["a"] * 2) for x in xs], input_type="json", code=16
    ) as replica:
        fe.wait_until(lambda: replica.registered.is_set(), what="json replica")
        fe.wait_until(lambda: fe.predict("json-app", {"input": {"a": 21}}).json().get("output") == 42, what="json")


def test_metrics_move(fe: Frontend) -> None:
    with serve(fe, "metrics-app", "metrics-model"):

        def count() -> int:
            doc = requests.get(f"{fe.url}/metrics", timeout=5).json()
            for entry in doc["counters"]:
                if "app:metrics-app:num_predictions" in entry:
                    return int(entry["app:metrics-app:num_predictions"]["count"])
            return 0

        def latency_hist() -> dict[str, str]:
            doc = requests.get(f"{fe.url}/metrics", timeout=5).json()
            assert list(doc) == ["counters", "ratio_counters", "meters", "histograms"]
            return {k: v for e in doc["histograms"] for k, v in e.items()}["app:metrics-app:prediction_latency"]

        before, hist_before = count(), int(latency_hist()["count"])
        for i in range(3):
            fe.predict("metrics-app", {"input": [float(i), 0.5]})
        assert count() == before + 3
        lat = latency_hist()
        assert set(lat) >= {"unit", "size", "min", "max", "mean", "std_dev", "p50", "p95", "p99", "count"}
        assert float(lat["p99"]) > 0
        assert int(lat["count"]) == hist_before + 3


def test_update_feedback(fe: Frontend) -> None:
    fe.add_app("fb-app", "doubles")
    fe.wait_for_app("fb-app")
    r = requests.post(f"{fe.url}/fb-app/update", json={"uid": 0, "input": [1.0], "label": 1.0}, timeout=5)
    assert r.status_code == 200 and r.text == "Feedback received? 1"
    r = requests.post(f"{fe.url}/fb-app/update", json={"uid": 0, "input": [1.0]}, timeout=5)
    assert r.status_code == 400 and r.text.startswith("Error parsing JSON:")


def test_wire_encoding_is_little_endian_float64(fe: Frontend) -> None:
    seen: list[bytes] = []

    def record(xs: list[bytes]) -> list[str]:
        seen.extend(xs)
        return ["0"] * len(xs)

    with serve(fe, "wire-app", "wire-model", record):
        fe.predict("wire-app", {"input": [1.5, -2.0]})
        assert struct.pack("<2d", 1.5, -2.0) in seen


def _batch_limit(fe: Frontend, key: str) -> int:
    return int(requests.get(f"{fe.url}/healthz", timeout=5).json()["models"][key]["replicas"][0]["batch_limit"])


def test_adaptive_batching_grows_under_load_and_shrinks_after_a_slowdown(fe: Frontend) -> None:
    cost = {"base": 0.002, "per_item": 0.00005}

    def model(xs: list[bytes]) -> list[str]:
        time.sleep(cost["base"] + cost["per_item"] * len(xs))
        return ["1"] * len(xs)

    # Growth runs under a generous SLO (budget 400 ms), so that a stall of a noisy machine cannot turn queries into
    # defaults; the slow-down runs through a second app with a 100 ms SLO (budget 40 ms) on the same model version,
    # which also shows that the budget follows the SLO of the queued work.
    with serve(fe, "adapt-app", "adapt-model", model, slo_micros=1_000_000) as replica:
        start = _batch_limit(fe, "adapt-model:1")
        for round_ in range(4):
            r = fe.predict("adapt-app", {"input_batch": [[float(round_), float(i)] for i in range(200)]}).json()
            assert sum(p["default"] for p in r["batch_predictions"]) == 0
        grown = _batch_limit(fe, "adapt-model:1")
        assert grown >= start + 6, (start, grown)
        assert max(replica.batches) > 1

        fe.add_app("adapt-strict", "doubles", "-1.0", 100_000)
        fe.link("adapt-strict", "adapt-model")
        fe.wait_until(
            lambda: fe.predict("adapt-strict", {"input": [7.5]}).json().get("default") is False,
            what="adapt-strict to be served by adapt-model",
        )
        cost["base"] = 0.06  # now every batch blows the 40 ms budget (40% of the 100 ms SLO)
        for round_ in range(3):
            fe.predict("adapt-strict", {"input_batch": [[100.0 + round_, float(i)] for i in range(30)]})
        shrunk = _batch_limit(fe, "adapt-model:1")
        assert shrunk < grown, (grown, shrunk)


def test_expired_tasks_are_never_sent(fe: Frontend) -> None:
    def slow(xs: list[bytes]) -> list[str]:
        time.sleep(0.3)
        return ["x"] * len(xs)

    fe.add_app("expire-app", "doubles", "-1", 100_000)
    fe.add_model("expire-model", "1", batch_size=1)
    fe.link("expire-app", "expire-model")
    with ProtocolReplica(fe.rpc_port, "expire-model", "1", 3, slow) as replica:
        assert replica.registered.wait(10)
        fe.wait_until(lambda: fe.db(3).keys("expire-model,1,*"), what="registration")
        fe.wait_until(lambda: _healthz_has(fe, "expire-model:1"), what="queue")
        r = fe.predict("expire-app", {"input_batch": [[float(i)] for i in range(10)]}).json()["batch_predictions"]
        assert all(p["default"] and p["default_explanation"] == SLO_MISSED for p in r)
        # Two batches go out at once (two in flight); the other eight expire in the queue while the model sleeps.
        fe.wait_until(lambda: replica.calls >= 2, what="two calls")

        def drained() -> bool:
            q = requests.get(f"{fe.url}/healthz", timeout=5).json()["models"]["expire-model:1"]
            return q["queued"] == 0 and all(r["in_flight"] == 0 for r in q["replicas"])

        fe.wait_until(drained, what="both batches to finish")  # after which nothing else may be sent
        assert replica.calls == 2
        metrics = requests.get(f"{fe.url}/metrics", timeout=5).json()
        dropped = {k: v for e in metrics["counters"] for k, v in e.items()}["internal:expired_tasks_dropped"]
        assert int(dropped["count"]) >= 8


def _healthz_has(fe: Frontend, key: str) -> bool:
    """True once the frontend has a queue for model version ``key`` with at least one replica pulling from it."""
    models = requests.get(f"{fe.url}/healthz", timeout=5).json()["models"]
    return key in models and bool(models[key]["replicas"])


def test_clipper_query_frontend_serves_and_stops_on_sigterm(redis_server: tuple[str, int], tmp_path: Path) -> None:
    """``clipper query-frontend`` takes the options of ``python -m clipper_frontend.query`` and serves."""
    import os
    import signal
    import subprocess
    import sys

    from clipper_core.ports import free_ports, wait_for_port

    port, rpc_port = free_ports(2)
    log = open(tmp_path / "clipper-query.log", "wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "clipper"),
            "query-frontend",
            "--port",
            str(port),
            "--rpc_service_port",
            str(rpc_port),
            "--redis-port",
            str(redis_server[1]),
            "--max-batch-items",
            "5",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_port(port, timeout=20, proc=proc)
        r = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert "query frontend (fast HTTP server) listening" in (tmp_path / "clipper-query.log").read_text()


def test_settings_come_from_the_same_options_as_the_command_line() -> None:
    import dataclasses

    from clipper_frontend.settings import QuerySettings

    s = QuerySettings.parse(
        [
            "--rpc_service_port",
            "7100",
            "--prediction_cache_size",
            "0",
            "--timeout_request",
            "9",
            "--max-pending-bytes",
            "1024",
        ]
    )
    assert (s.rpc_port, s.cache_size, s.max_pending_bytes, s.port) == (7100, 0, 1024, 1337)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


def test_version_comes_from_the_distribution() -> None:
    from importlib.metadata import version

    import clipper_frontend

    assert clipper_frontend.__version__ == version("clipper-frontend")
