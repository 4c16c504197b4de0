"""What a Pool says about itself: ``explain()``, ``statistics()`` and ``timeline()``.

A mixin, so the engine in :mod:`anypool._core._pool` only calls two hooks:
``_observe_init`` when the pool is built and ``_observe_task`` for each task
the backend accepted (see :mod:`anypool._observe._stats` for the data flow).
"""

from __future__ import annotations

import time

from .._auto._router import AutoBackend
from .._observe._stats import PoolStatistics, StatsRecorder
from .._observe._timeline import Timeline, TimelineRecorder
from .._scheduler._select import Decision, fixed_decision
from .._task import Task
from ..abc import Backend

__all__ = ["PoolObservability"]


class PoolObservability:
    _backend: Backend
    _stats: StatsRecorder
    _timeline_recorder: TimelineRecorder | None

    def _observe_init(self, *, timeline: bool) -> None:
        if not isinstance(timeline, bool):
            raise TypeError(f"timeline must be True or False, got {timeline!r}")
        self._timeline_recorder = TimelineRecorder(time.monotonic()) if timeline else None
        self._stats = StatsRecorder(self._timeline_recorder)

    def _observe_task(self, task: Task) -> None:
        self._stats.track(task)

    def _running_backend(self) -> Backend:
        """The backend that runs the tasks: auto's choice once made, else the pool's own."""
        backend = self._backend
        if isinstance(backend, AutoBackend) and backend.chosen is not None:
            return backend.chosen
        return backend

    def explain(self) -> Decision:
        """Which backend runs this pool's tasks and why, with the measured numbers.

        For ``backend="auto"``: the decision made on the first tasks (or, before any
        task, that it is pending). For a named backend: that the caller chose it.
        """
        if isinstance(self._backend, AutoBackend):
            return self._backend.explain()
        return fixed_decision(self._backend.name, self._backend.config.workers)

    def statistics(self) -> PoolStatistics:
        """A frozen snapshot of the pool's activity (task counts in items)."""
        running = self._running_backend()
        return self._stats.snapshot(
            backend=running.name,
            workers=self._backend.config.workers,
            workers_alive=self._backend.workers_alive(),
            worker_restarts=self._backend.worker_restarts(),
        )

    def timeline(self) -> Timeline:
        """The tasks recorded so far; needs ``Pool(timeline=True)``."""
        if self._timeline_recorder is None:
            raise RuntimeError(
                "this pool does not record a timeline; create it with Pool(..., timeline=True)"
            )
        return self._timeline_recorder.snapshot(self._running_backend().name)
