"""The main loop of a worker process (the child side of the process backend).

::

    parent dispatcher ══ Pipe ══► recv_bytes ─► unpickle ─► run ─► pickle ─► send_bytes ══► parent
                                 (+ segment: recvmsg, mmap)  ▲      │ (+ segment: memfd, sendmsg)
                                      ▲ EOF: parent gone, exit      │
                                      └──────── next task ◄─────────┘
    watch thread: parent gone (PR_SET_PDEATHSIG, getppid(), pipe hang-up) ─► os._exit

The wire format (frames, flags, the shared-memory segment that follows a frame with
out-of-band buffers) is in ``_protocol``; large buffers of the arguments and results
travel through anypool._wire._shm.

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

from ..._wire import _shm
from ._protocol import (
    ARGS_FAILED,
    ARGS_RELEASED,
    FN_CACHE_SIZE,
    INIT_FAILED,
    OK,
    READY,
    RETIRING,
    header,
    recv_segment,
    send_segment,
)

# A spawned worker imports this module at every start: typing is for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Frame", "Worker", "WorkerSpec", "worker_main"]

# A message for the parent before it is framed: (task id, flags, pickled body, the body's
# out-of-band buffers); Worker.send() writes the buffers into a segment and adds the header.
Frame = tuple[int, int, bytes, "list[memoryview]"]

# How often the watch thread checks that the parent is still alive (portable
# fallback for PR_SET_PDEATHSIG); the contract is that workers exit within 2 s.
PARENT_POLL_S = 0.25
_PR_SET_PDEATHSIG = 1


class WorkerSpec:
    """Everything a worker needs at start; pickled once per worker start."""

    def __init__(
        self,
        parent_pid: int,
        initializer: Any,  # _wire._pickle.Carried (not imported here: start-up cost)
        max_tasks: int | None,
        max_memory: int | None,
        concurrency: int | None = None,
    ) -> None:
        self.parent_pid = parent_pid
        self.initializer = initializer
        self.max_tasks = max_tasks
        self.max_memory = max_memory
        self.concurrency = concurrency  # coroutines at once (_loop); None: measured


# -- staying alive only as long as the parent ------------------------------------------------
def _set_pdeathsig() -> None:
    """Linux: the kernel SIGKILLs us when the thread that forked us exits (the dispatcher
    thread, or the forkserver, which itself exits when the parent does)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _parent_gone(parent_pid: int, ppid: int, hangup: Callable[[], bool]) -> bool:
    # getppid() changes the moment the forking process dies, even before it is reaped;
    # kill(pid, 0) catches the parent itself under forkserver once it is reaped; the pipe
    # hang-up catches it while it is an unreaped zombie (and works without procfs).
    if os.getppid() != ppid or hangup():
        return True
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by someone else
    return False


def _hangup_probe(conn: Any) -> Callable[[], bool]:
    """A check for 'the parent closed its end of our pipe' that never reads from it."""
    import select

    if not hasattr(select, "poll"):
        return lambda: False
    poller = select.poll()
    poller.register(conn.fileno(), 0)  # POLLHUP and POLLERR are always reported
    hup = select.POLLHUP | select.POLLERR
    return lambda: any(event & hup for _, event in poller.poll(0))


def _die_with_parent(parent_pid: int, conn: Any) -> None:
    """Exit if the parent dies, however it dies (the issue's bound is 2 s)."""
    ppid = os.getppid()
    _set_pdeathsig()
    hangup = _hangup_probe(conn)

    def watch() -> None:
        while not _parent_gone(parent_pid, ppid, hangup):
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="anypool-parent-watch", daemon=True).start()


def _rss_bytes() -> int:
    """Resident memory, less shared memory (RssShmem): the pages of the payload segments
    this worker keeps mapped for reuse (anypool._wire._shm) are the pool's, not growth of
    the worker's own, and must not retire it under ``max_worker_memory``."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith("Rss"))
        kib = int(fields["RssAnon"].split()[0]) + int(fields["RssFile"].split()[0])
        return kib * 1024
    except (OSError, KeyError, ValueError):
        pass  # no procfs (or an old kernel without the Rss* lines)
    import psutil

    return int(psutil.Process().memory_info().rss)


# -- pickling outcomes -----------------------------------------------------------------------
def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _frame(task_id: int, flags: int, body: Any) -> Frame:
    """The pickled body, its large buffers out of band; raises if it does not pickle."""
    encoded = _shm.dumps(body, fallback=_cloudpickle_with)
    return task_id, flags, encoded.data, encoded.buffers


def _cloudpickle_with(obj: Any, buffer_callback: Any) -> bytes:
    """Plain pickle refuses lambdas, closures and classes defined in __main__: cloudpickle,
    imported only then (a worker that never needs it never pays for it)."""
    from ..._wire._pickle import cloudpickle_with

    return cloudpickle_with(obj, buffer_callback)


def _error_frame(task_id: int, flags: int, exc: BaseException) -> Frame:
    """An answer that fails the task with ``exc``. It never raises: an exception whose
    ``__str__``, ``__reduce__`` or traceback raises (even SystemExit) is replaced by a
    SerializationError carrying what could be said about it, so the parent always hears."""
    from ..._wire._pickle import wrap_exception

    try:
        return _frame(task_id, flags & ~OK, wrap_exception(exc))
    except BaseException as failure:
        from ..._errors._exceptions import SerializationError

        kind = _type_name(exc)
        error = SerializationError(
            f"the task raised {kind}, which cannot be sent back from the worker process "
            f"({_type_name(failure)} while pickling it)"
        )
        return task_id, flags & ~OK, pickle.dumps(error, pickle.HIGHEST_PROTOCOL), []


def _type_name(exc: BaseException) -> str:
    try:
        return type(exc).__qualname__
    except BaseException:
        return "an exception"


def _result_error(fn: Any, value: Any, exc: Exception, where: str = "") -> BaseException:
    from ..._errors._exceptions import SerializationError

    error = SerializationError(
        f"the result of {_name(fn)}{where} (type {type(value).__qualname__}) cannot be "
        f"pickled to send it back from the worker process: {type(exc).__name__}: {exc}"
    )
    error.__cause__ = exc
    return error


def _isolate_bad_items(fn: Any, chunk: Any) -> None:
    """A chunk's result did not pickle: fail only the items whose value does not."""
    from ..._wire._pickle import dumps_or_none

    for index, value in enumerate(chunk.values):
        if index in chunk.errors:
            continue
        try:
            exc = dumps_or_none(value)[1]
        except BaseException as base:  # a __reduce__ that exits: that item's outcome only
            chunk.values[index] = None
            chunk.errors[index] = base
            continue
        if exc is not None:
            chunk.values[index] = None
            chunk.errors[index] = _result_error(fn, value, exc, f" for item {index}")


def _outcome(task_id: int, flags: int, fn: Any, value: Any, is_chunk: bool) -> Frame:
    """Pickle a result; a result that does not pickle fails only its task (or item).

    A ``__reduce__`` that raises a BaseException (``sys.exit()``, KeyboardInterrupt) does not
    end this worker: the task fails with that very exception, as with the stdlib's executor,
    and the parent always gets an answer (an exit here once left the parent waiting)."""
    try:
        return _frame(task_id, flags | OK, value)
    except BaseException as exc:
        if not is_chunk:
            error = _result_error(fn, value, exc) if isinstance(exc, Exception) else exc
            return _error_frame(task_id, flags, error)
    try:  # a chunk: only the items whose value does not pickle fail
        _isolate_bad_items(fn, value)
        return _frame(task_id, flags | OK, value)
    except Exception as exc:
        return _error_frame(task_id, flags, _result_error(fn, value, exc))
    except BaseException as exc:
        return _error_frame(task_id, flags, exc)


def _wrap_item_errors(chunk: Any) -> None:
    """Give each failed item of a chunk its traceback, and make sure it pickles."""
    from ..._wire._pickle import wrap_exception

    chunk.errors = {index: wrap_exception(exc) for index, exc in chunk.errors.items()}


# -- the worker ------------------------------------------------------------------------------
class _ArgsFailed(Exception):
    """The arguments did not unpickle: carries the error to report."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _unpicklable_function(error: BaseException) -> Callable[..., Any]:
    def raise_error(*args: Any, **kwargs: Any) -> Any:
        raise error

    return raise_error


class Worker:
    def __init__(self, conn: Any, spec: WorkerSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.functions: OrderedDict[int, Callable[..., Any]] = OrderedDict()
        self.done = 0
        self.segments = _shm.Segments()  # of the results sent to the parent

    def function(self, fn_id: int, blob: bytes | None) -> Callable[..., Any]:
        if blob is not None:
            self.functions[fn_id] = self._load_function(blob)
            if len(self.functions) > FN_CACHE_SIZE:
                self.functions.popitem(last=False)
        else:
            self.functions.move_to_end(fn_id)
        return self.functions[fn_id]

    @staticmethod
    def _load_function(blob: bytes) -> Callable[..., Any]:
        """Unpickle a function; one that fails is cached as a function that raises, so this
        LRU stays in step with the parent's mirror and later calls fail the same way."""
        try:
            fn: Callable[..., Any] = pickle.loads(blob)
        except BaseException as exc:  # SystemExit from a __reduce__ too: stay in step
            from ..._errors._process import TaskUnpicklingError

            error = TaskUnpicklingError(
                f"the task's function cannot be unpickled in the worker process: "
                f"{type(exc).__name__}: {exc}"
            )
            error.__cause__ = exc
            return _unpicklable_function(error)
        return fn

    @staticmethod
    def load_args(fn: Any, payload: bytes, mapped: Any) -> tuple[Any, dict[str, Any]]:
        """The call's arguments; raises _ArgsFailed (nothing of the task ran)."""
        try:
            if isinstance(mapped, BaseException):  # the segment could not be mapped
                raise mapped
            args, kwargs = _shm.load(payload, mapped)
        except BaseException as exc:
            from ..._errors._process import TaskUnpicklingError

            raise _ArgsFailed(
                TaskUnpicklingError(
                    f"the arguments of a call of {_name(fn)} cannot be unpickled in the "
                    f"worker process: {type(exc).__name__}: {exc}"
                )
            ) from exc
        return args, kwargs

    def run_one(self, message: tuple[Any, ...], fn: Any, mapped: Any) -> Frame:
        """Run a task of ``fn``; ``mapped``: its segment (_shm.Mapped), None, or why it could
        not be mapped. Its arguments are let go of on return (the segment's verdict follows)."""
        from ..._task import run_chunk

        task_id, chunk, star, payload = message[0], message[3], message[4], message[5]
        try:
            args, kwargs = self.load_args(fn, payload, mapped)
            value = run_chunk(fn, args, star) if chunk else fn(*args, **kwargs)
        except BaseException as exc:  # SystemExit too: it must fail the task, not end the worker
            return self.failed(task_id, exc)
        return self.succeeded(task_id, fn, value, chunk)

    def failed(self, task_id: int, exc: BaseException) -> Frame:
        """The answer of a task that raised ``exc`` (_ArgsFailed: nothing of it ran, and
        the parent may retry a chunk's items alone)."""
        self.done += 1
        if isinstance(exc, _ArgsFailed):
            exc.error.__cause__ = exc.__cause__
            return _error_frame(task_id, self._retire_flag() | ARGS_FAILED, exc.error)
        return _error_frame(task_id, self._retire_flag(), exc)

    def succeeded(self, task_id: int, fn: Any, value: Any, chunk: bool) -> Frame:
        if chunk:
            _wrap_item_errors(value)
        self.done += 1
        return _outcome(task_id, self._retire_flag(), fn, value, chunk)

    def _retire_flag(self) -> int:
        """RETIRING if this worker should be replaced after the task it just ran."""
        spec = self.spec
        if spec.max_tasks is not None and self.done >= spec.max_tasks:
            return RETIRING
        if spec.max_memory is not None and _rss_bytes() > spec.max_memory:
            return RETIRING
        return 0

    def initialize(self) -> bool:
        if self.spec.initializer is not None:
            try:
                from ..._local._loops import run_initializer

                initializer, initargs = self.spec.initializer.load()  # a Carried
                run_initializer(initializer, initargs)  # an async def one on the tasks' loop
            except BaseException as exc:
                _log_initializer_failure(exc)
                self.send(_error_frame(INIT_FAILED, 0, exc))
                return False
        self.send((READY, 0, b"", []))
        return True

    def receive(self, message: tuple[Any, ...]) -> Any:
        """The segment that follows a task with out-of-band buffers (_shm.Mapped), None, or
        the error that kept it from being mapped (the task fails, nothing of it ran); and
        the parent's verdicts on the segments of earlier results (released: reuse them)."""
        sizes, verdicts = message[6], message[7]
        for task_id, released in verdicts:
            self.segments.verdict(task_id, released)
        if not sizes:
            return None
        fd = recv_segment(self.conn)  # EOFError: the parent is gone
        try:
            return _shm.map_segment(fd, sizes)
        except (OSError, ValueError) as exc:
            return exc

    def send(self, frame: Frame, args: Any = None) -> None:
        """Frame and send an answer; ``args``: the segment of the task it answers, which
        the header reports released if nothing here maps it any more."""
        task_id, flags, body, buffers = frame
        if isinstance(args, _shm.Mapped) and args.released():
            flags |= ARGS_RELEASED
        if not buffers:
            self.conn.send_bytes(header(task_id, flags) + body)
            return
        try:
            segment = self.segments.write(buffers)
        except Exception as exc:  # no memory for the segment: the task fails, we carry on
            from ..._errors._exceptions import SerializationError

            error = SerializationError(
                f"the result could not be placed in shared memory to send it back from the "
                f"worker process: {type(exc).__name__}: {exc}"
            )
            self.send(_error_frame(task_id, flags & ~OK, error), args)
            return
        try:
            self.conn.send_bytes(header(task_id, flags, [b.nbytes for b in buffers]) + body)
            send_segment(self.conn, segment.fd)
        except BaseException:
            self.segments.discard(segment)
            raise
        self.segments.sent(task_id, segment)

    def loop(self) -> None:
        while True:
            try:
                data = self.conn.recv_bytes()
            except (EOFError, OSError):
                return  # the parent closed our pipe: it is gone or shutting down
            message = pickle.loads(data)
            if message is None:
                return
            if len(message) == 1:
                continue  # a cancel for a coroutine task that has answered already
            try:
                mapped = self.receive(message)
            except (EOFError, OSError):
                return
            fn = self.function(message[1], message[2])
            if hasattr(type(fn), "_anypool_coroutine"):  # anypool._task.runs_at_once
                from ._loop import serve

                serve(self, message, mapped, fn)  # coroutines, side by side, from now on
                return
            answer = self.run_one(message, fn, mapped)
            try:
                self.send(answer, mapped)
            except OSError:
                return  # the parent is gone
            if answer[1] & RETIRING:
                return


def _log_initializer_failure(exc: BaseException) -> None:
    """Log it as the stdlib's workers do (``concurrent.futures``, CRITICAL, with the
    traceback), where the worker's logging setup can show it; the pool still breaks."""
    try:
        import logging

        logging.getLogger("concurrent.futures").critical(
            "Exception in initializer:", exc_info=(type(exc), exc, exc.__traceback__)
        )
    except BaseException:  # a failing log handler must not stop the report to the parent
        pass


def _ignore_sigint() -> None:
    """Ctrl-C in a terminal reaches the whole process group; the parent decides what happens
    to running tasks, and workers must not print KeyboardInterrupt tracebacks. The parent
    starts workers with SIGINT blocked, so none arrives before this point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def worker_main(conn: Any, spec: WorkerSpec) -> None:
    """Entry point of a worker process."""
    _ignore_sigint()
    _die_with_parent(spec.parent_pid, conn)
    worker = Worker(conn, spec)
    if worker.initialize():
        worker.loop()
    conn.close()
