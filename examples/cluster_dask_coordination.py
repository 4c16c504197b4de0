"""Coordination across a Dask cluster: pool.Lock(), Event() and Queue() from distributed.

The primitives pickle by name, so tasks receive them as ordinary arguments and reach
the same object from any worker process (or any machine of the cluster).
"""

from __future__ import annotations

from typing import Any

import anypool


def worker_task(start: Any, lock: Any, results: Any, n: int) -> int:
    start.wait(timeout=30)  # every task waits for the go signal
    with lock:  # one task at a time in here, cluster-wide
        results.put(n * n)
    return n


def main() -> None:
    with anypool.Pool("dask", 2) as pool:
        start, lock, results = pool.Event(), pool.Lock(), pool.Queue()
        futures = [pool.submit(worker_task, start, lock, results, n) for n in range(4)]
        print("tasks submitted; they wait for the event")
        start.set()
        done = sorted(f.result(timeout=60) for f in futures)
        squares = sorted(results.get(timeout=30) for _ in range(4))
        print(f"tasks {done} put {squares} on a distributed queue")
        assert squares == [0, 1, 4, 9]


if __name__ == "__main__":
    main()
