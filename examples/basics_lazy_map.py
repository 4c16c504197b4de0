"""map is lazy and bounded: an endless generator works, and closing early stops the work.

Run it: ``python examples/basics_lazy_map.py``
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import anypool


class Counting:
    """An endless input that counts how many items the pool has pulled from it."""

    def __init__(self) -> None:
        self.pulled = 0

    def __iter__(self) -> Iterator[int]:
        for n in itertools.count():
            self.pulled += 1
            yield n


def slow_double(n: int) -> int:
    time.sleep(0.01)
    return 2 * n


def main() -> None:
    source = Counting()
    with anypool.Pool(backend="thread", workers=4) as pool:
        results = pool.map(slow_double, source)  # nothing is read until the first next()
        assert source.pulled == 0
        first = list(itertools.islice(results, 20))
        results.close()  # cancels the items that have not started
    assert first == [2 * n for n in range(20)]
    # only a bounded window was read ahead of what we took
    assert source.pulled < 200, source.pulled
    print(f"took 20 results from an endless generator; the pool pulled {source.pulled} items")

    # the one-shot form owns its pool and shuts it down when the iterator ends or closes
    with anypool.map(slow_double, itertools.count(), backend="process", workers=2) as doubled:
        for value in doubled:
            if value >= 10:
                break
    print("anypool.map over itertools.count() stopped at", value)

    # an item's exception surfaces when that item is reached, or in its place on request
    results = list(
        anypool.map(lambda n: 10 // n, [5, 2, 0, 1], backend="thread", return_exceptions=True)
    )
    assert results[:2] == [2, 5]
    assert isinstance(results[2], ZeroDivisionError)
    print("with return_exceptions=True:", results)


if __name__ == "__main__":
    main()
