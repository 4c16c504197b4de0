"""A backend written as a third party would: against ``anypool.abc`` alone, no private import.

The contract suite runs on it unchanged (tests/contract/conftest.py registers it), which
is what shows that ``anypool.abc`` is enough to write a backend: a minimal pool of
threads, with a FIFO queue, the initializer, and ``shutdown``'s three options::

    submit(task) ─► queue.Queue ─► N threads: task.mark_started ─► call ─► settle / fail
    shutdown(kill_running=True) ─► running tasks fail with CancelledError (abandoned)
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import CancelledError

import anypool
from anypool.abc import Backend, BackendConfig, Capabilities, Task

NAME = "thirdparty"
_STOP = None  # the queue's sentinel: one per thread


class ThirdPartyBackend(Backend):
    """Threads that run tasks in submission order; no timeouts, retries or priorities."""

    name = NAME
    capabilities = Capabilities(
        kills_running_tasks=False,
        shares_memory=True,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,
        supports_priority=False,
        supports_retries=False,
        supports_timeouts=False,
        runs_initializer=True,
    )

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._lock = threading.Lock()
        self._running: set[Task] = set()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"{NAME}-{i}", daemon=True)
            for i in range(config.workers)
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self) -> None:
        if self.config.initializer is not None:
            try:
                self.config.initializer(*self.config.initargs)
            except Exception as exc:
                self.broken = anypool.BrokenPool(f"the initializer failed: {exc!r}")
        while (task := self._queue.get()) is not _STOP:
            if self.broken is not None:
                task.fail(self.broken)
            elif task.mark_started(NAME):
                self._call(task)

    def _call(self, task: Task) -> None:
        with self._lock:
            self._running.add(task)
        try:
            value = task.run()  # a call's value, or a map chunk's ChunkResult
        except BaseException as exc:
            task.fail(exc)
        else:
            task.settle(value)
        finally:
            with self._lock:
                self._running.discard(task)

    def submit(self, task: Task) -> None:
        if self.broken is not None:
            raise self.broken
        with self._lock:
            if self._closed:
                raise anypool.PoolClosed("cannot submit: the pool is shut down")
            self._queue.put(task)

    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
            running = list(self._running)
        if cancel_pending or kill_running:
            self._cancel_queued()
        for _ in self._threads:
            self._queue.put(_STOP)
        if kill_running:  # a thread cannot be stopped: its task is abandoned
            for task in running:
                task.fail(CancelledError("the pool was shut down with kill_running=True"))
        elif wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _cancel_queued(self) -> None:
        while True:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                return
            if task is not _STOP:
                task.cancel_pending()

    def workers_alive(self) -> int:
        return sum(1 for thread in self._threads if thread.is_alive())

    def pending(self) -> int:
        return self._queue.qsize()
