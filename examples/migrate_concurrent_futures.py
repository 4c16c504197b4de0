"""From ``concurrent.futures`` to anypool: the before/after of docs/migration/concurrent-futures.md.

Lesson: the same job on ``ProcessPoolExecutor`` and on ``anypool.Pool("process")``.
Futures are the same ``concurrent.futures.Future`` (``as_completed`` works unchanged);
``Pool.map`` is lazy, so ``list()`` runs it; ``result(timeout=)`` only stops waiting,
while anypool's ``submit(..., timeout=)`` stops the task itself; lambdas travel by value.
"""

from __future__ import annotations

import concurrent.futures as cf
import time

import anypool

SIZES = (10_000, 20_000, 30_000)


def digest(n: int) -> int:
    return sum(i * i for i in range(n))  # CPU-bound


def hang(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def before() -> tuple[dict[int, int], list[int]]:
    with cf.ProcessPoolExecutor(max_workers=2) as executor:
        futures = {executor.submit(digest, n): n for n in SIZES}
        done = {futures[f]: f.result() for f in cf.as_completed(futures)}
        totals = list(executor.map(digest, range(100), chunksize=25))
        stuck = executor.submit(hang, 0.5)
        try:
            stuck.result(timeout=0.1)  # stops waiting; the call runs on
            raise AssertionError("a 0.5 s call finished within 0.1 s")
        except cf.TimeoutError:
            start = time.monotonic()
    waited = time.monotonic() - start  # the with block waited for the call to finish
    print(f"stdlib: gave up waiting, then the with block waited {waited:.2f} s for the call")
    return done, totals


def after() -> tuple[dict[int, int], list[int]]:
    with anypool.Pool("process", 2) as pool:
        futures = {pool.submit(digest, n): n for n in SIZES}
        done = {futures[f]: f.result() for f in cf.as_completed(futures)}  # plain Futures
        totals = list(pool.map(digest, range(100)))  # lazy: list() runs it
        stuck = pool.submit(hang, 30, timeout=0.2)  # a limit on running time
        start = time.monotonic()
        try:
            stuck.result()
            raise AssertionError("a 30 s call was not stopped")
        except TimeoutError:  # anypool.TaskTimeout is a TimeoutError
            print("anypool: TaskTimeout, a TimeoutError")
        stopped_after = time.monotonic() - start
        cubes = list(pool.map(lambda n: n**3, range(5)))  # lambdas travel by value
    assert cubes == [0, 1, 8, 27, 64]
    assert stopped_after < 20, "the hung call was stopped long before its 30 s"
    print(f"anypool: the hung call was stopped after {stopped_after:.2f} s (limit 0.2 s)")
    return done, totals


def main() -> None:
    expected = {n: digest(n) for n in SIZES}, [digest(n) for n in range(100)]
    assert before() == expected
    assert after() == expected
    print("same results from ProcessPoolExecutor and anypool.Pool")


if __name__ == "__main__":
    main()
