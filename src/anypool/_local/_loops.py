"""The event loop each thread reuses for coroutine work, and initializers that are coroutines.

::

    thread (a pool's worker thread, a process worker's main thread, the inline caller)
      └─ thread_loop() ─► one event loop per thread and process, made on first use
            ├─ run_on_thread_loop(coro): a coroutine task, to its end (as asyncio.run: what
            │                            it left behind is cancelled)
            ├─ run_initializer(init):    an ``async def`` initializer, on that same loop
            └─ a process worker's loop (_backends._process._loop) serves on it

An ``async def`` initializer runs on the loop that later runs the worker's coroutine tasks,
so what it makes for the loop (a client session, a connection pool) works in those tasks;
a plain initializer runs as it always has. ``asyncio`` is imported only when a coroutine
comes: this module is imported by every process worker and must stay cheap.
"""

from __future__ import annotations

import os
import threading
import types
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "close_thread_loop",
    "run_initializer",
    "run_on_thread_loop",
    "thread_loop",
    "worker_loop",
]

R = TypeVar("R")


class _ThreadLoop:
    """The event loop that one thread reuses for its coroutine tasks: ``asyncio.run``
    makes and closes a loop per call (~100-600 µs on the 2-core VM; reusing one: ~40).
    Each call ends as ``asyncio.run`` ends one: tasks the coroutine left behind are
    cancelled. The loop closes when the thread's locals go (the thread exits)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        import asyncio

        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop() if loop is None else loop
        # kept for __del__, which may run at interpreter exit, when nothing can be imported
        self._running_loop = asyncio._get_running_loop
        self.keep: set[asyncio.Task[Any]] = set()  # left running by an async initializer
        if threading.current_thread() is not threading.main_thread():
            # asyncio.get_event_loop() in a worker thread's code (a library's, a task's)
            # then finds this loop instead of raising; a main thread's is the user's own
            asyncio.set_event_loop(self.loop)

    def run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        loop = self.loop
        task = loop.create_task(coroutine)
        try:
            return loop.run_until_complete(task)
        finally:
            _cancel_leftovers(loop, self.keep)

    def __del__(self) -> None:
        if self.pid != os.getpid():
            # inherited through fork: its epoll instance and self-pipe are the parent's,
            # and closing them here would unregister the parent's fds. Never closed.
            _FORKED_AWAY.append(self)
            return
        try:
            self.close()
        except Exception:
            # collected in a cycle (a task's traceback held the loop) together with the
            # loop's own sockets, which the collector may have finalized first: nothing
            # is left to close, and a destructor must not print
            pass

    def close(self) -> None:
        """Close the loop as ``asyncio.run`` ends: async generators finalized first."""
        loop = self.loop
        if loop.is_closed() or loop.is_running():
            return
        try:
            # The garbage collector can run __del__ in any thread, also one that runs a
            # loop of its own (asyncio.run in the user's main thread), where no other loop
            # may run: the async generators are then left to their own finalizers.
            if self._running_loop() is None:
                loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


_THREAD_LOOPS = threading.local()
_FORKED_AWAY: list[_ThreadLoop] = []


def _holder() -> _ThreadLoop:
    holder: _ThreadLoop | None = getattr(_THREAD_LOOPS, "holder", None)
    if holder is None or holder.pid != os.getpid() or holder.loop.is_closed():
        if holder is not None and holder.pid != os.getpid():
            _FORKED_AWAY.append(holder)
        holder = _THREAD_LOOPS.holder = _ThreadLoop()
    return holder


def close_thread_loop() -> None:
    """Close this thread's loop, if it has one: a pool's worker thread calls this as it
    ends. Left to the thread's end, the loop would close only when its holder is freed,
    and a task's traceback (a coroutine that raised) can keep it in a reference cycle
    until the garbage collector runs, in whatever thread, after the loop's own sockets."""
    holder: _ThreadLoop | None = getattr(_THREAD_LOOPS, "holder", None)
    if holder is not None and holder.pid == os.getpid():
        _THREAD_LOOPS.holder = None
        holder.close()


def thread_loop() -> asyncio.AbstractEventLoop:
    """This thread's reused event loop (made now if it has none)."""
    return _holder().loop


def run_on_thread_loop(coroutine: Coroutine[Any, Any, R]) -> R:
    """Run ``coroutine`` to its end on this thread's reused event loop."""
    return _holder().run(coroutine)


def run_initializer(initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
    """Call a pool's initializer; an ``async def`` one is run to its end on this thread's
    loop, the one the worker's coroutine tasks run on (it was called and never awaited,
    silently: a session it opened never existed). Tasks it leaves running keep running."""
    result = initializer(*initargs)
    if isinstance(result, types.CoroutineType):
        import asyncio

        if asyncio._get_running_loop() is not None:  # the inline backend, from async code
            result.close()
            raise RuntimeError(
                f"the async def initializer {getattr(initializer, '__qualname__', initializer)} "
                "cannot run in a thread whose event loop is already running (the inline "
                "backend called from async code runs each coroutine task on a helper "
                "thread's loop); use the thread or process backend, or a plain initializer"
            )
        holder = _holder()
        holder.loop.run_until_complete(result)
        holder.keep = asyncio.all_tasks(holder.loop)


def worker_loop() -> asyncio.AbstractEventLoop:
    """The loop a process worker serves its coroutine tasks on, made the current one: the
    one an ``async def`` initializer ran on; else the one a plain initializer got from
    ``asyncio.get_event_loop()`` (what it made for that loop then works in the tasks:
    "attached to a different loop" otherwise); else a new one."""
    import asyncio

    holder: _ThreadLoop | None = getattr(_THREAD_LOOPS, "holder", None)
    if holder is None or holder.pid != os.getpid() or holder.loop.is_closed():
        # no public way to ask for the current loop without making one (3.10-3.13). A loop
        # the parent made current is never seen here: workers fork from the dispatcher
        # thread, whose thread-local loop is unset (checked on 3.10 with a fork test)
        local = getattr(asyncio.get_event_loop_policy(), "_local", None)
        current = getattr(local, "_loop", None)
        usable = current is not None and not current.is_closed() and not current.is_running()
        holder = _THREAD_LOOPS.holder = _ThreadLoop(current if usable else None)
    asyncio.set_event_loop(holder.loop)
    return holder.loop


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, keep: set[asyncio.Task[Any]]) -> None:
    import asyncio

    left = asyncio.all_tasks(loop) - keep
    if left:
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
