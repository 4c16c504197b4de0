"""One daemon thread that fires callbacks at deadlines (task timeouts, timers).

::

    schedule(when, fn) ──► heap ──► watcher thread sleeps until the earliest
                                    deadline, pops it and calls fn() there

Callbacks run on the watcher thread, so they must be quick (set a flag,
terminate a process, submit a task) and must not block.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from ._threads import start_thread

__all__ = ["Deadlines", "Handle"]


class Handle:
    """Returned by :meth:`Deadlines.schedule`; ``cancel()`` stops the callback if not yet fired.

    Cancelling drops the callback at once: a cancelled entry stays in the heap until its
    time comes, and must not keep a finished task (and its result) alive until then.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], object] | None) -> None:
        self.fn = fn

    @property
    def cancelled(self) -> bool:
        return self.fn is None

    def cancel(self) -> None:
        self.fn = None


class Deadlines:
    def __init__(self, name: str = "anypool-deadlines") -> None:
        self._name = name
        self._heap: list[tuple[float, int, Handle]] = []
        self._order = itertools.count()
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, when: float, fn: Callable[[], object]) -> Handle:
        """Call ``fn()`` at ``time.monotonic() >= when``."""
        handle = Handle(fn)
        with self._wake:
            if self._stopped:
                handle.cancel()
                return handle
            if self._thread is None:
                # started before the entry goes in: a thread that cannot start (interpreter
                # shutdown) raises here and leaves no entry that would never fire
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                start_thread(thread)
                self._thread = thread
            heapq.heappush(self._heap, (when, next(self._order), handle))
            self._wake.notify()
        return handle

    def _next_due(self) -> Callable[[], object] | None:
        """Wait for the earliest live deadline; None once stopped."""
        with self._wake:
            while not self._stopped:
                if self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                    continue
                delay = self._heap[0][0] - time.monotonic() if self._heap else None
                if delay is not None and delay <= 0:
                    fn = heapq.heappop(self._heap)[2].fn
                    if fn is not None:
                        return fn
                    continue
                self._wake.wait(delay)
            return None

    def _run(self) -> None:
        while (fn := self._next_due()) is not None:
            try:
                fn()
            except Exception:
                # a failing callback must not end this thread: every later deadline would
                # silently never fire
                import traceback

                traceback.print_exc()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._heap.clear()
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
