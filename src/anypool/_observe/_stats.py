"""Book-keeping behind ``pool.statistics()`` and ``Pool(timeline=True)``.

::

    Pool._submit_task ──► StatsRecorder.track(task): counters += items, task in flight
                                │ future.add_done_callback
    worker resolves the future ─┘──► _finished: outcome, duration, busy time
                                                  └──► TimelineRecorder.add (if enabled)
    pool.statistics() ──► snapshot under the lock ──► PoolStatistics (frozen)

Counts are in *items*: a ``map`` chunk of 50 items that finished counts 50
done (or, item by item, done and failed). The hot path is one lock, one dict
insert and one done-callback per task; the timeline adds nothing when off.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

from .._errors._exceptions import BrokenPool, TaskTimeout
from .._local._threads import wait_for
from .._task import ChunkResult, Task
from ._timeline import TimelineRecorder

__all__ = ["PoolStatistics", "StatsRecorder", "outcome_of"]

# Durations kept for the percentiles: the most recent ones, so a long-lived pool
# reports its current behaviour in bounded memory (8192 floats, ~64 KiB).
DURATION_WINDOW = 8192


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of a pool's activity; task counts are in items, also when chunked."""

    backend: str
    """The backend running the tasks (for ``backend="auto"``, the one it chose)."""
    workers: int
    workers_alive: int
    tasks_submitted: int
    tasks_queued: int
    tasks_running: int
    tasks_done: int
    tasks_failed: int
    tasks_cancelled: int
    retries: int
    """Extra attempts: runs of a task beyond its first (its worker died, it was retried)."""
    worker_restarts: int
    busy_fraction: float
    """Share of the workers' time spent running tasks since the first submit, 0..1."""
    duration_p50: float | None
    """Median seconds per item (a chunk counts with its per-item mean); None before any."""
    duration_p95: float | None
    duration_max: float | None
    uptime_s: float

    @property
    def tasks_finished(self) -> int:
        """Done, failed or cancelled."""
        return self.tasks_done + self.tasks_failed + self.tasks_cancelled


def outcome_of(
    task: Task, future: Future[Any], end: float | None = None, n: int = 0
) -> tuple[str, int, float | None]:
    """(outcome, failed items, seconds per item) of a finished task.

    Outcomes: ``ok``, ``error``, ``partial`` (some items of a chunk failed),
    ``timeout``, ``crashed`` (the pool or worker broke), ``cancelled``. Runs once per
    task, so it asks the future as little as possible (each call takes its lock);
    ``end`` and ``n`` (the item count) save the caller's own reads a second time.
    """
    n = n or task.n_items
    try:
        exc = future.exception()
    except CancelledError:
        return "cancelled", 0, None
    started = task.started_at
    ran = None if started is None else ((end or time.monotonic()) - started) / n
    if exc is not None:
        if isinstance(exc, CancelledError):  # cancelled while queued for a retry
            return "cancelled", 0, None
        kind = "timeout" if isinstance(exc, TaskTimeout) else "error"
        return ("crashed" if isinstance(exc, BrokenPool) else kind), n, ran
    if not task.chunk:
        return "ok", 0, ran
    result = future.result()
    if not isinstance(result, ChunkResult):
        return "ok", 0, ran
    failed = len(result.errors)
    per_item = result.duration / n if result.duration > 0 else ran
    kind = "ok" if not failed else ("error" if failed == n else "partial")
    return kind, failed, per_item


def _returned(future: Future[Any]) -> bool:
    """A call that returned, read without the future's lock (every task's path: this runs
    in its done-callback, once it is resolved for good). CPython's Future attributes;
    False (ask the slow way) where they are missing."""
    return (
        getattr(future, "_state", None) == "FINISHED" and getattr(future, "_exception", 1) is None
    )


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# Finished tasks' records are folded into the counters this many at a time: one lock per
# batch instead of one per task (the lock is shared with snapshot() and join()).
_FOLD_BATCH = 64


class StatsRecorder:
    """Counts tasks in and out, and is what ``Pool.join`` waits on; one per pool.

    Per task, on the submit path: one dict insert (atomic, no lock) and one done-callback,
    a bound method. The callback turns the finished task into a small record (never the
    task: it holds the result) and appends it to a deque; records are folded into the
    counters under the lock in batches, or when a snapshot is taken. Measured on the
    thread backend: ~7 µs of CPU per task with a lock per submit and per finish, and a
    second done-callback for ``join``; see benchmarks/bench_submit.py.
    """

    def __init__(self, timeline: TimelineRecorder | None = None) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # join(): notified when nothing is in flight
        self._joiners = 0
        self._inflight: dict[int, Task] = {}  # id(future) -> task, until the future resolves
        self._records: deque[tuple[str, int, float | None, int, int, float, int]] = deque()
        self._done = self._failed = self._cancelled = self._retries = 0
        self._busy_s = 0.0
        self._durations: deque[float] = deque(maxlen=DURATION_WINDOW)
        self._max: float | None = None
        self._created = time.monotonic()
        self._first_submit: float | None = None
        self._timeline = timeline

    def track(self, task: Task) -> None:
        """Count a task the backend accepted; its outcome is counted when it resolves."""
        if self._first_submit is None:
            self._first_submit = time.monotonic()
        self._inflight[id(task.future)] = task
        task.future.add_done_callback(self._finished)

    def track_new(self, task: Task) -> None:
        """``track`` for a task whose future nobody else holds yet (before the backend has
        it): its callback list is appended to directly, without the future's lock and the
        Python frame of ``add_done_callback`` (every submit's path). ``untrack`` undoes it
        if the backend refuses the task."""
        if self._first_submit is None:
            self._first_submit = time.monotonic()
        future = task.future
        self._inflight[id(future)] = task
        callbacks = getattr(future, "_done_callbacks", None)  # CPython's Future keeps them here
        if callbacks is None:
            future.add_done_callback(self._finished)
        else:
            callbacks.append(self._finished)

    def untrack(self, task: Task) -> None:
        self._inflight.pop(id(task.future), None)

    def task_of(self, future: Future[Any]) -> Task | None:
        task = self._inflight.get(id(future))
        return task if task is not None and task.future is future else None

    def _finished(self, future: Future[Any]) -> None:
        task = self._inflight.get(id(future))
        if task is None or task.future is not future:
            return
        end = time.monotonic()
        started = task.started_at
        n = len(task.args) if task.chunk else 1
        per_item: float | None
        if not task.chunk and started is not None and _returned(future):
            outcome, failed, per_item = "ok", 0, end - started
        else:
            outcome, failed, per_item = outcome_of(task, future, end, n)
        busy = 0.0 if started is None else end - started  # monotonic: never negative
        key = id(future)
        self._records.append((outcome, failed, per_item, n, task.attempts, busy, key))
        if self._timeline is not None and started is not None and outcome != "cancelled":
            self._timeline.add(task, started, end, outcome)
        # Out of the in-flight map only once its record is queued, so that a snapshot (which
        # folds the records first) never sees the task in neither place.
        del self._inflight[key]
        if len(self._records) >= _FOLD_BATCH:
            with self._lock:
                self._fold()
        if self._joiners and not self._inflight:
            with self._idle:
                self._idle.notify_all()

    def _fold(self, folded: set[int] | None = None) -> None:
        """Fold the queued records into the counters; caller holds the lock. ``folded``
        collects their keys, so that a snapshot does not also count them as in flight."""
        records = self._records
        while records:
            outcome, failed, per_item, n_items, attempts, busy, key = records.popleft()
            if folded is not None:
                folded.add(key)
            if outcome == "cancelled":
                self._cancelled += n_items
            else:
                self._failed += failed
                self._done += n_items - failed
            if attempts > 1:
                self._retries += attempts - 1
            self._busy_s += busy
            if per_item is not None:
                self._durations.append(per_item)
                if self._max is None or per_item > self._max:
                    self._max = per_item

    def join(self, timeout: float | None) -> bool:
        """Wait until no tracked task is in flight (their done-callbacks have all run)."""
        with self._idle:
            self._joiners += 1
            try:
                return wait_for(self._idle, lambda: not self._inflight, timeout)
            finally:
                self._joiners -= 1

    def snapshot(
        self, *, backend: str, workers: int, workers_alive: int, worker_restarts: int
    ) -> PoolStatistics:
        now = time.monotonic()
        with self._lock:
            # The copy is atomic (track() and the callbacks take no lock); a task that finished
            # meanwhile is in the copy and also folded: it counts once, as finished.
            entries = list(self._inflight.items())
            folded: set[int] = set()
            self._fold(folded)
            inflight = [task for key, task in entries if key not in folded]
            running = [t for t in inflight if t.started_at is not None]
            queued = sum(t.n_items for t in inflight if t.started_at is None)
            busy = self._busy_s + sum(now - (t.started_at or now) for t in running)
            ordered = sorted(self._durations)
            finished = self._done + self._failed + self._cancelled
            submitted = finished + sum(t.n_items for t in inflight)
            counts = (submitted, self._done, self._failed, self._cancelled, self._retries)
            first, longest = self._first_submit, self._max
        span = 0.0 if first is None else (now - first) * max(1, workers)
        return PoolStatistics(
            backend=backend,
            workers=workers,
            workers_alive=workers_alive,
            tasks_submitted=counts[0],
            tasks_queued=queued,
            tasks_running=sum(t.n_items for t in running),
            tasks_done=counts[1],
            tasks_failed=counts[2],
            tasks_cancelled=counts[3],
            retries=counts[4],
            worker_restarts=worker_restarts,
            busy_fraction=min(1.0, busy / span) if span > 0 else 0.0,
            duration_p50=_percentile(ordered, 0.5),
            duration_p95=_percentile(ordered, 0.95),
            duration_max=longest,
            uptime_s=now - self._created,
        )
