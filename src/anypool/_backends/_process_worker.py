"""The main loop of a worker process (the child side of the process backend).

::

    parent dispatcher ══ Pipe ══► recv_bytes ─► unpickle ─► run ─► pickle ─► send_bytes ══► parent
                                      ▲ EOF: parent gone, exit      │
                                      └──────── next task ◄─────────┘

Messages from the parent: ``None`` (exit) or a task tuple
``(task_id, fn_id, fn_blob | None, chunk, star, payload)``; ``fn_blob`` is sent
only the first time this worker sees ``fn_id`` (both sides keep the same LRU).
Messages to the parent: ``(task_id, ok, value)`` per task, or
``(INIT_FAILED, False, exception)`` once if the initializer raised.

This module is imported in every worker: it must stay cheap to import.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["FN_CACHE_SIZE", "INIT_FAILED", "WorkerSpec", "worker_main"]

INIT_FAILED = -1
# Functions kept unpickled per worker; the parent mirrors this LRU exactly.
FN_CACHE_SIZE = 64
# How often a busy worker checks that its parent is still alive (portable
# fallback for PR_SET_PDEATHSIG); the bound is 2 s.
PARENT_POLL_S = 0.25


class WorkerSpec:
    """Everything a worker needs at start; pickled once per worker start."""

    def __init__(
        self,
        parent_pid: int,
        initializer: bytes | None,
        max_tasks: int | None,
        max_memory: int | None,
    ) -> None:
        self.parent_pid = parent_pid
        self.initializer = initializer
        self.max_tasks = max_tasks
        self.max_memory = max_memory


def _die_with_parent(parent_pid: int) -> None:
    """Exit if the parent dies: the kernel's PDEATHSIG on Linux plus a portable poll."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: dies with the forking process
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass  # alive, but owned by someone else (pid reuse is the only way here)

    threading.Thread(target=watch, name="anypool-parent-watch", daemon=True).start()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


def _dumps(message: tuple[Any, ...], fn: Any) -> bytes:
    from .._serialization import dumps

    fn = fn()  # the task's function, known only once it was unpickled
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return dumps(message, f"the result of {name} (type {type(message[2]).__qualname__})")


def _outcome(task_id: int, run: Callable[[], Any], fn: Any) -> bytes:
    """Run a task and pickle its outcome; a result that does not pickle fails only this task."""
    from .._serialization import wrap_exception

    try:
        value = run()
    except BaseException as exc:  # SystemExit too: it must fail the task, not end the worker
        return pickle.dumps((task_id, False, wrap_exception(exc)), pickle.HIGHEST_PROTOCOL)
    try:
        return pickle.dumps((task_id, True, value), pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass  # retried with cloudpickle below, then reported as a SerializationError
    try:
        return _dumps((task_id, True, value), fn)
    except Exception as exc:
        return pickle.dumps((task_id, False, wrap_exception(exc)), pickle.HIGHEST_PROTOCOL)


class _Worker:
    def __init__(self, conn: Any, spec: WorkerSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.functions: OrderedDict[int, Callable[..., Any]] = OrderedDict()

    def function(self, fn_id: int, blob: bytes | None) -> Callable[..., Any]:
        if blob is not None:
            self.functions[fn_id] = pickle.loads(blob)
            if len(self.functions) > FN_CACHE_SIZE:
                self.functions.popitem(last=False)
        else:
            self.functions.move_to_end(fn_id)
        return self.functions[fn_id]

    def run_one(self, message: tuple[Any, ...]) -> bytes:
        task_id, fn_id, blob, chunk, star, payload = message

        fn: Any = None

        def run() -> Any:
            nonlocal fn
            from .._task import run_chunk

            fn = self.function(fn_id, blob)
            args, kwargs = pickle.loads(payload)
            return run_chunk(fn, args, star) if chunk else fn(*args, **kwargs)

        return _outcome(task_id, run, lambda: fn)

    def initialize(self) -> bool:
        if self.spec.initializer is None:
            return True
        try:
            initializer, initargs = pickle.loads(self.spec.initializer)
            initializer(*initargs)
        except BaseException as exc:
            from .._serialization import wrap_exception

            self.conn.send_bytes(pickle.dumps((INIT_FAILED, False, wrap_exception(exc))))
            return False
        return True

    def should_retire(self, done: int) -> bool:
        if self.spec.max_tasks is not None and done >= self.spec.max_tasks:
            return True
        return self.spec.max_memory is not None and _rss_bytes() > self.spec.max_memory

    def loop(self) -> None:
        done = 0
        while True:
            try:
                data = self.conn.recv_bytes()
            except (EOFError, OSError):
                return  # the parent closed our pipe: it is gone or shutting down
            message = pickle.loads(data)
            if message is None:
                return
            self.conn.send_bytes(self.run_one(message))
            done += 1
            if self.should_retire(done):
                return


def worker_main(conn: Any, spec: WorkerSpec) -> None:
    """Entry point of a worker process."""
    # Ctrl-C in a terminal reaches the whole process group; the parent decides what
    # happens to running tasks, and workers must not print KeyboardInterrupt tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(spec.parent_pid)
    worker = _Worker(conn, spec)
    if worker.initialize():
        worker.loop()
    conn.close()
