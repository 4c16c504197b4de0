"""backend="auto": anypool measures the first tasks and picks threads or processes.

The tutorial's lesson, done for you: a counter loop holds the GIL, so it goes to
processes (one per usable CPU); sleeping releases the GIL, so it goes to threads,
many of them. ``pool.explain()`` says why, with the numbers it measured.

    python examples/observe_auto.py
"""

from __future__ import annotations

import time

import anypool
from anypool._runtime import usable_cpus


def count(n: int) -> int:
    """CPU-bound: pure-Python counting holds the GIL the whole time."""
    i = 0
    for _ in range(n):
        i = i + 1
    return i


def wait(seconds: float) -> float:
    """IO-bound: sleeping (like waiting for a socket) releases the GIL."""
    time.sleep(seconds)
    return seconds


def main() -> None:
    with anypool.Pool() as pool:  # backend="auto" is the default
        assert list(pool.map(count, [300_000] * 12)) == [300_000] * 12
        cpu_choice = pool.explain()
    print(cpu_choice, end="\n\n")

    with anypool.Pool() as pool:
        assert list(pool.map(wait, [0.02] * 40)) == [0.02] * 40
        io_choice = pool.explain()
    print(io_choice, end="\n\n")

    # steering: a hard requirement wins over the measurements
    with anypool.Pool(require="shared_memory") as pool:
        assert list(pool.map(count, [300_000] * 4)) == [300_000] * 4
        steered = pool.explain()
    print(steered.summary)

    expected_cpu = "process" if usable_cpus() > 1 else "thread"
    assert cpu_choice.backend == expected_cpu, cpu_choice
    assert io_choice.backend == "thread", io_choice
    assert io_choice.workers > usable_cpus()  # sized to overlap waits, not to count CPUs
    assert steered.backend == "thread", steered
    print("ok")


if __name__ == "__main__":
    main()
