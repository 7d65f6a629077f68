"""Inputs that crash, fail or hang the model, against a real query frontend and real replica processes: the
fault stays with the query that causes it; every other query gets a real answer and the model keeps serving."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
import requests

from tests.frontend_harness import Frontend, query_frontend
from tests.reliability._cluster import ContainerPool, open_loop

# Functions defined here are pickled by value, so the replicas do not need to import the tests.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SLO_MISSED = "Failed to retrieve a prediction response within the specified latency SLO"


def exits_on_negative(xs: Any) -> list[str]:
    """A model with a fatal bug: a negative first value ends the process, as a segfault in native code would."""
    for x in xs:
        if x[0] < 0:
            os._exit(1)
    return [repr(float(np.sum(x))) for x in xs]


def raises_on_negative(xs: Any) -> list[str]:
    for x in xs:
        if x[0] < 0:
            msg = "negative input"
            raise ValueError(msg)
    return [repr(float(np.sum(x))) for x in xs]


def hangs_on_negative(xs: Any) -> list[str]:
    for x in xs:
        if x[0] < 0:
            time.sleep(3600)
    return [repr(float(np.sum(x))) for x in xs]


@pytest.fixture(scope="module")
def fe(redis_server: tuple[str, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Frontend]:
    import redis

    redis.Redis(port=redis_server[1]).flushall()
    with query_frontend(redis_server[1], tmp_path_factory.mktemp("poison-qf")) as frontend:
        yield frontend


def _serve(fe: Frontend, model: str, slo_micros: int, batch_size: int = -1) -> None:
    fe.add_app(f"{model}-app", "doubles", "-1.0", slo_micros)
    fe.add_model(model, "1", "doubles", batch_size)
    fe.link(f"{model}-app", model)
    fe.wait_for_app(f"{model}-app")


def _replicas(fe: Frontend, model: str) -> int:
    """Replicas of ``model`` the frontend serves from right now (its own view, reported by /healthz).

    The records in Redis DB 3 follow the connections a moment later (they are written and deleted in the background,
    retried while Redis is away), so just after a crash they may still count replicas that are gone."""
    models = requests.get(f"{fe.url}/healthz", timeout=5).json()["models"]
    return len(models.get(f"{model}:1", {}).get("replicas", []))


def _records(fe: Frontend, model: str) -> int:
    return len(fe.db(3).keys(f"{model},1,*"))


def _wait_serving(fe: Frontend, model: str, n: int, timeout: float = 60.0) -> None:
    fe.wait_until(lambda: _replicas(fe, model) == n, timeout=timeout, what=f"{n} replicas of {model}")
    fe.wait_until(lambda: _records(fe, model) == n, timeout=timeout, what=f"{n} replica records of {model}")
    fe.wait_until(
        lambda: fe.predict(f"{model}-app", {"input": [0.5]}).json().get("default") is False,
        timeout=timeout,
        what=f"{model} to answer",
    )


def test_a_crashing_query_kills_two_replicas_at_most_and_its_batch_mates_get_real_answers(
    fe: Frontend, tmp_path: Path
) -> None:
    # A fixed batch size puts the whole request into one batch: the crash takes its batch mates with it.
    _serve(fe, "crash", slo_micros=10_000_000, batch_size=16)
    with ContainerPool(tmp_path, fe.rpc_port, "crash", "1", exits_on_negative, n=3) as pool:
        _wait_serving(fe, "crash", 3)
        inputs = [[float(i)] for i in range(1, 9)]
        inputs.insert(4, [-1.0])
        r = fe.predict("crash-app", {"input_batch": inputs}).json()["batch_predictions"]
        for x, p in zip(inputs, r, strict=True):
            if x[0] < 0:
                assert p["default"] is True, p
                assert "crashed" in p["default_explanation"] and "crash:1" in p["default_explanation"], p
            else:
                assert p == {**p, "default": False, "output": x[0]}, (x, p)
        # One replica died with the batch, one more with the crashing query alone; the third never saw it.
        fe.wait_until(lambda: pool.exit_count() >= 2, timeout=10, what="two replica exits")
        _wait_serving(fe, "crash", 3)
        assert pool.exit_count() == 2, pool.exits


def test_good_traffic_survives_a_stream_of_crashing_queries(fe: Frontend, tmp_path: Path) -> None:
    _serve(fe, "crashload", slo_micros=1_000_000)
    rate, seconds = 100.0, 8.0
    with ContainerPool(tmp_path, fe.rpc_port, "crashload", "1", exits_on_negative, n=3) as pool:
        _wait_serving(fe, "crashload", 3)
        answers: list[Any] = []

        def good_traffic() -> None:
            answers.extend(open_loop(fe.port, "crashload-app", lambda i: {"input": [1.0 + i]}, rate, seconds))

        load = threading.Thread(target=good_traffic)
        load.start()
        poison: list[dict[str, Any]] = []
        try:
            # A crashing query whenever all three replicas are up again, however fast this machine restarts them.
            while load.is_alive():
                fe.wait_until(
                    lambda: _replicas(fe, "crashload") == 3 or not load.is_alive(),
                    timeout=30,
                    what="three replicas of crashload",
                )
                if load.is_alive():
                    poison.append(fe.predict("crashload-app", {"input": [-1.0]}).json())
        finally:
            load.join(timeout=60)
        exits = pool.exit_count()
    kept = sum(1 for a in answers if a is not None and a["default"] is False) / len(answers)
    why = Counter(a["default_explanation"][:50] if a else "no answer" for a in answers if a is None or a["default"])
    print(
        f"crashing queries: {len(poison)}, replica exits: {exits}, good queries answered by the model: {kept:.1%}",
        dict(why),
    )
    assert len(poison) >= 3
    # A crashing query never gets a real answer: its crash is named, or (on a slow machine, while the replicas
    # restart) its SLO ran out first.
    assert all(p["default"] for p in poison), poison
    assert all(
        "crashed on this query" in p["default_explanation"] or SLO_MISSED in p["default_explanation"] for p in poison
    ), poison
    assert any("crashed on this query" in p["default_explanation"] for p in poison), poison
    assert exits <= 2 * len(poison), (exits, len(poison))
    # Each crashing query takes down two of the three replicas; the third keeps serving.
    assert kept >= 0.95, kept


def test_a_raising_input_fails_only_itself(fe: Frontend, tmp_path: Path) -> None:
    _serve(fe, "raise", slo_micros=10_000_000, batch_size=16)
    with ContainerPool(tmp_path, fe.rpc_port, "raise", "1", raises_on_negative, n=1) as pool:
        _wait_serving(fe, "raise", 1)
        inputs = [[-float(i)] if i in (3, 8, 13) else [float(i)] for i in range(16)]
        r = fe.predict("raise-app", {"input_batch": inputs}).json()["batch_predictions"]
        for x, p in zip(inputs, r, strict=True):
            if x[0] < 0:
                assert p["default"] is True and "ValueError: negative input" in p["default_explanation"], p
            else:
                assert p["default"] is False and p["output"] == x[0], (x, p)
        assert pool.exit_count() == 0


def test_a_hanging_predict_ends_its_replica_which_is_restarted(fe: Frontend, tmp_path: Path) -> None:
    _serve(fe, "hang", slo_micros=500_000)
    env = {"CLIPPER_PREDICT_TIMEOUT_S": "1"}
    with ContainerPool(tmp_path, fe.rpc_port, "hang", "1", hangs_on_negative, n=1, env=env) as pool:
        _wait_serving(fe, "hang", 1)
        [record] = fe.db(3).keys("hang,1,*")
        started = time.monotonic()
        r = fe.predict("hang-app", {"input": [-1.0]}).json()
        assert r["default"] is True and r["default_explanation"] == SLO_MISSED, r
        fe.wait_until(lambda: pool.exit_count() >= 1, timeout=15, what="the hung replica to exit")
        gone = pool.exits[0]
        assert gone.code != 0 and gone.at - started < 10, (gone, started)
        assert "did not return within 1 s" in pool.log_text()
        # The frontend sees the connection close at once, long before its 30 s silence limit.
        fe.wait_until(lambda: not fe.db(3).exists(record), timeout=5, what="the replica's record to be removed")
        _wait_serving(fe, "hang", 1, timeout=30)
        assert fe.predict("hang-app", {"input": [2.5]}).json()["output"] == 2.5
