"""The lazy, bounded ``map`` that every backend shares.

::

    input iterator ──islice──► chunk ──submit_chunk──► backend ──► ChunkResult
          ▲                                                           │
          │ refill while fewer than `window` chunks are in flight     ▼
          └──── _MapState.run() ──► one iterable per chunk ──► MapIterator (itertools.chain)
                                                                     │ items, in input or
                                                                     ▼ completion order
                                                                  consumer

Only ``window`` chunks are ever in flight, so endless generators work and
memory stays flat. Closing the iterator (or an exception reaching the
consumer) cancels every chunk that has not started.

Why ``itertools.chain``: for tiny tasks the parent's cost per *item* decides
the throughput (a Python ``__next__`` plus a generator frame cost ~200 ns per
item, more than the workers spend). ``MapIterator`` is a ``chain`` over one
iterable per chunk, so handing out an item is a C call; Python code runs once
per chunk. A chunk with no failed item is handed over as its list of values;
one with failures (or an ``on_item`` hook) as a generator that raises or
yields each exception at its item.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, TypeVar

from ._chunking import Chunker
from ._task import ChunkResult

__all__ = ["MapIterator", "chunk_outcomes"]

R = TypeVar("R")

SubmitChunk = Callable[[list[Any]], "Future[ChunkResult]"]
OnItem = Callable[[Any, BaseException | None], None]
Finalizer = Callable[[bool], None]


def chunk_outcomes(future: Future[ChunkResult], size: int) -> ChunkResult:
    """A finished chunk's result; a chunk that failed as a whole fails each of its items."""
    try:
        return future.result()
    except Exception as exc:  # crash, timeout, cancellation, serialization: every item gets it
        return ChunkResult([None] * size, dict.fromkeys(range(size), exc), duration=0.0)


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
        window: int | Callable[[], int],
        ordered: bool,
        return_exceptions: bool,
        on_item: OnItem | None = None,
    ) -> None:
        state = _MapState(submit_chunk, items, chunker, window, return_exceptions, on_item)
        self._state = state
        self._chunks.source = state.run(ordered)

    def __enter__(self) -> MapIterator[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop early: chunks not yet started are cancelled, running ones finish."""
        self._chunks.close()
        if self._state is not None:
            self._state.stop()  # in case iteration never started

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


def _one(iterable: Iterable[Any]) -> Generator[Iterable[Any], None, None]:
    yield iterable  # a generator, so that close() before the first next() ends it too


class _MapState:
    """The window of chunks in flight; ``run()`` turns finished chunks into iterables."""

    def __init__(
        self,
        submit_chunk: SubmitChunk,
        items: Iterable[Any],
        chunker: Chunker,
        window: int | Callable[[], int],
        return_exceptions: bool,
        on_item: OnItem | None,
    ) -> None:
        self._submit_chunk = submit_chunk
        self._items = iter(items)
        self._chunker = chunker
        # an int, or a callable read at each refill for pools whose size changes
        self._window = window
        self._return_exceptions = return_exceptions
        self._on_item = on_item
        self._inflight: deque[tuple[Future[ChunkResult], int]] = deque()
        self._exhausted = False
        self._input_error: BaseException | None = None
        self._ran_in_submit = False
        self.finalizers: list[Finalizer] = []

    def run(self, ordered: bool) -> Generator[Iterable[Any], None, None]:
        interrupted = False
        try:
            self._fill()
            while self._inflight:
                future, size = self._next_done(ordered)
                outcome = chunk_outcomes(future, size)
                self._account(outcome, size)
                if not self._ran_in_submit:
                    # refill before the consumer walks this chunk: workers stay busy meanwhile
                    self._fill()
                yield self._iterable(outcome)
                self._fill()
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
        for future, _ in self._inflight:
            future.cancel()
        self._inflight.clear()
        self.finish(interrupted)

    def finish(self, interrupted: bool) -> None:
        finalizers, self.finalizers = self.finalizers, []
        for callback in finalizers:
            callback(interrupted)

    def _fill(self) -> None:
        window = self._window() if callable(self._window) else self._window
        while not self._exhausted and len(self._inflight) < window:
            try:
                chunk = list(itertools.islice(self._items, self._chunker.next_size()))
            except Exception as exc:
                # the input broke: deliver what is in flight first, then raise it
                self._input_error = exc
                chunk = []
            if not chunk:
                self._exhausted = True
                return
            future = self._submit_chunk(chunk)
            self._inflight.append((future, len(chunk)))
            self._ran_in_submit = future.done()
            if self._ran_in_submit:
                # It ran inside submit (the inline backend): reading further ahead would
                # run items before the consumer asks for them, so map stays one item per
                # consumed item, as docs/design.md promises for inline.
                return

    def _next_done(self, ordered: bool) -> tuple[Future[ChunkResult], int]:
        if ordered:
            return self._inflight.popleft()  # chunk_outcomes() waits for it
        done, _ = wait([f for f, _ in self._inflight], return_when=FIRST_COMPLETED)
        for index, entry in enumerate(self._inflight):
            if entry[0] in done:
                del self._inflight[index]
                return entry
        raise AssertionError("wait() returned no finished chunk")  # pragma: no cover

    def _account(self, outcome: ChunkResult, size: int) -> None:
        if outcome.duration:
            self._chunker.observe(size, outcome.duration)
        self._chunker.consumed(size)

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
