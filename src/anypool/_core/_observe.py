"""What a Pool says about itself: one part the pool is composed of.

::

    Pool._submit_task ─► Observer.track(task) ─► StatsRecorder (+ TimelineRecorder)
    pool.explain() / statistics() / timeline() ─► Observer ─► frozen snapshots

The recorders (``anypool._observe``) know tasks and futures; this part knows the
backend, so that it can report auto's choice rather than auto itself.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from .._observe._stats import PoolStatistics, StatsRecorder
from .._observe._timeline import Timeline, TimelineRecorder
from .._scheduler._select import Decision, fixed_decision
from .._task import Task
from ..abc import Backend

__all__ = ["Observer"]


class Observer:
    """Statistics and the optional timeline of one pool's tasks."""

    def __init__(self, backend: Backend, *, timeline: bool) -> None:
        if not isinstance(timeline, bool):
            raise TypeError(f"timeline must be True or False, got {timeline!r}")
        self._backend = backend
        self._timeline = TimelineRecorder(time.monotonic()) if timeline else None
        self._stats = StatsRecorder(self._timeline)
        self.track = self._stats.track  # every task's path: one call, not two
        self.track_new = self._stats.track_new
        self.untrack = self._stats.untrack
        self.join = self._stats.join

    def task_of(self, future: Future[Any]) -> Task | None:
        """The task behind a future still in flight (``Pool.kill``), found without a
        back-reference on every future."""
        return self._stats.task_of(future)

    def running_backend(self) -> Backend:
        """The backend that runs the tasks: auto's choice once made, else the pool's own."""
        return self._backend.current_backend()

    def explain(self) -> Decision:
        decision: Decision | None = self._backend.decision()  # a router's; None when named
        if decision is not None:
            return decision
        return fixed_decision(self._backend.name, self._backend.config.workers)

    def statistics(self) -> PoolStatistics:
        return self._stats.snapshot(
            backend=self.running_backend().name,
            workers=self._backend.config.workers,
            workers_alive=self._backend.workers_alive(),
            worker_restarts=self._backend.worker_restarts(),
        )

    def timeline(self) -> Timeline:
        if self._timeline is None:
            raise RuntimeError(
                "this pool does not record a timeline; create it with Pool(..., timeline=True)"
            )
        return self._timeline.snapshot(self.running_backend().name)
