"""The pending-task queue shared by the local backends, with FIFO, LIFO or priority order.

Producers (``Pool.submit``, ``map``) ``put``; worker threads or the process
dispatcher ``get``. Closing wakes every waiter so shutdown never hangs::

    submit ──put──► [ deque | stack | heap ] ──get──► worker thread / dispatcher
                         ▲ close(): get() returns None once empty
                         └ drain(): take everything (cancel_pending)
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque

from .._task import Task
from ..abc import Order

__all__ = ["TaskQueue"]


class TaskQueue:
    """A thread-safe queue of tasks; order is fixed at construction."""

    def __init__(self, order: Order = "fifo") -> None:
        self.order = order
        self._fifo: deque[Task] = deque()
        self._heap: list[tuple[float, int, Task]] = []
        self._ready = threading.Condition(threading.Lock())
        self._closed = False

    def __len__(self) -> int:
        return len(self._heap) if self.order == "priority" else len(self._fifo)

    def put(self, task: Task) -> None:
        with self._ready:
            if self.order == "priority":
                # seq breaks ties: equal priorities keep submission order
                heapq.heappush(self._heap, (task.priority, task.seq, task))
            else:
                self._fifo.append(task)
            self._ready.notify()

    def _pop(self) -> Task:
        if self.order == "priority":
            return heapq.heappop(self._heap)[2]
        return self._fifo.pop() if self.order == "lifo" else self._fifo.popleft()

    def get(self, timeout: float | None = None) -> Task | None:
        """Next task, or None when closed and empty (or when ``timeout`` passes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not len(self):
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._ready.wait(remaining)
            return self._pop()

    def get_nowait(self) -> Task | None:
        with self._ready:
            return self._pop() if len(self) else None

    def push_front(self, task: Task) -> None:
        """Requeue a task ahead of the rest (a retry, or a task a dead worker never started)."""
        with self._ready:
            if self.order == "priority":
                heapq.heappush(self._heap, (float("-inf"), task.seq, task))
            elif self.order == "lifo":
                self._fifo.append(task)
            else:
                self._fifo.appendleft(task)
            self._ready.notify()

    def drain(self) -> list[Task]:
        """Remove and return every queued task."""
        with self._ready:
            tasks = [entry[2] for entry in self._heap] + list(self._fifo)
            self._heap.clear()
            self._fifo.clear()
            return tasks

    def close(self) -> None:
        """No more puts are expected: waiters get None once the queue is empty."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
