"""Chunk sizing for ``map``: fixed, or adaptive from measured task durations. Pure logic."""

from __future__ import annotations

from typing import Protocol

__all__ = ["AdaptiveChunks", "Chunker", "FixedChunks", "make_chunker"]

# A chunk should run this long in the worker. Longer chunks amortise the
# ~50-200 us round trip of a process backend better, shorter ones balance load
# and deliver the first results sooner; 20 ms keeps overhead under 1%.
TARGET_CHUNK_S = 0.02
# Upper bound on items per chunk: bounds the memory one chunk holds in flight.
MAX_CHUNK = 1 << 15
# Growth per observation; shrinking is immediate. 8x reaches MAX_CHUNK in 5 steps.
GROWTH = 8
# An input without a length (a generator, maybe endless) is never read ahead of the
# consumer by more than this many items beyond what it has taken, so a consumer that
# stops early leaves little work wasted and memory stays flat. An input with a length
# is already in memory: its chunks are bounded by time (TARGET_CHUNK_S) and by `total`
# only, which lets them reach full size in a few chunks instead of dozens (benchmarks/).
MIN_READ_AHEAD = 16


class Chunker(Protocol):
    def next_size(self) -> int: ...

    def observe(self, items: int, duration: float) -> None: ...

    def consumed(self, items: int) -> None: ...


class FixedChunks:
    def __init__(self, size: int) -> None:
        self.size = size

    def next_size(self) -> int:
        return self.size

    def observe(self, items: int, duration: float) -> None:
        pass

    def consumed(self, items: int) -> None:
        pass


class AdaptiveChunks:
    """Start at one item per chunk and converge on chunks of ~TARGET_CHUNK_S.

    ``total`` (when the input has a length) and ``workers`` cap the size so that
    every worker gets at least ~4 chunks, as ``multiprocessing.Pool.map`` does.
    Without ``total``, a chunk is also capped by what the consumer has taken.
    """

    def __init__(self, workers: int, total: int | None = None) -> None:
        self.size = 1
        self._cap = MAX_CHUNK
        self._sized = total is not None
        if total is not None:
            self._cap = max(1, min(MAX_CHUNK, -(-total // (4 * max(1, workers)))))
        self._consumed = 0

    def next_size(self) -> int:
        if self._sized:
            return max(1, min(self.size, self._cap))
        return max(1, min(self.size, self._cap, MIN_READ_AHEAD + self._consumed))

    def observe(self, items: int, duration: float) -> None:
        if items <= 0:
            return
        per_item = duration / items
        ideal = MAX_CHUNK if per_item <= 0 else int(TARGET_CHUNK_S / per_item)
        self.size = max(1, min(ideal, self.size * GROWTH, self._cap))

    def consumed(self, items: int) -> None:
        self._consumed += items


def make_chunker(chunksize: int | str, workers: int, total: int | None) -> Chunker:
    if chunksize == "auto":
        return AdaptiveChunks(workers, total)
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int or 'auto', got {chunksize!r}")
    return FixedChunks(chunksize)
