"""The pending-task queue shared by the local backends, with FIFO, LIFO or priority order.

Producers (``Pool.submit``, ``map``) ``put``; worker threads or the process
dispatcher ``get``. Closing wakes every waiter so shutdown never hangs::

    submit ──put──► [ deque | stack | heap ] ──get──► worker thread / dispatcher
                         ▲ close(): get() returns None once empty
                         └ drain(): take everything (cancel_pending)
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections import deque

from .._task import Task
from ..abc import Order
from ._threads import deadline_in, time_left

__all__ = ["SimpleFifo", "TaskQueue", "make_queue"]


class TaskQueue:
    """A thread-safe queue of tasks; order is fixed at construction."""

    def __init__(self, order: Order = "fifo") -> None:
        self.order = order
        self._fifo: deque[Task] = deque()
        self._heap: list[tuple[float, int, Task]] = []
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._waiting = 0  # getters blocked in wait(); put() notifies only when there are some
        self._wakes = 0  # getters still to wake with None (see wake())
        self._closed = False

    def __len__(self) -> int:
        return len(self._heap) if self.order == "priority" else len(self._fifo)

    def put(self, task: Task) -> None:
        # Every submit's path: the plain lock, and Condition.notify (three Python calls)
        # only when a getter waits, which a busy pool's getters never do.
        with self._lock:
            if self.order == "priority":
                # seq breaks ties: equal priorities keep submission order
                heapq.heappush(self._heap, (task.priority, task.seq, task))
            else:
                self._fifo.append(task)
            if self._waiting:
                self._ready.notify()

    def _pop(self) -> Task:
        if self.order == "priority":
            return heapq.heappop(self._heap)[2]
        return self._fifo.pop() if self.order == "lifo" else self._fifo.popleft()

    def get(self, timeout: float | None = None) -> Task | None:
        """Next task, or None when closed and empty (or when ``timeout`` passes)."""
        deadline = deadline_in(timeout)
        with self._ready:
            while not len(self) or self._wakes:
                if self._wakes:  # before any task: resize() wants a getter to look again
                    self._wakes -= 1
                    return None
                if self._closed:
                    return None
                remaining = time_left(deadline)
                if remaining == 0:
                    return None
                self._waiting += 1
                try:
                    self._ready.wait(remaining)
                finally:
                    self._waiting -= 1
            return self._pop()

    def get_nowait(self) -> Task | None:
        with self._lock:
            if self.order == "fifo":  # the common case, without the two calls below
                return self._fifo.popleft() if self._fifo else None
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

    def wake(self, getters: int) -> None:
        """Make up to ``getters`` waiting getters return None now, as if their timeout
        passed: the pool shrank, and idle workers above its new size must retire at once,
        not take one more task each (resize)."""
        with self._ready:
            self._wakes += getters
            self._ready.notify_all()

    def close(self) -> None:
        """No more puts are expected: waiters get None once the queue is empty."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()


_CLOSED = object()  # SimpleFifo's end marker: whoever gets it puts it back for the next getter
_WAKE = object()  # SimpleFifo's wake-up (see TaskQueue.wake): its getter returns None


class SimpleFifo:
    """TaskQueue's interface for FIFO order without ``push_front``, on ``queue.SimpleQueue``.

    The thread backend's queue with no ordering options: put and get are C calls with the
    wake-up built in, as ``ThreadPoolExecutor``'s queue is, where TaskQueue's Condition
    costs an idle getter a fresh lock per wait and a put a Python ``notify``. Close puts
    an end marker behind the tasks already queued; a getter that takes it puts it back,
    so every getter sees the end once the queue is empty.
    """

    order: Order = "fifo"

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        self._wakes = 0  # wake-ups queued and not taken yet: not tasks
        self._wakes_lock = threading.Lock()  # rare: only resize() and its getters take it
        self.put = self._queue.put  # type: ignore[method-assign,assignment]  # no Python frame

    def __len__(self) -> int:
        # the marker, once queued, is not a task (momentarily out while a getter holds it)
        return max(0, self._queue.qsize() - self._closed - self._wakes)

    def put(self, task: Task) -> None:
        self._queue.put(task)

    def get(self, timeout: float | None = None) -> Task | None:
        """Next task, or None when closed and empty (or when ``timeout`` passes)."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        return self._task_or_end(item)

    def get_nowait(self) -> Task | None:
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        return self._task_or_end(item)

    def _task_or_end(self, item: object) -> Task | None:
        if item is _CLOSED:
            self._queue.put(item)
            return None
        if item is _WAKE:
            with self._wakes_lock:
                self._wakes -= 1
            return None
        return item  # type: ignore[return-value]

    def drain(self) -> list[Task]:
        """Remove and return every queued task."""
        tasks: list[Task] = []
        for _ in range(self._queue.qsize()):  # what is queued now; markers come out as None
            task = self.get_nowait()
            if task is not None:
                tasks.append(task)
        return tasks

    def wake(self, getters: int) -> None:
        """TaskQueue.wake: a wake-up per getter, behind the tasks already queued (a getter
        is idle only while the queue is empty, so it takes one at once)."""
        for _ in range(getters):
            with self._wakes_lock:
                self._wakes += 1
            self._queue.put(_WAKE)

    def close(self) -> None:
        """No more puts are expected: getters get None once the queue is empty."""
        if not self._closed:
            self._closed = True
            self._queue.put(_CLOSED)


def make_queue(order: Order) -> TaskQueue | SimpleFifo:
    """The queue a thread pool's workers drain: the C one unless an order needs TaskQueue."""
    return SimpleFifo() if order == "fifo" else TaskQueue(order)
