"""One model version's deadline-ordered (EDF) queue and the replicas that pull from it: batch formation, adaptive
batch limits, and suspects (tasks that were in flight on a replica whose connection dropped), each sent alone."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from clipper_frontend.query.cache import cache_prefix
from clipper_frontend.query.tasks import Task

if TYPE_CHECKING:
    from clipper_frontend.query.engine import Engine

DEFAULT_MAX_IN_FLIGHT = 2
MAX_ADAPTIVE_BATCH = 1024
BUDGET_FRACTION = 0.4  # share of the SLO one batch may take, leaving room for queueing and a second batch


@dataclass(eq=False)
class Replica:
    """One connected model-container replica."""

    identity: bytes
    name: str
    version: str
    input_code: int
    replica_id: int = -1
    in_flight: int = 0
    batch_limit: float = 1.0
    slow_start: bool = True
    #: size of the replica's most recently answered batch: under closed-loop load, how many clients are coming back
    last_answered: int = 1
    #: moving average of the time from sending a batch to its answer (seconds; 0 until the first answer)
    latency: float = 0.0
    #: perf_counter time of its last answer: a batch sent before then started computing then
    answered_at: float = 0.0
    #: batches it may have in flight: the engine's ``max_in_flight``, or 0 while it is kept for suspects
    slots: int = DEFAULT_MAX_IN_FLIGHT
    #: a suspect (see :class:`ModelQueue`) is in flight on it, alone
    isolating: bool = False
    last_seen: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)
    errors: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)


class ModelQueue:
    """EDF queue of one model version plus the replicas that pull from it."""

    def __init__(self, engine: Engine, name: str, version: str, batch_size: int = -1) -> None:
        self.engine = engine
        self.name = name
        self.version = version
        self.batch_size = batch_size
        self.cache_prefix = cache_prefix(name, version)
        self.heap: list[tuple[float, int, Task]] = []
        #: tasks that were in flight on a replica that disconnected, each to be sent alone
        self.suspects: list[tuple[float, int, Task]] = []
        #: whether some replica is kept for suspects (slots 0)
        self.held = False
        self.replicas: list[Replica] = []
        self.slo_seconds = 1.0
        self._dispatch_scheduled = False
        prefix = f"model:{name}:{version}:"
        m = engine.metrics
        self.m_latency = m.histogram(prefix + "prediction_latency")
        self.m_throughput = m.meter(prefix + "prediction_throughput")
        self.m_num = m.counter(prefix + "num_predictions")
        self.m_cache = m.ratio_counter(prefix + "cache_hit_ratio")
        self.m_batch = m.histogram(prefix + "batch_size", unit="queries")
        self.m_errors = m.counter(prefix + "num_errors")

    def push(self, task: Task) -> None:
        heapq.heappush(self.heap, (task.deadline, next(self.engine.seq), task))
        if self.replicas and not self._dispatch_scheduled:
            # Dispatch once per event-loop pass, after every request read in this pass has been queued: the
            # queries that arrived together leave together, in one batch and one RPC send.
            self._dispatch_scheduled = True
            self.engine.loop.call_soon(self._scheduled_dispatch)

    def requeue(self, task: Task) -> None:
        """Put back a task that could not be sent (suspects stay suspects); the caller dispatches."""
        heapq.heappush(self.suspects if task.crashed else self.heap, (task.deadline, next(self.engine.seq), task))

    def schedule_dispatch(self) -> None:
        if self.replicas and not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            self.engine.loop.call_soon(self._scheduled_dispatch)

    def _scheduled_dispatch(self) -> None:
        self._dispatch_scheduled = False
        self.dispatch()

    def _limit(self, replica: Replica) -> int:
        if self.batch_size > 0:
            return self.batch_size
        return max(1, int(replica.batch_limit))

    def dispatch(self) -> None:
        """Send batches while there is queued work and a replica with a free slot.

        An idle replica takes whatever is queued at once, so a lone query pays no batching delay. A replica that
        is still computing takes its next batch once as much work is waiting as its last answered batch held (or a
        full batch): under closed-loop load those are the clients it just answered coming back, so the next batch
        leaves when all of them are in, not with the first few of them, and the rest do not have to wait a whole
        extra cycle. This settles into two alternating batches per replica: the model computes one while the
        frontend turns the other's answers into new requests, and the next batch is already waiting at the
        replica when the model finishes, so the RPC round trip stays hidden. Work that does not reach the
        threshold leaves when the replica answers.

        A busy replica is only sent tasks that can still be answered in time: a task whose deadline is nearer than
        the replica's usual send-to-answer latency is dropped (its query gets the default output now rather than
        at its deadline), so under overload the model spends its time on queries it can save instead of on answers that
        arrive after their client got the default. An idle replica takes the earliest unexpired task regardless,
        so a slow start can never starve a model of work or its latency estimate of fresh samples.
        """
        if self.held or self.suspects:
            self._dispatch_suspects(self.engine.loop.time())
        heap = self.heap
        if not heap:
            return
        now = self.engine.loop.time()
        while heap:
            replica = None
            for r in self.replicas:
                if r.in_flight < r.slots and (replica is None or r.in_flight < replica.in_flight):
                    replica = r
            if replica is None:
                return
            limit = self._limit(replica)
            if replica.in_flight and len(heap) < min(limit, replica.last_answered):
                return  # the replica is busy: its answer (or more work) dispatches again
            batch: list[Task] = []
            cutoff = now + replica.latency if replica.in_flight else now
            while heap and len(batch) < limit:
                _, _, task = heapq.heappop(heap)
                if task.future.done():
                    continue
                if task.deadline <= cutoff:
                    self.engine.drop(task)
                    continue
                batch.append(task)
            if batch:
                self.engine.send(replica, self, batch)

    def _dispatch_suspects(self, now: float) -> None:
        """Send each suspect alone to a replica with nothing else in flight, and send that replica nothing else
        until it answers: if the suspect crashes it, no other query is lost with it, and it is known to be the cause.

        With no replica idle, the least busy one is kept (gets no new batches) until it is. Once no suspects are
        left, kept replicas are released.
        """
        suspects = self.suspects
        kept = False
        for r in list(self.replicas):
            if r.in_flight:
                kept = kept or not r.slots
                continue
            task = None
            while suspects:
                _, _, candidate = heapq.heappop(suspects)
                if candidate.future.done():
                    continue
                if candidate.deadline <= now:
                    self.engine.drop(candidate)
                    continue
                task = candidate
                break
            if task is None:
                break
            r.slots = 0
            if self.engine.send(r, self, [task]):
                r.isolating = kept = True
        if suspects:
            if not kept and self.replicas:
                min(self.replicas, key=attrgetter("in_flight")).slots = 0
            self.held = True
            return
        self.held = False
        for r in self.replicas:
            if not r.slots:
                if r.isolating:
                    self.held = True  # released when its answer comes
                else:
                    r.slots = self.engine.max_in_flight

    def describe(self) -> dict[str, Any]:
        return {
            "queued": len(self.heap),
            "suspects": len(self.suspects),
            "batch_size": self.batch_size,
            "replicas": [
                {
                    "replica_id": r.replica_id,
                    "in_flight": r.in_flight,
                    "batch_limit": self._limit(r),
                    "errors": r.errors,
                }
                for r in self.replicas
            ],
        }

    def on_batch_done(self, replica: Replica, size: int, latency: float, service: float, full: bool) -> None:
        """Record an answered batch; ``latency`` runs from its send, ``service`` from when the replica could start
        it (its send, or the previous batch's answer if that came later), ``full`` says whether it held as many
        tasks as the limit allowed when it was sent. AIMD follows the service time: the time a batch waited behind
        the one before it says nothing about the size the replica can take."""
        self.m_batch.insert(size)
        self.m_latency.insert(latency * 1e6)
        self.m_throughput.count += size
        self.m_num.count += size
        if self.batch_size <= 0:
            budget = self.slo_seconds * BUDGET_FRACTION
            if service > budget:
                # Multiplicative decrease; growth is additive from now on.
                replica.slow_start = False
                replica.batch_limit = max(1.0, replica.batch_limit * 0.9)
            elif full:
                # Additive increase, after a slow start (as in TCP) that doubles the limit while batches finish in
                # under half the budget, so a replica meeting sudden load reaches a useful batch size in a few
                # round trips instead of one step per batch.
                if replica.slow_start and service < budget / 2:
                    grown = replica.batch_limit * 2
                else:
                    replica.slow_start = False
                    grown = replica.batch_limit + 1.0
                replica.batch_limit = min(float(MAX_ADAPTIVE_BATCH), grown)

    def fail_all(self, exc_factory: Callable[[], Exception]) -> None:
        for heap in (self.heap, self.suspects):
            for _, _, task in heap:
                if not task.future.done():
                    task.future.set_result(exc_factory())
            heap.clear()
