"""The query path must free a request's state as soon as it is answered, without the garbage collector.

The query frontend runs with a high collection threshold (``_serve.run``); a reference cycle per request would pile
up and be freed in long pauses on the request path. These tests drive the real QueryProcessor and Engine in-process
(the RPC server replaced by a recorder) and count what a full collection finds.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from clipper_frontend.query.cache import PredictionCache, cache_prefix
from clipper_frontend.query.engine import Engine, Replica
from clipper_frontend.query.metrics import MetricsRegistry
from clipper_frontend.query.predict import QueryProcessor
from clipper_frontend.query.state import AppInfo, ClusterView, ModelInfo

from clipper_core.input_types import Doubles
from clipper_core.rpc.frames import ERROR_PREFIX


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _setup(cache_size: int) -> tuple[QueryProcessor, Engine, list[tuple[int, list[bytes]]]]:
    view = ClusterView(store=None, input_types=None)  # type: ignore[arg-type]  # filled in by hand, never started
    view.apps["app"] = AppInfo("app", Doubles(), "-1.0", -1.0, 1_000_000, "DefaultOutputSelectionPolicy", ["m"])
    view.apps["fast"] = AppInfo("fast", Doubles(), "-1.0", -1.0, 20_000, "DefaultOutputSelectionPolicy", ["m"])
    view.models[("m", "1")] = ModelInfo("m", "1", "doubles", -1, "test")
    view.current_versions["m"] = "1"
    metrics = MetricsRegistry()
    engine = Engine(metrics, cache_size=cache_size)
    sent: list[tuple[int, list[bytes]]] = []

    def sender(replica: Replica, msg_id: int, payloads: list[bytes]) -> bool:
        sent.append((msg_id, payloads))
        return True

    engine.sender = sender
    engine.add_replica(Replica(b"id", "m", "1", Doubles.code, replica_id=0))
    return QueryProcessor(view, engine, metrics), engine, sent


def _answer_all(engine: Engine, sent: list[tuple[int, list[bytes]]]) -> None:
    while sent:
        msg_id, payloads = sent.pop(0)
        # Every third output is a model error, to cover that path too.
        error = ERROR_PREFIX.encode() + b"boom"
        engine.on_response(msg_id, [error if i % 3 == 2 else b"2.5" for i in range(len(payloads))])


@pytest.mark.parametrize("cache_size", [0, 1 << 20])
def test_answered_requests_leave_no_garbage_cycles(no_gc: None, cache_size: int) -> None:
    async def scenario() -> int:
        processor, engine, sent = _setup(cache_size)
        answers: list[tuple[int, bytes]] = []

        def respond(status: int, body: bytes) -> None:
            answers.append((status, body))

        for round_ in range(3):
            for i in range(100):
                processor.start_predict("app", b'{"input": [%d.0, %d.5]}' % (i, round_), respond)
            processor.start_predict("app", b'{"input_batch": [[1.0], [2.0], [3.0]]}', respond)
            processor.start_predict("app", b'{"input": "not a list"}', respond)  # a 400
            processor.start_predict("nope", b'{"input": [1.0]}', respond)  # a 404
            for _ in range(3):  # let the scheduled dispatches run, answering whatever was sent
                await asyncio.sleep(0)
                _answer_all(engine, sent)
        assert len(answers) == 3 * 103
        # Queries that get the default output at their 20 ms deadline, and whose answers arrive after it.
        for i in range(50):
            processor.start_predict("fast", b'{"input": [%d.0, 9.0]}' % i, respond)
        await asyncio.sleep(0)
        assert sent, "the queries were sent"
        deadline = asyncio.get_running_loop().time() + 5
        while len(answers) < 3 * 103 + 50 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        assert len(answers) == 3 * 103 + 50, "every deadline fired"
        assert [b'"default":true' in body for _, body in answers[-50:]] == [True] * 50
        _answer_all(engine, sent)
        assert not engine.inflight and not engine.pending
        return gc.collect()  # the processor and engine stay alive: only garbage of the requests can be found

    assert asyncio.run(scenario()) == 0


def test_cache_entries_hold_nothing_the_collector_tracks() -> None:
    cache = PredictionCache(1 << 20)
    for i in range(100):
        cache.put(cache_prefix("m", "1") + b"%d" % i, str(i))
    gc.collect()
    assert len(cache) == 100
    assert not any(gc.is_tracked(k) or gc.is_tracked(v) for k, v in cache._data.items())


def test_cache_is_bounded_by_bytes_and_gives_referenced_entries_a_second_chance() -> None:
    key = [cache_prefix("m", "1") + b"%03d" % i for i in range(10)]
    one = len(key[0]) + len("v") + 64
    cache = PredictionCache(3 * one)
    for k in key[:3]:
        cache.put(k, "v")
    assert cache.bytes == 3 * one and len(cache) == 3
    assert cache.get(key[0]) == "v"  # referenced: survives the next eviction
    cache.put(key[3], "v")
    assert cache.bytes <= 3 * one
    assert cache.get(key[0]) == "v" and cache.get(key[1]) is None and cache.get(key[3]) == "v"


def test_cache_prefixes_cannot_collide_and_drop_model_drops_only_that_version() -> None:
    assert cache_prefix("ab", "1") != cache_prefix("a", "b1")
    assert not cache_prefix("m", "12").startswith(cache_prefix("m", "1"))
    cache = PredictionCache(1 << 20)
    cache.put(cache_prefix("m", "1") + b"x", "a")
    cache.put(cache_prefix("m", "12") + b"x", "b")
    cache.drop_model("m", "1")
    assert cache.get(cache_prefix("m", "1") + b"x") is None
    assert cache.get(cache_prefix("m", "12") + b"x") == "b"
    assert cache.bytes == len(cache_prefix("m", "12") + b"x") + 1 + 64
