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
import itertools
import logging
from collections.abc import Callable
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING

from clipper_core.container_manager import DEFAULT_CACHE_SIZE
from clipper_core.rpc.frames import ERROR_PREFIX
from clipper_frontend.query._model_queue import (
    BUDGET_FRACTION,
    DEFAULT_MAX_IN_FLIGHT,
    MAX_ADAPTIVE_BATCH,
    ModelQueue,
    Replica,
)
from clipper_frontend.query.cache import PredictionCache, cache_prefix
from clipper_frontend.query.tasks import ModelError, NoReplica, Pending, Task, TaskDropped

if TYPE_CHECKING:
    from clipper_frontend.query.metrics import MetricsRegistry

logger = logging.getLogger(__name__)

__all__ = ["BUDGET_FRACTION", "DEFAULT_MAX_IN_FLIGHT", "MAX_ADAPTIVE_BATCH", "Engine", "ModelQueue", "Replica"]

_ERROR_PREFIX = ERROR_PREFIX.encode()


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
                    task.future.set_result(
                        ModelError(
                            f"model {model} crashed on this query: {gone} while computing it alone, after another "
                            "replica had disconnected with it in flight; the query is not retried"
                        )
                    )
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

    def submit(
        self, name: str, version: str, payload: bytes, deadline: float, slo_seconds: float
    ) -> Pending | str | None:
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
            for task, out in zip(tasks, outputs, strict=True):  # lengths checked above
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
