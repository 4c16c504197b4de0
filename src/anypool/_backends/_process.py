"""Process backend: worker processes, each on its own pipe, run by one dispatcher thread.

::

    Pool.submit ─► pickle args (caller's thread) ─► TaskQueue ─┐ wake pipe
                                                               ▼
                       ┌──────────── dispatcher thread ─────────────┐
                       │ wait() on: wake pipe, every worker's pipe, │
                       │            every worker's exit sentinel    │
                       │ - send tasks to workers with room (≤2 each)│
                       │ - read results ─► task.settle / task.fail  │
                       │ - worker died ─► fail (or retry) only the  │
                       │   task it was running, requeue the task it │
                       │   had not started, start a replacement     │
                       └──────┬──────────────────────────▲──────────┘
                          Pipe│ task                     │ result
                              ▼                          │
                       worker process (_process_worker.worker_main)

    Deadlines thread ── task timeout ──► terminate that worker (SIGTERM, then
                                         SIGKILL after a grace); the death
                                         path above fails it with TaskTimeout

Because each worker has its own pipe and runs its tasks in the order sent,
the dispatcher always knows which task a dead worker was running: the first
one it has not answered. A worker is sent a second task only if it is small
enough to sit in the pipe's buffer, so the dispatcher never blocks on a send
while that worker blocks sending a result back.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import CancelledError
from typing import Any

from .._exceptions import PoolClosed, SerializationError, TaskTimeout
from .._process_errors import BrokenProcessPool, WorkerCrashed
from .._runtime import default_start_method
from .._serialization import FunctionCache, dumps, dumps_call
from .._task import Task
from .._workers._deadlines import Deadlines
from .._workers._queue import TaskQueue
from .._workers._registry import register_for_exit
from ..abc import Backend, BackendConfig, Capabilities
from ._process_worker import FN_CACHE_SIZE, INIT_FAILED, WorkerSpec, worker_main

__all__ = ["ProcessBackend", "backend_class", "describe_exit"]

_START_METHODS = ("fork", "forkserver", "spawn")
# A second task is queued in a busy worker's pipe only below this size: a pipe
# buffers 64 KiB on Linux, so a send this small never blocks the dispatcher.
_PREFETCH_MAX_BYTES = 16 * 1024
# After SIGTERM, a stopped worker gets this long before SIGKILL.
_TERM_GRACE_S = 0.5
# Workers asked to exit at shutdown get this long before they are killed.
_EXIT_GRACE_S = 5.0
_SIGNAL_HINTS = {
    signal.SIGKILL: "possibly by the OOM killer or an external `kill -9`",
    signal.SIGSEGV: "the task crashed the interpreter (a bug in C code, or ctypes)",
    signal.SIGTERM: "it was terminated from outside",
    signal.SIGABRT: "the interpreter or a C library aborted",
}


def describe_exit(pid: int, exitcode: int | None) -> str:
    """Human-readable cause of a worker's death, naming pid, code or signal, likely cause."""
    if exitcode is None:
        return f"worker process {pid} stopped responding"
    if exitcode < 0:
        sig = signal.Signals(-exitcode)
        hint = _SIGNAL_HINTS.get(sig, "a signal ended it")
        return f"worker process {pid} was killed by signal {-exitcode} ({sig.name}): {hint}"
    return (
        f"worker process {pid} exited with code {exitcode} while running the task "
        "(os._exit(), or a C library called exit())"
    )


class _Worker:
    """The dispatcher's view of one worker process."""

    def __init__(self, process: Any, conn: Any, label: str) -> None:
        self.process = process
        self.conn = conn
        self.label = label
        self.inflight: deque[tuple[int, Task]] = deque()  # sent, unanswered; [0] is running
        self.sent = 0
        self.functions: OrderedDict[int, None] = OrderedDict()  # mirrors the worker's LRU
        self.stopping = False  # terminated by us (timeout, kill, shutdown): gets no work
        self.retiring = False  # resized away: gets no work, is asked to exit once idle

    @property
    def running(self) -> Task | None:
        return self.inflight[0][1] if self.inflight else None

    @property
    def accepts_work(self) -> bool:
        return not (self.stopping or self.retiring)


class ProcessBackend(Backend):
    name = "process"
    capabilities = Capabilities(
        kills_running_tasks=True,
        shares_memory=False,
        needs_pickling=True,
        isolates_crashes=True,
        parallel_cpu=True,
    )

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._ctx = self._context(config)
        self._queue = TaskQueue(config.order)
        self._functions = FunctionCache()
        self._lock = threading.RLock()
        self._workers: dict[int, _Worker] = {}  # keyed by id(process)
        self._closed = False
        self._cancel_on_close = False
        self._target = config.workers
        self._ids = itertools.count()
        self._labels = itertools.count()
        self._deadlines = Deadlines("anypool-process-deadlines")
        self._spec_initializer = (
            dumps((config.initializer, config.initargs), "the initializer")
            if config.initializer is not None
            else None
        )
        self._wake_r, self._wake_w = os.pipe()
        self._wake_pending = False
        self.restarts = 0
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="anypool-process-dispatcher", daemon=True
        )
        self._dispatcher.start()
        register_for_exit(self)

    @staticmethod
    def _context(config: BackendConfig) -> Any:
        import multiprocessing

        ctx = config.options.get("mp_context")
        unknown = set(config.options) - {"mp_context"}
        if unknown:
            raise TypeError(f"unknown option(s) for the process backend: {sorted(unknown)}")
        if ctx is not None:
            return ctx
        method = default_start_method() if config.start_method is None else config.start_method
        if method not in _START_METHODS:
            raise ValueError(f"start_method must be one of {_START_METHODS}, got {method!r}")
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            # workers forked from the server start with these already imported
            ctx.set_forkserver_preload(["anypool._backends._process_worker", "cloudpickle"])
        return ctx

    # -- submission (caller's thread) ---------------------------------------------------------
    def submit(self, task: Task) -> None:
        # Pickling here, in the caller's thread, fails a bad call at once and keeps the
        # dispatcher free; the function blob rides along so its id stays stable.
        try:
            fn_id, fn_blob = self._functions.get(task.fn)
            args_blob = dumps_call(task.fn, task.args, task.kwargs, task.chunk)
        except SerializationError as exc:
            task.fail(exc)  # only this future fails; the pool is untouched
            return
        task.payload = (fn_id, fn_blob, args_blob)
        with self._lock:
            if self.broken is not None:
                raise self.broken
            if self._closed:
                raise PoolClosed("cannot submit: the pool is shut down")
            self._queue.put(task)
            self._wake()

    def _wake(self) -> None:
        """Nudge the dispatcher; one byte per burst of submits is enough. Caller holds the lock."""
        if not self._wake_pending:
            self._wake_pending = True
            os.write(self._wake_w, b"x")

    # -- the dispatcher thread ----------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        from multiprocessing.connection import wait

        try:
            while not self._finished():
                self._spawn_as_needed()
                self._send_work()
                if self._finished():
                    # _send_work may have dropped the last (cancelled) queued tasks: no
                    # event will come to wake wait() below, so check again first
                    break
                waitables = self._waitables()
                for ready in wait(waitables):
                    self._handle_ready(ready)
        finally:
            self._stop_all_workers()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _waitables(self) -> list[Any]:
        with self._lock:
            workers = list(self._workers.values())
        return [self._wake_r] + [w.conn for w in workers] + [w.process.sentinel for w in workers]

    def _handle_ready(self, ready: Any) -> None:
        if ready == self._wake_r:
            with self._lock:
                os.read(self._wake_r, 4096)
                self._wake_pending = False
            return
        for worker in list(self._workers.values()):
            if ready is worker.conn:
                self._drain(worker)
            elif ready == worker.process.sentinel:
                self._on_exit(worker)

    def _finished(self) -> bool:
        with self._lock:
            if not self._closed:
                return False
            if self.broken is not None or self._cancel_on_close:
                return True
            return not self._queue and all(not w.inflight for w in self._workers.values())

    # -- starting workers ---------------------------------------------------------------------
    def _active(self) -> int:
        """Workers that will take more tasks (not retiring, not being stopped)."""
        limit = self.config.max_tasks_per_worker
        return sum(
            1
            for w in self._workers.values()
            if w.accepts_work and (limit is None or w.sent < limit)
        )

    def _spawn_as_needed(self) -> None:
        with self._lock:
            if self.broken is not None:
                return
            idle = sum(1 for w in self._workers.values() if not w.inflight and w.accepts_work)
            missing = min(self._target - self._active(), len(self._queue) - idle)
        for _ in range(max(0, missing)):
            self._spawn()

    def _spawn(self) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        spec = WorkerSpec(
            os.getpid(),
            self._spec_initializer,
            self.config.max_tasks_per_worker,
            self.config.max_worker_memory,
        )
        label = f"anypool-process-{next(self._labels)}"
        process = self._ctx.Process(target=worker_main, args=(child_conn, spec), name=label)
        process.start()
        child_conn.close()
        with self._lock:
            self._workers[id(process)] = _Worker(process, parent_conn, label)

    # -- sending work -------------------------------------------------------------------------
    def _can_take(self, worker: _Worker) -> bool:
        limit = self.config.max_tasks_per_worker
        if not worker.accepts_work or (limit is not None and worker.sent >= limit):
            return False
        return len(worker.inflight) < 2

    @staticmethod
    def _size(worker: _Worker, task: Task) -> int:
        fn_id, fn_blob, args_blob = task.payload
        return len(args_blob) + (0 if fn_id in worker.functions else len(fn_blob))

    def _send_work(self) -> None:
        """Hand queued tasks to workers, least loaded first, until none has room."""
        while True:
            # tasks may have arrived since the loop's spawn check: start workers for them
            # first, or they would be sent ahead into a busy worker's pipe and wait behind
            # its task (a deadlock if that task waits for them, e.g. on a Barrier)
            self._spawn_as_needed()
            with self._lock:
                workers = sorted(self._workers.values(), key=lambda w: len(w.inflight))
                worker = next((w for w in workers if self._can_take(w)), None)
                task = self._queue.get_nowait() if worker is not None else None
                if worker is None or task is None:
                    return
                if worker.inflight and self._size(worker, task) > _PREFETCH_MAX_BYTES:
                    self._queue.push_front(task)  # too big to wait in a busy worker's pipe
                    return
            self._send(worker, task)

    def _message(self, worker: _Worker, task: Task, task_id: int) -> bytes:
        fn_id, fn_blob, args_blob = task.payload
        if fn_id in worker.functions:
            worker.functions.move_to_end(fn_id)
            fn_blob = None
        else:
            worker.functions[fn_id] = None
            if len(worker.functions) > FN_CACHE_SIZE:
                worker.functions.popitem(last=False)
        return dumps((task_id, fn_id, fn_blob, task.chunk, task.star, args_blob), "the task")

    def _send(self, worker: _Worker, task: Task) -> None:
        if not task.mark_started(worker.label):
            return  # cancelled while queued
        task_id = next(self._ids)
        data = self._message(worker, task, task_id)
        with self._lock:
            worker.inflight.append((task_id, task))
            worker.sent += 1
            if len(worker.inflight) == 1:
                self._arm_timeout(worker, task)
        try:
            worker.conn.send_bytes(data)
        except OSError:
            pass  # the worker died; its sentinel fires and _on_exit requeues or fails the task

    # -- timeouts and kills -------------------------------------------------------------------
    def _arm_timeout(self, worker: _Worker, task: Task) -> None:
        """Start the clock on the task the worker is now running. Caller holds the lock."""
        task.started_at = time.monotonic()
        if task.timeout is not None:
            attempt = task.attempts
            self._deadlines.schedule(
                task.started_at + task.timeout, lambda: self._expire(worker, task, attempt)
            )

    def _expire(self, worker: _Worker, task: Task, attempt: int) -> None:
        with self._lock:
            if worker.running is not task or task.attempts != attempt or task.future.done():
                return
        task.fail(
            TaskTimeout(
                f"task {getattr(task.fn, '__qualname__', task.fn)!r} ran longer than its timeout "
                f"of {task.timeout} s; its worker (pid {worker.process.pid}) was stopped"
            )
        )
        self._stop_worker(worker)

    def kill(self, task: Task) -> bool:
        with self._lock:
            worker = next((w for w in self._workers.values() if w.running is task), None)
        if worker is None:
            return False
        task.fail(CancelledError("the task was killed by Pool.kill()"))
        self._stop_worker(worker)
        return True

    def _stop_worker(self, worker: _Worker) -> None:
        """SIGTERM now, SIGKILL after a grace period if it is still alive."""
        with self._lock:
            worker.stopping = True
        process = worker.process
        if process.exitcode is None:
            process.terminate()
            self._deadlines.schedule(time.monotonic() + _TERM_GRACE_S, lambda: _kill(process))

    # -- results and deaths -------------------------------------------------------------------
    def _drain(self, worker: _Worker) -> None:
        """Read every result the worker has sent so far."""
        import pickle

        try:
            while worker.conn.poll():
                self._on_message(worker, pickle.loads(worker.conn.recv_bytes()))
        except (EOFError, OSError):
            pass  # the worker is gone; its sentinel will fire

    def _on_message(self, worker: _Worker, message: tuple[int, bool, Any]) -> None:
        task_id, ok, value = message
        if task_id == INIT_FAILED:
            self._break(BrokenProcessPool(f"a worker initializer failed: {value!r}"), value)
            return
        with self._lock:
            sent_id, task = worker.inflight.popleft()
            assert sent_id == task_id, "workers answer in the order tasks were sent"
            if worker.inflight:
                self._arm_timeout(worker, worker.inflight[0][1])
            elif worker.retiring:
                self._ask_to_exit(worker)
        if ok:
            task.settle(value)
        else:
            task.fail(value)

    def _on_exit(self, worker: _Worker) -> None:
        self._drain(worker)  # results sent before death still count
        worker.process.join()
        with self._lock:
            self._workers.pop(id(worker.process), None)
            lost = [task for _, task in worker.inflight]
            worker.inflight.clear()
        worker.conn.close()
        if lost:
            self.restarts += 1
            self._recover(worker, lost[0], started=True)
            for task in reversed(lost[1:]):
                self._recover(worker, task, started=False)

    def _recover(self, worker: _Worker, task: Task, *, started: bool) -> None:
        """Decide the fate of a task its worker died with: requeue, retry or fail."""
        if task.future.done():
            return  # it timed out or was killed: already failed
        if not started:
            task.attempts -= 1  # it never ran
            self._requeue(task)
        elif task.attempts <= task.retries:
            self._requeue(task)
        else:
            cause = describe_exit(worker.process.pid, worker.process.exitcode)
            task.fail(WorkerCrashed(f"{cause}; the pool replaced it and carries on"))

    def _requeue(self, task: Task) -> None:
        if self._cancel_on_close or self.broken is not None:
            task.fail(CancelledError("the pool shut down before the task could be retried"))
        else:
            self._queue.push_front(task)

    def _break(self, error: BaseException, cause: BaseException) -> None:
        error.__cause__ = cause
        with self._lock:
            if self.broken is None:
                self.broken = error
            self._closed = True
            lost = [t for w in self._workers.values() for _, t in w.inflight]
        for task in self._queue.drain() + lost:
            task.fail(error)
        for worker in list(self._workers.values()):
            self._stop_worker(worker)

    def _stop_all_workers(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            self._ask_to_exit(worker)
        deadline = time.monotonic() + _EXIT_GRACE_S
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                _kill(worker.process)
                worker.process.join()
            for _, task in worker.inflight:
                task.fail(CancelledError("the pool shut down while the task ran"))
            worker.conn.close()
        with self._lock:
            self._workers.clear()
        self._deadlines.stop()

    # -- lifecycle ----------------------------------------------------------------------------
    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
            if cancel_pending or kill_running:
                for task in self._queue.drain():
                    task.cancel_pending()
            if kill_running:
                self._cancel_on_close = True
                workers = list(self._workers.values())
            else:
                workers = []
            if self._dispatcher.is_alive():
                self._wake()
        for worker in workers:
            if worker.running is not None:
                worker.running.fail(CancelledError("the pool was shut down with kill_running=True"))
            self._stop_worker(worker)
        if wait and self._dispatcher is not threading.current_thread():
            self._dispatcher.join()

    def workers_alive(self) -> int:
        with self._lock:
            return sum(1 for w in self._workers.values() if w.process.is_alive())

    def pending(self) -> int:
        return len(self._queue)

    def resize(self, workers: int) -> None:
        with self._lock:
            self._target = workers
            surplus = [w for w in self._workers.values() if w.accepts_work][workers:]
            for worker in surplus:
                worker.retiring = True  # gets no new tasks; asked to exit once idle
                if not worker.inflight:
                    self._ask_to_exit(worker)
            self._wake()

    @staticmethod
    def _ask_to_exit(worker: _Worker) -> None:
        try:
            worker.conn.send_bytes(b"N.")  # pickle of None: exit after the current task
        except OSError:
            pass  # already gone


def _kill(process: Any) -> None:
    if process.exitcode is None:
        try:
            process.kill()
        except (OSError, ValueError):
            pass


backend_class = ProcessBackend
