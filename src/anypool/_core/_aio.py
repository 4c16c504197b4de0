"""anypool from async code: awaitable futures, ``async for`` over ``map``, ``async with``
pools, and coroutine functions run by every local backend.

::

    await pool.submit(fn)    AwaitableFuture ── done-callback (worker thread or dispatcher)
                                  │                 └─ loop.call_soon_threadsafe ─► waiter set
                                  └─ the awaiting task is cancelled ─► Pool.kill(future):
                                     cancelled if queued, stopped if the backend kills
                                     running tasks, else (threads) abandoned

    async for x in pool.map(...)   AsyncMap ─► _MapState.arun(ChunkWaiter)
                                   the same read-ahead as the sync map; where it would
                                   block in Condition.wait it awaits the ChunkWaiter,
                                   which the chunks' done-callbacks wake thread-safely

    async with Pool(...)     __aexit__ ─► Pool.shutdown in a thread of its own, awaited;
                             cancelled (Ctrl-C under asyncio.run) ─► shutdown(cancel_pending,
                             kill_running)

    pool.submit(async_fn, x) CoroutineCall(async_fn): a plain, picklable callable that the
                             worker (thread, process or the caller for inline) runs on
                             the thread's reused event loop; a map's chunk runs all its
                             items at once on one loop (_task.run_chunk asks for
                             _anypool_run_chunk); timeout= cancels the coroutine at its
                             next await, the backend's own deadline (timeout +
                             COROUTINE_GRACE_S) kills or abandons it after that

``asyncio`` is imported only where it is used, so ``import anypool`` and sync pools do not
pay for it (an awaited future or map has it imported already).
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
    Sized,
)
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors._exceptions import TaskTimeout
from .._local._loops import run_on_thread_loop
from .._local._threads import deadline_in, start_task_thread, start_thread, time_left, wait_for
from .._task import ChunkResult, fn_name
from ._admission import SlotFuture

if TYPE_CHECKING:
    import asyncio

    from ._map import MapIterator, _MapState
    from ._pool import Pool

__all__ = [
    "COROUTINES_PER_CHUNK",
    "COROUTINE_GRACE_S",
    "AwaitableFuture",
    "AwaitableSlotFuture",
    "CoroutineCall",
    "async_map",
    "collect",
    "coroutine_chunksize",
    "exit_pool",
    "future_type",
    "is_coroutine_function",
]

R = TypeVar("R")

# A map's chunk of a coroutine function runs its items at once on one event loop, at most
# this many at a time (as the asyncio backend's default): a worker then has a chunk's worth
# of requests in flight; ``chunksize=`` sets how many.
COROUTINES_PER_CHUNK = 100
# A coroutine past its timeout= is cancelled at its next await; one that does not yield
# for this long after that is stopped by the backend's own deadline (a process worker is
# killed, a thread abandoned), so the backend's deadline is timeout + this.
COROUTINE_GRACE_S = 1.0


# -- awaitable futures -------------------------------------------------------------------------
class AwaitableFuture(Future[R]):
    """A :class:`concurrent.futures.Future` that a coroutine can ``await``.

    Awaiting costs what ``asyncio.wrap_future`` costs (one done-callback and one
    ``call_soon_threadsafe``). Cancelling the awaiting task cancels the anypool task if
    it is queued, stops it if it runs on a backend that kills running tasks, and else
    abandons the wait: a thread cannot be stopped, its result is dropped. A task that the
    pool cancelled (``shutdown(cancel_pending=True)``, :meth:`Pool.kill`) raises
    ``concurrent.futures.CancelledError`` (an ``Exception``), not asyncio's: the awaiting
    task itself was not cancelled.
    """

    _anypool_pool: Callable[[], Pool | None] | None = None

    def result(self, timeout: float | None = None) -> R:
        """As :meth:`concurrent.futures.Future.result`; a Ctrl-C always interrupts it."""
        if not self.done():
            timeout = self._wait_in_slices(timeout)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """As :meth:`concurrent.futures.Future.exception`; a Ctrl-C always interrupts it."""
        if not self.done():
            timeout = self._wait_in_slices(timeout)
        return super().exception(timeout)

    def _wait_in_slices(self, timeout: float | None) -> float | None:
        """Wait until done (or ``timeout``), in slices in the main thread (_local._threads
        says why); returns what is left of ``timeout`` for the stdlib's own wait, which
        then returns at once if done."""
        deadline = deadline_in(timeout)
        with self._condition:
            wait_for(self._condition, self.done, timeout)
        return time_left(deadline)

    def __await__(self) -> Generator[Any, None, R]:
        if not self.done():
            import asyncio

            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self.add_done_callback(functools.partial(_wake_waiter, loop, waiter))
            try:
                yield from waiter.__await__()
            except BaseException:  # the awaiting task was cancelled (or the coroutine closed)
                if not self.done():
                    self._abandon()
                raise
        return self.result()

    def _abandon(self) -> None:
        pool = self._anypool_pool() if self._anypool_pool is not None else None
        try:
            if pool is not None:
                pool.kill(self)  # cancels a queued task; stops a running one where it can
                return
        except Exception:  # best effort: the cancellation itself must reach the awaiter
            pass
        self.cancel()


class AwaitableSlotFuture(AwaitableFuture[R], SlotFuture):
    """An awaitable future holding a ``max_pending`` slot."""


def future_type(max_pending: bool) -> type[AwaitableFuture[Any]]:
    """The class of a Pool's futures: awaitable; holding a slot with ``max_pending``. The
    pool sets ``_anypool_pool`` on each, for cancellation."""
    return AwaitableSlotFuture if max_pending else AwaitableFuture


def _wake_waiter(
    loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], _: Future[Any]
) -> None:
    try:
        loop.call_soon_threadsafe(_set_waiter, waiter)
    except RuntimeError:  # the loop is closed: nobody awaits any more
        pass


def _set_waiter(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


# -- a blocking call in a thread of its own, awaited -------------------------------------------
async def _in_thread(fn: Callable[[], object], name: str) -> None:
    """Run ``fn()`` in a fresh thread and await it. A fresh thread, not the loop's default
    executor: that may be full of the program's own blocking calls. Cancelling the
    awaiting task does not stop ``fn``; the thread finishes on its own."""
    import asyncio

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def target() -> None:
        error: BaseException | None = None
        try:
            fn()
        except BaseException as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(_resolve, done, error)
        except RuntimeError:  # the loop closed meanwhile
            pass

    thread = threading.Thread(target=target, name=name)
    start_thread(thread)
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        done.cancel()  # the thread goes on; nobody wants its outcome any more
        raise
    thread.join()  # it has only its last line left


def _resolve(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


# -- async with Pool ---------------------------------------------------------------------------
async def exit_pool(pool: Pool, exc_type: type[BaseException] | None) -> None:
    """``Pool.__aexit__``: the ``with`` contract without blocking the loop. A cancelled
    task (Ctrl-C under ``asyncio.run`` cancels the main task) or KeyboardInterrupt stops
    at once: queued tasks cancelled, running ones killed where the backend can."""
    import asyncio

    stop_now = exc_type is not None and issubclass(
        exc_type, (KeyboardInterrupt, asyncio.CancelledError)
    )
    now = functools.partial(pool.shutdown, wait=True, cancel_pending=True, kill_running=True)
    try:
        await _in_thread(now if stop_now else pool.shutdown, "anypool-aio-shutdown")
    except asyncio.CancelledError:
        if not stop_now:  # cancelled while running tasks finish: stop them now
            await _in_thread(now, "anypool-aio-shutdown-now")
        raise


# -- async for / await over map ----------------------------------------------------------------
class ChunkWaiter:
    """What ``_MapState.arun`` awaits while no chunk is ready (see _map.AsyncWaiter)."""

    def __init__(self) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def arm(self) -> None:
        self._event.clear()

    def wake(self) -> None:  # any thread
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    async def wait(self) -> None:
        await self._event.wait()


def _driving_state(iterator: MapIterator[Any]) -> _MapState:
    # A wrapper (progress) drives an inner MapIterator; ``_map`` imports this module, so
    # the inner one is recognised by its ``_state`` slot rather than by isinstance.
    target: Any = iterator
    while target._state is None and hasattr(getattr(target, "_inner", None), "_state"):
        target = target._inner
    if target._state is None:
        raise TypeError(f"{type(iterator).__name__} drives no map to iterate asynchronously")
    state: _MapState = target._state
    return state


class AsyncMap(AsyncIterator[R]):
    """``async for`` over a map: lazy and bounded as the sync map; the loop never blocks
    waiting for a chunk. Leaving early (``break``, an exception, cancellation) closes the
    map: chunks not started are cancelled.

    The map's finalizers (the one-shot ``anypool.map`` shuts its pool down) block; they
    run in a thread of their own, awaited by ``aclose()`` and at the end of the stream,
    and started without waiting when an unfinished AsyncMap is garbage-collected.
    """

    def __init__(self, iterator: MapIterator[R]) -> None:
        state = _driving_state(iterator)
        if state.__dict__.get("_aio_taken"):
            raise TypeError("this map is already iterated with async for: iterate it once")
        state.__dict__["_aio_taken"] = True
        # consumed from now on: not a never-iterated map to drain when ``iterator`` is
        # garbage-collected (which it is as soon as ``async for`` holds this object)
        state.begin()
        # no reference to ``iterator``: when the ``async for`` drops this object (a
        # ``break``), asyncio's async-generator finalizer closes the stream at once
        self._state = state
        self._finalizers, state.finalizers = state.finalizers, []
        self._hook = getattr(iterator, "_hook", None)  # a progress bar (ProgressMapIterator)
        self._chunks: AsyncGenerator[Iterable[Any], None] | None = None
        self._items: Iterator[Any] = iter(())

    def __aiter__(self) -> AsyncMap[R]:
        return self

    async def __anext__(self) -> R:
        while True:
            try:
                return next(self._items)  # type: ignore[no-any-return]
            except StopIteration:
                pass
            except BaseException as exc:  # an item's exception (return_exceptions=False)
                await self._end(isinstance(exc, KeyboardInterrupt))
                raise
            try:
                self._items = iter(await self._next_chunk())
            except StopAsyncIteration:
                await self._end(False)
                raise
            except BaseException as exc:  # cancelled, or the input broke
                await self._end(isinstance(exc, KeyboardInterrupt))
                raise

    async def _next_chunk(self) -> Iterable[Any]:
        if self._chunks is None:
            if self._hook is not None:
                self._hook.start()
            self._chunks = self._state.arun(ChunkWaiter())
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        """Stop early: chunks not yet started are cancelled, running ones finish."""
        await self._end(False)

    async def _end(self, interrupted: bool) -> None:
        items, self._items = self._items, iter(())
        if isinstance(items, Generator):
            items.close()
        chunks = self._chunks
        if chunks is not None:
            await chunks.aclose()
        else:
            self._state.begin()
            self._state.stop(interrupted)
        if self._hook is not None:
            self._hook.close()
        finalizers, self._finalizers = self._finalizers, []
        if finalizers:
            await _in_thread(
                functools.partial(_run_finalizers, finalizers, interrupted), "anypool-aio-map-end"
            )

    def __del__(self) -> None:
        # left without aclose() (a ``break``): asyncio closes the chunk stream (an async
        # generator) itself; what blocks runs in a thread nobody waits for
        finalizers = self.__dict__.pop("_finalizers", None)  # None: __init__ raised
        if finalizers:
            thread = threading.Thread(
                target=_run_finalizers, args=(finalizers, False), name="anypool-aio-map-end"
            )
            try:
                start_thread(thread)
            except RuntimeError:  # interpreter shutdown: no new threads, nothing to block
                _run_finalizers(finalizers, False)


def _run_finalizers(finalizers: list[Callable[[bool], None]], interrupted: bool) -> None:
    for callback in finalizers:
        callback(interrupted)


def async_map(iterator: MapIterator[R]) -> AsyncMap[R]:
    """``MapIterator.__aiter__``."""
    return AsyncMap(iterator)


async def collect(iterator: MapIterator[R]) -> list[R]:
    """``await pool.map(...)``: every result, in a list."""
    stream = async_map(iterator)
    try:
        return [item async for item in stream]
    finally:
        await stream.aclose()


# -- coroutine functions on every backend ------------------------------------------------------
def is_coroutine_function(fn: object) -> bool:
    """``async def`` functions, partials of them and objects with an ``async def __call__``."""
    code = getattr(fn, "__code__", None)  # functions and methods: the fast path of submit()
    if code is not None and not hasattr(fn, "_is_coroutine_marker"):  # (3.12's mark)
        return bool(code.co_flags & inspect.CO_COROUTINE)
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004  (the class's, not a method)
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


class CoroutineCall:
    """A plain callable that runs ``fn(*args, **kwargs)``'s coroutine to its end on the
    calling thread's event loop (run_on_thread_loop), so that threads, process workers
    and inline run it as any function. Picklable when ``fn`` is. Past ``timeout`` the
    coroutine is cancelled and :class:`~anypool.TaskTimeout` raised."""

    __slots__ = ("__weakref__", "fn", "timeout")

    def __init__(self, fn: Callable[..., Any], timeout: float | None) -> None:
        self.fn = fn
        self.timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _loop_running_here():
            # inline from async code: loops cannot nest in one thread; the caller still waits
            # (inline runs tasks in the caller), on a helper thread's loop
            return _run_in_helper_thread(self, args, kwargs)
        return run_on_thread_loop(_with_timeout(self.fn, args, kwargs, self.timeout))

    def _anypool_run_chunk(self, items: Sequence[Any], star: bool) -> ChunkResult:
        """A map's chunk (_task.run_chunk): every item's coroutine on one event loop, up
        to COROUTINES_PER_CHUNK at once, each with its own timeout."""
        if _loop_running_here():
            chunk: ChunkResult = _run_in_helper_thread(self._anypool_run_chunk, (items, star), {})
            return chunk
        return run_on_thread_loop(_gather_chunk(self.fn, items, star, self.timeout))

    def _anypool_coroutine(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The call's coroutine, its timeout included, for a worker that runs it on an
        event loop of its own alongside others (a process worker: _backends._process._loop)."""
        return _with_timeout(self.fn, args, kwargs, self.timeout)

    def _anypool_chunk_coroutine(self, items: Sequence[Any], star: bool) -> Any:
        """A map chunk's coroutine (as ``_anypool_run_chunk``) for such a worker."""
        return _gather_chunk(self.fn, items, star, self.timeout)

    def __getattr__(self, name: str) -> Any:
        if name in ("__name__", "__qualname__"):  # names in statistics, timelines, errors
            return getattr(self.fn, name)
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:  # equal calls share the workers' function cache
        if not isinstance(other, CoroutineCall):
            return NotImplemented
        return self.fn == other.fn and self.timeout == other.timeout

    def __hash__(self) -> int:
        return hash((self.fn, self.timeout))

    def __getstate__(self) -> tuple[Callable[..., Any], float | None]:
        return self.fn, self.timeout

    def __setstate__(self, state: tuple[Callable[..., Any], float | None]) -> None:
        self.fn, self.timeout = state

    def __repr__(self) -> str:
        return f"<coroutine function {self.fn!r} on its thread's event loop>"


async def _with_timeout(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    if timeout is None:
        return await fn(*args, **kwargs)
    import asyncio

    job = asyncio.ensure_future(fn(*args, **kwargs))
    done, _ = await asyncio.wait({job}, timeout=timeout)
    if done:
        return job.result()
    job.cancel()  # at its next await; the backend's deadline covers one that never yields
    try:
        await job
    except asyncio.CancelledError:
        pass
    raise TaskTimeout(f"coroutine {fn_name(fn)} ran past its timeout of {timeout:g} s (cancelled)")


async def _gather_chunk(
    fn: Callable[..., Any], items: Sequence[Any], star: bool, timeout: float | None
) -> ChunkResult:
    import asyncio

    room = asyncio.Semaphore(COROUTINES_PER_CHUNK)

    async def one(item: Any) -> Any:
        async with room:
            return await _with_timeout(fn, tuple(item) if star else (item,), {}, timeout)

    start = time.perf_counter()
    outcomes = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, BaseException):  # an Exception, or CancelledError it raised
            errors[index] = outcome
            values.append(None)
        else:
            values.append(outcome)
    return ChunkResult(values, errors, time.perf_counter() - start)


def _loop_running_here() -> bool:
    running = sys.modules.get("asyncio")
    return running is not None and running._get_running_loop() is not None


def _run_in_helper_thread(call: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Any:
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, call(*args, **kwargs)))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="anypool-inline-coroutine")
    start_task_thread(thread)  # it runs a task (anypool._local._threads)
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def coroutine_chunksize(iterables: tuple[Iterable[Any], ...], workers: int) -> int:
    """``map``'s chunk size for a coroutine function: a chunk's items run at once, so a
    chunk is how many requests a worker has in flight. Sized so that each worker gets 2
    chunks of a sized input, at most COROUTINES_PER_CHUNK (an endless input gets that).
    The adaptive chunker would not do: it sizes chunks by time per item, and a chunk of
    waiting coroutines takes as long for 1 item as for 100."""
    first = iterables[0]
    if len(iterables) > 1 or not isinstance(first, Sized):
        return COROUTINES_PER_CHUNK
    share = -(-len(first) // (2 * workers))  # ceil
    return max(1, min(COROUTINES_PER_CHUNK, share))


def wrap_coroutine_function(
    fn: Callable[..., Any], timeout: float | None
) -> tuple[Callable[..., Any], float | None]:
    """``fn`` as a CoroutineCall, and the backend's deadline: timeout + COROUTINE_GRACE_S."""
    deadline = None if timeout is None else timeout + COROUTINE_GRACE_S
    return CoroutineCall(fn, timeout), deadline


def weak_pool(pool: Pool) -> Callable[[], Pool | None]:
    return weakref.ref(pool)
