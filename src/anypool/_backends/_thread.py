"""Thread backend: worker threads in this process pull tasks from a shared queue.

::

    Pool.submit ─► TaskQueue (fifo/lifo/priority) ─► worker thread ─► task.run()
                                                          │
              future.result() ◄── task.settle / fail ◄────┘
    Deadlines thread ── timeout ──► fail(TaskTimeout), abandon the stuck
                                    thread, start a replacement
    Pool.kill(future) ─────────────► fail(CancelledError), the same

Threads are started on demand, up to ``workers``. A thread cannot be killed in
CPython: a timed-out task's thread is *abandoned* (it finishes on its own and
its result is discarded) and a fresh thread keeps the pool at full strength.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from concurrent.futures import CancelledError

from .._errors._exceptions import BrokenThreadPool, PoolClosed, TaskTimeout, fresh_copy
from .._local._atexit import register_for_exit
from .._local._deadlines import Deadlines, Handle
from .._local._loops import close_thread_loop, run_initializer
from .._local._queue import make_queue
from .._local._threads import start_task_thread
from .._task import Task, overran
from ..abc import Backend, BackendConfig, Capabilities

__all__ = ["ThreadBackend", "backend_class"]

_pool_ids = itertools.count()

# An idle worker re-checks whether the pool shrank (resize) this often; waking
# sooner costs CPU on idle pools, later delays giving threads back.
_IDLE_POLL_S = 0.5


class _Worker:
    __slots__ = ("abandoned", "lock", "name", "task", "thread")

    def __init__(self, name: str) -> None:
        self.task: Task | None = None
        self.abandoned = False
        # guards task/abandoned between the worker and a timeout or kill() abandoning it;
        # its own, not the pool's lock, which submit() holds while it queues the next task
        # (taking that one after every task cost ~7 us per task, measured)
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.name = name  # the thread's, read per task without Thread.name's property call


class ThreadBackend(Backend):
    name = "thread"
    capabilities = Capabilities(
        kills_running_tasks=False,
        shares_memory=True,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,  # the engine overrides this on free-threaded builds
        runs_initializer=True,
        names_threads=True,
    )

    @classmethod
    def default_workers(cls) -> int:
        """The stdlib's ``min(32, cpus + 4)``: threads mostly wait (IO), so one per CPU
        would leave the CPUs idle; more than 32 costs memory on big machines for little."""
        from .._runtime import usable_cpus

        return min(32, usable_cpus() + 4)

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self._queue = make_queue(config.order)  # FIFO: C SimpleQueue, as ThreadPoolExecutor's
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        # One token per worker not running a task. A deque because append, pop and len are
        # atomic: the per-task path then never takes the pool lock, which the submitting
        # thread would otherwise queue behind (measured: ~75 -> ~45 us per submit+result).
        self._idle: deque[None] = deque()
        self._target = config.workers
        self._closed = False
        self._restarts = 0  # threads started in place of abandoned (timed-out) ones
        self._deadlines: Deadlines | None = None
        self._names = itertools.count()
        self._prefix = config.thread_name_prefix or f"anypool-thread-{next(_pool_ids)}"
        register_for_exit(self)

    # -- submission -------------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        with self._lock:
            if self.broken is not None:
                raise fresh_copy(self.broken)
            if self._closed:
                raise PoolClosed("cannot submit: the pool is shut down")
            self._queue.put(task)
            if self._short_of_workers():
                self._spawn()

    def _short_of_workers(self) -> bool:
        """Room for another thread, and more queued tasks than idle workers (in this order:
        a pool at full strength, the common case, answers without measuring the queue)."""
        return len(self._workers) < self._target and len(self._idle) < len(self._queue)

    def _spawn(self) -> None:
        """Start one worker thread, counted idle until it takes a task; caller holds the lock."""
        name = f"{self._prefix}_{next(self._names)}"
        worker = _Worker(name)
        worker.thread = threading.Thread(target=self._work, args=(worker,), name=name, daemon=True)
        self._workers.add(worker)
        self._idle.append(None)
        # tasks run here, and a process a task starts inherits the thread's signal mask:
        # a subprocess must still get the terminal's Ctrl-C (anypool._local._threads)
        start_task_thread(worker.thread)

    # -- the worker loop ----------------------------------------------------------------------
    # ``_idle`` holds a token per worker not running a task. A worker gives its token up when
    # it takes a task and puts it back *before* it publishes the result: the caller woken by
    # that result often submits the next task at once, and that task must find this thread
    # idle, not start a new one (CPython's test_idle_thread_reuse).
    def _work(self, worker: _Worker) -> None:
        try:
            if not self._initialize():
                self._retire(worker)
                return
            while (task := self._next_task(worker)) is not None:
                abandoned = self._run_one(worker, task)
                # An idle worker must not keep its last task (function, arguments, result)
                # alive while it waits for the next one: CPython issue 16284.
                del task
                if abandoned:  # a replacement took this slot while we were stuck
                    return
        finally:
            close_thread_loop()  # the loop its coroutine tasks ran on, if any

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            self._retire_locked(worker)

    def _retire_locked(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        self._idle.pop()

    def _run_one(self, worker: _Worker, task: Task) -> bool:
        """Run one task; True if the worker was abandoned meanwhile and must exit."""
        if not task.mark_started(worker.name):
            self._idle.append(None)  # cancelled while queued: nothing ran
            return False
        worker.task = task
        handle = self._watch(task, worker) if task.timeout is not None else None
        try:
            ok, outcome = True, task.run()
        except BaseException as exc:
            ok, outcome = False, exc
        if handle is not None:
            handle.cancel()
        with worker.lock:  # _expire() and kill() check worker.task under it
            worker.task = None
            abandoned = worker.abandoned
        if not abandoned:  # an abandoned thread was replaced: it no longer counts
            self._idle.append(None)
        if ok:
            task.settle(outcome)
        else:
            task.fail(outcome)
        return abandoned

    def _initialize(self) -> bool:
        if self.config.initializer is None:
            return True
        try:
            run_initializer(self.config.initializer, self.config.initargs)
        except BaseException as exc:
            self._break(BrokenThreadPool(f"a thread initializer failed: {exc!r}"), exc)
            return False
        return True

    def _next_task(self, worker: _Worker) -> Task | None:
        """The next task (the worker then counts as busy), or None once it has retired: the
        pool broke, shrank, or was closed with nothing left to run. Called while idle."""
        while True:
            # The retire checks read without the lock first: a stale read delays a
            # retirement by one task, and the check under the lock below is exact.
            if self.broken is None and len(self._workers) <= self._target:
                task = self._queue.get_nowait()  # a busy pool: no lock, no wait
                if task is not None:
                    return self._taken(task)
            with self._lock:
                if self.broken is not None or len(self._workers) > self._target:
                    self._retire_locked(worker)  # pool broke or shrank: this thread retires
                    return None
                if self._closed and not len(self._queue):
                    self._retire_locked(worker)
                    return None
            task = self._queue.get(timeout=_IDLE_POLL_S)
            if task is not None:
                return self._taken(task)

    def _taken(self, task: Task) -> Task:
        """This worker took ``task``: it gives up its idle token. A submit() that came
        between the take and here counted it idle and may not have started a thread for
        its task: make up for that (rare, so the lock is taken only then)."""
        self._idle.pop()
        if self._short_of_workers():
            with self._lock:
                if self._short_of_workers() and not self._closed:
                    self._spawn()
        return task

    # -- timeouts ---------------------------------------------------------------------------
    def _watch(self, task: Task, worker: _Worker) -> Handle:
        with self._lock:
            if self._deadlines is None:
                self._deadlines = Deadlines(f"{self._prefix}-deadlines")
        assert task.timeout is not None
        return self._deadlines.schedule(
            time.monotonic() + task.timeout, lambda: self._expire(task, worker)
        )

    def _expire(self, task: Task, worker: _Worker) -> None:
        if self._leave_behind(task, worker):
            task.fail(
                TaskTimeout(
                    f"{overran(task)}; a thread cannot be killed, so it was abandoned: it "
                    "keeps running in the background and a new thread took its place"
                )
            )

    def kill(self, task: Task) -> bool:
        """A thread cannot be stopped: a running task is abandoned as after a timeout (its
        future fails at once, the call finishes in the background and its result is
        dropped, a new thread takes the worker's place), so that Pool.kill, and an
        awaiting coroutine that is cancelled, need not wait for it, nor shutdown after."""
        with self._lock:
            worker = next((w for w in self._workers if w.task is task), None)
        if worker is None or not self._leave_behind(task, worker):
            return False
        task.fail(
            CancelledError(
                "the task was killed while it ran; a thread cannot be stopped, so it was "
                "abandoned: it keeps running in the background and its result is dropped"
            )
        )
        return True

    def _leave_behind(self, task: Task, worker: _Worker) -> bool:
        """Abandon ``worker`` if it still runs ``task``, and start a thread in its place;
        False if the task finished first."""
        with worker.lock:
            if worker.task is not task or worker.abandoned:
                return False  # finished just in time, or abandoned already
            worker.abandoned = True
        with self._lock:
            self._workers.discard(worker)
            if not self._closed:
                self._spawn()  # keep the pool at full strength
                self._restarts += 1
        return True

    # -- lifecycle --------------------------------------------------------------------------
    def _break(self, error: BaseException, cause: BaseException) -> None:
        error.__cause__ = cause
        with self._lock:
            if self.broken is None:
                self.broken = error
            self._workers = {w for w in self._workers if w.thread is not threading.current_thread()}
        for task in self._queue.drain():
            task.fail(fresh_copy(error))
        self._queue.close()

    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        if cancel_pending or kill_running:
            for task in self._queue.drain():
                task.cancel_pending()
        self._queue.close()
        if kill_running:
            for worker in workers:
                self._abandon(worker)
        elif wait:
            for worker in workers:
                if worker.thread is not None and worker.thread is not threading.current_thread():
                    worker.thread.join()
        if self._deadlines is not None and (wait or kill_running):
            self._deadlines.stop()

    def _abandon(self, worker: _Worker) -> None:
        task = worker.task
        if task is not None:
            worker.abandoned = True
            task.fail(
                CancelledError(
                    "the pool was shut down with kill_running=True while this task ran; "
                    "a thread cannot be stopped, so it was abandoned"
                )
            )

    def workers_alive(self) -> int:
        with self._lock:
            return sum(1 for w in self._workers if w.thread is not None and w.thread.is_alive())

    def worker_restarts(self) -> int:
        with self._lock:
            return self._restarts

    def pending(self) -> int:
        return len(self._queue)

    def resize(self, workers: int) -> None:
        with self._lock:
            self._target = workers
            # grow only as far as queued work needs; idle threads above the target retire
            for _ in range(min(workers - len(self._workers), len(self._queue) - len(self._idle))):
                self._spawn()
            surplus = min(len(self._workers) - workers, len(self._idle))
        if surplus > 0:
            # now: an idle thread asleep in get() would take one more task before it looked
            # (a rate limit of 1 after resize(1) saw 4 tasks at once)
            self._queue.wake(surplus)


backend_class = ThreadBackend
