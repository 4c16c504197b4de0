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
                          Pipe│ task                     │ READY, then header + result
          (+ memfd segment of │ its large buffers,       │ (+ segment of the result's
             SCM_RIGHTS: _protocol, anypool._wire._shm)  │  large buffers)
                              ▼                          │
                       worker process (_child.worker_main)

    Deadlines thread ── task timeout ──► terminate that worker (SIGTERM, then
                                         SIGKILL after a grace); the death
                                         path above requeues what it had not run

Because each worker has its own pipe and runs its tasks in the order sent,
the dispatcher always knows which task a dead worker was running: the first
one it has not answered. A worker is sent a second task only if it is small
enough to sit in the pipe's buffer, so the dispatcher never blocks on a send
while that worker blocks sending a result back.

Every answer starts with a fixed header naming its task, so a result that
cannot be unpickled here fails only that task, never the dispatcher. How a
worker ended decides the fate of the tasks it held:

- we stopped it (timeout, ``Pool.kill``, shutdown) or it announced that it
  retires (``max_tasks_per_worker``, ``max_worker_memory``): the task it was
  stopped for is already resolved; every other task never ran and is requeued;
- it died before saying READY: nothing ran; its tasks are requeued, and the
  pool breaks if workers cannot start (an import crash; an initializer that
  raised, which it said, breaks the pool once it has exited);
- it died while running a task: that task is retried (``retries=``) or fails
  with :class:`~anypool.WorkerCrashed`; the one waiting behind it is requeued.

No wait here blocks for good: docs/failure-model.md ("No hang, by construction")
gives the rule that wakes each one.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import signal
import threading
import time
from collections import OrderedDict
from concurrent.futures import CancelledError, Future
from typing import Any

from ..._errors._exceptions import PoolClosed, SerializationError, TaskTimeout, fresh_copy
from ..._errors._process import (
    BrokenProcessPool,
    TaskUnpicklingError,
    WorkerCrashed,
    WorkersCannotStart,
)
from ..._local._atexit import closed_message, register_for_exit
from ..._local._deadlines import Deadlines, Handle
from ..._local._queue import TaskQueue
from ..._local._threads import start_thread
from ..._runtime import MAIN_GUARD_EXIT, MAIN_GUARD_MESSAGE, check_main_guard, default_start_method
from ..._scheduler._select import Decision, fixed_decision
from ..._task import ChunkResult, Task, chunk_outcomes, overran, runs_at_once
from ..._wire import _shm
from ..._wire._pickle import (
    FunctionCache,
    carried_initializer,
    dumps,
    dumps_call,
    dumps_chunk,
)
from ...abc import Backend, BackendConfig, Capabilities
from ._child import WorkerSpec, worker_main
from ._loop import MAX_CONCURRENCY
from ._protocol import (
    ARGS_FAILED,
    ARGS_RELEASED,
    CAPACITY,
    FN_CACHE_SIZE,
    HEADER,
    INIT_FAILED,
    OK,
    READY,
    RETIRING,
    body_offset,
    recv_segment,
    send_segment,
)

__all__ = ["ProcessBackend", "backend_class", "describe_exit"]

_START_METHODS = ("fork", "forkserver", "spawn")
# A second task is queued in a busy worker's pipe only below this size: a pipe
# buffers 64 KiB on Linux, so a send this small never blocks the dispatcher.
_PREFETCH_MAX_BYTES = 16 * 1024
# ... and only for a function whose tasks were measured to take less than this. A task
# queued behind another in one worker's pipe waits for it even while another worker sits
# idle (the stdlib's shared call queue has no such problem): behind a 3 s task, a 20 ms
# one finished at 3 s instead of at once. Prefetching only saves the round trip between
# two tasks (~0.1 ms), which matters for tiny tasks and is under 2 % of longer ones.
_PREFETCH_MAX_TASK_S = 0.005
# Functions whose task durations are remembered for that; the oldest is forgotten first.
_DURATIONS_KEPT = 256
# A coroutine task that Pool.kill() cancelled has this long to answer (it is cancelled at
# its next await); one that has not, does not yield, and its worker is stopped.
_CANCEL_GRACE_S = 1.0
# A coroutine cancelled by its own timeout= answers within this in a healthy worker.
_ANSWER_MARGIN_S = 0.05
# After SIGTERM, a stopped worker gets this long before SIGKILL.
_TERM_GRACE_S = 0.5
# Workers asked to exit at shutdown get this long before they are killed.
_EXIT_GRACE_S = 5.0
# A worker whose initializer failed breaks the pool when it exits (so that what it sent on
# its way out has arrived); one still alive after this long is stopped. Its exit normally
# takes milliseconds; this only bounds one that a non-daemon thread of its own holds up.
_INIT_EXIT_GRACE_S = 1.0
# Workers killed from outside (SIGKILL, SIGTERM: the OOM killer, an operator) before they
# were ready are replaced; this many in a row means workers cannot start, and the pool
# breaks instead of starting processes forever. Any other early death breaks it at once.
_MAX_STARTUP_KILLS = 10
# Starting a worker is tried this often before the pool breaks: a forkserver killed from
# outside makes one start fail, and multiprocessing starts a new server on the next.
_SPAWN_ATTEMPTS = 4
_SPAWN_BACKOFF_S = 0.05  # doubled per attempt: 0.35 s in all before the pool breaks
_SIGNAL_HINTS: dict[int, str] = {
    signal.SIGKILL: "possibly by the OOM killer or an external `kill -9`",
    signal.SIGSEGV: "the task crashed the interpreter (a bug in C code, or ctypes)",
    signal.SIGBUS: "the task crashed the interpreter (a bad memory access in C code)",
    signal.SIGTERM: "it was terminated from outside",
    signal.SIGABRT: "the interpreter or a C library aborted",
}


def describe_exit(pid: int, exitcode: int | None, doing: str = "running the task") -> str:
    """Human-readable cause of a worker's death: pid, exit code or signal, likely cause."""
    if exitcode is None:
        return f"worker process {pid} stopped responding while {doing}"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        hint = _SIGNAL_HINTS.get(-exitcode, "a signal ended it")
        signalled = f"was killed by signal {-exitcode} ({name})"
        return f"worker process {pid} {signalled} while {doing}: {hint}"
    return (
        f"worker process {pid} exited with code {exitcode} while {doing} "
        "(os._exit(), or a C library called exit())"
    )


def _fn_name(task: Task) -> str:
    return getattr(task.fn, "__qualname__", None) or repr(task.fn)


def _crash_error(task: Task, worker: _Worker) -> WorkerCrashed:
    process = worker.process
    crash = describe_exit(process.pid, process.exitcode, f"running {_fn_name(task)}")
    if worker.stop_reason:  # a coroutine on its loop would not yield: we stopped it
        crash = (
            f"worker process {process.pid} was stopped while running {_fn_name(task)}, "
            f"because {worker.stop_reason} on the same event loop"
        )
    tries = f" (attempt {task.attempts} of {task.retries + 1})" if task.retries else ""
    error = WorkerCrashed(f"{crash}{tries}; the pool replaced the worker and carries on")
    error.pid, error.exitcode = process.pid, process.exitcode
    return error


class _Worker:
    """The dispatcher's view of one worker process."""

    def __init__(self, process: Any, conn: Any, label: str, concurrency: int | None) -> None:
        self.process = process
        self.conn = conn
        self.label = label
        # sent, unanswered, in the order sent: the first one runs, or all of them if at_once
        self.inflight: dict[int, Task] = {}
        # its tasks are coroutine calls, running side by side on its event loop (_loop)
        self.at_once = False
        self.load = 0  # tasks in flight; coroutines in flight if at_once (a chunk's items)
        self.concurrency = concurrency or 1  # coroutines it asks for (its CAPACITY messages)
        self.busy: float | None = None  # how busy its loop was, as it last measured
        self.cancels: list[int] = []  # running coroutine tasks Pool.kill() stopped: to send
        # ... and those not answered yet: until they are, it gets no new work (a coroutine
        # that does not yield to the cancel blocks its loop, and its worker will be stopped)
        self.cancelling: set[int] = set()
        self.stop_reason = ""  # why we stopped it while coroutines ran (their error says)
        self.sent = 0
        self.functions: OrderedDict[int, None] = OrderedDict()  # mirrors the worker's LRU
        self.ready = False  # said READY: its initializer ran, tasks now run for real
        self.stopping = False  # terminated by us (timeout, kill, shutdown): gets no work
        self.retiring = False  # resized away or retiring itself: gets no work, then exits
        self.announced_exit = False  # it said it exits: what is left in its pipe never ran
        self.doomed: set[int] = set()  # ids of waiting tasks Pool.kill() stopped
        self.deadlines: dict[int, Handle | None] = {}  # running tasks' timeouts, by id
        self.init_error: BaseException | None = None  # its initializer raised this
        # segments of the arguments sent to it (by task id until its verdict, then reused),
        # and of its results mapped here, whose verdicts go with the next task sent to it
        self.segments = _shm.Segments()
        self.results: list[tuple[int, _shm.Mapped]] = []

    def running(self) -> list[Task]:
        """The tasks it runs now: the first one sent, or every one if at_once."""
        tasks = list(self.inflight.values())
        return tasks if self.at_once else tasks[:1]

    def runs(self, task: Task) -> bool:
        return any(t is task for t in self.running())

    @property
    def accepts_work(self) -> bool:
        return not (self.stopping or self.retiring or self.init_error is not None)

    def holds(self, task: Task) -> int | None:
        """The id under which ``task`` was sent to this worker, if it is in flight here."""
        return next((task_id for task_id, t in self.inflight.items() if t is task), None)


class ProcessBackend(Backend):
    name = "process"
    capabilities = Capabilities(
        kills_running_tasks=True,
        shares_memory=False,
        needs_pickling=True,
        isolates_crashes=True,
        parallel_cpu=True,
        runs_initializer=True,
        has_start_methods=True,
        recycles_workers=True,
        limits_worker_memory=True,
    )
    accepted_options = frozenset({"mp_context", "concurrency"})

    def __init__(self, config: BackendConfig) -> None:
        # a worker importing an unguarded script stops here: the dispatcher started below
        # would start a forkserver at once, which multiprocessing refuses during that import
        check_main_guard()
        super().__init__(config)
        self._ctx = self._context(config)
        _launch_resource_tracker_here(self._ctx)
        # coroutines each worker runs at once: fixed, or None (each worker measures)
        self._concurrency = check_concurrency(config.options.get("concurrency"))
        self._coroutines: tuple[int, float | None] | None = None  # last CAPACITY heard
        self._queue = TaskQueue(config.order)
        self._functions = FunctionCache()
        self._lock = threading.RLock()
        self._workers: dict[int, _Worker] = {}  # keyed by id(process)
        self._closed = False
        self._cancel_on_close = False
        self._target = config.workers
        self._ids = itertools.count()
        self._labels = itertools.count()
        self._startup_kills = 0
        # seconds per task, by function id: whether its tasks may wait in a busy pipe
        self._durations: dict[int, float] = {}
        self._deadlines = Deadlines("anypool-process-deadlines")
        # travels in the Process's arguments, so that multiprocessing's Value, Lock & co.
        # in initargs reach workers as the stdlib passes them (see Carried)
        # (and, for workers that do not fork, the parent's logging setup)
        self._spec_initializer = carried_initializer(
            config.initializer, config.initargs, self._ctx.get_start_method()
        )
        self._wake_r, self._wake_w = os.pipe()
        self._wake_open = True
        self._wake_pending = False
        self._restarts = 0
        # Set when the dispatcher has stopped every worker. shutdown() waits on this, not on
        # Thread.join(): on Python < 3.13 a join() interrupted by Ctrl-C can leave a thread
        # that still runs marked as stopped, and every later join() returns at once.
        self._dispatcher_done = threading.Event()
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="anypool-process-dispatcher", daemon=True
        )
        # SIGINT blocked from birth (anypool._local._threads says why); _prepare_thread
        # blocks it again after launching the resource tracker, which unblocks it
        start_thread(self._dispatcher)
        register_for_exit(self)

    @staticmethod
    def _context(config: BackendConfig) -> Any:
        import multiprocessing

        ctx = config.options.get("mp_context")
        if ctx is not None:
            return ctx
        method = default_start_method() if config.start_method is None else config.start_method
        if method not in _START_METHODS:
            raise ValueError(f"start_method must be one of {_START_METHODS}, got {method!r}")
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            # workers forked from the server start with these already imported; ctypes is
            # for PR_SET_PDEATHSIG in every worker (~5 ms per worker start otherwise), and
            # _wire._pickle/_runtime unpickle the start-up payload (the parent's logging
            # setup, the initializer: ~9 ms more per start, which a pool that replaces
            # killed workers pays each time)
            preload = [
                "anypool._backends._process._child",
                "anypool._wire._pickle",
                "anypool._runtime",
                "cloudpickle",
                "ctypes",
            ]
            ctx.set_forkserver_preload(preload)
        elif method == "fork":
            import ctypes  # noqa: F401  forked workers inherit it, as above
        return ctx

    # -- submission (caller's thread) ---------------------------------------------------------
    def submit(self, task: Task) -> None:
        # Pickling here, in the caller's thread, fails a bad call at once and keeps the
        # dispatcher free; the function blob rides along so its id stays stable.
        try:
            task.payload = self._pickle(task)
        except SerializationError as exc:
            task.fail(exc)  # only this future fails; the pool is untouched
            return
        if task.chunk and len(task.payload[3]) == task.n_items:
            task.settle(_merge_failed_items(ChunkResult([], {}, 0.0), task.payload[3]))
            return  # not one item pickles: nothing to run
        with self._lock:
            if self.broken is not None:
                raise fresh_copy(self.broken)
            if self._closed:
                raise PoolClosed(closed_message())
            self._queue.put(task)
            self._wake()

    def _pickle(self, task: Task) -> tuple[int, bytes, _shm.Encoded, dict[int, BaseException]]:
        """(function id, function blob, arguments blob, items left out because they do not
        pickle); a chunk's bad items fail alone, the rest of the chunk still runs."""
        fn_id, fn_blob = self._functions.get(task.fn)
        if task.chunk:
            args_blob, bad = dumps_chunk(task.fn, list(task.args), task.star)
            return fn_id, fn_blob, args_blob, bad
        return fn_id, fn_blob, dumps_call(task.fn, task.args, task.kwargs), {}

    def _wake(self) -> None:
        """Nudge the dispatcher; one byte per burst of submits is enough. Caller holds the lock."""
        if self._wake_open and not self._wake_pending:
            # write before setting the flag: a KeyboardInterrupt between the two then costs
            # one spare wake-up instead of a dispatcher that is never woken again
            os.write(self._wake_w, b"x")
            self._wake_pending = True

    # -- the dispatcher thread ----------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        # shutdown() and the at-exit hook wait on _dispatcher_done: whatever fails below
        # (even the clean-up, e.g. a thread that cannot start at interpreter shutdown),
        # every future is resolved and the event is set, last (docs/failure-model.md)
        try:
            try:
                self._prepare_thread()
                while not self._finished():
                    self._step()
            except BaseException as exc:  # a bug here must fail futures, never hang them
                # the traceback stays whole here: this is a bug, and a broken pool's
                # memory (until the garbage collector runs) is the lesser cost
                message = f"the process pool's dispatcher failed: {exc!r}"
                self._break(BrokenProcessPool(message), exc)
            finally:
                self._stop_all_workers()
        finally:
            try:
                self._fail_leftovers()
                self._drop_initializer()
                with self._lock:
                    self._wake_open = False
                    os.close(self._wake_r)
                    os.close(self._wake_w)
            finally:
                self._dispatcher_done.set()

    def _drop_initializer(self) -> None:
        """No worker starts any more: let go of initargs, which may hold multiprocessing
        objects (a Queue's semaphores stay registered with the resource tracker while they
        live) even while a reference cycle elsewhere keeps this backend alive."""
        self._spec_initializer = None
        self.config = dataclasses.replace(self.config, initializer=None, initargs=())

    def _fail_leftovers(self) -> None:
        """Fail whatever a failed clean-up left unresolved; normally there is nothing."""
        with self._lock:
            self._closed = True
            lost = [t for w in self._workers.values() for t in w.inflight.values()]
            workers = list(self._workers.values())
        for task in self._queue.drain() + lost:
            task.fail(CancelledError("the pool shut down before the task finished"))
        for worker in workers:
            _kill(worker.process)
            worker.segments.close()

    def _prepare_thread(self) -> None:
        """Start the forkserver (if used) with SIGINT blocked, like the workers below."""
        if self._ctx.get_start_method() == "fork":
            _block_sigint()
            return
        from multiprocessing import forkserver, resource_tracker

        # Launching the resource tracker unblocks SIGINT in the calling thread when done,
        # so it goes first (it blocks SIGINT for itself).
        resource_tracker.ensure_running()
        _block_sigint()
        if self._ctx.get_start_method() == "forkserver":
            # The forkserver ignores SIGINT only once it has imported its preload modules;
            # started with SIGINT blocked, a Ctrl-C then cannot print a traceback from it.
            # Processes it forks start with SIGINT blocked too; ours unblock it at once.
            forkserver.ensure_running()

    def _step(self) -> None:
        from multiprocessing.connection import wait

        self._spawn_as_needed()
        self._send_work()
        if self._finished():
            # _send_work may have dropped the last (cancelled) queued tasks: no event will
            # come to wake wait() below, so check again first
            return
        for ready in wait(self._waitables()):
            self._handle_ready(ready)

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
            if self._cancel_on_close or self.broken is not None:
                return  # shut down meanwhile: a worker started now would only be stopped
            self._spawn_or_break()

    def _spawn_or_break(self) -> None:
        for attempt in range(_SPAWN_ATTEMPTS):
            try:
                self._spawn()
                return
            except Exception as exc:  # fork failed, too many open files, a bad mp_context...
                if attempt == _SPAWN_ATTEMPTS - 1:
                    message = f"could not start a worker process: {exc!r}"
                    self._break(BrokenProcessPool(message), exc)
                    return
                time.sleep(_SPAWN_BACKOFF_S * 2**attempt)  # a dying forkserver: let it die

    def _spawn(self) -> None:
        if self._ctx.get_start_method() != "fork":
            from multiprocessing import resource_tracker

            # launching the tracker unblocks SIGINT in this thread when it is done; make sure
            # that happens before we block it for the worker, not inside process.start()
            resource_tracker.ensure_running()
        with _STARTING:
            self._start_worker()

    def _start_worker(self) -> None:
        """Start one worker. Holds _STARTING: from the worker's pipe to closing the child's
        end of it, no other pool of this process forks (see _STARTING)."""
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        spec = WorkerSpec(
            os.getpid(),
            self._spec_initializer,
            self.config.max_tasks_per_worker,
            self.config.max_worker_memory,
            self._concurrency,
        )
        label = f"anypool-process-{next(self._labels)}"
        process = self._ctx.Process(target=worker_main, args=(child_conn, spec), name=label)
        _block_sigint()
        try:
            process.start()
        except BaseException:
            parent_conn.close()
            raise
        finally:
            child_conn.close()
        with self._lock:
            self._workers[id(process)] = _Worker(process, parent_conn, label, self._concurrency)

    # -- sending work -------------------------------------------------------------------------
    def _can_take(self, worker: _Worker) -> bool:
        limit = self.config.max_tasks_per_worker
        return worker.accepts_work and (limit is None or worker.sent < limit)

    def _fits(self, worker: _Worker, task: Task, at_once: bool) -> bool:
        """May ``task`` go to ``worker`` now? An idle worker takes anything; a coroutine
        task joins others below the worker's concurrency; a plain one may wait in the pipe
        behind another plain one (_may_wait_in_pipe); never a mix of the two."""
        if not worker.inflight:
            return True
        if at_once or worker.at_once:
            room = worker.load < worker.concurrency and not worker.cancelling
            return at_once and worker.at_once and room
        return len(worker.inflight) < 2 and self._may_wait_in_pipe(worker, task)

    def _worker_for(self, task: Task) -> _Worker | None:
        """The least loaded worker that may take ``task`` now. Holds the lock."""
        at_once = runs_at_once(task.fn)
        fitting = [
            w for w in self._workers.values() if self._can_take(w) and self._fits(w, task, at_once)
        ]
        return min(fitting, key=lambda w: w.load, default=None)

    def _may_wait_in_pipe(self, worker: _Worker, task: Task) -> bool:
        """May ``task`` be sent to ``worker`` while it still runs another? Only if it is
        small (the send never blocks) and its function's tasks are known to be quick."""
        if self._size(worker, task) > _PREFETCH_MAX_BYTES:
            return False
        seconds = self._durations.get(task.payload[0])
        return seconds is not None and seconds < _PREFETCH_MAX_TASK_S

    def _record_duration(self, task: Task) -> None:
        """Remember how long the function's tasks take (a moving average). Holds the lock."""
        if task.started_at is None:
            return
        seconds = time.monotonic() - task.started_at
        fn_id = task.payload[0]
        previous = self._durations.pop(fn_id, None)
        self._durations[fn_id] = seconds if previous is None else 0.7 * previous + 0.3 * seconds
        if len(self._durations) > _DURATIONS_KEPT:
            del self._durations[next(iter(self._durations))]

    @staticmethod
    def _size(worker: _Worker, task: Task) -> int:
        fn_id, fn_blob, args_blob, _ = task.payload
        return len(args_blob) + (0 if fn_id in worker.functions else len(fn_blob))

    def _send_work(self) -> None:
        """Hand queued tasks to workers, least loaded first, until none has room."""
        self._send_cancels()
        while True:
            # tasks may have arrived since the loop's spawn check: start workers for them
            # first, or they would be sent ahead into a busy worker's pipe and wait behind
            # its task (a deadlock if that task waits for them, e.g. on a Barrier)
            self._spawn_as_needed()
            with self._lock:
                task = self._queue.get_nowait()
                if task is None:
                    return
                worker = self._worker_for(task)
                if worker is None:
                    self._queue.push_front(task)  # waits here for the first free worker
                    return
            self._send(worker, task)

    def _message(self, worker: _Worker, task: Task, task_id: int) -> bytes:
        fn_id, fn_blob, args_blob, _ = task.payload
        if fn_id in worker.functions:
            worker.functions.move_to_end(fn_id)
            fn_blob = None
        else:
            worker.functions[fn_id] = None
            if len(worker.functions) > FN_CACHE_SIZE:
                worker.functions.popitem(last=False)
        verdicts = _verdicts(worker)
        message = (
            *(task_id, fn_id, fn_blob, task.chunk, task.star),
            *(args_blob.data, args_blob.sizes, verdicts),
        )
        return dumps(message, "the task")

    def _send(self, worker: _Worker, task: Task) -> None:
        if not task.mark_started(worker.label):
            return  # cancelled while queued
        task_id = next(self._ids)
        buffers = task.payload[2].buffers
        if not buffers:
            self._send_frame(worker, task, task_id, None)
            return
        # From a segment's creation to its descriptor being owned (anypool._wire._shm closes
        # owned ones in a forked child), no pool of this process forks a worker.
        with _STARTING:
            try:
                segment = worker.segments.write(buffers)  # the parent's one copy
            except Exception as exc:  # no memory for it (ENOMEM, EMFILE...): this task fails
                task.fail(_with_cause(_segment_error(task, exc), exc))
                return
        if self._send_frame(worker, task, task_id, segment.fd):
            worker.segments.sent(task_id, segment)
        else:
            worker.segments.discard(segment)

    def _send_frame(self, worker: _Worker, task: Task, task_id: int, fd: int | None) -> bool:
        """Send the task (and its segment); False if it was not sent (killed meanwhile)."""
        with self._lock:
            if task.future.done():
                return False  # killed between the queue and here
            data = self._message(worker, task, task_id)
            if not worker.inflight:
                worker.at_once = runs_at_once(task.fn)
            worker.inflight[task_id] = task
            worker.load += _weight(worker, task)
            worker.sent += 1
            self._start_clock(worker)
        try:
            worker.conn.send_bytes(data)
            if fd is not None:
                send_segment(worker.conn, fd)
        except OSError:
            pass  # the worker died; its sentinel fires and _on_exit requeues or fails the task
        return True

    # -- timeouts and kills -------------------------------------------------------------------
    def _start_clock(self, worker: _Worker) -> None:
        """The worker starts its unanswered tasks (the first, or all if at_once) now, or
        once it is READY: arm their timeouts, or stop the worker if Pool.kill() doomed the
        one it starts. Holds the lock."""
        if not worker.inflight or not worker.ready or worker.announced_exit:
            return
        if len(worker.deadlines) >= (len(worker.inflight) if worker.at_once else 1):
            return  # every task it runs has its clock running (no scan of 256 coroutines)
        for task_id, task in list(worker.inflight.items())[: None if worker.at_once else 1]:
            if task_id in worker.deadlines:
                continue  # its clock runs already
            if task_id in worker.doomed:
                self._terminate(worker)
                return
            task.started_at = now = time.monotonic()
            worker.deadlines[task_id] = self._deadline(worker, task, now)
            if worker.at_once:
                self._watch_own_timeout(worker, task_id, task, now)

    def _deadline(self, worker: _Worker, task: Task, started: float) -> Handle | None:
        if task.timeout is None:
            return None
        attempt = task.attempts
        return self._deadlines.schedule(
            started + task.timeout, lambda: self._expire(worker, task, attempt)
        )

    def _watch_own_timeout(self, worker: _Worker, task_id: int, task: Task, now: float) -> None:
        """A coroutine task still unanswered just past its own ``timeout=`` (which cancels it
        in the worker) may be blocking that worker's loop: no new work goes there until it
        answers (as with a Pool.kill cancel), so none is caught if the worker is stopped."""
        own = getattr(task.fn, "timeout", None)
        if own is None:
            return

        def overdue() -> None:
            with self._lock:
                if worker.inflight.get(task_id) is task:
                    worker.cancelling.add(task_id)

        self._deadlines.schedule(now + own + _ANSWER_MARGIN_S, overdue)

    def _expire(self, worker: _Worker, task: Task, attempt: int) -> None:
        with self._lock:
            if not worker.runs(task) or task.attempts != attempt or task.future.done():
                return
            worker.stopping = True  # decided under the lock: no other task is blamed
            # (a coroutine past its timeout= was cancelled at COROUTINE_GRACE_S before this:
            # it never yielded, so the others on its loop were stuck behind it anyway)
            worker.stop_reason = f"{_fn_name(task)} did not give way after its timeout"
        task.fail(
            TaskTimeout(
                f"{overran(task)}; its worker process {worker.process.pid} was stopped and "
                f"will be replaced"
            )
        )
        self._terminate(worker)

    def kill(self, task: Task) -> bool:
        with self._lock:
            worker = next((w for w in self._workers.values() if w.holds(task) is not None), None)
            if worker is None and task.future.done():
                return False
            if worker is not None and worker.at_once:
                self._cancel_coroutine(worker, task)
            elif worker is not None and worker.runs(task):
                worker.stopping = True
            elif worker is not None:
                worker.doomed.add(worker.holds(task))  # type: ignore[arg-type]
        # not in a worker: it waits in the queue for a retry, and will be skipped
        task.fail(CancelledError("the task was killed by Pool.kill()"))
        if worker is not None and worker.stopping:
            self._terminate(worker)
        return True

    def _cancel_coroutine(self, worker: _Worker, task: Task) -> None:
        """Cancel a coroutine task where it runs, at its next await (the dispatcher sends
        the request: only its thread writes to the pipe); one that has not answered after
        _CANCEL_GRACE_S does not yield, and its worker is stopped. Holds the lock."""
        task_id = worker.holds(task)
        assert task_id is not None
        worker.cancels.append(task_id)
        worker.cancelling.add(task_id)
        self._wake()

        def overdue() -> None:
            with self._lock:
                if task_id not in worker.inflight:
                    return
                worker.stop_reason = f"{_fn_name(task)} did not give way to Pool.kill()"
            self._terminate(worker)

        try:
            self._deadlines.schedule(time.monotonic() + _CANCEL_GRACE_S, overdue)
        except RuntimeError:  # no thread for the grace (interpreter shutdown): stop it now
            overdue()

    def _send_cancels(self) -> None:
        with self._lock:
            requests = [(w, w.cancels) for w in self._workers.values() if w.cancels]
            for worker, _ in requests:
                worker.cancels = []
        for worker, task_ids in requests:
            for task_id in task_ids:
                try:
                    worker.conn.send_bytes(dumps((task_id,), "a cancel request"))
                except OSError:
                    break  # it died; its sentinel fires and _on_exit settles the rest

    def _terminate(self, worker: _Worker) -> None:
        """SIGTERM now, SIGKILL after a grace period if it is still alive."""
        with self._lock:
            worker.stopping = True
        process = worker.process
        if process.exitcode is None:
            try:
                process.terminate()
            except (OSError, ValueError):
                return  # already reaped
            try:
                self._deadlines.schedule(time.monotonic() + _TERM_GRACE_S, lambda: _kill(process))
            except RuntimeError:  # no thread for the grace (interpreter shutdown): kill now
                _kill(process)

    # -- results ------------------------------------------------------------------------------
    def _drain(self, worker: _Worker) -> None:
        """Read every message the worker has sent so far."""
        try:
            while worker.conn.poll():
                self._on_message(worker, worker.conn.recv_bytes())
        except (EOFError, OSError):
            pass  # the worker is gone; its sentinel will fire

    def _on_message(self, worker: _Worker, data: bytes) -> None:
        task_id, flags, count = HEADER.unpack_from(data)
        # the segment right behind the frame is read even for a message that fails here, or
        # the next frame would be read from the wrong place (EOFError: the worker died)
        mapped = self._receive_segment(worker, data) if count else None
        if task_id == READY:
            self._on_ready(worker)
        elif task_id == CAPACITY:
            self._on_capacity(worker, self._load(worker, data, None, mapped))
        elif task_id == INIT_FAILED:
            self._on_init_failed(worker, self._load(worker, data, None, mapped)[1])
        else:
            self._on_answer(worker, task_id, flags, data, mapped)
        if isinstance(mapped, _shm.Mapped):  # its verdict goes with the next task sent
            worker.results.append((task_id, mapped))

    @staticmethod
    def _receive_segment(worker: _Worker, data: bytes) -> _shm.Mapped | BaseException:
        """A result's segment, mapped, or why it could not be mapped (the task fails)."""
        sizes, _ = body_offset(data)
        with _STARTING:  # a fork meanwhile would keep the descriptor (see _send)
            fd = recv_segment(worker.conn)
            try:
                return _shm.map_segment(fd, sizes)
            except (OSError, ValueError) as exc:
                return exc

    def _on_init_failed(self, worker: _Worker, error: BaseException) -> None:
        """The pool breaks once this worker has exited, as the stdlib's does: what it sent on
        its way out (its initializer's log record, through a multiprocessing Queue) has
        arrived by then. A worker that has not exited after a grace period is stopped."""
        with self._lock:
            worker.init_error = error  # gets no work from now on
        try:
            when = time.monotonic() + _INIT_EXIT_GRACE_S
            self._deadlines.schedule(when, lambda: self._terminate(worker))
        except RuntimeError:  # no thread to wait with (interpreter shutdown): stop it now
            self._terminate(worker)

    def _on_capacity(self, worker: _Worker, loaded: tuple[bool, Any]) -> None:
        """The worker measured how many coroutines it keeps busy with (_loop.Concurrency);
        the dispatcher's next step sends it more, or fewer as its tasks end."""
        ok, body = loaded
        if ok:
            with self._lock:
                worker.concurrency, worker.busy = body
                self._coroutines = (worker.concurrency, worker.busy)

    def _on_ready(self, worker: _Worker) -> None:
        with self._lock:
            worker.ready = True
            self._startup_kills = 0
            self._start_clock(worker)

    def _on_answer(
        self, worker: _Worker, task_id: int, flags: int, data: bytes, mapped: Any
    ) -> None:
        with self._lock:
            task = worker.inflight.pop(task_id)
            worker.cancelling.discard(task_id)
            worker.load -= _weight(worker, task)
            worker.segments.verdict(task_id, bool(flags & ARGS_RELEASED))
            self._record_duration(task)
            self._cancel_deadline(worker, task_id)
            if flags & RETIRING:
                worker.retiring = worker.announced_exit = True
            self._start_clock(worker)
            if worker.retiring and not worker.inflight and not worker.announced_exit:
                self._ask_to_exit(worker)
        loaded, value = self._load(worker, data, task, mapped)
        if flags & ARGS_FAILED and task.chunk and task.n_items - len(task.payload[3]) > 1:
            self._split(task)
        elif loaded and flags & OK:
            task.settle(_merge_failed_items(value, task.payload[3]) if task.chunk else value)
        else:
            task.fail(value)

    def _split(self, task: Task) -> None:
        """A chunk's items did not unpickle in the worker, so none of them ran: run them one
        by one, so that only the item at fault fails. (In the dispatcher thread.)"""
        bad = task.payload[3]
        items = [item for index, item in enumerate(task.args) if index not in bad]
        parts = _ChunkParts(task, len(items))
        timeout = None if task.timeout is None else task.timeout / task.n_items
        for index in reversed(range(len(items))):  # requeued at the front, in order
            part = Task(task.fn, [items[index]], {}, Future(), chunk=True, star=task.star)
            part.timeout, part.retries, part.priority = timeout, task.retries, task.priority
            part.future.add_done_callback(functools.partial(parts.collect, index))
            try:
                part.payload = self._pickle(part)
            except SerializationError as exc:
                part.fail(exc)
                continue
            self._requeue(part)

    def _load(
        self, worker: _Worker, data: bytes, task: Task | None, mapped: Any
    ) -> tuple[bool, Any]:
        """(True, the message's body), or (False, a SerializationError) if it cannot be
        unpickled here; only the task it answers fails, the dispatcher carries on."""
        try:
            if isinstance(mapped, BaseException):  # its segment could not be mapped
                raise mapped
            return True, _shm.load(memoryview(data)[body_offset(data)[1] :], mapped)
        except BaseException as exc:  # the body's __reduce__ may raise anything
            what = "an initializer's error" if task is None else f"the outcome of {_fn_name(task)}"
            message = (
                f"{what} was sent back by worker process {worker.process.pid} but cannot be "
                f"unpickled in the parent process: {type(exc).__name__}: {exc}"
            )
            return False, _with_cause(TaskUnpicklingError(message), exc)

    @staticmethod
    def _cancel_deadline(worker: _Worker, task_id: int) -> None:
        handle = worker.deadlines.pop(task_id, None)
        if handle is not None:
            handle.cancel()

    # -- deaths -------------------------------------------------------------------------------
    def _on_exit(self, worker: _Worker) -> None:
        self._drain(worker)  # results sent before death still count
        worker.process.join()
        with self._lock:
            self._workers.pop(id(worker.process), None)
            lost = list(worker.inflight.values())
            for task_id in list(worker.deadlines):
                self._cancel_deadline(worker, task_id)
            worker.inflight.clear()
        worker.conn.close()
        worker.segments.close()
        if worker.announced_exit or not worker.retiring:
            self._restarts += 1  # crashed, killed or recycled; not when resized away
        if worker.init_error is not None:
            error = BrokenProcessPool(f"a worker initializer failed: {worker.init_error!r}")
            self._break(error, worker.init_error)
            for task in lost:
                task.fail(fresh_copy(error))
        elif worker.announced_exit or (worker.stopping and not worker.at_once):
            for task in lost:  # the task it was stopped for is resolved; the others never ran
                self._recover(task, None)
        elif not worker.ready:
            self._on_startup_death(worker, lost)
        elif worker.at_once:
            for task in lost:  # all of them were running on its loop
                self._recover(task, worker)
        elif lost:
            self._recover(lost[0], worker)
            for task in lost[1:]:
                self._recover(task, None)

    def _recover(self, task: Task, died_running: _Worker | None) -> None:
        """Requeue a task its worker died with, retry it, or fail it. ``died_running`` is the
        worker if it died while running the task; None means the task never started."""
        if task.future.done():
            return  # it timed out or was killed: already failed
        if died_running is None:
            task.attempts -= 1  # it never ran
            self._requeue(task)
        elif task.attempts <= task.retries:
            self._requeue(task)
        else:
            task.fail(_crash_error(task, died_running))

    def _on_startup_death(self, worker: _Worker, lost: list[Task]) -> None:
        """A worker died before its initializer finished: its tasks never ran."""
        for task in lost:
            self._recover(task, None)
        exitcode = worker.process.exitcode
        killed = exitcode in (-signal.SIGKILL, -signal.SIGTERM)
        self._startup_kills += 1
        if killed and self._startup_kills < _MAX_STARTUP_KILLS:
            return  # killed from outside: replace it, as any worker
        doing = "starting up (importing, or in the initializer)"
        cause = describe_exit(worker.process.pid, exitcode, doing)
        times = f"{self._startup_kills} workers in a row" if self._startup_kills > 1 else "it"
        error = WorkersCannotStart(
            f"{cause}; {times} died before taking a task, so the pool is broken"
            if exitcode != MAIN_GUARD_EXIT  # see check_main_guard: one line that says why
            else MAIN_GUARD_MESSAGE
        )
        error.pid, error.exitcode = worker.process.pid, exitcode
        self._break(error)

    def _requeue(self, task: Task) -> None:
        if self._cancel_on_close or self.broken is not None:
            task.fail(CancelledError("the pool shut down before the task could run again"))
        else:
            self._queue.push_front(task)

    def _break(self, error: BaseException, cause: BaseException | None = None) -> None:
        if cause is not None:
            error.__cause__ = cause
        with self._lock:
            if self.broken is None:
                self.broken = error
            self._closed = True
            lost = [t for w in self._workers.values() for t in w.inflight.values()]
            workers = list(self._workers.values())
        for task in self._queue.drain() + lost:
            task.fail(fresh_copy(error))
        for worker in workers:
            self._terminate(worker)

    def _stop_all_workers(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
            stop_now = self._cancel_on_close or self.broken is not None
        for worker in workers:
            # killing: no worker has work we want, and one still starting up (an
            # interpreter import, an initializer) would read "exit" only when done
            self._terminate(worker) if stop_now else self._ask_to_exit(worker)
        deadline = time.monotonic() + _EXIT_GRACE_S
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.exitcode is None:
                _kill(worker.process)
                worker.process.join()
            for task in worker.inflight.values():
                task.fail(CancelledError("the pool shut down before the task finished"))
            worker.conn.close()
            worker.segments.close()
        with self._lock:
            self._workers.clear()
        self._deadlines.stop()

    # -- lifecycle ----------------------------------------------------------------------------
    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
            if kill_running:
                for task in self._queue.drain():
                    task.cancel_pending()
            elif cancel_pending:
                self._cancel_queued()
            if kill_running:
                self._cancel_on_close = True
                workers = list(self._workers.values())
            else:
                workers = []
            self._wake()
        for worker in workers:
            for task in worker.running():
                task.fail(CancelledError("the pool was shut down with kill_running=True"))
            self._terminate(worker)
        if wait and self._dispatcher is not threading.current_thread():
            self._dispatcher_done.wait()

    def _cancel_queued(self) -> None:
        """``shutdown(cancel_pending=True)``: cancel the queued tasks, except those that
        workers without a task (idle, still starting, or not started yet) take next.

        Those count as started, as in the stdlib, whose workers' call queue holds a task
        for each of them: a caller that shuts down right after submitting still sees the
        first tasks finish, and only those that would have waited are cancelled.
        Holds the lock.
        """
        busy = sum(1 for w in self._workers.values() if w.inflight and w.accepts_work)
        keep = max(0, self._target - busy)
        kept: list[Task] = []
        while (task := self._queue.get_nowait()) is not None:
            if len(kept) < keep and not task.future.done():
                kept.append(task)
            else:
                task.cancel_pending()
        for task in reversed(kept):  # back in the order they were taken out
            self._queue.push_front(task)

    def decision(self) -> Decision | None:
        """None (explain() says the caller chose), or once coroutine tasks ran, that and how
        many each worker runs at once."""
        note = self.coroutine_note()
        if note is None:
            return None
        base = fixed_decision(self.name, self.config.workers)
        return dataclasses.replace(base, reasons=(base.reasons[0], note))

    def coroutine_note(self) -> str | None:
        """How many coroutine tasks each worker runs at once, and why; None before any ran
        (unless ``concurrency=`` fixed it). auto's explain() adds it too."""
        heard = self._coroutines
        if heard is None and self._concurrency is None:
            return None
        if self._concurrency is not None:
            return (
                f"coroutine functions: each worker runs up to {self._concurrency} at once "
                f"on its event loop (concurrency={self._concurrency}, set by the caller)"
            )
        limit, busy = heard  # type: ignore[misc]
        measured = "" if busy is None else f"; in its last full window the loop was {busy:.0%} busy"
        return (
            f"coroutine functions: each worker runs up to {limit} at once on its event loop, "
            f"measured (from 1, raised while the loop had idle time and every slot was used, "
            f"lowered while it was saturated; at most {MAX_CONCURRENCY}{measured}); "
            f"Pool('process', concurrency=N) fixes it"
        )

    def workers_alive(self) -> int:
        with self._lock:
            return sum(1 for w in self._workers.values() if w.process.is_alive())

    def pending(self) -> int:
        return len(self._queue)

    def worker_restarts(self) -> int:
        return self._restarts

    def worker_pids(self) -> list[int]:
        # the workers the dispatcher has not yet seen exit; no is_alive() here, whose
        # waitpid() could reap a worker under the dispatcher's feet
        with self._lock:
            return [w.process.pid for w in self._workers.values() if w.process.pid is not None]

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


# Held while a pool starts a worker, by every pool of this process. A fork copies every
# open descriptor, so a worker that pool B forks while pool A is between creating its
# worker's pipes and closing the child's ends keeps A's ends open for its whole life: when
# A's worker dies, A's sentinel never reads EOF and A waits on it forever (fault fuzzer,
# two fork pools starting workers at once). Re-made in a forked child, which may start
# pools of its own while the parent's copy of the lock is held.
_STARTING = threading.Lock()


def _new_starting_lock() -> None:
    global _STARTING
    _STARTING = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_starting_lock)


def _launch_resource_tracker_here(ctx: Any) -> None:
    """Launch multiprocessing's resource tracker from the main thread (~0.5 ms, once per
    program), not from the dispatcher: launching it ends with SIGINT *unblocked* in the
    launching thread, and a Ctrl-C that the kernel hands the dispatcher in the moment
    before it blocks SIGINT again only sets Python's flag, leaving a main thread asleep in
    ``result()`` for good (test_ctrl_c_while_workers_start[spawn], rarely, under load)."""
    if (
        ctx.get_start_method() == "fork"
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


def _block_sigint() -> None:
    """Block SIGINT in this thread: processes it starts inherit the mask, so a Ctrl-C that
    lands while a worker starts up (before it ignores SIGINT) prints nothing. The main
    thread, which handles SIGINT in Python, is never affected."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


class _ChunkParts:
    """Collects the one-item chunks a split chunk became; settles the chunk when all are in."""

    def __init__(self, chunk: Task, count: int) -> None:
        self.chunk = chunk
        self.outcomes: list[ChunkResult | None] = [None] * count
        self.left = count
        self.lock = threading.Lock()

    def collect(self, index: int, future: Future[ChunkResult]) -> None:
        outcome = chunk_outcomes(future, 1)
        with self.lock:
            self.outcomes[index] = outcome
            self.left -= 1
            if self.left:
                return
        done = [o for o in self.outcomes if o is not None]
        errors = {i: o.errors[0] for i, o in enumerate(done) if 0 in o.errors}
        values = [o.values[0] for o in done]
        merged = ChunkResult(values, errors, sum(o.duration for o in done))
        self.chunk.settle(_merge_failed_items(merged, self.chunk.payload[3]))


def _weight(worker: _Worker, task: Task) -> int:
    """What ``task`` adds to the worker's load: 1, or its items if coroutines run at once."""
    return task.n_items if worker.at_once and task.chunk else 1


def check_concurrency(value: object) -> int | None:
    """``Pool("process", concurrency=N)``: coroutines per worker, or None to measure."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"concurrency must be a positive int or None, got {value!r}")
    if value < 1:
        raise ValueError(f"concurrency must be at least 1 (coroutines per worker), got {value}")
    return value


def _verdicts(worker: _Worker) -> list[tuple[int, bool]]:
    """The verdicts on the worker's result segments to send with its next task: released
    ones (it may rewrite them); one still mapped here stays pending until it is released
    (the consumer may take it a moment later: an early "no" would make the worker allocate
    a new segment for every result), unless more than _shm.AWAITING wait ("no": closed)."""
    verdicts: list[tuple[int, bool]] = []
    pending: list[tuple[int, _shm.Mapped]] = []
    for result_id, mapped in worker.results:
        if mapped.released():
            verdicts.append((result_id, True))
        else:
            pending.append((result_id, mapped))
    while len(pending) >= _shm.AWAITING:
        verdicts.append((pending.pop(0)[0], False))
    worker.results = pending
    return verdicts


def _segment_error(task: Task, exc: Exception) -> SerializationError:
    return SerializationError(
        f"the arguments of a call of {_fn_name(task)} could not be placed in shared memory "
        f"to send them to a worker process: {type(exc).__name__}: {exc}"
    )


def _merge_failed_items(result: ChunkResult, bad: dict[int, BaseException]) -> ChunkResult:
    """Put the items that could not be pickled back in their places, as failures."""
    if not bad:
        return result
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    sent = 0
    for index in range(len(result.values) + len(bad)):
        if index in bad:
            values.append(None)
            errors[index] = bad[index]
            continue
        values.append(result.values[sent])
        if sent in result.errors:
            errors[index] = result.errors[sent]
        sent += 1
    return ChunkResult(values, errors, result.duration)


def _with_cause(error: BaseException, cause: BaseException) -> BaseException:
    """``error`` caused by ``cause``, whose traceback is kept as text only.

    Its frames lead (through ``f_back``) to the dispatcher's, which hold the backend and
    the worker (its pipe and process sentinel), and often, in a local, this very error:
    the future keeps the error, so the frames would keep a pool that is long shut down,
    and its file descriptors, alive until the garbage collector runs."""
    tb = cause.__traceback__
    if tb is not None:
        import traceback

        lines = "".join(traceback.format_tb(tb.tb_next or tb)).rstrip()
        cause.__traceback__ = None
        if hasattr(cause, "add_note"):  # 3.11+; shown under the exception
            cause.add_note(f"Where it was raised, in this process:\n{lines}")
    error.__cause__ = cause
    return error


def _kill(process: Any) -> None:
    if process.exitcode is None:
        try:
            process.kill()
        except (OSError, ValueError):
            pass


backend_class = ProcessBackend
