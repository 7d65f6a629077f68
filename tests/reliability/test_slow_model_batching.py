"""Adaptive batching for a model whose every batch takes 150 ms, whatever its size, under open-loop load: the batch
limit must follow the replica's service time, not the time a batch waits behind the one computing before it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import requests

from tests.frontend_harness import query_frontend
from tests.reliability._cluster import ContainerPool, open_loop

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BATCH_SECONDS = 0.15
SLO_MICROS = 500_000
RATE = 150.0  # queries a second: 22.5 a batch at least to keep up
SECONDS = 8.0


def sleeps_per_batch(xs: Any) -> list[str]:
    time.sleep(BATCH_SECONDS)
    return ["1"] * len(xs)


def test_a_slow_model_grows_its_batches_and_answers_most_queries(redis_server: tuple[str, int], tmp_path: Path) -> None:
    import redis

    redis.Redis(port=redis_server[1]).flushall()
    with query_frontend(redis_server[1], tmp_path) as fe:
        fe.add_app("slow-app", "doubles", "-1.0", SLO_MICROS)
        fe.add_model("slow", "1", "doubles", -1)
        fe.link("slow-app", "slow")
        fe.wait_for_app("slow-app")
        with ContainerPool(tmp_path, fe.rpc_port, "slow", "1", sleeps_per_batch, n=1):
            fe.wait_until(
                lambda: fe.predict("slow-app", {"input": [0.5]}).json().get("default") is False,
                timeout=60,
                what="the model to answer",
            )
            answers = open_loop(fe.port, "slow-app", lambda i: {"input": [float(i)]}, RATE, SECONDS)
            health = requests.get(f"{fe.url}/healthz", timeout=5).json()["models"]["slow:1"]
    real = sum(1 for a in answers if a is not None and a["default"] is False) / len(answers)
    limit = health["replicas"][0]["batch_limit"]
    print(f"slow model: {real:.1%} real answers, {1 - real:.1%} defaults, batch limit at the end {limit}")
    # At a batch limit of b the replica answers at most b / 0.15 s queries a second (two batches in flight do not
    # overlap on one replica), so while the limit stays under 12 it serves under 80 of the 150 queries a second,
    # i.e. under 53 %. Two thirds real answers over the run need the limit to reach the ~23 the load requires.
    assert limit >= 12, limit
    assert real >= 2 / 3, real
