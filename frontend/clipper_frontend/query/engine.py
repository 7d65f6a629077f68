"""The serving engine: one deadline-ordered (EDF) queue per model version, shared by all its replicas.

Replicas pull: whenever a task arrives or a replica has a free slot, :meth:`ModelQueue.dispatch` forms a batch
from the earliest deadlines and sends it. Expired tasks are dropped before sending, and so are tasks a busy replica
could not answer before their deadline. With ``batch_size == -1`` each replica adapts its batch limit (a doubling
slow start, then AIMD: +1 while batches finish inside the latency budget, x0.9 on a miss); a fixed batch size is
honoured exactly (never larger, never padded). The limit follows the replica's service time (from when it could
start a batch to its answer), not the time a batch waited at the replica behind the one before it.

Tasks that were in flight on a replica whose connection dropped are suspects: one of them may have crashed it. Each
is retried alone, on a replica with nothing else in flight, so a crashing query takes down one more replica at most
and its batch mates still get answers; a suspect in flight on a second replica that drops gets a model error.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from time import perf_counter
from typing import TYPE_CHECKING, Any

from clipper_core.container_manager import DEFAULT_CACHE_SIZE
from clipper_core.rpc.frames import ERROR_PREFIX
from clipper_frontend.query.cache import PredictionCache, cache_prefix
from clipper_frontend.query.tasks import ModelError, NoReplica, Pending, Task, TaskDropped

if TYPE_CHECKING:
    from clipper_frontend.query.metrics import MetricsRegistry

logger = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 2
MAX_ADAPTIVE_BATCH = 1024
_ERROR_PREFIX = ERROR_PREFIX.encode()
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


class Engine:
    """Owns the queues, the cache and the in-flight batches; the RPC server plugs in as ``sender``."""

    def __init__(
        self, metrics: MetricsRegistry, cache_size: int = DEFAULT_CACHE_SIZE, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    ) -> None:
        self.max_in_flight = max(1, int(max_in_flight))
        self.loop = asyncio.get_event_loop()
        self.metrics = metrics
        self.cache = PredictionCache(cache_size)
        self.queues: dict[tuple[str, str], ModelQueue] = {}
        self.pending: dict[bytes, Pending] = {}
        #: msg id -> (replica, queue, tasks, perf_counter at send, whether the batch was full when sent)
        self.inflight: dict[int, tuple[Replica, ModelQueue, list[Task], float, bool]] = {}
        self.seq = itertools.count()
        self.msg_ids = itertools.count()
        self.sender: Callable[[Replica, int, list[bytes]], bool] | None = None
        #: whether a model version is registered (plugged in by the frontend from its cluster view)
        self.is_registered: Callable[[str, str], bool] = lambda name, version: True
        self.m_lookups = metrics.counter("internal:prediction_cache_lookups")
        self.m_hit_ratio = metrics.ratio_counter("internal:prediction_cache_hit_ratio")
        self.m_agg_throughput = metrics.meter("internal:aggregate_model_throughput")
        self.m_agg_num = metrics.counter("internal:aggregate_num_predictions")
        self.m_queue_delay = metrics.histogram("internal:rpc_request_queueing_delay", size=2056)
        self.m_dropped = metrics.counter("internal:expired_tasks_dropped")

    # -- queues and replicas --------------------------------------------------------------------

    def queue(self, name: str, version: str) -> ModelQueue:
        q = self.queues.get((name, version))
        if q is None:
            q = self.queues[(name, version)] = ModelQueue(self, name, version)
        return q

    def set_batch_size(self, name: str, version: str, batch_size: int) -> None:
        self.queue(name, version).batch_size = batch_size

    def add_replica(self, replica: Replica) -> None:
        q = self.queue(replica.name, replica.version)
        replica.slots = self.max_in_flight
        q.replicas.append(replica)
        q.dispatch()

    def remove_replica(self, replica: Replica, why: str = "") -> None:
        q = self.queues.get(replica.key)
        if q is not None and replica in q.replicas:
            q.replicas.remove(replica)
        # In-flight work of a dead replica is retried, each task alone (one of them may have crashed it), if its
        # deadline still allows; a task that was already alone on a replica that dropped crashed two of them.
        now = self.loop.time()
        model = f"{replica.name}:{replica.version}"
        gone = f"replica {replica.replica_id} of {model} disconnected" + (f" ({why})" if why else "")
        crashes = 0
        for msg_id in [m for m, entry in self.inflight.items() if entry[0] is replica]:
            _, queue, tasks, _, _ = self.inflight.pop(msg_id)
            for task in tasks:
                if task.future.done():
                    continue
                if task.crashed:
                    crashes += 1
                    queue.m_errors.count += 1
                    task.future.set_result(ModelError(
                        f"model {model} crashed on this query: {gone} while computing it alone, after another "
                        "replica had disconnected with it in flight; the query is not retried"
                    ))
                elif task.deadline > now and queue.replicas:
                    task.crashed = True
                    queue.requeue(task)
                else:
                    task.future.set_result(ModelError(gone))
        if crashes:
            logger.warning("%d queries crashed two replicas of %s each; answered with an error", crashes, model)
        if q is not None and q.suspects:
            q.schedule_dispatch()
        if q is not None and not q.replicas:
            # Nobody is left to pull: queued queries learn it now rather than at their deadline.
            q.fail_all(lambda: NoReplica(gone))
            if not self.is_registered(q.name, q.version):
                self._forget(q)

    def remove_model(self, name: str, version: str) -> None:
        q = self.queues.get((name, version))
        if q is not None:
            q.fail_all(lambda: TaskDropped("model version was removed"))
            if not q.replicas:
                self._forget(q)
        self.cache.drop_model(name, version)

    def _forget(self, q: ModelQueue) -> None:
        """Drop a queue nobody serves for a model nobody registered, with its metrics."""
        del self.queues[(q.name, q.version)]
        self.metrics.remove_prefix(f"model:{q.name}:{q.version}:")

    # -- the request path -----------------------------------------------------------------------

    def submit(self, name: str, version: str, payload: bytes, deadline: float, slo_seconds: float) -> Pending | str | None:
        """Start one query. Returns the cached output, a :class:`Pending` output, or None if no replica is connected."""
        cache = self.cache
        q = self.queues.get((name, version))
        if cache.max_bytes:
            key = (q.cache_prefix if q is not None else cache_prefix(name, version)) + payload
            self.m_lookups.count += 1
            self.m_hit_ratio.denominator += 1
            hit = cache.get(key)
            if q is not None:
                q.m_cache.denominator += 1
            if hit is not None:
                self.m_hit_ratio.numerator += 1
                if q is not None:
                    q.m_cache.numerator += 1
                return hit
            shared = self.pending.get(key)
            if shared is not None:
                return shared
        if q is None or not q.replicas:
            return None
        if slo_seconds < q.slo_seconds or not q.heap:
            q.slo_seconds = slo_seconds
        fut = Pending()
        if cache.max_bytes:
            self.pending[key] = fut
            fut.add_done_callback(partial(self._settle, key))
        q.push(Task(deadline, payload, fut, perf_counter()))
        return fut

    def _settle(self, key: bytes, fut: Pending) -> None:
        if self.pending.get(key) is fut:
            del self.pending[key]
        result = fut.result()
        if type(result) is str:
            self.cache.put(key, result)

    def drop(self, task: Task) -> None:
        self.m_dropped.count += 1
        task.future.set_result(TaskDropped("the deadline would pass before the model could answer"))

    def send(self, replica: Replica, queue: ModelQueue, batch: list[Task]) -> bool:
        msg_id = next(self.msg_ids) & 0xFFFFFFFF
        # Durations use perf_counter: uvloop's loop.time() is cached per iteration at millisecond resolution.
        now = perf_counter()
        for task in batch:
            self.m_queue_delay.insert((now - task.enqueued) * 1e6)
        assert self.sender is not None
        if not self.sender(replica, msg_id, [t.payload for t in batch]):
            # The replica is gone: take it out of rotation and give its batch back to the queue.
            if replica in queue.replicas:
                queue.replicas.remove(replica)
            for task in batch:
                queue.requeue(task)
            return False
        replica.in_flight += 1
        # Whether the batch is full is judged against the limit it left under: with two batches in flight the limit
        # may have grown by the time it is answered, and growth would skip every other batch.
        self.inflight[msg_id] = (replica, queue, batch, now, len(batch) >= queue._limit(replica))
        return True

    def on_response(self, msg_id: int, outputs: list[bytes]) -> None:
        entry = self.inflight.pop(msg_id, None)
        if entry is None:
            return  # a late answer for a batch already re-queued elsewhere
        replica, queue, tasks, sent, full = entry
        replica.in_flight -= 1
        replica.last_answered = len(tasks)
        replica.isolating = False
        now = perf_counter()
        latency = now - sent
        replica.latency = latency if not replica.latency else 0.8 * replica.latency + 0.2 * latency
        # A replica computes its batches one after another: this one started when it was sent or when the one
        # before it was answered, whichever came later.
        started = replica.answered_at if replica.answered_at > sent else sent
        replica.answered_at = now
        if len(outputs) != len(tasks):
            err = ModelError(
                f"model {replica.name}:{replica.version} returned {len(outputs)} outputs for {len(tasks)} inputs"
            )
            for task in tasks:
                if not task.future.done():
                    task.future.set_result(err)
        else:
            prefix = _ERROR_PREFIX
            for task, out in zip(tasks, outputs):
                if task.future.done():
                    continue
                if out.startswith(prefix):
                    replica.errors += 1
                    queue.m_errors.count += 1
                    text = out[len(prefix) :].decode("utf-8", "replace")
                    task.future.set_result(ModelError(f"model {replica.name}:{replica.version} failed: {text}"))
                else:
                    task.future.set_result(out.decode("utf-8", "replace"))
        n = len(tasks)
        self.m_agg_num.count += n
        self.m_agg_throughput.count += n
        queue.on_batch_done(replica, n, latency, now - started, full)
        queue.dispatch()
