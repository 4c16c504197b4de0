"""From mpire to anypool: the before/after of docs/migration/mpire.md.

Lesson: mpire unpacks a tuple item into positional arguments and a dict item into
keywords; anypool passes each item as one argument, so a function of two arguments gets
one iterable per argument (``pool.map(add, *zip(*pairs))``). A ``task_timeout`` in mpire
stops the whole map; anypool's ``timeout=`` fails only the slow item. The mpire half runs
only where mpire is installed.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import anypool

PAIRS = [(1, 2), (3, 4), (5, 6)]


def add(a: int, b: int) -> int:
    return a + b


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def before() -> tuple[list[int], list[int], list[int]]:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=2) as pool:
        sums = pool.map(add, PAIRS)  # each tuple unpacked: add(1, 2)
        unordered = sorted(pool.imap_unordered(add, PAIRS))
        keywords = pool.map(add, [{"a": 1, "b": 2}])  # a dict becomes keywords
    return sums, unordered, keywords


def after() -> tuple[list[int], list[int], list[int]]:
    with anypool.Pool("process", 2) as pool:
        sums = list(pool.map(add, *zip(*PAIRS)))  # one iterable per argument
        unordered = sorted(pool.map(add, *zip(*PAIRS), ordered=False))
        keywords = list(pool.map(lambda kw: add(**kw), [{"a": 1, "b": 2}]))
        # mpire's task_timeout would end the whole map; here only the slow item fails
        naps: list[Any] = list(pool.map(nap, [0.01, 5, 0.02], timeout=0.3, return_exceptions=True))
    assert naps[0] == 0.01
    assert naps[2] == 0.02
    assert isinstance(naps[1], anypool.TaskTimeout)
    return sums, unordered, keywords


def main() -> None:
    expected = [3, 7, 11], [3, 7, 11], [3]
    assert after() == expected
    print("anypool:", expected)
    if importlib.util.find_spec("mpire") is None:
        print("mpire is not installed: ran the anypool half only (pip install mpire)")
        return
    assert before() == expected
    print("mpire gave the same results")


if __name__ == "__main__":
    main()
