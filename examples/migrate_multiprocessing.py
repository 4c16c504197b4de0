"""From ``multiprocessing.Pool`` to anypool: the before/after of docs/migration/multiprocessing.md.

Lesson: ``map`` / ``imap_unordered`` / ``starmap`` / ``apply_async`` become one lazy
``Pool.map`` (``ordered=False``, one iterable per argument) and ``submit``, whose
future is a ``concurrent.futures.Future`` and whose ``callback(result, error)`` runs in
this process. ``pool.join()`` waits for the tasks and keeps the pool open.
"""

from __future__ import annotations

import multiprocessing

import anypool

Results = tuple[list[int], list[int], list[int], list[int]]


def square(n: int) -> int:
    return n * n


def power(base: int, exp: int) -> int:
    return int(base**exp)  # int ** int is typed as Any: a negative exp gives a float


def before() -> Results:
    collected: list[int] = []
    with multiprocessing.Pool(processes=2) as pool:
        squares = pool.map(square, range(10))
        streamed = sorted(pool.imap_unordered(square, (n for n in range(10))))
        powers = pool.starmap(power, [(2, 5), (3, 2)])
        pending = pool.apply_async(square, (7,), callback=collected.append)
        assert pending.get(timeout=10) == 49
        pool.close()  # leaving the with block would terminate() the pool
        pool.join()
    return squares, streamed, powers, collected


def after() -> Results:
    collected: list[int] = []

    def done(result: int | None, error: BaseException | None) -> None:
        assert error is None, error
        assert result is not None
        collected.append(result)

    with anypool.Pool("process", 2) as pool:
        squares = list(pool.map(square, range(10)))  # lazy: list() runs it
        streamed = sorted(pool.map(square, (n for n in range(10)), ordered=False))
        powers = list(pool.map(power, *zip(*[(2, 5), (3, 2)])))  # one iterable per argument
        future = pool.submit(square, 7, callback=done)
        assert future.result(timeout=10) == 49
        assert pool.join(timeout=10)  # tasks and callbacks done; the pool stays open
        assert pool.submit(square, 8).result(timeout=10) == 64
    return squares, streamed, powers, collected


def main() -> None:
    expected = [n * n for n in range(10)], [n * n for n in range(10)], [32, 9], [49]
    assert before() == expected
    assert after() == expected
    print("multiprocessing.Pool and anypool.Pool gave", expected)


if __name__ == "__main__":
    main()
