"""Inline backend: runs each task at once, in the caller's thread. For debugging and tests.

::

    Pool.submit ─► task.run() in the caller ─► future already done

Breakpoints, ``print`` and profilers behave as in plain sequential code, and
``map`` stays lazy: the engine submits one item at a time, when it is consumed.

A task whose function returns :data:`SETTLED_LATER` stays running: its caller settles it
(``pool.stream``: the consumer runs the generator, one item per ``next()``, and the task
resolves to the number of items, or fails with the generator's exception, at the end).
"""

from __future__ import annotations

import threading

from .._errors._exceptions import PoolClosed
from .._local._loops import run_initializer
from .._task import Task
from ..abc import Backend, BackendConfig, Capabilities

__all__ = ["SETTLED_LATER", "InlineBackend", "backend_class"]


class _SettledLater:
    def __repr__(self) -> str:
        return "<anypool inline: settled later>"


# What a task function returns to leave its future running: its caller settles the task.
SETTLED_LATER = _SettledLater()


class InlineBackend(Backend):
    name = "inline"
    capabilities = Capabilities(
        kills_running_tasks=False,
        shares_memory=True,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,
        supports_priority=False,  # tasks run at submit time: there is never a queue to order
        supports_timeouts=False,  # the caller is the worker: nothing can interrupt it
        runs_in_caller=True,
        runs_initializer=True,
    )

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._closed = False
        self._initialized = False
        self._lock = threading.Lock()

    @classmethod
    def default_workers(cls) -> int:
        return 1

    def submit(self, task: Task) -> None:
        if self._closed:
            raise PoolClosed("cannot submit: the pool is shut down")
        self._initialize_once()
        if not task.mark_started("inline"):
            return
        try:
            value = task.run()
        except BaseException as exc:
            task.fail(exc)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt / SystemExit belong to the caller
        else:
            if value is not SETTLED_LATER:
                task.settle(value)

    def _initialize_once(self) -> None:
        with self._lock:
            if self._initialized or self.config.initializer is None:
                return
            self._initialized = True
        run_initializer(self.config.initializer, self.config.initargs)

    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        self._closed = True

    def workers_alive(self) -> int:
        return 0


backend_class = InlineBackend
