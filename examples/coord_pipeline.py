"""A producer-consumer pipeline: each stage on the workers that suit it.

Lesson: the producer-consumer model splits work into stages joined by queues, so a slow
stage does not stop the others and each can have as many workers as it needs. Here the
"downloads" wait on IO (many threads), the parsing burns CPU (processes, past the GIL),
and the results are stored by a single consumer (one thread, so no lock is needed).
``anypool.pipeline`` joins the stages with bounded buffers: the source below never ends,
yet only a bounded number of items is ever in flight, and closing the output stops
every stage and shuts its pool down.

Run it: ``python examples/coord_pipeline.py``
"""

from __future__ import annotations

import itertools
import time

import anypool

stored: dict[int, int] = {}


def download(page: int) -> tuple[int, str]:
    time.sleep(0.02)  # waiting for the network: the GIL is free meanwhile
    return page, f"page {page} " + "lorem ipsum " * 200


def parse(download: tuple[int, str]) -> tuple[int, int]:
    page, text = download
    words = sum(1 for _ in text.split())  # CPU work, on another core
    return page, words


def store(parsed: tuple[int, int]) -> int:
    page, words = parsed
    stored[page] = words  # one consumer thread: no lock needed
    return page


def main() -> None:
    started = time.perf_counter()
    pages = itertools.count()  # an endless producer
    done = anypool.pipeline(
        pages,
        anypool.Stage(download, backend="thread", workers=16),
        anypool.Stage(parse, backend="process", workers=2),
        anypool.Stage(store, backend="thread", workers=1),
    )
    with done:  # leaving the block closes every stage and shuts the pools down
        first = list(itertools.islice(done, 100))
    elapsed = time.perf_counter() - started
    print(f"stored pages {first[0]}..{first[-1]} in {elapsed:.2f} s")
    print(f"one page at a time would take at least {100 * 0.02:.2f} s of downloads alone")
    assert first == list(range(100))  # in order, nothing lost or duplicated
    assert all(stored[page] == 402 for page in first)


if __name__ == "__main__":
    main()
