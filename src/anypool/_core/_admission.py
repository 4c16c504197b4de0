"""Admission bookkeeping for the Pool engine: option checks, ``max_pending`` and ``join``.

::

    submit ─► checks ─► _Backpressure.reserve ─ full: wait / PoolFull ─► backend
                              ▲ release                                   │
               SlotFuture ────┘ when a worker starts the task ◄───────────┘
    future done ─► callback(result, error) ─► Outstanding -1 ─► join() wakes

A task holds a ``max_pending`` slot from admission until a worker *starts* it
(or it ends without starting): the bound is on queued work, like
``queue.Queue(maxsize)``, so running tasks never count against it. The start
is seen through the future's own ``set_running_or_notify_cancel``, which every
backend calls, so no backend needed a hook. ``join`` counts unfinished futures.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

from .._errors._exceptions import PoolClosed, PoolFull
from .._local._threads import wait_for
from .._sync._base import check_shareable
from .._task import Task

__all__ = [
    "Admission",
    "Backpressure",
    "Callback",
    "Outstanding",
    "SlotFuture",
    "check_block",
    "check_callback",
    "check_delay",
    "check_priority",
    "outcome_caller",
]

Callback = Callable[[Any, "BaseException | None"], object]
"""``callback(result, error)``: ``error`` is None on success, else the task's exception."""


# -- checks -------------------------------------------------------------------------------------
def check_delay(name: str, value: object, *, positive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):  # type: ignore[operator]
        wanted = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {wanted} number of seconds, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_block(block: object) -> None:
    if isinstance(block, bool):
        return
    check_delay("block", block, positive=False)


def check_callback(callback: object) -> None:
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {callback!r}")


def check_priority(priority: object, order: str) -> None:
    if priority is None:
        return
    if isinstance(priority, bool) or not isinstance(priority, (int, float)):
        raise TypeError(f"priority must be a number, got {type(priority).__name__} {priority!r}")
    if math.isnan(priority):
        raise ValueError("priority must not be NaN (it does not order)")
    if order != "priority":
        raise ValueError(
            f"priority= needs a pool created with order='priority'; this pool's order is "
            f"{order!r}, which would silently ignore it"
        )


# -- max_pending --------------------------------------------------------------------------------
class SlotFuture(Future[Any]):
    """A future that gives its ``max_pending`` slot back when a worker starts its task."""

    _release: Callable[[], None] | None = None

    def set_running_or_notify_cancel(self) -> bool:
        self.free_slot()
        return super().set_running_or_notify_cancel()

    def free_slot(self) -> None:
        with self._condition:  # the future's own lock
            release, self._release = self._release, None
        if release is not None:
            release()


class Backpressure:
    """Counts queued tasks against ``max_pending``; ``reserve`` waits for room."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._queued = 0
        self._closed = False
        self._room = threading.Condition(threading.Lock())

    def reserve(self, block: bool | float) -> None:
        with self._room:
            if self._queued >= self.limit and block is not False:
                timeout = None if block is True else float(block)
                self._room.wait_for(lambda: self._queued < self.limit or self._closed, timeout)
            if self._closed:
                raise PoolClosed("cannot submit: the pool was shut down while this call waited")
            if self._queued >= self.limit:
                waited = "" if block is False else f" after waiting {block} s"
                raise PoolFull(
                    f"the pool already has max_pending={self.limit} tasks queued{waited}"
                )
            self._queued += 1

    def release(self) -> None:
        with self._room:
            self._queued -= 1
            self._room.notify()

    def close(self) -> None:
        """Wake every waiting submitter: the pool is shutting down."""
        with self._room:
            self._closed = True
            self._room.notify_all()


# -- join ---------------------------------------------------------------------------------------
class Outstanding:
    """Counts futures that are not done yet; ``join`` waits for zero."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition(threading.Lock())

    def add(self, future: Future[Any]) -> None:
        with self._idle:
            self._count += 1
        future.add_done_callback(self._done)

    def _done(self, _: Future[Any]) -> None:
        with self._idle:
            self._count -= 1
            if not self._count:
                self._idle.notify_all()

    def join(self, timeout: float | None) -> bool:
        with self._idle:  # in slices in the main thread: a Ctrl-C is never missed
            return wait_for(self._idle, lambda: not self._count, timeout)


def outcome_caller(callback: Callback) -> Callable[[Future[Any]], None]:
    def call(future: Future[Any]) -> None:
        if future.cancelled():
            callback(None, CancelledError())
            return
        error = future.exception()
        callback(None if error is not None else future.result(), error)

    return call


# -- the part the pool is composed of -----------------------------------------------------------
class Admission:
    """A pool's admission books: the ``max_pending`` bound, callbacks and ``join``.

    Its methods run before and after ``backend.submit`` on every task's path: plain
    methods, not a context manager (a generator-based ``with`` costs µs per task).
    """

    def __init__(self, max_pending: int | None, pickles: bool, backend_name: str) -> None:
        self.backpressure = None if max_pending is None else Backpressure(max_pending)
        self._outstanding = Outstanding()
        self._pickles = pickles
        self._backend_name = backend_name
        # whether admit() has anything to do for a task with no options
        self.active = pickles or self.backpressure is not None

    @property
    def max_pending(self) -> int | None:
        return None if self.backpressure is None else self.backpressure.limit

    def admit(self, task: Task, block: bool | float, callback: Callback | None) -> None:
        """Checks, and the max_pending slot; ``refuse`` undoes it if the backend refuses."""
        if block is not True:
            check_block(block)
        if callback is not None:
            check_callback(callback)
        if self._pickles and not task.chunk:
            check_shareable(task.args, task.kwargs, self._backend_name)
        bp = self.backpressure
        if bp is not None and isinstance(task.future, SlotFuture):
            bp.reserve(block)
            task.future._release = bp.release
            task.future.add_done_callback(lambda f: f.free_slot())  # type: ignore[attr-defined]

    @staticmethod
    def refuse(task: Task) -> None:
        if isinstance(task.future, SlotFuture):
            task.future.free_slot()

    def track(self, future: Future[Any], callback: Callback | None) -> None:
        """join() and callback books of a timer's future (the statistics track it later)."""
        self.add_callback(future, callback)  # first, so that join() also waits for it
        self._outstanding.add(future)

    @staticmethod
    def add_callback(future: Future[Any], callback: Callback | None) -> None:
        """The submit path's callback; its join() books are the statistics' in-flight map."""
        if callback is not None:
            future.add_done_callback(outcome_caller(callback))

    def join(self, timeout: float | None) -> bool:
        return self._outstanding.join(timeout)

    def close(self) -> None:
        """Shutdown: wake every submitter waiting for room."""
        if self.backpressure is not None:
            self.backpressure.close()
