"""The lazy, bounded ``map`` that every backend shares.

::

    input iterator ──islice──► chunk ──submit_chunk──► backend ──► ChunkResult
          ▲                                                           │
          │ refill while fewer than `window` chunks are in flight     ▼
          └──────────────── consumer ◄── items, in input or completion order

Only ``window`` chunks are ever in flight, so endless generators work and
memory stays flat. Closing the iterator (or an exception reaching the
consumer) cancels every chunk that has not started.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Generic, TypeVar

from ._chunking import Chunker
from ._task import ChunkResult

__all__ = ["MapIterator", "chunk_outcomes"]

R = TypeVar("R")

SubmitChunk = Callable[[list[Any]], "Future[ChunkResult]"]


def chunk_outcomes(future: Future[ChunkResult], size: int) -> ChunkResult:
    """A finished chunk's result; a chunk that failed as a whole fails each of its items."""
    try:
        return future.result()
    except Exception as exc:  # crash, timeout, cancellation, serialization: every item gets it
        return ChunkResult([None] * size, dict.fromkeys(range(size), exc), duration=0.0)


class MapIterator(Iterator[R], Generic[R]):
    """What ``Pool.map`` returns: an iterator with ``close()`` and context-manager support."""

    def __init__(
        self,
        submit_chunk: SubmitChunk,
        items: Iterable[Any],
        *,
        chunker: Chunker,
        window: int | Callable[[], int],
        ordered: bool,
        return_exceptions: bool,
        on_item: Callable[[Any, BaseException | None], None] | None = None,
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
        self._gen: Generator[R, None, None] = self._run(ordered)

    def __next__(self) -> R:
        return next(self._gen)

    def __iter__(self) -> MapIterator[R]:
        return self

    def __enter__(self) -> MapIterator[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop early: chunks not yet started are cancelled, running ones finish."""
        self._gen.close()

    # -- internals --------------------------------------------------------------------------
    def _fill(self) -> None:
        window = self._window() if callable(self._window) else self._window
        while not self._exhausted and len(self._inflight) < window:
            chunk = list(itertools.islice(self._items, self._chunker.next_size()))
            if not chunk:
                self._exhausted = True
                return
            future = self._submit_chunk(chunk)
            self._inflight.append((future, len(chunk)))
            if future.done():
                # It ran inside submit (the inline backend): reading further ahead would
                # run items before the consumer asks for them, so map stays one item per
                # consumed item, as docs/design.md promises for inline.
                return

    def _run(self, ordered: bool) -> Generator[R, None, None]:
        try:
            self._fill()
            while self._inflight:
                future, size = self._next_done(ordered)
                yield from self._deliver(future, size)
                self._fill()
        finally:
            for future, _ in self._inflight:
                future.cancel()
            self._inflight.clear()

    def _next_done(self, ordered: bool) -> tuple[Future[ChunkResult], int]:
        if ordered:
            head = self._inflight.popleft()
            wait([head[0]])
            return head
        done, _ = wait([f for f, _ in self._inflight], return_when=FIRST_COMPLETED)
        for index, entry in enumerate(self._inflight):
            if entry[0] in done:
                del self._inflight[index]
                return entry
        raise AssertionError("wait() returned no finished chunk")  # pragma: no cover

    def _deliver(self, future: Future[ChunkResult], size: int) -> Iterator[R]:
        outcome = chunk_outcomes(future, size)
        if outcome.duration:
            self._chunker.observe(size, outcome.duration)
        self._chunker.consumed(size)
        for index, value in enumerate(outcome.values):
            error = outcome.errors.get(index)
            if self._on_item is not None:
                self._on_item(value, error)
            if error is None:
                yield value
            elif self._return_exceptions:
                yield error  # type: ignore[misc]  # documented: the exception takes the item's place
            else:
                raise error
