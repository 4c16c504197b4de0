"""From laptop to cluster: the same script on threads, processes and a Dask cluster.

Only the ``backend=`` argument changes (plus ``address=`` for a cluster someone else runs).
Run it as ``python examples/cluster_laptop_to_cluster.py [tcp://scheduler:8786]``: with no
address it starts a local Dask cluster itself; with one it also runs on that cluster.
"""

from __future__ import annotations

import sys
import time

import anypool


def collatz_steps(n: int) -> int:
    """A small pure-Python CPU task."""
    steps = 0
    while n != 1:
        n = 3 * n + 1 if n % 2 else n // 2
        steps += 1
    return steps


def longest_chain(pool: anypool.Pool, limit: int) -> tuple[int, int]:
    # pool.map is lazy and batches tiny tasks itself, on every backend
    steps = pool.map(collatz_steps, range(1, limit))
    return max((s, n) for n, s in enumerate(steps, start=1))


def main() -> None:
    limit = 30_000
    setups: list[tuple[str, dict[str, object]]] = [
        ("thread", {}),
        ("process", {}),
        ("dask", {}),  # no address: a local cluster of worker processes on 127.0.0.1
    ]
    if len(sys.argv) > 1:
        setups.append(("dask", {"address": sys.argv[1]}))  # an existing scheduler
    answers = set()
    for backend, options in setups:
        start = time.perf_counter()
        with anypool.Pool(backend, 2, **options) as pool:  # type: ignore[arg-type]
            steps, number = longest_chain(pool, limit)
        where = options.get("address", "local")
        print(
            f"{backend:>7} ({where}): {number} takes {steps} steps "
            f"[{time.perf_counter() - start:.2f} s]"
        )
        answers.add((steps, number))
    assert len(answers) == 1, answers  # same code, same answer, wherever it ran


if __name__ == "__main__":  # Dask and process workers import this file: guard the entry point
    main()
