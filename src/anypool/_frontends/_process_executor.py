"""Drop-in :class:`concurrent.futures.ProcessPoolExecutor` on anypool's process backend.

Data flow is the process backend's (see :mod:`anypool._backends._process._dispatcher`);
this module only maps the stdlib constructor onto :class:`anypool.Pool`.
Where it differs from the stdlib, by design: a worker that dies fails only the
task it was running (with :class:`anypool.WorkerCrashed`, a
``BrokenProcessPool``) instead of breaking the whole executor.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .._core._pool import Pool
from .._runtime import usable_cpus
from ._executors import PoolExecutor, check_initializer, check_max_workers

__all__ = ["ProcessPoolExecutor"]


def _fork_only(obj: object) -> bool:
    """A multiprocessing lock, or an object guarded by one (``Value``, ``Array``, ``Queue``),
    made by the 'fork' context: its semaphore has no name, so only a fork carries it."""
    for holder in (obj, getattr(obj, "_lock", None), getattr(obj, "_rlock", None)):
        semlock = getattr(holder, "_semlock", None)
        if semlock is not None and getattr(semlock, "name", "") is None:
            return True
    return False


def _inherited_only(initargs: tuple[Any, ...]) -> bool:
    items = [a for arg in initargs for a in (arg if isinstance(arg, (list, tuple)) else [arg])]
    return any(_fork_only(item) for item in items)


def _stdlib_default_context() -> Any:
    """The context the stdlib executor would use here, when it can carry fork-made objects:
    ``multiprocessing.Value(...)`` in ``initargs`` is the stdlib-documented way to share a
    counter, and on Linux before 3.14 its default context forks. Otherwise None: anypool's
    default (forkserver), whose error then names the fixes."""
    import multiprocessing

    method = multiprocessing.get_start_method(allow_none=True)
    if sys.platform == "linux" and sys.version_info < (3, 14) and method in (None, "fork"):
        return multiprocessing.get_context("fork")
    return None


class ProcessPoolExecutor(PoolExecutor):
    """Drop-in for :class:`concurrent.futures.ProcessPoolExecutor`.

    Without ``mp_context`` it starts workers with forkserver (see docs/design.md), except
    when ``initargs`` hold ``multiprocessing`` objects made by the default 'fork' context
    (``multiprocessing.Value``, ``Lock``, ``Queue``...): those reach workers only by
    inheritance, so it forks, as the stdlib executor does on Linux before Python 3.14.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        max_workers = check_max_workers(max_workers, usable_cpus())
        check_initializer(initializer)
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        self._max_workers = max_workers
        if mp_context is None and _inherited_only(initargs):
            mp_context = _stdlib_default_context()
        options: dict[str, Any] = {} if mp_context is None else {"mp_context": mp_context}
        pool = Pool(
            "process",
            max_workers,
            initializer=initializer,
            initargs=initargs,
            max_tasks_per_worker=max_tasks_per_child,
            **options,
        )
        self._adopt(pool)
