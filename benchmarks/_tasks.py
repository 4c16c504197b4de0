"""The work the benchmarks run. A real module (not ``__main__``), so that every
library can pickle these functions by reference under any start method."""

from __future__ import annotations

import time


def ident(x: object) -> object:
    return x


def spin(n: int) -> int:
    """Pure-Python CPU work; the harness calibrates ``n`` to the wanted duration."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def spin_timed(n: int) -> tuple[int, float]:
    """``spin`` plus how long it ran inside the worker (wall seconds)."""
    start = time.perf_counter()
    return spin(n), time.perf_counter() - start


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def calibrate_spin(target_s: float, tries: int = 5) -> int:
    """Loop count for which ``spin`` runs ``target_s``; the fastest try wins (least noise)."""
    n = 100_000
    best = min(_timed(spin, n) for _ in range(tries))
    return max(1, int(n * target_s / best))


def _timed(fn: object, arg: int) -> float:
    start = time.perf_counter()
    fn(arg)  # type: ignore[operator]
    return time.perf_counter() - start


def record_size(record: bytes) -> int:
    """A cheap function of a large item (bench_map.py's memory case)."""
    return len(record)


def uneven(i: int) -> int:
    """Every 10th item sleeps 1 s, the others 10 ms (bench_map.py's head-of-line case)."""
    time.sleep(1.0 if i % 10 == 0 else 0.01)
    return i
