"""What the engine queues and how a query learns its outcome: tasks, their pending results, and the errors a
result can carry instead of an output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clipper_core.errors import ClipperException


class ModelError(ClipperException):
    """The model (or its replica) failed for this query; the message names the cause.

    Task futures resolve with either the output string or one of these exception *objects* as their result, so a
    query whose caller already gave up never leaves an unretrieved exception behind.
    """


class TaskDropped(ClipperException):
    """The task expired in the queue or its model went away before it could be sent."""


class NoReplica(ClipperException):
    """The last replica of the task's model version went away before the task could be sent."""


_UNSET: Any = object()


class Pending:
    """The outcome of one task: an output string or an error object (never an exception).

    A minimal stand-in for ``asyncio.Future``: callbacks run synchronously when the result arrives instead of being
    scheduled for the next loop pass, which saves a loop iteration and a handle per query on the request path.
    """

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = _UNSET
        self._waiters: list[Callable[[Pending], None]] = []

    def done(self) -> bool:
        return self._value is not _UNSET

    def result(self) -> Any:
        return self._value

    def set_result(self, value: Any) -> None:
        if self._value is not _UNSET:
            return
        self._value = value
        waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback(self)

    def add_done_callback(self, callback: Callable[[Pending], None]) -> None:
        if self._value is _UNSET:
            self._waiters.append(callback)
        else:
            callback(self)

    def remove_done_callback(self, callback: Callable[[Pending], None]) -> None:
        try:
            self._waiters.remove(callback)
        except ValueError:
            pass


class Task:
    """One query for one model version. ``crashed`` is set once a replica disconnected with the task in flight:
    from then on it is only ever sent alone, and a second such disconnect ends it with a :class:`ModelError`."""

    __slots__ = ("deadline", "payload", "future", "enqueued", "crashed")

    def __init__(self, deadline: float, payload: bytes, future: Pending, enqueued: float) -> None:
        self.deadline = deadline
        self.payload = payload
        self.future = future
        self.enqueued = enqueued
        self.crashed = False
