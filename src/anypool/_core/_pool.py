"""The Pool engine: one front end over every backend.

::

    Pool.submit(fn, *args) ──► Task ──────────────► Backend.submit(task)
    Pool.map(fn, iterable) ──► MapIterator ─chunks─► Backend.submit(task)
                                   ▲                        │ runs it
                                   └── items ◄── Future ◄───┘
    never iterated ──► PendingMaps (_drain): run at shutdown, or in a thread once dropped
    Pool garbage-collected ──► weakref.finalize ──► Backend.shutdown(wait=False)

The engine validates input, builds tasks, checks options against the
backend's :class:`~anypool.abc.Capabilities`, drives ``map``'s read-ahead and
chunking, and keeps the books (statistics). Backends only run tasks.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sized
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from .._auto import load_backend, steer_options
from .._backends._options import check_options
from .._errors._exceptions import CapabilityError, PoolClosed
from .._local._threads import deadline_in, time_left
from .._observe._progress import both, progress_hook
from .._observe._stats import PoolStatistics
from .._observe._timeline import Timeline
from .._scheduler._chunking import make_chunker
from .._scheduler._select import Decision
from .._sync._base import (
    ArrayLike,
    BarrierLike,
    CharArrayLike,
    ConditionLike,
    EventLike,
    LockLike,
    QueueLike,
    SemaphoreLike,
    ValueLike,
    check_shareable,
)
from .._task import ChunkResult, Task, fn_name
from ..abc import Backend, BackendConfig, Order
from ._admission import Admission, Callback, check_callback, check_delay, check_priority
from ._aio import (
    AwaitableFuture,
    coroutine_chunksize,
    exit_pool,
    future_type,
    is_coroutine_function,
    wrap_coroutine_function,
)
from ._coordination import Coordination
from ._decorators import TaskFunction, TaskOptions
from ._drain import PendingMaps
from ._map import MapIterator, ReadAhead
from ._observe import Observer
from ._progress import ProgressMapIterator
from ._timers import Periodic, Timers

if TYPE_CHECKING:
    from ._stream import StreamIterator

__all__ = ["Pool", "backend_of", "check_positive", "check_retries", "map", "submit_task"]

P = ParamSpec("P")
R = TypeVar("R")

_ORDERS = ("fifo", "lifo", "priority")
# Chunks unfinished at the backend per worker in map(): 2 keeps every worker fed while
# the next chunk is on its way. Finished chunks waiting for the consumer do not count:
# they sit in the read-ahead buffer (bounded in items and bytes, see _map.ReadAhead).
_CHUNKS_PER_WORKER = 2
# submit()'s own keywords; one that fn also accepts is refused as ambiguous.
_SUBMIT_OPTIONS = ("timeout", "retries", "priority", "callback", "block")


def check_positive(name: str, value: float | None, *, integer: bool = False) -> None:
    if value is None:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        wanted = "a positive int" if integer else "a positive number"
        raise ValueError(f"{name} must be {wanted} or None, got {value!r}")


def check_retries(retries: int) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")


def _check_callable(fn: object, what: str = "fn") -> None:
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {type(fn).__name__} {fn!r}")


def _accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn(name=...)`` would bind: a parameter of that name, or ``**kwargs``."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature (some builtins): nothing to clash with
        return False
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    param = parameters.get(name)
    if param is not None and param.kind in keyword_kinds:
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _check_unambiguous(fn: Callable[..., Any], given: dict[str, object]) -> None:
    """Refuse a submit() option that ``fn`` also takes as a keyword: taking it silently as
    the task's option (``pool.submit(urlopen, url, timeout=10)``) would drop the
    function's argument. docs/design.md, "Per-task options and the function's own
    keywords"."""
    for name, value in given.items():
        if _accepts_keyword(fn, name):
            called = fn_name(fn)
            raise TypeError(
                f"Pool.submit({called}, ..., {name}={value!r}) is ambiguous: {called}() also "
                f"takes {name}=, and submit() reads {name}= as this task's anypool option. "
                f"For the function's argument: pool.submit(functools.partial({called}, "
                f"{name}={value!r}), ...); for the task option: "
                f"pool.task({name}={value!r})({called})(...), which passes every keyword "
                "of the call to the function"
            )


def _release(backend: Backend, timers: Timers) -> None:
    """A Pool garbage-collected without shutdown(): its queued work still runs (as the
    stdlib's executors do), then its workers exit and their pipes close; delayed tasks
    are cancelled (nothing could wait for them). Holds what it stops, never the Pool,
    so it does not keep the pool alive."""
    timers.close()
    backend.shutdown(wait=False, cancel_pending=False, kill_running=False)


def _weak_submit(pool: Pool) -> Callable[[Task], None]:
    """The timers' way back to the pool, held weakly: a bound method would be a reference
    cycle, and a pool dropped without shutdown() would keep its workers until the cyclic
    garbage collector ran (its finalizer releases them)."""
    method = weakref.WeakMethod(pool._submit_scheduled)

    def submit(task: Task) -> None:
        bound = method()
        if bound is None:
            raise PoolClosed("cannot submit: the pool was garbage-collected")
        bound(task)

    return submit


class Pool:
    """A pool of workers on one backend: ``"auto"``, ``"thread"``, ``"process"``, ``"inline"``...

    ``backend="auto"`` (the default) samples the first tasks and picks the backend and
    worker count; ``prefer=`` is a soft hint and ``require=`` a hard constraint for that
    choice (see :meth:`explain`). ``timeline=True`` records every task for :meth:`timeline`.

    >>> with Pool(backend="thread", workers=2) as pool:
    ...     pool.submit(pow, 2, 10).result()
    1024
    """

    def __init__(
        self,
        backend: str = "auto",
        workers: int | None = None,
        *,
        timeout: float | None = None,
        retries: int = 0,
        order: Order = "fifo",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        start_method: Literal["fork", "forkserver", "spawn"] | None = None,
        max_tasks_per_worker: int | None = None,
        max_worker_memory: int | None = None,
        thread_name_prefix: str = "",
        max_pending: int | None = None,
        prefer: str | None = None,
        require: str | Iterable[str] | None = None,
        timeline: bool = False,
        **backend_options: Any,
    ) -> None:
        check_positive("workers", workers, integer=True)
        check_positive("max_pending", max_pending, integer=True)
        check_positive("timeout", timeout)
        check_positive("max_tasks_per_worker", max_tasks_per_worker, integer=True)
        check_positive("max_worker_memory", max_worker_memory, integer=True)
        check_retries(retries)
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
        if initializer is not None:
            _check_callable(initializer, "initializer")
        backend_class = load_backend(backend)
        self._check_capabilities(backend_class, timeout=timeout, retries=retries, order=order)
        per_worker = {
            "initializer": initializer,
            "start_method": start_method,
            "max_tasks_per_worker": max_tasks_per_worker,
            "max_worker_memory": max_worker_memory,
            "thread_name_prefix": thread_name_prefix,
        }
        check_options(backend_class, backend_options, per_worker)  # what it cannot honour
        backend_options = steer_options(
            backend_class,
            backend_options,
            prefer=prefer,
            require=require,
            workers=workers,
            timeout=timeout,
            retries=retries,
            order=order,
        )
        self._timeout = timeout
        self._retries = retries
        config = BackendConfig(
            workers=workers or backend_class.default_workers(),
            order=order,
            initializer=initializer,
            initargs=tuple(initargs),
            start_method=start_method,
            max_tasks_per_worker=max_tasks_per_worker,
            max_worker_memory=max_worker_memory,
            thread_name_prefix=thread_name_prefix,
            options=backend_options,
            workers_given=workers is not None,
        )
        self._backend: Backend = backend_class(config)
        self._lock = threading.Lock()
        self._closed = False
        self._pending_maps = PendingMaps()
        # The parts Pool is composed of; Pool's methods are its whole public surface and
        # delegate to them (docs/design.md, "Pool is composed, not mixed in").
        self._admission = Admission(
            max_pending, backend_class.capabilities.needs_pickling, backend_class.name
        )
        self._coordination = Coordination(self._backend)
        # read on every submit: worked out once
        self._weak_self = weakref.ref(self)
        self._future_type = future_type(max_pending is not None)
        self._wraps_coroutines = not self._backend.capabilities.awaits_coroutines
        self._observer = Observer(self._backend, timeline=timeline)
        self._timers = Timers(_weak_submit(self))
        self._streams = False  # whether stream() was ever called: shutdown then stops them
        # where @pool.task sends calls: this pool, or for a named pool its registry entry
        # (set by anypool._frontends._named), so a group shut down is made afresh on use
        self._task_target: Callable[[], Pool] | None = None
        # Released on garbage collection too: a pool dropped without shutdown() must not keep
        # its worker processes and pipes until the interpreter exits.
        self._finalizer = weakref.finalize(self, _release, self._backend, self._timers)
        self._finalizer.atexit = False  # at exit the backends' own hook stops them

    # -- introspection ----------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """The backend's name."""
        return self._backend.name

    @property
    def workers(self) -> int:
        """The configured number of workers."""
        return self._backend.config.workers

    @property
    def capabilities(self) -> Any:
        """The backend's :class:`~anypool.abc.Capabilities`."""
        return self._backend.capabilities

    @property
    def max_pending(self) -> int | None:
        """The bound on queued tasks (``Pool(max_pending=)``), or None."""
        return self._admission.max_pending

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has begun: submitting then raises ``PoolClosed``."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<anypool.Pool backend={self.backend!r} workers={self.workers} {state}>"

    @staticmethod
    def _check_capabilities(
        backend: type[Backend],
        *,
        timeout: float | None = None,
        retries: int = 0,
        order: str = "fifo",
        priority: float | None = None,
    ) -> None:
        caps = backend.capabilities
        if timeout is not None and not caps.supports_timeouts:
            raise CapabilityError(f"the {backend.name!r} backend cannot enforce timeout=")
        if retries and not caps.supports_retries:
            raise CapabilityError(f"the {backend.name!r} backend cannot retry tasks (retries=)")
        if (order != "fifo" or priority is not None) and not caps.supports_priority:
            raise CapabilityError(f"the {backend.name!r} backend cannot order tasks")

    # -- submitting work --------------------------------------------------------------------
    def _check_task_overrides(
        self, timeout: float | None, retries: int | None, priority: float | None
    ) -> None:
        """Per-task options that override the pool's; skipped when none is given."""
        check_positive("timeout", timeout)
        if retries is not None:
            check_retries(retries)
        self._check_capabilities(type(self._backend), timeout=timeout, priority=priority)
        check_priority(priority, self._backend.config.order)

    def _task(self, fn: Callable[..., Any], args: Any, kwargs: dict[str, Any], **opts: Any) -> Task:
        timeout, retries, priority = opts["timeout"], opts["retries"], opts["priority"]
        if timeout is not None or retries is not None or priority is not None:
            self._check_task_overrides(timeout, retries, priority)
        if not opts.get("chunk") and self._runs_coroutines_for(fn):
            # every way in (the decorators, submit_after, every) runs a coroutine function's
            # coroutine, as submit does; map wraps its chunks itself
            fn, timeout = wrap_coroutine_function(fn, self._timeout if timeout is None else timeout)
        # awaitable (``await pool.submit(...)``); it knows its pool, to kill its task when
        # the awaiting coroutine is cancelled
        future = self._future_type()
        future._anypool_pool = self._weak_self
        return Task(
            fn,
            args,
            kwargs,
            future,
            chunk=opts.get("chunk", False),
            star=opts.get("star", False),
            timeout=self._timeout if timeout is None else timeout,
            retries=self._retries if retries is None else retries,
            priority=0.0 if priority is None else priority,
        )

    def _submit_task(
        self, task: Task, *, block: bool | float = True, callback: Callback | None = None
    ) -> Future[Any]:
        if self._closed:
            raise PoolClosed("cannot submit: the pool is shut down")
        # Every task's path, so the steps with nothing to do are skipped inline (each call
        # costs ~0.1 µs; ThreadPoolExecutor's whole submit+result is ~10 µs).
        admission = self._admission
        if block is not True or callback is not None or admission.active:
            admission.admit(task, block, callback)  # checks and the max_pending slot
        if callback is not None:
            # before the statistics' callback, so that join() (which waits on the
            # statistics' in-flight map) also waits for it
            admission.add_callback(task.future, callback)
        # statistics, timeline, join() and kill(); before the backend has the task, while
        # its future is still ours alone (the cheap way to add a done-callback)
        self._observer.track_new(task)
        try:
            self._backend.submit(task)
        except BaseException:
            self._observer.untrack(task)
            admission.refuse(task)
            raise
        return task.future

    def submit(
        self,
        fn: Callable[..., R],
        /,
        *args: Any,
        timeout: float | None = None,
        retries: int | None = None,
        priority: float | None = None,
        callback: Callback | None = None,
        block: bool | float | None = None,
        **kwargs: Any,
    ) -> AwaitableFuture[R]:
        """Schedule ``fn(*args, **kwargs)``; returns a :class:`concurrent.futures.Future`
        that a coroutine may also ``await`` (docs/async.md). A coroutine function runs on
        an event loop of the worker's.

        ``timeout``, ``retries`` and ``priority`` override the pool's defaults for this
        task. ``callback(result, error)`` is called in this process when the task ends.
        With ``max_pending`` reached, ``block=True`` (the default, also ``None``) waits for
        room, ``block=False`` raises :class:`~anypool.PoolFull` at once and
        ``block=seconds`` waits that long. One of these keywords that ``fn`` also accepts
        raises ``TypeError`` (which one is meant is ambiguous);
        ``pool.task(timeout=...)(fn)(...)`` passes every keyword of the call to ``fn``.
        """
        _check_callable(fn)
        if timeout is not None or retries is not None or priority is not None:
            given = {"timeout": timeout, "retries": retries, "priority": priority}
            _check_unambiguous(fn, {k: v for k, v in given.items() if v is not None})
        if callback is not None:
            _check_unambiguous(fn, {"callback": callback})
        if block is None:  # not given: None, not True, so that block=True is checked too
            block = True
        else:
            _check_unambiguous(fn, {"block": block})
        if self._runs_coroutines_for(fn):
            fn, timeout = wrap_coroutine_function(fn, self._timeout if timeout is None else timeout)
        if timeout is None and retries is None and priority is None:  # no overrides to check
            future = self._future_type()
            future._anypool_pool = self._weak_self
            task = Task(fn, args, kwargs, future, timeout=self._timeout, retries=self._retries)
        else:
            task = self._task(fn, args, kwargs, timeout=timeout, retries=retries, priority=priority)
        return self._submit_task(task, block=block, callback=callback)  # type: ignore[return-value]

    def map(
        self,
        fn: Callable[..., R],
        /,
        *iterables: Iterable[Any],
        ordered: bool = True,
        chunksize: int | Literal["auto"] = "auto",
        window: int | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        priority: float | None = None,
        return_exceptions: bool = False,
        callback: Callback | None = None,
        progress: bool | Mapping[str, Any] = False,
    ) -> MapIterator[R]:
        """Lazily apply ``fn`` to every item (or to items zipped from several iterables).

        The input is read only a bounded way ahead of the consumer (at most 65,536 items
        and ~16 MiB, estimated), so it may be endless and memory stays flat; at most 2
        chunks per worker are at the workers, and finished results wait for their turn in
        that bounded buffer, so a slow item does not stall the others. ``window=N`` is a
        strict bound instead: at most N chunks read ahead, finished or not.
        A map never iterated runs to the end before the pool shuts down (docs/design.md).
        ``ordered=False`` yields in completion order. An item's
        exception is raised when that item is reached, or yielded in its place with
        ``return_exceptions=True``. ``timeout`` applies to each item.
        ``callback(result, error)`` is called for each item as the iterator reaches it.
        ``progress=True`` (or a dict of tqdm options) shows a bar counting items; it stays
        silent when the output is not a terminal, unless a ``file`` is given.
        """
        _check_callable(fn)
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        check_positive("window", window, integer=True)
        star = len(iterables) > 1
        items: Iterable[Any] = zip(*iterables) if star else iterables[0]
        opts = {"timeout": timeout, "retries": retries, "priority": priority}
        self._task(fn, (), {}, **opts)  # validate the options now, not at the first chunk
        if self._runs_coroutines_for(fn):  # a chunk's coroutines run at once (anypool._core._aio)
            fn, opts["timeout"] = wrap_coroutine_function(
                fn, self._timeout if timeout is None else timeout
            )
            if chunksize == "auto":
                chunksize = coroutine_chunksize(iterables, self.workers)
        if chunksize == "auto" and (timeout or self._timeout):
            chunksize = 1  # a per-item timeout needs per-item tasks to be exact

        def submit_chunk(chunk: list[Any]) -> Future[ChunkResult]:
            task = self._task(fn, chunk, {}, chunk=True, star=star, **opts)
            if task.timeout is not None:
                task.timeout *= len(chunk)
            return self._submit_task(task)

        total = len(iterables[0]) if not star and isinstance(iterables[0], Sized) else None
        hook = progress_hook(progress, iterables)

        def width() -> int:
            return self._backend.workers_for(fn)  # a router (auto) sizes each function

        iterator: MapIterator[R] = MapIterator(
            submit_chunk,
            items,
            # width, not width(): read at each chunk, as auto's count changes once it decides
            chunker=make_chunker(chunksize, width, total, remote=self.capabilities.remote),
            window=self._read_ahead(window, width),
            ordered=ordered,
            return_exceptions=return_exceptions,
            on_item=both(_item_callback(callback), hook.on_item if hook else None),
            pending=self._pending_maps,
            sized=all(isinstance(it, Sized) for it in iterables),
            name=f"map({fn_name(fn)})",
        )
        return iterator if hook is None else ProgressMapIterator(iterator, hook)

    def stream(
        self,
        gen_fn: Callable[..., Iterable[R]],
        /,
        *args: Any,
        buffer: int = 1024,
        timeout: float | None = None,
        item_timeout: float | None = None,
        retries: int | None = None,
        progress: bool | Mapping[str, Any] = False,
        **kwargs: Any,
    ) -> StreamIterator[R]:
        """Run the generator ``gen_fn(*args, **kwargs)`` in a worker and iterate its items
        here as it yields them (``for`` or ``async for``); the worker pauses once ``buffer``
        items are undelivered. See docs/streams.md and :mod:`anypool._core._stream`."""
        from ._stream import open_stream  # imported on first use: ~5-10 ms most pools skip

        self._streams = True

        return open_stream(
            self,
            gen_fn,
            args,
            kwargs,
            buffer=buffer,
            timeout=timeout,
            item_timeout=item_timeout,
            retries=retries,
            progress=progress,
        )

    def _read_ahead(self, window: int | None, workers: Callable[[], int]) -> ReadAhead:
        # ``workers`` is read at each refill: the count can change (auto decides, resize)
        def copies() -> int:
            # a pickling backend holds a chunk's items and their pickled bytes until it is done
            return 2 if self._observer.running_backend().capabilities.needs_pickling else 1

        if window is not None:
            return ReadAhead(window, workers, strict=True, copies=copies)
        return ReadAhead(lambda: _CHUNKS_PER_WORKER * workers() + 1, workers, copies=copies)

    def _runs_coroutines_for(self, fn: Callable[..., Any]) -> bool:
        """A coroutine function that this pool's workers must run on a loop of their own
        (anypool._core._aio.CoroutineCall); the asyncio backend awaits coroutines itself."""
        return self._wraps_coroutines and is_coroutine_function(fn)

    # -- control ----------------------------------------------------------------------------
    def kill(self, future: Future[Any]) -> bool:
        """Stop the task behind ``future``: cancel it if queued, stop it if running.

        Returns True if the task will not complete normally. Stopping a running task
        needs a backend with ``capabilities.kills_running_tasks``; on threads, a running
        task is abandoned instead (its future fails at once, the call finishes in the
        background and its result is dropped, a new thread takes its place).
        """
        if future.cancel():
            return True
        task = self._observer.task_of(future)
        return task is not None and not future.done() and self._backend.kill(task)

    def shutdown(
        self,
        wait: bool = True,
        *,
        cancel_futures: bool = False,
        kill_running: bool = False,
        cancel_pending: bool = False,
    ) -> None:
        """Stop accepting work. Safe to call more than once.

        ``cancel_futures=True`` (the stdlib executor's name; ``cancel_pending=True`` is the
        same) cancels the tasks not started yet; ``kill_running=True`` also stops running
        ones, which then fail with ``concurrent.futures.CancelledError``.
        A ``map`` that was never iterated runs to its end first (``wait=True``), or is
        dropped with a warning (``wait=False``, ``cancel_futures=True``).
        """
        cancel_pending = cancel_pending or cancel_futures
        try:
            self._pending_maps.finish(wait=wait, cancel=cancel_pending or kill_running)
        except BaseException:  # Ctrl-C while a never-iterated map runs: stop at once
            self._stop(wait=True, cancel_pending=True, kill_running=True)
            raise
        self._stop(wait=wait, cancel_pending=cancel_pending, kill_running=kill_running)

    def _stop(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
        self._timers.close()  # no more timer submissions, no more waiting submitters
        self._admission.close()
        if self._streams:  # a stream nobody reads would hold the wait below forever
            from ._stream import close_streams

            close_streams(self)
        self._backend.shutdown(wait=wait, cancel_pending=cancel_pending, kill_running=kill_running)
        self._coordination.close(wait)
        self._finalizer.detach()

    # -- waiting, resizing --------------------------------------------------------------------
    def join(self, timeout: float | None = None) -> bool:
        """Wait until every task submitted so far has finished (``Queue.join`` semantics).

        The pool stays open. Callbacks of those tasks have run when it returns.
        Returns False if ``timeout`` seconds passed first.
        """
        if timeout is not None:
            check_delay("timeout", timeout, positive=False)
        # tasks still waiting for their timer (submit_after) first, then everything submitted
        deadline = deadline_in(timeout)
        if not self._admission.join(timeout):
            return False
        return self._observer.join(time_left(deadline))

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

    # -- decorators ---------------------------------------------------------------------------
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

        target = self._task_target or (lambda: self)

        def decorate(fn: Callable[P, R]) -> TaskFunction[P, R]:
            return TaskFunction(fn, target, repr(self), options)

        return decorate if fn is None else decorate(fn)

    def _submit_call(
        self, fn: Callable[..., Any], args: Any, kwargs: dict[str, Any], options: TaskOptions
    ) -> Future[Any]:
        """Submit with options given apart from ``kwargs`` (so ``fn`` may take ``timeout=``);
        the entry point of ``TaskFunction``."""
        task = self._task(
            fn,
            args,
            kwargs,
            timeout=options.timeout,
            retries=options.retries,
            priority=options.priority,
        )
        return self._submit_task(task, callback=options.callback)

    # -- timers -------------------------------------------------------------------------------
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
        self._admission.track(task.future, callback)
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
            task = self._task(fn, args, kwargs, timeout=None, retries=None, priority=None)
            self._admission.track(task.future, None)
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
        _check_callable(fn)
        if self._closed:
            raise PoolClosed("cannot schedule: the pool is shut down")
        task = self._task(fn, args, kwargs, timeout=timeout, retries=retries, priority=priority)
        if self._backend.capabilities.needs_pickling:
            check_shareable(args, kwargs, self._backend.name)
        return task

    def _submit_scheduled(self, task: Task) -> None:
        """Timer path: accepted when scheduled, so no backpressure wait and no new books."""
        if self._closed:
            raise PoolClosed("cannot submit: the pool is shut down")
        self._backend.submit(task)
        self._observer.track(task)

    # -- coordination primitives (anypool._core._coordination) -----------------------------
    def Lock(self) -> LockLike:
        """A lock that works between this pool's workers (``threading.Lock`` on threads)."""
        return self._coordination.Lock()

    def RLock(self) -> LockLike:
        """A re-entrant lock that works between this pool's workers."""
        return self._coordination.RLock()

    def Condition(self, lock: LockLike | None = None) -> ConditionLike:
        """A condition variable; ``lock`` must come from this pool's ``Lock()``/``RLock()``."""
        return self._coordination.Condition(lock)

    def Semaphore(self, value: int = 1) -> SemaphoreLike:
        """A semaphore with ``value`` permits that works between this pool's workers."""
        return self._coordination.Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> SemaphoreLike:
        """A semaphore that refuses to be released more often than acquired."""
        return self._coordination.BoundedSemaphore(value)

    def Event(self) -> EventLike:
        """An event flag that works between this pool's workers."""
        return self._coordination.Event()

    def Barrier(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> BarrierLike:
        """A barrier for ``parties`` workers (on processes ``action`` must pickle)."""
        return self._coordination.Barrier(parties, action, timeout)

    def Queue(self, maxsize: int = 0, order: Order = "fifo") -> QueueLike:
        """A queue with ``put/get/task_done/join``; ``order`` is fifo, lifo or priority.

        ``maxsize=0`` means unbounded, as in :mod:`queue`.
        """
        return self._coordination.Queue(maxsize, order)

    def Value(self, typecode: str | type, init: Any = 0) -> ValueLike:
        """A shared number, as ``multiprocessing.Value(typecode, init)``: ``.value`` and
        ``get_lock()``; ``typecode`` is an array-module code ('i', 'd', ...) or a ctypes type.

        On processes it lives in shared memory and pickles into task arguments at any
        time. ``v.value += 1`` is a read and a write: hold ``v.get_lock()`` around it.
        """
        return self._coordination.Value(typecode, init)

    @overload
    def Array(self, typecode: Literal["c"], size_or_init: Any) -> CharArrayLike: ...
    @overload
    def Array(self, typecode: str | type, size_or_init: Any) -> ArrayLike: ...
    def Array(self, typecode: str | type, size_or_init: Any) -> ArrayLike:
        """A shared fixed-length array, as ``multiprocessing.Array(typecode, size_or_init)``:
        ``len``, indexing, slicing, iteration and ``get_lock()``; typecode ``'c'`` also has
        ``value`` and ``raw``, as multiprocessing's."""
        return self._coordination.Array(typecode, size_or_init)

    # -- what the pool says about itself (anypool._core._observe) ---------------------------
    def explain(self) -> Decision:
        """Which backend runs this pool's tasks and why, with the measured numbers.

        For ``backend="auto"``, which decides per task function: the latest decision (or,
        before any task, that it is pending); ``.functions`` lists every function's and
        ``.for_function(fn)`` gives one. For a named backend: that the caller chose it.
        """
        return self._observer.explain()

    def statistics(self) -> PoolStatistics:
        """A frozen snapshot of the pool's activity (task counts in items)."""
        return self._observer.statistics()

    def timeline(self) -> Timeline:
        """The tasks recorded so far; needs ``Pool(timeline=True)``."""
        return self._observer.timeline()

    # -- with / async with --------------------------------------------------------------------
    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            # Ctrl-C: the user wants out now, not after the queue drains.
            self.shutdown(wait=True, cancel_pending=True, kill_running=True)
        else:
            self.shutdown(wait=True)

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        """``with``'s contract without blocking the loop (anypool._core._aio.exit_pool); a
        cancelled task (Ctrl-C under asyncio.run) stops as Ctrl-C does."""
        await exit_pool(self, exc_type)


# -- the declared entry points of the front ends (anypool._frontends) ---------------------------
# The executors, Process and the pipeline build on Pool through these, not through its
# private attributes, so what they rely on is written down in one place.
def submit_task(pool: Pool, task: Task) -> Future[Any]:
    """Submit a task a front end built itself (a chunk, a Process target): every check,
    the admission books and statistics, as ``Pool.submit`` does."""
    return pool._submit_task(task)


def backend_of(pool: Pool) -> Backend:
    """The backend object: worker pids, broken state and the exit hook for front ends."""
    return pool._backend


def _item_callback(callback: Callback | None) -> Callable[[Any, BaseException | None], None] | None:
    check_callback(callback)
    return callback  # type: ignore[return-value]


def map(
    fn: Callable[..., R],
    /,
    *iterables: Iterable[Any],
    backend: str = "auto",
    workers: int | None = None,
    ordered: bool = True,
    chunksize: int | Literal["auto"] = "auto",
    timeout: float | None = None,
    return_exceptions: bool = False,
    progress: bool | Mapping[str, Any] = False,
    **pool_options: Any,
) -> MapIterator[R]:
    """One-shot lazy ``map`` on a fresh pool that shuts down when the iterator ends or closes.

    ``backend="auto"`` picks threads or processes from the first items; ``progress=``
    shows a bar (see :meth:`Pool.map`).
    """
    pool = Pool(backend, workers, timeout=timeout, **pool_options)
    try:
        inner = pool.map(
            fn,
            *iterables,
            ordered=ordered,
            chunksize=chunksize,
            return_exceptions=return_exceptions,
            progress=progress,
        )
    except BaseException:
        pool.shutdown(wait=True)
        raise

    def shut_down(interrupted: bool) -> None:
        # Ctrl-C while waiting on the stream: the user wants out now, not after running tasks
        pool.shutdown(wait=True, cancel_pending=True, kill_running=interrupted)

    inner._add_finalizer(shut_down)
    return inner
