"""What statistics and the timeline cost on the tiny-task workloads.

Runs, in interleaved rounds on one machine:

* ``map``: ``pool.map(identity, range(N))`` on the thread backend (adaptive chunks);
* ``submit``: ``N_SUBMIT`` separate ``pool.submit(identity, i)`` calls, then waiting;

each with the book-keeping hook removed (the engine as it was before statistics),
with statistics only (the default), and with ``timeline=True``. Prints the best
round of each and the ratio against the no-hook engine.

    python benchmarks/bench_observe_overhead.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import wait

import anypool

N_MAP = 200_000
N_SUBMIT = 20_000


def identity(x: int) -> int:
    return x


class _NoHookPool(anypool.Pool):
    def _observe_task(self, task: object) -> None:  # type: ignore[override]
        pass  # the engine without statistics: the baseline


def _pool(mode: str) -> anypool.Pool:
    if mode == "no hook":
        return _NoHookPool("thread", 2)
    return anypool.Pool("thread", 2, timeline=(mode == "timeline"))


def run_map(mode: str) -> float:
    with _pool(mode) as pool:
        start = time.perf_counter()
        for _ in pool.map(identity, range(N_MAP)):
            pass
        return time.perf_counter() - start


def run_submit(mode: str) -> float:
    with _pool(mode) as pool:
        start = time.perf_counter()
        futures = [pool.submit(identity, i) for i in range(N_SUBMIT)]
        wait(futures)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    modes = ("no hook", "statistics", "timeline")
    cases: dict[str, tuple[Callable[[str], float], int]] = {
        "map": (run_map, N_MAP),
        "submit": (run_submit, N_SUBMIT),
    }
    best = {(case, mode): float("inf") for case in cases for mode in modes}
    for _ in range(rounds):
        for case, (fn, _n) in cases.items():
            for mode in modes:
                best[case, mode] = min(best[case, mode], fn(mode))
    print(f"{'case':8} {'mode':11} {'best s':>8} {'items/s':>10} {'vs no hook':>10}")
    for case, (_fn, n) in cases.items():
        for mode in modes:
            seconds = best[case, mode]
            ratio = seconds / best[case, "no hook"]
            print(f"{case:8} {mode:11} {seconds:8.4f} {n / seconds:10.0f} {ratio:10.3f}")


if __name__ == "__main__":
    main()
