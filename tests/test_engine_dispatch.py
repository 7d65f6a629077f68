"""When the engine sends a batch, and what it leaves out: the dispatch rules, driven in-process with a recording
sender in place of the RPC server (the end-to-end behaviour is in test_query_frontend.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter

from clipper_frontend.query.engine import Engine, Replica
from clipper_frontend.query.metrics import MetricsRegistry
from clipper_frontend.query.tasks import ModelError, Pending, TaskDropped

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


# --------------------------------------------------------------------------- replicas that drop, service time

Sent = list[tuple[Replica, int, list[bytes]]]


def _run_replicas(n: int, scenario: Callable[[Engine, list[Replica], Sent], None]) -> None:
    async def main() -> None:
        engine = Engine(MetricsRegistry(), cache_size=0)
        sent: Sent = []
        engine.sender = lambda replica, msg_id, payloads: sent.append((replica, msg_id, payloads)) is None
        replicas = [Replica(b"id%d" % i, "m", "1", Doubles.code, replica_id=i) for i in range(n)]
        for r in replicas:
            engine.add_replica(r)
        scenario(engine, replicas, sent)

    asyncio.run(main())


def test_a_dropped_replicas_tasks_are_retried_alone_and_a_second_drop_ends_them() -> None:
    def scenario(engine: Engine, replicas: list[Replica], sent: Sent) -> None:
        a, b, c = replicas
        q = engine.queues[("m", "1")]
        q.batch_size = 8
        futs = [_submit(engine, p, 5.0) for p in (b"1", b"2", b"3")]
        q.dispatch()
        assert [(r, p) for r, _, p in sent] == [(a, [b"1", b"2", b"3"])]
        sent.clear()
        engine.remove_replica(a, "connection closed")
        q.dispatch()
        # b and c are idle: each takes one task alone and nothing else while it is in flight.
        assert [(r, p) for r, _, p in sent] == [(b, [b"1"]), (c, [b"2"])]
        other = _submit(engine, b"other", 5.0)
        q.dispatch()
        assert len(sent) == 2 and not other.done()
        engine.on_response(sent[0][1], [b"one"])  # b answers; it takes the last suspect, then is free again
        assert futs[0].result() == "one"
        assert [(r, p) for r, _, p in sent[2:]] == [(b, [b"3"])]
        engine.remove_replica(c, "connection closed")  # the second drop with b"2" in flight
        err = futs[1].result()
        assert isinstance(err, ModelError) and "crashed" in str(err) and "m:1" in str(err), err
        engine.on_response(sent[2][1], [b"three"])
        assert futs[2].result() == "three"
        q.dispatch()
        assert [(r, p) for r, _, p in sent[3:]] == [(b, [b"other"])]  # b is released for normal batches
        assert b.slots == engine.max_in_flight

    _run_replicas(3, scenario)


def test_with_no_idle_replica_the_least_busy_is_drained_for_a_suspect() -> None:
    def scenario(engine: Engine, replicas: list[Replica], sent: Sent) -> None:
        a, b = replicas
        q = engine.queues[("m", "1")]
        q.batch_size = 1
        futs = [_submit(engine, p, 5.0) for p in (b"1", b"2", b"3", b"4")]
        q.dispatch()
        assert [r for r, _, _ in sent] == [a, b, a, b]  # two in flight on each
        engine.remove_replica(a, "connection closed")  # b"1" and b"3" become suspects
        _submit(engine, b"5", 5.0)
        q.dispatch()
        assert len(sent) == 4  # b is busy: it gets nothing new until it is idle
        engine.on_response(sent[1][1], [b"two"])
        engine.on_response(sent[3][1], [b"four"])
        assert [p for _, _, p in sent[4:]] == [[b"1"]]
        assert futs[1].result() == "two" and futs[3].result() == "four"

    _run_replicas(2, scenario)


def test_the_batch_limit_follows_service_time_not_queueing() -> None:
    def scenario(engine: Engine, replicas: list[Replica], sent: Sent) -> None:
        [r] = replicas
        q = engine.queues[("m", "1")]
        r.slow_start, r.batch_limit = False, 4.0
        q.slo_seconds = 1.0  # budget 0.4 s
        for i in range(8):
            _submit(engine, b"%d" % i, 5.0)
        q.dispatch()
        assert [len(p) for _, _, p in sent] == [4, 4]
        first, second = sent[0][1], sent[1][1]
        # Each batch takes 0.3 s of the replica's time. The first, sent 0.3 s ago, is answered now; the second was
        # sent with it, 0.6 s before its answer, but the replica only started it when it answered the first.
        now = perf_counter()
        engine.inflight[first] = (*engine.inflight[first][:3], now - 0.3, True)
        engine.on_response(first, [b"x"] * 4)
        engine.inflight[second] = (*engine.inflight[second][:3], now - 0.6, True)
        r.answered_at = perf_counter() - 0.3
        engine.on_response(second, [b"x"] * 4)
        assert r.batch_limit == 6.0, r.batch_limit  # +1 twice; the send-to-answer time would have cut it

    _run_replicas(1, scenario)
