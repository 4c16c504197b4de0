"""Threads vs processes under the GIL, small-sized (``anypool bench`` is the full experiment).

A pure-Python counter loop is run twice: sequentially, on 2 threads and on 2
processes. With the GIL, threads take turns, so only processes run the loops in
parallel; sleeping (IO-like) tasks overlap on threads as well.

Run it: ``python examples/basics_gil.py``
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import anypool

LOOPS = 2_000_000  # ~0.1 s of pure Python per task on a 2020s laptop core
SLEEP_S = 0.2


def count(n: int) -> int:
    total = 0
    for _ in range(n):
        total += 1
    return total


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def timed(run: Callable[[], list[int | float]]) -> tuple[float, list[int | float]]:
    start = time.perf_counter()
    results = run()
    return time.perf_counter() - start, results


def main() -> None:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"Python {sys.version.split()[0]}, GIL {'enabled' if gil else 'disabled'}")
    for label, fn, arg in (("CPU-bound", count, LOOPS), ("IO-bound", nap, SLEEP_S)):
        sequential, expected = timed(lambda fn=fn, arg=arg: [fn(arg), fn(arg)])
        print(f"{label}: sequential {sequential:.2f} s")
        for backend in ("thread", "process"):
            with anypool.Pool(backend=backend, workers=2) as pool:
                # start both workers before the clock starts: workers start on demand
                list(pool.map(nap, [0.05, 0.05], chunksize=1))
                elapsed, results = timed(
                    lambda pool=pool, fn=fn, arg=arg: list(pool.map(fn, [arg, arg], chunksize=1))
                )
            assert results == expected
            print(f"  2 {backend} workers: {elapsed:.2f} s, speedup x{sequential / elapsed:.1f}")
    print("threads overlap waiting; with the GIL only processes overlap pure-Python CPU work")


if __name__ == "__main__":
    main()
