"""Chunk sizing for ``map``: fixed, or adaptive from measured task durations. Pure logic."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, Protocol

__all__ = [
    "AdaptiveChunks",
    "Chunker",
    "FixedChunks",
    "chunk_bytes",
    "item_bytes",
    "make_chunker",
]

# A chunk should run this long in the worker. Longer chunks amortise the
# ~50-200 us round trip of a process backend better, shorter ones balance load
# and deliver the first results sooner; 20 ms keeps overhead under 1%.
TARGET_CHUNK_S = 0.02
# On a remote engine (Dask, Ray) a task costs milliseconds of scheduler time, not the
# ~0.1 ms of a local round trip: 2000 x 50 ms sleeps on workers=200 ran as ~1000 Dask
# tasks in 2.8-3.5 s; in chunks of 10, 0.9 s (ideal 0.5 s). There a chunk aims at this
# long, each slot gets about one chunk of a sized input, and chunks start at REMOTE_START.
REMOTE_TARGET_CHUNK_S = 0.5
REMOTE_START = 8
# Upper bound on items per chunk: bounds the memory one chunk holds in flight.
MAX_CHUNK = 1 << 15
# Growth per observation; shrinking is immediate. 8x reaches MAX_CHUNK in 5 steps.
GROWTH = 8
# While the consumer has taken few items, an input without a length (a generator, maybe
# endless) is read at most `window` times (this + the items it has taken) ahead: a
# consumer that stops after a few items leaves little work wasted. An input with a length
# is in memory already: its chunks are bounded by time (TARGET_CHUNK_S) and by `total`
# only, which lets them reach full size in a few chunks instead of dozens (benchmarks/).
MIN_READ_AHEAD = 16
# The read-ahead bound of every map (see ReadAhead): items read from the input that the
# consumer has not taken yet, running, queued or finished and waiting their turn. 2^16
# keeps tiny tasks in chunks of thousands with a few in flight (their throughput needs
# them, benchmarks/) and small items in a few MB; larger items are bounded by bytes.
MAX_READ_AHEAD = 1 << 16
# The same bound in estimated bytes (items in flight and their results): 10 KB records
# then stay ~1,600 ahead, not 100,000s (issue: +1-13 GB of RSS).
MAX_READ_AHEAD_BYTES = 16 << 20
# Items of a chunk whose size is measured to estimate the whole chunk: sampling keeps
# the cost per chunk, not per item (tiny tasks would pay ~10% for measuring every item).
_SAMPLES = 3
# Elements of a container measured to estimate it (one level deep).
_ELEMENT_SAMPLES = 8


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
    ``workers`` may be a callable, read at each chunk: the count can change while the
    map runs (auto decides after sampling, a resize). Read once, auto's default of 2
    before its decision kept chunks of total / 8 after it chose inline (1 worker).
    Without ``total``, the map bounds the read-ahead by what the consumer has taken
    (``_map._MapState._ramp_room``), which caps the chunks too.
    """

    def __init__(
        self,
        workers: int | Callable[[], int],
        total: int | None = None,
        *,
        per_worker: int = 4,
        target_s: float = TARGET_CHUNK_S,
        start: int = 1,
    ) -> None:
        self.size = start
        self._target_s = target_s
        self._workers = workers
        self._total = total
        self._per_worker = per_worker
        self._consumed = 0

    def _cap(self) -> int:
        if self._total is None:
            return MAX_CHUNK
        workers = self._workers() if callable(self._workers) else self._workers
        return max(1, min(MAX_CHUNK, -(-self._total // (self._per_worker * max(1, workers)))))

    def next_size(self) -> int:
        return max(1, min(self.size, self._cap()))

    def observe(self, items: int, duration: float) -> None:
        if items <= 0:
            return
        per_item = duration / items
        ideal = MAX_CHUNK if per_item <= 0 else int(self._target_s / per_item)
        # capped at read (next_size), not here: a cap that rises (auto chose fewer workers)
        # then applies at the next chunk; for a fixed cap the sizes are the same
        self.size = max(1, min(ideal, self.size * GROWTH, MAX_CHUNK))

    def consumed(self, items: int) -> None:
        self._consumed += items


def make_chunker(
    chunksize: int | str,
    workers: int | Callable[[], int],
    total: int | None,
    *,
    remote: bool = False,
) -> Chunker:
    if chunksize == "auto" and remote:  # see REMOTE_TARGET_CHUNK_S
        return AdaptiveChunks(
            workers, total, per_worker=1, target_s=REMOTE_TARGET_CHUNK_S, start=REMOTE_START
        )
    if chunksize == "auto":
        return AdaptiveChunks(workers, total)
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int or 'auto', got {chunksize!r}")
    return FixedChunks(chunksize)


# -- size estimates, for the read-ahead bound in bytes ----------------------------------------
def _flat_bytes(item: Any) -> int:
    if isinstance(item, memoryview):
        return item.nbytes  # getsizeof counts the view object only
    return sys.getsizeof(item)


def item_bytes(item: Any) -> int:
    """A cheap estimate of the memory ``item`` holds: its own size plus, for a tuple, list
    or dict, that of its elements (one level, sampled). bytes, str and buffers are exact;
    objects that hold deeper structures are underestimated, which the bound on items
    (MAX_READ_AHEAD) covers."""
    size = _flat_bytes(item)
    if isinstance(item, dict):
        values: Sequence[Any] = list(islice(item.items(), _ELEMENT_SAMPLES))
        count = len(item)
        per = sum(_flat_bytes(k) + _flat_bytes(v) for k, v in values)
    elif isinstance(item, (tuple, list)):
        values = item[:_ELEMENT_SAMPLES]
        count = len(item)
        per = sum(_flat_bytes(v) for v in values)
    else:
        return size
    return size + (per * count // len(values) if values else 0)


def chunk_bytes(items: Sequence[Any]) -> int:
    """Estimated bytes of a chunk's items, from up to _SAMPLES of them spread over it."""
    n = len(items)
    if n == 0:
        return 0
    if n <= _SAMPLES:
        return sum(item_bytes(x) for x in items)
    step = (n - 1) / (_SAMPLES - 1)
    sampled = sum(item_bytes(items[round(i * step)]) for i in range(_SAMPLES))
    return sampled * n // _SAMPLES
