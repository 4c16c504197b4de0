"""The unit of work that the engine hands to a backend.

A :class:`Task` is either one call (``fn(*args, **kwargs)``) or a *chunk*: ``fn``
applied to a list of items, which is how ``map`` amortises per-task overhead.
A chunk never raises as a whole: it returns a :class:`ChunkResult` that keeps
each item's value or exception, so an item's exception surfaces when the
consumer reaches that item and the other items still deliver.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures._base import FINISHED as _FINISHED
from concurrent.futures._base import RUNNING as _RUNNING
from typing import Any

__all__ = [
    "ChunkResult",
    "Task",
    "chunk_outcomes",
    "overran",
    "run_chunk",
    "runs_at_once",
    "seconds",
]

_next_seq = itertools.count().__next__


# Task and ChunkResult are written out rather than made by @dataclass: every process
# worker imports this module, and dataclasses (with inspect, ast and dis) would add ~8 ms
# to each spawned worker's start, where the stdlib's worker imports none of them.
class ChunkResult:
    """What a chunk returns: item values in order, with failed items' exceptions by index."""

    __slots__ = ("duration", "errors", "values")

    def __init__(
        self, values: list[Any], errors: dict[int, BaseException], duration: float
    ) -> None:
        self.values = values
        self.errors = errors
        self.duration = duration  # seconds the chunk ran in the worker; drives chunking

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChunkResult):
            return NotImplemented
        mine = (self.values, self.errors, self.duration)
        return mine == (other.values, other.errors, other.duration)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        fields = f"values={self.values!r}, errors={self.errors!r}, duration={self.duration!r}"
        return f"ChunkResult({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return ChunkResult, (self.values, self.errors, self.duration)


# Counts the chunks each thread has run itself: map asks whether the chunk it just
# submitted ran inside submit() (the inline backend, or auto's inline side). A future that
# is already done says nothing: a thread worker can finish a tiny chunk before submit()
# returns, and taking that for inline stopped map from reading ahead.
_here = threading.local()


def fn_name(fn: object) -> str:
    """How messages name a task function: its qualified name, else its name, else repr."""
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def chunks_run_here() -> int:
    """How many chunks the calling thread has run in Task.run (see above)."""
    return getattr(_here, "chunks", 0)


def run_chunk(fn: Callable[..., Any], items: Sequence[Any], star: bool) -> ChunkResult:
    """Apply ``fn`` to every item, catching per item, and time the whole chunk.

    The items run in a C loop (``list.extend(map(...))``, as ``multiprocessing.Pool``
    does) rather than a Python one: for tiny tasks the loop is most of the cost.
    When an item raises, ``extend`` has kept the values before it (CPython appends in
    place), so the failing index is ``len(values)``; the loop resumes after it.
    A coroutine function's chunk (anypool._core._aio.CoroutineCall) runs its items at once
    on one event loop instead.
    """
    run_together = getattr(fn, "_anypool_run_chunk", None)
    if run_together is not None:
        return run_together(items, star)  # type: ignore[no-any-return]
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    apply = itertools.starmap if star else map
    rest = iter(items)
    start = time.perf_counter()
    while True:
        try:
            values.extend(apply(fn, rest))
        except BaseException as exc:
            # SystemExit, GeneratorExit or a custom BaseException fails its item only, as
            # any error; a KeyboardInterrupt in the main thread is a real Ctrl-C (inline
            # backend) and must stop the caller, not become an item's result
            if isinstance(exc, KeyboardInterrupt) and _ctrl_c_lands_here():
                raise
            errors[len(values)] = exc
            values.append(None)
        else:
            return ChunkResult(values, errors, time.perf_counter() - start)


def runs_at_once(fn: object) -> bool:
    """Whether calls of ``fn`` may run at once on one event loop: a coroutine function's
    call (anypool._core._aio.CoroutineCall), which offers ``_anypool_coroutine(args,
    kwargs)`` and ``_anypool_chunk_coroutine(items, star)``. A process worker runs such
    tasks side by side (anypool._backends._process._loop), others one at a time."""
    return hasattr(type(fn), "_anypool_coroutine")


def seconds(value: float | None) -> str:
    """A duration as messages print it: 0.9, not 0.8999999999999999 (a chunk's timeout is
    the item's times its size)."""
    return "None" if value is None else f"{value:g}"


def overran(task: Task) -> str:
    """How a deadline's error names the task and its timeout. A coroutine call's deadline
    (anypool._core._aio.CoroutineCall) is its own ``timeout=``, which cancels it at its next
    await, plus a grace for one that never yields: the error names both, not the sum."""
    own = getattr(task.fn, "timeout", None) if runs_at_once(task.fn) else None
    name = fn_name(task.fn)
    if own is None or task.timeout is None:
        return f"task {name} ran longer than its timeout of {seconds(task.timeout)} s"
    return (
        f"coroutine {name} ran past its timeout of {own:g} s and did not yield within "
        f"{task.timeout - own:g} s after it was cancelled (it blocks its event loop)"
    )


class Task:
    """One call or one chunk of a ``map``, plus the options that govern how it runs.

    Backends resolve :attr:`future` exactly once; :meth:`settle` and
    :meth:`fail` make that idempotent, because a timeout and a late result can race.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        future: Future[Any],
        chunk: bool = False,
        star: bool = False,
        timeout: float | None = None,
        retries: int = 0,
        priority: float = 0.0,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.chunk = chunk  # args is a list of items and fn is applied to each
        self.star = star  # chunk items are argument tuples (map over several iterables)
        self.timeout = timeout
        self.retries = retries
        self.priority = priority
        self.seq: int = _next_seq()  # a C call: every task pays it
        self.attempts = 0  # how many times a worker started it (retries count here)
        self.started_at: float | None = None  # time.monotonic() when a worker took it
        self.worker: str | None = None  # label of the worker that ran it last
        self.payload: Any = None  # backend-private cache, e.g. the pickled call

    def __repr__(self) -> str:
        return (
            f"Task(fn={self.fn!r}, chunk={self.chunk}, timeout={self.timeout}, "
            f"retries={self.retries}, priority={self.priority}, seq={self.seq}, "
            f"attempts={self.attempts}, worker={self.worker!r})"
        )

    @property
    def n_items(self) -> int:
        return len(self.args) if self.chunk else 1

    def run(self) -> Any:
        """Run in the current thread; a chunk returns a ChunkResult, a call its value."""
        if self.chunk:
            _here.chunks = getattr(_here, "chunks", 0) + 1
            return run_chunk(self.fn, self.args, self.star)
        return self.fn(*self.args, **self.kwargs)

    def mark_started(self, worker: str) -> bool:
        """Move the future to RUNNING; False: it was cancelled (or failed), skip it."""
        future = self.future
        # A task run again (a retry, or requeued from a dead worker) is RUNNING already, and
        # one resolved meanwhile is FINISHED: set_running_or_notify_cancel() would log
        # "Future ... in unexpected state" at CRITICAL before it raised. An unlocked read
        # of the state tells those apart (once started or finished, a future stays so);
        # every other task's path is still one lock, where asking first took three.
        state = future._state
        if state in (_RUNNING, _FINISHED):
            started = state == _RUNNING
        else:
            try:
                started = future.set_running_or_notify_cancel()
            except RuntimeError:  # it finished between the read and here
                started = future.running()
        if not started:
            _forget_callbacks(future)
            return False
        self.attempts += 1
        self.worker = worker
        self.started_at = time.monotonic()
        return True

    def settle(self, value: Any) -> None:
        future = self.future
        try:  # no done() check first: set_result refuses a resolved future under its lock
            future.set_result(value)
        except Exception:  # lost a race with fail(), or cancelled: the first outcome stands
            return
        callbacks = getattr(future, "_done_callbacks", None)  # _forget_callbacks, inline:
        if callbacks:  # this is every task's path
            callbacks.clear()

    def fail(self, exc: BaseException) -> None:
        try:
            self.future.set_exception(exc)
        except Exception:  # lost a race with settle(), or cancelled: the first outcome stands
            return
        _forget_callbacks(self.future)

    def cancel_pending(self) -> None:
        """Cancel a queued task. One already RUNNING (queued again for a retry) cannot be
        cancelled per the stdlib, so it fails with CancelledError instead."""
        if self.future.cancel():
            _forget_callbacks(self.future)
        else:
            self.fail(CancelledError("the task was cancelled before it could run again"))


def _forget_callbacks(future: Future[Any]) -> None:
    """Drop a resolved future's done-callbacks, which have all run by now.

    CPython's Future keeps them after calling them, and a callback that holds its task
    (the statistics' does) makes a cycle task -> future -> callback -> task. Only the
    cyclic GC frees that, so until it runs the pool would keep the task's function (a
    bound method keeps its whole object), its arguments and its result alive after the
    caller dropped the future (CPython's test_no_stale_references). A callback added
    from now on runs at once and is never stored, so nothing is lost.
    """
    callbacks = getattr(future, "_done_callbacks", None)  # CPython's Future keeps them here
    if callbacks:
        callbacks.clear()


def _ctrl_c_lands_here() -> bool:
    """True where a KeyboardInterrupt can be a real Ctrl-C: the main thread of a process
    that handles SIGINT (process workers ignore it, so theirs come from the task)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler


def chunk_outcomes(future: Future[ChunkResult], size: int) -> ChunkResult:
    """A finished chunk's result; a chunk that failed as a whole fails each of its items."""
    try:
        return future.result()
    except Exception as exc:  # crash, timeout, cancellation, serialization: every item gets it
        return _failed_chunk(size, exc)
    except BaseException as exc:
        # A task's own SystemExit, KeyboardInterrupt or GeneratorExit is its outcome, data
        # like any error (the stdlib's futures carry it the same way); one that interrupted
        # the wait in this thread (a real Ctrl-C) is not, and goes on.
        if future.done() and not future.cancelled() and future.exception() is exc:
            return _failed_chunk(size, exc)
        raise


def _failed_chunk(size: int, exc: BaseException) -> ChunkResult:
    return ChunkResult([None] * size, dict.fromkeys(range(size), exc), duration=0.0)
