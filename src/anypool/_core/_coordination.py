"""Scheduling and coordination for :class:`~anypool.Pool`: a mixin the engine inherits.

::

    submit ─► _admit (see _admission.py) ─ max_pending, join and callback books
          └─► backend.submit
    submit_after / every ─► Timers (one scheduler thread) ─► backend.submit
    pool.Lock() / Queue() ... ─► Primitives for the backend (threading objects, or
                                 named semaphores and manager proxies for processes)
    @pool.task / pool.resize / pool.join

The engine (``_pool.py``) calls a few hooks here: ``_init_coordination``,
``_new_future``, ``_check_task_options``, ``_admit``, ``_refuse``, ``_track``,
``_item_callback``, ``_begin_shutdown`` and ``_close_primitives``; everything else is
public API.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from .._errors._exceptions import CapabilityError, PoolClosed
from .._sync import primitives_for
from .._sync._base import (
    ArrayLike,
    BarrierLike,
    ConditionLike,
    EventLike,
    LockLike,
    Primitives,
    QueueLike,
    SemaphoreLike,
    ValueLike,
    check_array,
    check_barrier,
    check_queue,
    check_semaphore,
    check_shareable,
    check_value,
)
from .._task import Task
from ..abc import Backend, Order
from ._admission import (
    Backpressure,
    Callback,
    Outstanding,
    SlotFuture,
    check_block,
    check_callback,
    check_delay,
    check_priority,
    outcome_caller,
)
from ._decorators import TaskFunction, TaskOptions
from ._timers import Periodic, Timers

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["Callback", "CoordinationMixin"]

P = ParamSpec("P")
R = TypeVar("R")


def _weak_submit(mixin: CoordinationMixin) -> Callable[[Task], None]:
    """The timers' way back to the pool, held weakly: a bound method would be a reference
    cycle, and a pool dropped without shutdown() would keep its workers until the cyclic
    garbage collector ran (its finalizer, in _pool.py, releases them)."""
    method = weakref.WeakMethod(mixin._submit_scheduled)

    def submit(task: Task) -> None:
        bound = method()
        if bound is None:
            raise PoolClosed("cannot submit: the pool was garbage-collected")
        bound(task)

    return submit


class CoordinationMixin:
    """The scheduling and coordination half of :class:`~anypool.Pool`."""

    _backend: Backend
    _closed: bool
    _observe_task: Callable[[Task], None]  # statistics and timeline (PoolObservability)

    def _init_coordination(self, max_pending: int | None) -> None:
        self._backpressure = None if max_pending is None else Backpressure(max_pending)
        self._outstanding = Outstanding()
        self._timers = Timers(_weak_submit(self))
        self._primitives: Primitives | None = None
        self._coordination_lock = threading.Lock()

    def _pool(self) -> Pool:
        return self  # type: ignore[return-value]  # only ever mixed into Pool

    @property
    def max_pending(self) -> int | None:
        """The bound on queued tasks (``Pool(max_pending=)``), or None."""
        return None if self._backpressure is None else self._backpressure.limit

    # -- hooks the engine calls -------------------------------------------------------------
    def _new_future(self) -> Future[Any]:
        return Future() if self._backpressure is None else SlotFuture()

    def _check_task_options(self, priority: object) -> None:
        check_priority(priority, self._backend.config.order)

    # Before and after ``backend.submit`` (plain methods, not a context manager: this is
    # every task's path, and a generator-based ``with`` costs several µs per task).
    def _admit(self, task: Task, block: bool | float, callback: Callback | None) -> None:
        """Checks, and the max_pending slot; ``_refuse`` undoes it if the backend refuses."""
        if block is not True:
            check_block(block)
        if callback is not None:
            check_callback(callback)
        if self._backend.capabilities.needs_pickling and not task.chunk:
            check_shareable(task.args, task.kwargs, self._backend.name)
        bp = self._backpressure
        if bp is not None and isinstance(task.future, SlotFuture):
            bp.reserve(block)
            task.future._release = bp.release
            task.future.add_done_callback(lambda f: f.free_slot())  # type: ignore[attr-defined]

    @staticmethod
    def _refuse(task: Task) -> None:
        if isinstance(task.future, SlotFuture):
            task.future.free_slot()

    def _track(self, future: Future[Any], callback: Callback | None) -> None:
        # the callback goes first, so that join() also waits for it
        if callback is not None:
            future.add_done_callback(outcome_caller(callback))
        self._outstanding.add(future)

    def _item_callback(
        self, callback: Callback | None
    ) -> Callable[[Any, BaseException | None], None] | None:
        check_callback(callback)
        return cast("Callable[[Any, BaseException | None], None] | None", callback)

    def _submit_scheduled(self, task: Task) -> None:
        """Timer path: accepted when scheduled, so no backpressure wait and no new books."""
        if self._closed:
            raise PoolClosed("cannot submit: the pool is shut down")
        task.future._anypool_task = weakref.ref(task)  # type: ignore[attr-defined]
        self._backend.submit(task)
        self._observe_task(task)

    def _begin_shutdown(self) -> None:
        """First step of shutdown: no more timer submissions, no more waiting submitters."""
        self._timers.close()
        if self._backpressure is not None:
            self._backpressure.close()

    def _close_primitives(self, wait: bool) -> None:
        # with wait=False tasks may still be using them; the manager then goes when the
        # pool is garbage-collected or at exit
        with self._coordination_lock:
            primitives = self._primitives if wait else None
            if wait:
                self._primitives = None
        if primitives is not None:
            primitives.close()

    # -- join, resize -----------------------------------------------------------------------
    def join(self, timeout: float | None = None) -> bool:
        """Wait until every task submitted so far has finished (``Queue.join`` semantics).

        The pool stays open. Callbacks of those tasks have run when it returns.
        Returns False if ``timeout`` seconds passed first.
        """
        if timeout is not None:
            check_delay("timeout", timeout, positive=False)
        return self._outstanding.join(timeout)

    def resize(self, workers: int) -> None:
        """Change the number of workers while the pool runs."""
        if isinstance(workers, bool) or not isinstance(workers, int) or workers <= 0:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if self._closed:
            raise PoolClosed("cannot resize: the pool is shut down")
        try:
            self._backend.resize(workers)
        except NotImplementedError as exc:
            raise CapabilityError(
                f"the {self._backend.name!r} backend cannot change its number of workers"
            ) from exc
        self._backend.config = dataclasses.replace(self._backend.config, workers=workers)

    # -- decorators -------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> TaskFunction[P, R]: ...
    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        priority: float | None = None,
        callback: Callback | None = None,
    ) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...
    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        priority: float | None = None,
        callback: Callback | None = None,
    ) -> TaskFunction[P, R] | Callable[[Callable[P, R]], TaskFunction[P, R]]:
        """Decorate ``fn`` so that calling it submits it here and returns a Future.

        Works bare (``@pool.task``) and with options (``@pool.task(timeout=5)``);
        ``fn.map(iterable)`` maps it on this pool.
        """
        options = TaskOptions(timeout, retries, priority, callback)
        options.check()

        def decorate(fn: Callable[P, R]) -> TaskFunction[P, R]:
            pool = self._pool()
            return TaskFunction(fn, lambda: pool, repr(pool), options)

        return decorate if fn is None else decorate(fn)

    def _submit_call(
        self, fn: Callable[..., Any], args: Any, kwargs: dict[str, Any], options: TaskOptions
    ) -> Future[Any]:
        """Submit with options given apart from ``kwargs`` (so ``fn`` may take ``timeout=``)."""
        pool = self._pool()
        task = pool._task(
            fn,
            args,
            kwargs,
            timeout=options.timeout,
            retries=options.retries,
            priority=options.priority,
        )
        return pool._submit_task(task, callback=options.callback)

    # -- timers -----------------------------------------------------------------------------
    def submit_after(
        self,
        delay: float,
        fn: Callable[..., R],
        /,
        *args: Any,
        timeout: float | None = None,
        retries: int | None = None,
        priority: float | None = None,
        callback: Callback | None = None,
        **kwargs: Any,
    ) -> Future[R]:
        """Like ``submit``, but the task is queued ``delay`` seconds from now.

        Cancelling the future before then unschedules it; shutting the pool down
        cancels it. ``join`` waits for it.
        """
        delay = check_delay("delay", delay, positive=False)
        task = self._scheduled_task(fn, args, kwargs, timeout, retries, priority)
        check_callback(callback)
        self._track(task.future, callback)
        return self._timers.after(delay, task)

    def every(
        self, interval: float, fn: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> Periodic:
        """Run ``fn(*args, **kwargs)`` every ``interval`` seconds, first one interval from now.

        Runs never overlap: the next one is scheduled when the last finishes, at the
        next tick of the ideal grid ``start + k * interval`` (missed ticks are skipped,
        so the schedule never drifts). A run that raises stops the schedule.
        Returns a :class:`~anypool.Periodic` with ``cancel()``.
        """
        interval = check_delay("interval", interval, positive=True)
        self._scheduled_task(fn, args, kwargs)  # validate now, not at the first tick

        def make_task() -> Task:
            task = self._pool()._task(fn, args, kwargs, timeout=None, retries=None, priority=None)
            self._track(task.future, None)
            return task

        return self._timers.every(interval, make_task)

    def _scheduled_task(
        self,
        fn: Callable[..., Any],
        args: Any,
        kwargs: dict[str, Any],
        timeout: float | None = None,
        retries: int | None = None,
        priority: float | None = None,
    ) -> Task:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__} {fn!r}")
        if self._closed:
            raise PoolClosed("cannot schedule: the pool is shut down")
        task = self._pool()._task(
            fn, args, kwargs, timeout=timeout, retries=retries, priority=priority
        )
        if self._backend.capabilities.needs_pickling:
            check_shareable(args, kwargs, self._backend.name)
        return task

    # -- coordination primitives ------------------------------------------------------------
    def _factory(self) -> Primitives:
        with self._coordination_lock:
            if self._closed:
                raise PoolClosed("cannot create a primitive: the pool is shut down")
            if self._primitives is None:
                self._primitives = primitives_for(self._backend)
            return self._primitives

    def Lock(self) -> LockLike:
        """A lock that works between this pool's workers (``threading.Lock`` on threads)."""
        return self._factory().Lock()

    def RLock(self) -> LockLike:
        """A re-entrant lock that works between this pool's workers."""
        return self._factory().RLock()

    def Condition(self, lock: LockLike | None = None) -> ConditionLike:
        """A condition variable; ``lock`` must come from this pool's ``Lock()``/``RLock()``."""
        return self._factory().Condition(lock)

    def Semaphore(self, value: int = 1) -> SemaphoreLike:
        """A semaphore with ``value`` permits that works between this pool's workers."""
        check_semaphore(value)
        return self._factory().Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> SemaphoreLike:
        """A semaphore that refuses to be released more often than acquired."""
        check_semaphore(value)
        return self._factory().BoundedSemaphore(value)

    def Event(self) -> EventLike:
        """An event flag that works between this pool's workers."""
        return self._factory().Event()

    def Barrier(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> BarrierLike:
        """A barrier for ``parties`` workers (on processes ``action`` must pickle)."""
        check_barrier(parties, action, timeout)
        return self._factory().Barrier(parties, action, timeout)

    def Queue(self, maxsize: int = 0, order: Order = "fifo") -> QueueLike:
        """A queue with ``put/get/task_done/join``; ``order`` is fifo, lifo or priority.

        ``maxsize=0`` means unbounded, as in :mod:`queue`.
        """
        check_queue(maxsize, order)
        return self._factory().Queue(maxsize, order)

    def Value(self, typecode: str | type, init: Any = 0) -> ValueLike:
        """A shared number, as ``multiprocessing.Value(typecode, init)``: ``.value`` and
        ``get_lock()``; ``typecode`` is an array-module code ('i', 'd', ...) or a ctypes type.

        On processes it lives in shared memory and pickles into task arguments at any
        time. ``v.value += 1`` is a read and a write: hold ``v.get_lock()`` around it.
        """
        ctype = check_value(typecode)
        return cast(ValueLike, self._shared("Value")(ctype, init))

    def Array(self, typecode: str | type, size_or_init: Any) -> ArrayLike:
        """A shared fixed-length array, as ``multiprocessing.Array(typecode, size_or_init)``:
        ``len``, indexing, slicing, iteration and ``get_lock()``."""
        ctype = check_value(typecode)
        return cast(ArrayLike, self._shared("Array")(ctype, check_array(size_or_init)))

    def _shared(self, kind: str) -> Callable[..., Any]:
        try:
            make = getattr(self._factory(), kind, None)
        except CapabilityError:  # Ray: no primitives at all
            make = None
        if make is None:  # Dask, Ray: workers on other machines share no memory
            raise CapabilityError(
                f"the {self._backend.name!r} backend has no shared {kind}: its workers share "
                f"no memory with this process; return results from the tasks instead, or "
                f"use a process or thread pool"
            )
        return cast("Callable[..., Any]", make)
