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

import inspect
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sized
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

from .._auto import load_backend
from .._auto._router import steer_options
from .._errors._exceptions import CapabilityError, PoolClosed
from .._observe._progress import both, progress_hook
from .._scheduler._chunking import make_chunker
from .._task import ChunkResult, Task, fn_name
from ..abc import Backend, BackendConfig, Order
from ._aio import (
    AwaitableFuture,
    coroutine_chunksize,
    exit_pool,
    is_coroutine_function,
    new_future,
    wrap_coroutine_function,
)
from ._coordination import Callback, CoordinationMixin
from ._drain import PendingMaps
from ._map import MapIterator, ReadAhead
from ._observe import PoolObservability
from ._progress import ProgressMapIterator
from ._timers import Timers

__all__ = ["Pool", "map"]

R = TypeVar("R")

_ORDERS = ("fifo", "lifo", "priority")
# Chunks unfinished at the backend per worker in map(): 2 keeps every worker fed while
# the next chunk is on its way. Finished chunks waiting for the consumer do not count:
# they sit in the read-ahead buffer (bounded in items and bytes, see _map.ReadAhead).
_CHUNKS_PER_WORKER = 2
# submit()'s own keywords; one that fn also accepts is refused as ambiguous.
_SUBMIT_OPTIONS = ("timeout", "retries", "priority", "callback", "block")


def _check_positive(name: str, value: float | None, *, integer: bool = False) -> None:
    if value is None:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        wanted = "a positive int" if integer else "a positive number"
        raise ValueError(f"{name} must be {wanted} or None, got {value!r}")


def _check_retries(retries: int) -> None:
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


class Pool(CoordinationMixin, PoolObservability):
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
        _check_positive("workers", workers, integer=True)
        _check_positive("max_pending", max_pending, integer=True)
        _check_positive("timeout", timeout)
        _check_positive("max_tasks_per_worker", max_tasks_per_worker, integer=True)
        _check_positive("max_worker_memory", max_worker_memory, integer=True)
        _check_retries(retries)
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
        if initializer is not None:
            _check_callable(initializer, "initializer")
        backend_class = load_backend(backend)
        self._check_capabilities(backend_class, timeout=timeout, retries=retries, order=order)
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
        self._init_coordination(max_pending)
        self._observe_init(timeline=timeline)
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
        _check_positive("timeout", timeout)
        if retries is not None:
            _check_retries(retries)
        self._check_capabilities(type(self._backend), timeout=timeout, priority=priority)
        self._check_task_options(priority)

    def _task(self, fn: Callable[..., Any], args: Any, kwargs: dict[str, Any], **opts: Any) -> Task:
        timeout, retries, priority = opts["timeout"], opts["retries"], opts["priority"]
        if timeout is not None or retries is not None or priority is not None:
            self._check_task_overrides(timeout, retries, priority)
        return Task(
            fn,
            args,
            kwargs,
            self._new_future(),
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
        # a weak back-reference lets Pool.kill(future) find the task without a cycle
        task.future._anypool_task = weakref.ref(task)  # type: ignore[attr-defined]
        self._admit(task, block, callback)  # checks and the max_pending slot
        try:
            self._backend.submit(task)
        except BaseException:
            self._refuse(task)
            raise
        self._track(task.future, callback)  # callback and join() books
        self._observe_task(task)  # statistics and timeline
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
        _check_positive("window", window, integer=True)
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
        per_fn = getattr(self._backend, "workers_for", None)  # auto sizes each function

        def width() -> int:
            return per_fn(fn) if per_fn is not None else self.workers

        iterator: MapIterator[R] = MapIterator(
            submit_chunk,
            items,
            chunker=make_chunker(chunksize, width(), total, remote=self.capabilities.remote),
            window=self._read_ahead(window, width),
            ordered=ordered,
            return_exceptions=return_exceptions,
            on_item=both(self._item_callback(callback), hook.on_item if hook else None),
            pending=self._pending_maps,
            sized=all(isinstance(it, Sized) for it in iterables),
            name=f"map({fn_name(fn)})",
        )
        return iterator if hook is None else ProgressMapIterator(iterator, hook)

    def _read_ahead(self, window: int | None, workers: Callable[[], int]) -> ReadAhead:
        # ``workers`` is read at each refill: the count can change (auto decides, resize)
        def copies() -> int:
            # a pickling backend holds a chunk's items and their pickled bytes until it is done
            return 2 if self._running_backend().capabilities.needs_pickling else 1

        if window is not None:
            return ReadAhead(window, workers, strict=True, copies=copies)
        return ReadAhead(lambda: _CHUNKS_PER_WORKER * workers() + 1, workers, copies=copies)

    def _runs_coroutines_for(self, fn: Callable[..., Any]) -> bool:
        """A coroutine function that this pool's workers must run on a loop of their own
        (anypool._core._aio.CoroutineCall); the asyncio backend awaits coroutines itself."""
        return self._backend.name != "asyncio" and is_coroutine_function(fn)

    def _new_future(self) -> Future[Any]:
        # awaitable (``await pool.submit(...)``); it knows its pool to kill its task when
        # the awaiting coroutine is cancelled
        return new_future(weakref.ref(self), self._backpressure is not None)

    # -- control ----------------------------------------------------------------------------
    def kill(self, future: Future[Any]) -> bool:
        """Stop the task behind ``future``: cancel it if queued, stop it if running.

        Returns True if the task will not complete normally. Stopping a running task
        needs a backend with ``capabilities.kills_running_tasks``.
        """
        if future.cancel():
            return True
        task_ref = getattr(future, "_anypool_task", None)
        task = task_ref() if task_ref is not None else None
        return task is not None and not future.done() and self._backend.kill(task)

    def shutdown(
        self, wait: bool = True, *, cancel_pending: bool = False, kill_running: bool = False
    ) -> None:
        """Stop accepting work. Safe to call more than once.

        A ``map`` that was never iterated runs to its end first (``wait=True``), or is
        dropped with a warning (``wait=False``, ``cancel_pending=True``).
        """
        try:
            self._pending_maps.finish(wait=wait, cancel=cancel_pending or kill_running)
        except BaseException:  # Ctrl-C while a never-iterated map runs: stop at once
            self._stop(wait=True, cancel_pending=True, kill_running=True)
            raise
        self._stop(wait=wait, cancel_pending=cancel_pending, kill_running=kill_running)

    def _stop(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
        self._begin_shutdown()
        self._backend.shutdown(wait=wait, cancel_pending=cancel_pending, kill_running=kill_running)
        self._close_primitives(wait)
        self._finalizer.detach()

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
