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

import functools
import math
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from typing import Any

from .._errors._exceptions import BrokenPool, TaskTimeout
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


def outcome_of(task: Task, future: Future[Any]) -> tuple[str, int, float | None]:
    """(outcome, failed items, seconds per item) of a finished task.

    Outcomes: ``ok``, ``error``, ``partial`` (some items of a chunk failed),
    ``timeout``, ``crashed`` (the pool or worker broke), ``cancelled``. Runs once per
    task, so it asks the future as little as possible (each call takes its lock).
    """
    n = task.n_items
    try:
        exc = future.exception()
    except CancelledError:
        return "cancelled", 0, None
    started = task.started_at
    ran = None if started is None else (time.monotonic() - started) / n
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


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class StatsRecorder:
    """Counts tasks in and out; one per pool."""

    def __init__(self, timeline: TimelineRecorder | None = None) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[int, Task] = {}
        self._submitted = self._done = self._failed = self._cancelled = self._retries = 0
        self._busy_s = 0.0
        self._durations: deque[float] = deque(maxlen=DURATION_WINDOW)
        self._max: float | None = None
        self._created = time.monotonic()
        self._first_submit: float | None = None
        self._timeline = timeline

    def track(self, task: Task) -> None:
        """Count a task the backend accepted; its outcome is counted when it resolves."""
        with self._lock:
            if self._first_submit is None:
                self._first_submit = time.monotonic()
            self._submitted += task.n_items
            self._inflight[task.seq] = task
        task.future.add_done_callback(functools.partial(self._finished, task))

    def _finished(self, task: Task, future: Future[Any]) -> None:
        end = time.monotonic()
        outcome, failed, per_item = outcome_of(task, future)
        started = task.started_at
        with self._lock:
            self._inflight.pop(task.seq, None)
            if outcome == "cancelled":
                self._cancelled += task.n_items
            else:
                self._failed += failed
                self._done += task.n_items - failed
            self._retries += max(0, task.attempts - 1)
            if started is not None:
                self._busy_s += max(0.0, end - started)
            if per_item is not None:
                self._durations.append(per_item)
                self._max = per_item if self._max is None else max(self._max, per_item)
        if self._timeline is not None and started is not None and outcome != "cancelled":
            self._timeline.add(task, started, end, outcome)

    def snapshot(
        self, *, backend: str, workers: int, workers_alive: int, worker_restarts: int
    ) -> PoolStatistics:
        now = time.monotonic()
        with self._lock:
            running = [t for t in self._inflight.values() if t.started_at is not None]
            queued = sum(t.n_items for t in self._inflight.values() if t.started_at is None)
            busy = self._busy_s + sum(now - (t.started_at or now) for t in running)
            ordered = sorted(self._durations)
            counts = (self._submitted, self._done, self._failed, self._cancelled, self._retries)
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
