"""From joblib to anypool: the before/after of docs/migration/joblib.md.

Lesson: ``Parallel(n_jobs=2)(delayed(f)(x) for x in xs)`` is ``list(pool.map(f, xs))``;
``return_as="generator"`` is ``Pool.map`` itself (lazy by default); ``prefer="threads"``
is ``backend="thread"``. A joblib timeout abandons the whole call, anypool's stops only
the slow task. The joblib half runs only where joblib is installed (``anypool[bench]``).
"""

from __future__ import annotations

import importlib.util
import time
from math import sqrt
from typing import Any

import anypool


def root(n: int) -> float:
    return round(sqrt(n), 3)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def before() -> tuple[list[float], list[float], list[float]]:
    from joblib import Parallel, delayed

    roots = Parallel(n_jobs=2)(delayed(root)(n) for n in range(10))
    stream = Parallel(n_jobs=2, return_as="generator")(delayed(root)(n) for n in range(10))
    threaded = Parallel(n_jobs=4, prefer="threads")(delayed(root)(n) for n in range(10))
    return list(roots), list(stream), list(threaded)


def after() -> tuple[list[float], list[float], list[float]]:
    with anypool.Pool("process", 2) as pool:
        roots = list(pool.map(root, range(10)))  # lazy: list() runs it
        stream = list(pool.map(root, range(10)))  # the iterator is the generator
        # a timeout fails the slow item only; return_exceptions keeps the others
        naps: list[Any] = list(pool.map(nap, [5, 0.01, 0.02], timeout=0.3, return_exceptions=True))
    assert isinstance(naps[0], anypool.TaskTimeout)
    assert naps[1:] == [0.01, 0.02]
    threaded = list(anypool.map(root, range(10), backend="thread", workers=4))
    return roots, stream, threaded


def main() -> None:
    expected = [round(sqrt(n), 3) for n in range(10)]
    assert after() == (expected, expected, expected)
    print("anypool:", expected)
    if importlib.util.find_spec("joblib") is None:
        print("joblib is not installed: ran the anypool half only (pip install joblib)")
        return
    assert before() == (expected, expected, expected)
    print("joblib gave the same results")


if __name__ == "__main__":
    main()
