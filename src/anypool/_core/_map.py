"""The lazy, bounded ``map`` that every backend shares.

::

    input iterator ──islice──► chunk ──submit_chunk──► backend ──► ChunkResult
          ▲                                                           │ done-callback:
          │ refill while there is room (ReadAhead)                    │ counts, wakes
          └──── _MapState.run() ◄── finished chunks, in input or completion order
                      │ one iterable per chunk
                      ▼
                 MapIterator (itertools.chain) ──► items ──► consumer
    async for / await: _MapState.arun() ──► anypool._core._aio.AsyncMap ──► coroutine; where
                 run() waits on _cond, arun() awaits a waiter the done-callback wakes

Room to read more input (``ReadAhead``): fewer than ``window`` chunks unfinished at
the backend, and what was read but not yet taken by the consumer (running, queued,
or finished and waiting its turn) under MAX_READ_AHEAD items and MAX_READ_AHEAD_BYTES
(estimated: items, then their results; a chunk is sized by the larger of an item and a
result, so small inputs with large results do not pile up either). A chunk waits until
about the size the chunker wants fits in what is left, rather than going out as a sliver
of it. So endless generators work, memory stays flat, and in an ordered map a slow head
item does not stall the workers: finished results wait in that bounded buffer while the
workers go on with later items. An explicit ``window=`` is the old,
strict bound: at most that many chunks read ahead, finished or not.

Closing the iterator (or an exception reaching the consumer) cancels every chunk
that has not started. A map never iterated is run to the end (``PendingMaps``).

Why ``itertools.chain``: for tiny tasks the parent's cost per *item* decides
the throughput (a Python ``__next__`` plus a generator frame cost ~200 ns per
item, more than the workers spend). ``MapIterator`` is a ``chain`` over one
iterable per chunk, so handing out an item is a C call; Python code runs once
per chunk. A chunk with no failed item is handed over as its list of values;
one with failures (or an ``on_item`` hook) as a generator that raises or
yields each exception at its item.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .._local._threads import wait_slice
from .._scheduler._chunking import (
    MAX_READ_AHEAD,
    MAX_READ_AHEAD_BYTES,
    MIN_READ_AHEAD,
    AdaptiveChunks,
    Chunker,
    chunk_bytes,
)
from .._task import ChunkResult, chunk_outcomes, chunks_run_here

__all__ = ["MapIterator", "ReadAhead"]

R = TypeVar("R")

SubmitChunk = Callable[[list[Any]], "Future[ChunkResult]"]
OnItem = Callable[[Any, BaseException | None], None]
Finalizer = Callable[[bool], None]
IntSource = int | Callable[[], int]
# Chunks read ahead in all, finished or not, in windows (2 per worker + 1): a slow head
# item lets the other workers run this far ahead, and a consumer that stops early
# wastes at most this much work (on top of the bounds in items and bytes). 8 was too
# few where chunks stay small: 2000 x 1 ms items behind one 2 s item on 2 workers took
# 2.96 s ordered against 2.25 s unordered (the free worker idled once 8 windows were
# done); with 32, 2.42 s. Memory stays bounded by the items and bytes limits.
BUFFERED_WINDOWS = 32


class AsyncWaiter(Protocol):
    """How an async consumer waits for a chunk (anypool._core._aio.ChunkWaiter)."""

    def arm(self) -> None: ...
    def wake(self) -> None: ...
    async def wait(self) -> None: ...


def _read(value: IntSource) -> int:
    return value() if callable(value) else value


@dataclass(frozen=True)
class ReadAhead:
    """How far a map may run ahead of its consumer.

    ``window``: chunks unfinished at the backend at once (an int, or a callable read at
    each refill for pools whose size changes). ``strict``: ``window`` counts every chunk
    read ahead, finished or not (the caller gave ``window=``); else at most
    ``buffered_windows`` windows' worth of chunks are read ahead in all (a chunk costs a
    round trip: small items of slow tasks come in chunks of one). ``workers``: fewer
    chunks than this are always allowed, whatever their bytes, so that every worker has one.
    ``copies``: how many copies of a chunk's items the backend holds until the chunk is
    done (2 where it pickles them: the items and their pickled bytes).
    """

    window: IntSource
    workers: IntSource = 1
    strict: bool = False
    max_items: int = MAX_READ_AHEAD
    max_bytes: int = MAX_READ_AHEAD_BYTES
    buffered_windows: int = BUFFERED_WINDOWS
    copies: IntSource = 1


class _Chunks:
    """The iterator of iterables that ``chain`` reads, one per chunk.

    It remembers the iterable it handed out last, so that ``close()`` can empty
    it: otherwise ``chain`` would go on yielding the rest of that chunk.
    """

    __slots__ = ("active", "source")

    def __init__(self) -> None:
        self.source: Iterator[Iterable[Any]] = iter(())
        self.active: Iterable[Any] | None = None

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> Iterable[Any]:
        self.active = None
        self.active = next(self.source)
        return self.active

    def close(self) -> None:
        active, self.active = self.active, None
        if isinstance(active, list):
            active.clear()
        elif isinstance(active, Generator):
            active.close()
        if isinstance(self.source, Generator):
            self.source.close()


class MapIterator(itertools.chain[R]):
    """What ``Pool.map`` returns: an iterator with ``close()`` and context-manager support."""

    _chunks: _Chunks
    _state: _MapState | None

    def __new__(cls, *args: Any, **kwargs: Any) -> MapIterator[R]:
        chunks = _Chunks()
        self: MapIterator[R] = cls.from_iterable(chunks)  # type: ignore[assignment]
        self._chunks = chunks
        self._state = None
        return self

    def __init__(
        self,
        submit_chunk: SubmitChunk,
        items: Iterable[Any],
        *,
        chunker: Chunker,
        window: int | Callable[[], int] | ReadAhead,
        ordered: bool,
        return_exceptions: bool,
        on_item: OnItem | None = None,
        pending: PendingMaps | None = None,
        sized: bool = True,
        name: str = "a map",
    ) -> None:
        limits = window if isinstance(window, ReadAhead) else ReadAhead(window, strict=True)
        state = _MapState(submit_chunk, items, chunker, limits, return_exceptions, on_item)
        state.ordered = ordered
        state.sized = sized
        self._state = state
        self._chunks.source = state.run()
        if pending is not None:
            pending.add(self, state, name)

    def __enter__(self) -> MapIterator[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop early: chunks not yet started are cancelled, running ones finish."""
        self._chunks.close()
        if self._state is not None:
            self._state.begin()  # closed before iterating: nothing is left to run at exit
            self._state.stop()  # in case iteration never started
            return
        inner = getattr(self, "_inner", None)
        if isinstance(inner, MapIterator):
            inner.close()  # a wrapper closed before its generator started

    # ``async for`` and ``await`` (anypool._core._aio): the same stream, awaited chunk by chunk
    def __aiter__(self) -> AsyncIterator[R]:
        from ._aio import async_map

        return async_map(self)

    def __await__(self) -> Generator[Any, None, list[R]]:
        from ._aio import collect

        return collect(self).__await__()

    def _add_finalizer(self, callback: Finalizer) -> None:
        """Call ``callback(interrupted)`` once when the stream ends, fails or is closed;
        ``interrupted``: a KeyboardInterrupt reached the consumer through it. A wrapper
        (see ``_gen``) hands it to the MapIterator it wraps as ``_inner``, whose end is
        the stream's end."""
        target: Any = self
        while target._state is None and isinstance(getattr(target, "_inner", None), MapIterator):
            target = target._inner
        if target._state is None:
            raise TypeError(f"{type(self).__name__} drives no map to finalize")
        target._state.finalizers.append(callback)

    # A wrapper subclass may skip __init__ and set ``self._gen`` to a generator of
    # items that drives an inner MapIterator; chain then iterates that generator.
    @property
    def _gen(self) -> Iterator[R]:
        raise AttributeError("_gen can only be set")

    @_gen.setter
    def _gen(self, generator: Iterator[R]) -> None:
        self._chunks.source = _one(generator)


def _raising(exc: BaseException) -> Generator[Any, None, None]:
    """An iterable that raises ``exc`` when iterated, not when made."""
    yield from ()
    raise exc


def _one(iterable: Iterable[Any]) -> Generator[Iterable[Any], None, None]:
    yield iterable  # a generator, so that close() before the first next() ends it too


class _Entry:
    """A chunk read from the input: its future, item count and estimated bytes."""

    __slots__ = ("future", "nbytes", "size")

    def __init__(self, future: Future[ChunkResult], size: int, nbytes: int) -> None:
        self.future = future
        self.size = size
        self.nbytes = nbytes


class _MapState:
    """The read-ahead of one map; ``run()`` turns finished chunks into iterables."""

    def __init__(
        self,
        submit_chunk: SubmitChunk,
        items: Iterable[Any],
        chunker: Chunker,
        limits: ReadAhead,
        return_exceptions: bool,
        on_item: OnItem | None,
    ) -> None:
        self._submit_chunk = submit_chunk
        self._items = iter(items)
        self._chunker = chunker
        self._limits = limits
        self._adaptive = isinstance(chunker, AdaptiveChunks)
        self._return_exceptions = return_exceptions
        self._on_item = on_item
        self.ordered = True
        self.sized = True  # False: the input has no length, maybe endless (drain warnings)
        # Chunks read and not yet handed to the consumer, by sequence number (input order).
        # Only the consumer's thread adds and removes; done-callbacks only count, under _cond.
        self._inflight: dict[int, _Entry] = {}
        self._next_seq = 0
        self._head = 0  # ordered: the next chunk to hand over
        self._done: deque[int] = deque()  # unordered: finished chunks, in completion order
        # (items, seconds) of finished chunks, for the chunker: appended by done-callbacks
        # (deque.append is atomic), applied by the consumer's thread before it sizes a chunk,
        # so chunks grow as soon as chunks finish, not only as the consumer takes them
        self._observed: deque[tuple[int, float]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._unfinished = 0  # chunks whose future is not done
        # while the consumer waits: a chunk finishing makes room for more input only if the
        # unfinished count drops below this (0: room comes from the consumer's side only);
        # other completions behind the head need not wake it (each wake costs a GIL switch)
        self._wake_below = 0
        self._ahead_items = 0  # read from the input, not yet taken by the consumer
        self._ahead_bytes = 0
        self._taken = 0  # items of chunks the consumer has walked
        self._item_bytes = 0  # running estimate of one item's bytes
        # ... and of one item's result (set by done-callbacks): small inputs with large
        # results (map(load_image, paths)) must not come in chunks sized by the inputs alone
        self._result_item_bytes = 0
        self._exhausted = False
        self._input_error: BaseException | None = None
        self._ran_in_submit = False
        self._began = False
        self._on_begin: Callable[[], None] | None = None
        self.items_done = 0  # items handed over (for drain messages)
        self.failures: list[BaseException] = []  # drain mode: the items' exceptions
        self._drain_mode = False
        self._kept: list[Iterable[Any]] | None = None  # results of a drain that kept them
        self.finalizers: list[Finalizer] = []

    # -- the consumer's side -----------------------------------------------------------------
    def begin(self) -> None:
        """The map is being consumed (or closed): it is no longer a never-iterated map."""
        if not self._began:
            self._began = True
            on_begin, self._on_begin = self._on_begin, None
            if on_begin is not None:
                on_begin()

    def run(self) -> Generator[Iterable[Any], None, None]:
        interrupted = False
        try:
            self.begin()
            if self._kept is not None:  # drained at shutdown: hand over what it kept
                kept, self._kept = self._kept, []
                yield from kept
                return
            while (entry := self._next_finished()) is not None:
                outcome = chunk_outcomes(entry.future, entry.size)
                self._account(outcome, entry.size)
                if not self._ran_in_submit:
                    # refill before the consumer walks this chunk: workers stay busy meanwhile
                    self._fill()
                yield self._iterable(outcome)
                self._release(entry)  # the consumer took the whole chunk
            if self._input_error is not None:
                raise self._input_error
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            self.stop(interrupted)

    def stop(self, interrupted: bool = False) -> None:
        """End the stream: cancel what has not started, read no more input, run finalizers."""
        self._exhausted = True
        self._input_error = None
        entries = list(self._inflight.values())
        self._inflight.clear()
        for entry in entries:
            entry.future.cancel()
        self.finish(interrupted)

    def finish(self, interrupted: bool) -> None:
        finalizers, self.finalizers = self.finalizers, []
        for callback in finalizers:
            callback(interrupted)

    def drain(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Run the map to its end without a consumer (it was never iterated): results are
        dropped, items' exceptions collected in ``failures``; ``should_stop()`` is asked
        after each chunk."""
        self._drain_mode = True
        self._return_exceptions = True  # one failed item must not end the others
        stream = self.run()
        try:
            for iterable in stream:
                for _ in iterable:
                    pass
                if should_stop():
                    break
        finally:
            stream.close()

    def keep(self, check: Callable[[], object] = lambda: None) -> None:
        """Run the map to its end without a consumer and keep every chunk's results (all
        in memory, as ``Executor.map`` has them), for ``run()`` to hand over later.
        ``check()`` is called after each chunk."""
        kept: list[Iterable[Any]] = []
        stream = self.run()
        try:
            for iterable in stream:
                kept.append(iterable)
                check()
        except Exception as exc:  # the input broke: raised where the iteration reaches it
            kept.append(_raising(exc))
        finally:
            stream.close()
            self._kept = kept

    # -- reading ahead ------------------------------------------------------------------------
    def _room(self) -> bool:
        """May one more chunk be read? (Only the consumer's thread reads the input.)"""
        self._wake_below = 0
        if self._exhausted:
            return False
        limits = self._limits
        window = _read(limits.window)
        if limits.strict:
            if len(self._inflight) >= window:
                return False
        elif len(self._inflight) >= limits.buffered_windows * window:
            return False
        elif self._unfinished >= window:
            self._wake_below = window
            return False
        ramp = self._ramp_room(window)
        if ramp <= 0 or (self._inflight and ramp < self._chunker.next_size() // 2):
            return False  # wait until a chunk of about the size the chunker wants fits
        if len(self._inflight) < _read(limits.workers):
            return True  # every worker gets a chunk, however large its items
        if self._ahead_items >= limits.max_items or self._ahead_bytes >= limits.max_bytes:
            return False
        if not self._adaptive:
            return True
        # Wait until about the chunk the chunker wants fits in what is left of the budget:
        # a sliver of it made 1-item chunks (a round trip each, then a gap) between full
        # ones, every time the chunks in flight did not divide the budget evenly.
        share, left = self._budget()
        return left >= min(self._chunker.next_size(), share) // 2

    def _ramp_room(self, window: int) -> int:
        """Items an input without a length may still be read ahead: ``window`` times
        (MIN_READ_AHEAD + items taken), so a consumer that stops after a few items wastes
        little, and the read-ahead grows with what it takes (huge for a sized input)."""
        if self.sized or not self._adaptive:
            return self._limits.max_items
        return window * (MIN_READ_AHEAD + self._taken) - self._ahead_items

    def _next_size(self) -> int:
        while self._observed:
            self._chunker.observe(*self._observed.popleft())
        size = self._chunker.next_size()
        if not self._adaptive:
            return size  # the caller chose the chunk size: only the number of chunks is bounded
        share, left = self._budget()
        cap = min(share, left, self._ramp_room(_read(self._limits.window)))
        return max(1, min(size, cap))

    def _budget(self) -> tuple[int, int]:
        """(share, left) of the read-ahead budget, in items (by items and estimated bytes):
        one chunk may take at most a (workers + 1)-th of it, so that every worker has a
        chunk and one more waits; and never more than is left of it."""
        limits = self._limits
        parts = _read(limits.workers) + 1
        share = limits.max_items // parts
        left = limits.max_items - self._ahead_items
        item_bytes = max(self._item_bytes, self._result_item_bytes)
        if item_bytes:
            share = min(share, limits.max_bytes // parts // item_bytes)
            left = min(left, (limits.max_bytes - self._ahead_bytes) // item_bytes)
        return share, left

    def _fill(self) -> None:
        while self._room():
            try:
                chunk = list(itertools.islice(self._items, self._next_size()))
            except Exception as exc:
                # the input broke: deliver what is in flight first, then raise it
                self._input_error = exc
                chunk = []
            if not chunk:
                self._exhausted = True
                return
            self._submit(chunk)
            if self._ran_in_submit:
                # It ran inside submit (the inline backend): reading further ahead would
                # run items before the consumer asks for them, so map stays one item per
                # consumed item, as docs/design.md promises for inline.
                return

    def _submit(self, chunk: list[Any]) -> None:
        nbytes = chunk_bytes(chunk) * _read(self._limits.copies)
        size = len(chunk)
        self._item_bytes = max(1, nbytes // size)
        ran_here = chunks_run_here()
        future = self._submit_chunk(chunk)
        entry = _Entry(future, size, nbytes)
        seq = self._next_seq
        self._next_seq += 1
        with self._cond:
            self._inflight[seq] = entry
            self._unfinished += 1
            self._ahead_items += size
            self._ahead_bytes += nbytes
        self._ran_in_submit = chunks_run_here() != ran_here
        future.add_done_callback(functools.partial(self._chunk_done, seq, entry))

    def _chunk_done(self, seq: int, entry: _Entry, future: Future[ChunkResult]) -> None:
        """Done-callback (a worker's or the dispatcher's thread): count it, wake the consumer.
        The chunk's items are charged as its results from now on (the task, and with it
        the input items, is released once it is done)."""
        result_bytes = entry.nbytes
        result = None
        if not future.cancelled() and future.exception() is None:
            result = future.result()
        if isinstance(result, ChunkResult):
            result_bytes = chunk_bytes(result.values)
            per_item = result_bytes // max(1, entry.size)
            previous = self._result_item_bytes  # a racy update loses one sample at worst
            self._result_item_bytes = per_item if not previous else (previous + per_item) // 2
            if result.duration:
                self._observed.append((entry.size, result.duration))
        with self._cond:
            self._unfinished -= 1
            if seq in self._inflight:
                self._ahead_bytes += result_bytes - entry.nbytes
                entry.nbytes = result_bytes
            if not self.ordered:
                self._done.append(seq)
                self._cond.notify()
            elif seq == self._head or self._unfinished < self._wake_below:
                self._cond.notify()
        waker = self.waker
        if waker is not None:  # an async consumer (arun) awaits instead of waiting on _cond
            waker()

    def _next_finished(self) -> _Entry | None:
        """The next chunk to hand over (input or completion order), reading more input
        while there is room and it is not finished; None when nothing is left."""
        while True:
            if (entry := self._finished_inline()) is not None:
                return entry
            self._fill()
            with self._cond:
                if not self._inflight:
                    return None
                entry = self._take_finished()
                if entry is not None:
                    return entry
                if not self._room():
                    # wait for a chunk to finish: the head, or any (room for more input);
                    # in slices in the main thread, so that a Ctrl-C is never missed
                    self._cond.wait(wait_slice())

    def _finished_inline(self) -> _Entry | None:
        """Where chunks run inside submit (inline): a finished chunk, if one is ready, before
        any input is read. Auto's chunks sent out while it sampled are done by the time it
        chooses inline; filling first ran a chunk ahead of the consumer for the rest of the
        map (the consumer then walked results the next chunk had pushed out of the CPU
        cache, and the read-ahead budget held two chunks, not one)."""
        if not self._ran_in_submit:
            return None
        with self._cond:
            return self._take_finished()

    def _take_finished(self) -> _Entry | None:
        """A finished chunk ready to hand over, removed from the read-ahead; caller holds _cond."""
        if self.ordered:
            entry = self._inflight.get(self._head)
            if entry is None or not entry.future.done():
                return None
            del self._inflight[self._head]
            self._head += 1
            return entry
        while self._done:
            entry = self._inflight.pop(self._done.popleft(), None)
            if entry is not None:
                return entry
        return None

    def _release(self, entry: _Entry) -> None:
        self._chunker.consumed(entry.size)
        self._taken += entry.size  # the consumer walked the whole chunk
        with self._cond:
            self._ahead_items -= entry.size
            self._ahead_bytes -= entry.nbytes

    # -- an async consumer (anypool._core._aio drives this) -------------------------------------
    # run() for ``async for``: where run() blocks in Condition.wait, arun() awaits
    # ``waiter.wait()``, which returns once ``waker`` (called by _chunk_done from any
    # thread) fired; ``waiter.arm()`` is called under _cond first, so no wake is lost.
    waker: Callable[[], None] | None = None

    async def arun(self, waiter: AsyncWaiter) -> AsyncGenerator[Iterable[Any], None]:
        interrupted = False
        self.waker = waiter.wake
        try:
            self.begin()
            if self._kept is not None:  # drained at shutdown: hand over what it kept
                kept, self._kept = self._kept, []
                for iterable in kept:
                    yield iterable
                return
            while (entry := await self._anext_finished(waiter)) is not None:
                outcome = chunk_outcomes(entry.future, entry.size)
                self._account(outcome, entry.size)
                if not self._ran_in_submit:
                    self._fill()
                yield self._iterable(outcome)
                self._release(entry)
            if self._input_error is not None:
                raise self._input_error
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            self.waker = None
            self.stop(interrupted)

    async def _anext_finished(self, waiter: AsyncWaiter) -> _Entry | None:
        """_next_finished() that awaits instead of blocking the thread."""
        while True:
            if (entry := self._finished_inline()) is not None:
                return entry
            self._fill()
            with self._cond:
                if not self._inflight:
                    return None
                entry = self._take_finished()
                if entry is not None:
                    return entry
                wait = not self._room()
                if wait:
                    waiter.arm()
            if wait:
                await waiter.wait()

    # -- handing results over -----------------------------------------------------------------
    def _account(self, outcome: ChunkResult, size: int) -> None:
        self.items_done += size
        if self._drain_mode and outcome.errors:
            self.failures.extend(outcome.errors.values())

    def _iterable(self, outcome: ChunkResult) -> Iterable[Any]:
        if not outcome.errors and self._on_item is None:
            return outcome.values  # chain walks the list in C
        return self._items_of(outcome)

    def _items_of(self, outcome: ChunkResult) -> Generator[Any, None, None]:
        for index, value in enumerate(outcome.values):
            error = outcome.errors.get(index)
            if self._on_item is not None:
                self._on_item(value, error)
            if error is None:
                yield value
            elif self._return_exceptions:
                yield error  # documented: the exception takes the item's place
            else:
                # like a generator that raised, the stream ends here: cancel the rest now
                # (run() is suspended; it finds nothing in flight when chain resumes it)
                self.stop()
                raise error


from ._drain import PendingMaps  # noqa: E402  (PendingMaps drives _MapState)
