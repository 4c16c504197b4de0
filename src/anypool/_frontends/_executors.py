"""Drop-in ``concurrent.futures`` executors built on the anypool engine.

::

    executor.submit(fn, *args, **kwargs) ──► Task ──► Pool engine ──► backend
    executor.map(fn, *its, chunksize=n)  ──► chunk Tasks (all submitted at once,
                                             as the stdlib does, or `buffersize`
                                             at a time) ──► results in order

Same constructor signatures, return types and exceptions as the stdlib
classes, so code written for them runs unchanged. Every keyword argument of
``submit`` goes to ``fn`` (the stdlib contract): per-task options live on
:class:`anypool.Pool`.
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures as cf
from concurrent.futures import Future
from typing import Any, ParamSpec, TypeVar

from .._core._pool import Pool, backend_of, submit_task
from .._errors._exceptions import PoolClosed, SerializationError
from .._local._atexit import closed_message, interpreter_exiting
from .._local._threads import deadline_in, time_left
from .._task import ChunkResult, Task, chunk_outcomes

__all__ = ["ThreadPoolExecutor"]

R = TypeVar("R")
P = ParamSpec("P")

_executor_ids = itertools.count()


def check_max_workers(max_workers: int | None, default: int) -> int:
    if max_workers is None:
        return default
    if max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")
    return max_workers


def check_initializer(initializer: object) -> None:
    if initializer is not None and not callable(initializer):
        raise TypeError("initializer must be a callable")


class PoolExecutor(cf.Executor):
    """``concurrent.futures.Executor`` semantics on top of an anypool :class:`Pool`."""

    _pool: Pool

    def _adopt(self, pool: Pool) -> None:
        """Run on ``pool``. An executor dropped without ``shutdown()`` lets its workers
        finish the queued work and exit, as the stdlib's do, instead of idling forever."""
        self._pool = pool
        weakref.finalize(self, pool.shutdown, wait=False)

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        task = Task(fn, args, kwargs, Future())
        try:
            return submit_task(self._pool, task)
        except SerializationError as exc:
            # the stdlib's submit returns, and the future holds the pickling error: code
            # that submits a list of calls and checks each future must not stop half-way
            task.future.set_exception(exc)
            return task.future
        except PoolClosed:
            # the stdlib's words, which code written for it greps for; at interpreter exit
            # its very exception too, a plain RuntimeError (its traceback is what is seen)
            message = closed_message()
            if interpreter_exiting():
                raise RuntimeError(message) from None
            raise PoolClosed(message) from None

    def map(
        self,
        fn: Callable[..., R],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[R]:
        """Like ``Executor.map``: every item is submitted now (or ``buffersize`` chunks at a
        time, as in Python 3.14), results come in order, ``timeout`` counts from this call."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if buffersize is not None and (not isinstance(buffersize, int) or buffersize < 1):
            raise ValueError("buffersize must be None or > 0.")
        deadline = deadline_in(timeout)
        chunks = _chunked(zip(*iterables), chunksize)
        window = itertools.islice(chunks, buffersize) if buffersize else chunks
        inflight = deque(self._submit_chunk(fn, chunk) for chunk in window)
        return self._results(inflight, chunks if buffersize else iter(()), fn, deadline)

    def _submit_chunk(
        self, fn: Callable[..., Any], chunk: list[Any]
    ) -> tuple[Future[ChunkResult], int]:
        task = Task(fn, chunk, {}, Future(), chunk=True, star=True)
        return submit_task(self._pool, task), len(chunk)

    def _results(
        self,
        inflight: deque[tuple[Future[ChunkResult], int]],
        rest: Iterator[list[Any]],
        fn: Callable[..., Any],
        deadline: float | None,
    ) -> Iterator[Any]:
        try:
            while inflight:
                future, size = inflight.popleft()
                cf.wait([future], timeout=time_left(deadline))
                if not future.done():
                    future.cancel()  # as the stdlib does: the item that timed out is dropped too
                    raise cf.TimeoutError()
                outcome = chunk_outcomes(future, size)
                for chunk in itertools.islice(rest, 1):
                    inflight.append(self._submit_chunk(fn, chunk))
                # Pop each value as it is yielded, so this suspended generator holds no
                # result the caller has already dropped (CPython issue 14406).
                values = outcome.values
                values.reverse()
                for index in range(len(values)):
                    if index in outcome.errors:
                        raise outcome.errors[index]
                    yield values.pop()
        finally:
            for future, _ in inflight:
                future.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_pending=cancel_futures)

    @property
    def _broken(self) -> bool:
        """The stdlib executors' private flag, which code in the wild polls: True once the
        pool is broken (an initializer failed, workers cannot start)."""
        return backend_of(self._pool).broken is not None

    @_broken.setter
    def _broken(self, value: bool) -> None:  # the stdlib's is writable (its own code sets it)
        raise AttributeError("_broken is read-only: it reflects the pool's state")

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            # Ctrl-C: stop now; the stdlib waits for every pending future here and hangs
            self._pool.shutdown(wait=True, cancel_pending=True, kill_running=True)
        else:
            self.shutdown(wait=True)


def _chunked(items: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[Any]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


class ThreadPoolExecutor(PoolExecutor, cf.ThreadPoolExecutor):
    """Drop-in for :class:`concurrent.futures.ThreadPoolExecutor` on anypool's thread backend.

    It is a ``concurrent.futures.ThreadPoolExecutor`` by type only, because asyncio's
    ``loop.set_default_executor`` accepts nothing else (3.11+): every method comes from
    :class:`PoolExecutor` (first in the MRO), and the stdlib's ``__init__`` never runs.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        # the stdlib's default: at least 5 threads for IO, at most 32
        default = min(32, (os.cpu_count() or 1) + 4)
        max_workers = check_max_workers(max_workers, default)
        check_initializer(initializer)
        self._max_workers = max_workers
        pool = Pool(
            "thread",
            max_workers,
            initializer=None if initializer is None else _LoggedInitializer(initializer),
            initargs=initargs,
            thread_name_prefix=thread_name_prefix or f"ThreadPoolExecutor-{next(_executor_ids)}",
        )
        self._adopt(pool)


class _LoggedInitializer:
    """An initializer that logs its failure as the stdlib's worker threads do
    (``concurrent.futures``, CRITICAL, with the traceback) before the pool breaks."""

    def __init__(self, fn: Callable[..., object]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> object:
        try:
            return self.fn(*args)
        except BaseException:
            import logging

            logging.getLogger("concurrent.futures").critical(
                "Exception in initializer:", exc_info=True
            )
            raise
