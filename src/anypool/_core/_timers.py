"""Delayed and periodic tasks: ``pool.submit_after`` and ``pool.every``.

::

    submit_after(delay, fn) ─► Task now ─► scheduler thread ──at t0+delay──► backend.submit
    every(interval, fn) ─► tick k at t0 + k·interval ──► backend.submit ─► run finishes
                               ▲                                              │
                               └── next tick: the first ideal time not yet ───┘
                                   passed (missed ticks are skipped)

One scheduler thread per pool (a :class:`~anypool._local._deadlines.Deadlines`,
started on first use) only *submits*; the work runs on the pool's workers.
Its callbacks never block: timer tasks skip ``max_pending``'s wait (they
were accepted when they were scheduled). A periodic run is scheduled only
after the previous one finishes, so runs never overlap, and ticks are
computed from the start time, so the schedule does not drift.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .._errors._exceptions import PoolClosed
from .._local._deadlines import Deadlines, Handle
from .._task import Task

__all__ = ["Periodic", "Timers"]

_timer_ids = itertools.count()

Submit = Callable[[Task], None]  # hands a task to the backend, skipping backpressure
MakeTask = Callable[[], Task]


class Periodic:
    """What ``pool.every`` returns: a running schedule you can stop.

    A run that raises stops the schedule; the exception is kept in :attr:`exception`.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        #: Runs that have finished (successfully or not).
        self.runs = 0
        #: The exception that stopped the schedule, if a run raised.
        self.exception: BaseException | None = None
        self._cancelled = False
        self._running = False
        self._handle: Handle | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Schedule no more runs; a run already going finishes. Safe to call more than once."""
        with self._lock:
            self._cancelled = True
            if self._handle is not None:
                self._handle.cancel()
            if not self._running:
                self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the schedule has stopped and no run is going; False on timeout."""
        return self._stopped.wait(timeout)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped.is_set() else "running"
        return f"<anypool.Periodic every {self.interval}s, {self.runs} runs, {state}>"


class Timers:
    """The scheduler of one pool: delayed tasks and periodic schedules."""

    def __init__(self, submit: Submit) -> None:
        self._submit = submit
        self._deadlines: Deadlines | None = None
        self._lock = threading.Lock()
        self._delayed: set[Task] = set()
        self._periodic: set[Periodic] = set()
        self._closed = False

    def _schedule(self, when: float, fn: Callable[[], object]) -> Handle:
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot schedule: the pool is shut down")
            if self._deadlines is None:
                self._deadlines = Deadlines(f"anypool-timers-{next(_timer_ids)}")
            deadlines = self._deadlines
        return deadlines.schedule(when, fn)

    # -- submit_after ------------------------------------------------------------------------
    def after(self, delay: float, task: Task) -> Future[Any]:
        """Hand ``task`` to the backend ``delay`` seconds from now; its future is returned now."""
        with self._lock:
            self._delayed.add(task)
        handle = self._schedule(time.monotonic() + delay, lambda: self._fire(task))
        # cancelling the future early also frees the scheduler slot
        task.future.add_done_callback(lambda _: self._forget(task, handle))
        return task.future

    def _forget(self, task: Task, handle: Handle) -> None:
        handle.cancel()
        with self._lock:
            self._delayed.discard(task)

    def _fire(self, task: Task) -> None:
        with self._lock:
            self._delayed.discard(task)
        if task.future.done():  # cancelled while waiting
            return
        try:
            self._submit(task)
        except BaseException as exc:  # the pool closed or broke meanwhile: fail just this task
            task.fail(exc)

    # -- every -------------------------------------------------------------------------------
    def every(self, interval: float, make_task: MakeTask) -> Periodic:
        periodic = Periodic(interval)
        start = time.monotonic()
        with self._lock:
            self._periodic.add(periodic)
        self._arm(periodic, start, 1, make_task)
        return periodic

    def _arm(self, periodic: Periodic, start: float, tick: int, make_task: MakeTask) -> None:
        when = start + tick * periodic.interval
        try:
            handle = self._schedule(when, lambda: self._tick(periodic, start, tick, make_task))
        except PoolClosed:
            periodic.cancel()
            return
        with periodic._lock:
            periodic._handle = handle
            if periodic._cancelled:
                handle.cancel()

    def _tick(self, periodic: Periodic, start: float, tick: int, make_task: MakeTask) -> None:
        with periodic._lock:
            if periodic._cancelled:
                return
            periodic._running = True
        try:
            task = make_task()
            self._submit(task)
        except BaseException as exc:
            self._finish(periodic, exc)
            return
        task.future.add_done_callback(lambda f: self._ran(periodic, start, tick, make_task, f))

    def _ran(
        self, periodic: Periodic, start: float, tick: int, make_task: MakeTask, f: Future[Any]
    ) -> None:
        error = None if f.cancelled() else f.exception()
        if f.cancelled() or error is not None:
            self._finish(periodic, error)
            return
        periodic.runs += 1
        with periodic._lock:
            periodic._running = False
            if periodic._cancelled:
                periodic._stopped.set()
                return
        # the first ideal tick that has not passed yet: drift-free, missed ticks skipped
        elapsed_ticks = math.ceil((time.monotonic() - start) / periodic.interval)
        self._arm(periodic, start, max(tick + 1, elapsed_ticks), make_task)

    def _finish(self, periodic: Periodic, error: BaseException | None) -> None:
        if error is not None:
            periodic.runs += 1
            periodic.exception = error
        with periodic._lock:
            periodic._running = False
        periodic.cancel()
        with self._lock:
            self._periodic.discard(periodic)

    # -- shutdown ----------------------------------------------------------------------------
    def close(self) -> None:
        """Cancel every delayed task and schedule, and stop the scheduler thread."""
        with self._lock:
            self._closed = True
            delayed, self._delayed = list(self._delayed), set()
            periodic, self._periodic = list(self._periodic), set()
            deadlines = self._deadlines
        for task in delayed:
            task.future.cancel()
        for schedule in periodic:
            schedule.cancel()
        if deadlines is not None:
            deadlines.stop()
