"""asyncio backend: coroutines run on one event loop in a dedicated thread.

::

    Pool.submit ─call_soon_threadsafe─► asyncio queue (fifo/lifo/priority)
                                              │  `workers` consumer coroutines
                                              ▼
                    coroutine fn: await fn(...)   (timeout: cancelled at its next await)
                    plain fn:     await loop.run_in_executor(...)   (a thread; abandoned
                                                   on timeout and on kill_running=True;
                                                   a map chunk's items: one call)
                                              │
    future.result() ◄── task.settle / fail ◄──┘ (a concurrent.futures.Future)

``workers`` bounds how many tasks are in progress at once — for IO-bound
coroutines it is a concurrency limit, not a thread count, so thousands are fine.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

from .._errors._exceptions import BrokenPool, PoolClosed, TaskTimeout, fresh_copy
from .._local._atexit import register_for_exit
from .._local._threads import start_task_thread
from .._task import ChunkResult, Task, overran, run_chunk
from ..abc import Backend, BackendConfig, Capabilities

__all__ = ["AsyncioBackend", "backend_class"]

_QUEUES: dict[str, Callable[[], asyncio.Queue[Any]]] = {
    "fifo": asyncio.Queue,
    "lifo": asyncio.LifoQueue,
    "priority": asyncio.PriorityQueue,
}
# Default concurrency: asyncio tasks are cheap, IO-bound work wants many in flight.
_DEFAULT_CONCURRENCY = 100


async def _call(fn: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Any:
    """Await a coroutine function; run a plain one in a thread so it cannot block the loop."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    loop = asyncio.get_running_loop()
    value = await loop.run_in_executor(None, lambda: fn(*args, **kwargs))
    if inspect.isawaitable(value):  # a plain function that returned a coroutine
        return await value
    return value


async def _run_chunk(fn: Callable[..., Any], items: Any, star: bool) -> ChunkResult:
    """A chunk is one unit of work: a plain function's items run one after another in one
    thread (one hop to the executor, not one per item), a coroutine function's on the loop."""
    start = time.perf_counter()
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    if inspect.iscoroutinefunction(fn):
        for index, item in enumerate(items):
            try:
                values.append(await fn(*(item if star else (item,))))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # SystemExit too: it fails its item only
                values.append(None)
                errors[index] = exc
    else:
        loop = asyncio.get_running_loop()
        done = await loop.run_in_executor(None, run_chunk, fn, items, star)
        values, errors = done.values, done.errors
        await _await_returned(values, errors)
    return ChunkResult(values, errors, time.perf_counter() - start)


async def _await_returned(values: list[Any], errors: dict[int, BaseException]) -> None:
    """A plain function that returned a coroutine: await it on the loop, as _call does."""
    for index, value in enumerate(values):
        if inspect.isawaitable(value):
            try:
                values[index] = await value
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                values[index] = None
                errors[index] = exc


class _Failed:
    """A task's SystemExit or KeyboardInterrupt, carried as its outcome."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _work(task: Task) -> Any:
    """The task's call or chunk. asyncio re-raises SystemExit and KeyboardInterrupt out of
    the loop, which would end this pool's thread: the task's own become its outcome."""
    try:
        if task.chunk:
            return await _run_chunk(task.fn, task.args, task.star)
        return await _call(task.fn, task.args, task.kwargs)
    except (SystemExit, KeyboardInterrupt) as exc:
        return _Failed(exc)


class AsyncioBackend(Backend):
    name = "asyncio"
    capabilities = Capabilities(
        kills_running_tasks=False,  # coroutines are cancelled, but plain functions are not
        shares_memory=True,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,
        runs_initializer=True,
        names_threads=True,  # the loop's thread
        awaits_coroutines=True,
    )

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._order = itertools.count()
        self._closed = False
        self._killed = False  # shut down with kill_running=True
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._consumers: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[Any]] = set()
        self._queue: asyncio.Queue[Any] | None = None
        name = config.thread_name_prefix or "anypool-asyncio"
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        start_task_thread(self._thread)  # it runs tasks (anypool._local._threads)
        self._started.wait()
        register_for_exit(self)

    @classmethod
    def default_workers(cls) -> int:
        return _DEFAULT_CONCURRENCY

    # -- the loop thread ----------------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._queue = _QUEUES[self.config.order]()
        try:  # before any consumer exists, so no task can run un-initialized
            self._loop.run_until_complete(self._initialize())
        except Exception as exc:
            self.broken = BrokenPool(f"the asyncio backend's initializer failed: {exc!r}")
            self.broken.__cause__ = exc
        self._consumers = [
            self._loop.create_task(self._consume()) for _ in range(self.config.workers)
        ]
        self._loop.call_soon(self._started.set)
        self._loop.run_forever()
        if self._killed:  # kill_running abandons the threads that run plain functions, as
            # the thread backend does (close() does not wait for them); one more turn of
            # the loop delivers _stop's own result to shutdown() first
            self._loop.run_until_complete(asyncio.sleep(0))
        else:
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()

    async def _initialize(self) -> None:
        if self.config.initializer is not None:
            await _call(self.config.initializer, self.config.initargs, {})

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            task: Task = (await self._queue.get())[2]
            try:
                if self.broken is not None:
                    task.fail(self.broken)
                elif task.mark_started("asyncio"):
                    await self._run(task)
            finally:
                self._queue.task_done()

    async def _run(self, task: Task) -> None:
        job = asyncio.ensure_future(_work(task))
        self._running.add(job)
        try:
            value = await asyncio.wait_for(job, task.timeout)
        except asyncio.TimeoutError as exc:
            if not job.cancelled():
                task.fail(exc)  # the task raised TimeoutError itself
            else:
                task.fail(TaskTimeout(overran(task)))
        except asyncio.CancelledError:
            task.fail(CancelledError("the pool was shut down with kill_running=True"))
        except BaseException as exc:
            task.fail(exc)
        else:
            if isinstance(value, _Failed):
                task.fail(value.error)
            else:
                task.settle(value)
        finally:
            self._running.discard(job)

    # -- the caller's side --------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        if self.broken is not None:
            raise fresh_copy(self.broken)
        if self._closed:
            raise PoolClosed("cannot submit: the pool is shut down")
        priority = task.priority if self.config.order == "priority" else 0
        self._loop.call_soon_threadsafe(self._put, (priority, task.seq, task))

    def _put(self, entry: tuple[float, int, Task]) -> None:
        assert self._queue is not None
        self._queue.put_nowait(entry)

    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        if self._closed:
            if wait and self._thread is not threading.current_thread():
                self._thread.join()
            return
        self._closed = True
        self._killed = kill_running
        future = asyncio.run_coroutine_threadsafe(
            self._stop(cancel_pending or kill_running, kill_running), self._loop
        )
        if wait and self._thread is not threading.current_thread():
            future.result()
            self._thread.join()

    async def _stop(self, cancel_pending: bool, kill_running: bool) -> None:
        assert self._queue is not None
        if cancel_pending:
            while not self._queue.empty():
                self._queue.get_nowait()[2].cancel_pending()
                self._queue.task_done()
        if kill_running:
            for job in list(self._running):
                job.cancel()
        await self._queue.join()  # whatever order the queue has, every task is done first
        for consumer in self._consumers:
            consumer.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._loop.stop()

    def workers_alive(self) -> int:
        return sum(1 for c in self._consumers if not c.done()) if self._thread.is_alive() else 0

    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0


backend_class = AsyncioBackend
