"""Drop-in :class:`concurrent.futures.ProcessPoolExecutor` on anypool's process backend.

Data flow is the process backend's (see :mod:`anypool._backends._process._dispatcher`);
this module only maps the stdlib constructor onto :class:`anypool.Pool`.
Where it differs from the stdlib, by design: a worker that dies fails only the
task it was running (with :class:`anypool.WorkerCrashed`, a
``BrokenProcessPool``) instead of breaking the whole executor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._core._pool import Pool
from .._runtime import usable_cpus
from ._executors import PoolExecutor, check_initializer, check_max_workers

__all__ = ["ProcessPoolExecutor"]


class ProcessPoolExecutor(PoolExecutor):
    """Drop-in for :class:`concurrent.futures.ProcessPoolExecutor`."""

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
