"""When the engine sends a batch, and what it leaves out: the dispatch rules, driven in-process with a recording
sender in place of the RPC server (the end-to-end behaviour is in test_query_frontend.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from clipper_frontend.query.engine import Engine, Replica
from clipper_frontend.query.metrics import MetricsRegistry
from clipper_frontend.query.tasks import Pending, TaskDropped

from clipper_core.input_types import Doubles


def _run(scenario: Callable[[Engine, Replica, list[list[bytes]]], None]) -> None:
    async def main() -> None:
        engine = Engine(MetricsRegistry(), cache_size=0)
        sent: list[list[bytes]] = []
        engine.sender = lambda replica, msg_id, payloads: sent.append(payloads) is None
        replica = Replica(b"id", "m", "1", Doubles.code, replica_id=0)
        engine.add_replica(replica)
        scenario(engine, replica, sent)

    asyncio.run(main())


def _submit(engine: Engine, payload: bytes, in_seconds: float) -> Pending:
    fut = engine.submit("m", "1", payload, engine.loop.time() + in_seconds, 1.0)
    assert isinstance(fut, Pending)
    return fut


def test_an_idle_replica_takes_a_lone_query_at_once() -> None:
    def scenario(engine: Engine, replica: Replica, sent: list[list[bytes]]) -> None:
        _submit(engine, b"a", 1.0)
        engine.queues[("m", "1")].dispatch()
        assert sent == [[b"a"]]

    _run(scenario)


def test_a_busy_replica_waits_for_as_many_queries_as_it_last_answered() -> None:
    def scenario(engine: Engine, replica: Replica, sent: list[list[bytes]]) -> None:
        q = engine.queues[("m", "1")]
        replica.in_flight, replica.last_answered, replica.batch_limit = 1, 4, 100.0
        for p in (b"1", b"2", b"3"):
            _submit(engine, p, 1.0)
        q.dispatch()
        assert sent == []  # three of the four clients it answered are back: keep waiting
        _submit(engine, b"4", 1.0)
        q.dispatch()
        assert sent == [[b"1", b"2", b"3", b"4"]]

    _run(scenario)


def test_a_busy_replica_is_not_sent_queries_it_cannot_answer_in_time() -> None:
    def scenario(engine: Engine, replica: Replica, sent: list[list[bytes]]) -> None:
        q = engine.queues[("m", "1")]
        replica.in_flight, replica.last_answered, replica.batch_limit = 1, 1, 100.0
        replica.latency = 0.2  # its answers take 200 ms
        doomed = _submit(engine, b"soon", 0.05)
        fine = _submit(engine, b"later", 1.0)
        q.dispatch()
        assert sent == [[b"later"]]
        assert isinstance(doomed.result(), TaskDropped) and not fine.done()
        assert engine.m_dropped.count == 1

    _run(scenario)


def test_an_idle_replica_still_gets_a_query_near_its_deadline() -> None:
    def scenario(engine: Engine, replica: Replica, sent: list[list[bytes]]) -> None:
        replica.latency = 0.2  # e.g. a slow first call: the model must still get work to measure again
        _submit(engine, b"soon", 0.05)
        engine.queues[("m", "1")].dispatch()
        assert sent == [[b"soon"]]

    _run(scenario)
