"""A batch in the style of the old ``threadpool`` module: requests, callbacks, wait.

Lesson: starting a thread per task lets the thread count run away as tasks pile
up; a fixed pool of workers with a bounded request queue does not. ``threadpool``
had you build requests with a callback, put them into the pool and ``wait()``.
With anypool: ``submit(..., callback=)`` per request, ``max_pending=`` bounds the
request queue (``put`` blocks when it is full) and ``pool.join()`` waits for the
batch and its callbacks — then the same pool takes the next batch.
"""

from __future__ import annotations

import threading
import time

import anypool

NAMES = ["a", "b", "c", "d", "e", "f", "g"]
WORK_S = 0.1


def say_hello(name: str) -> str:
    time.sleep(WORK_S)  # stands for a network call
    return f"hello: {name}"


def main() -> None:
    start = time.monotonic()
    sequential = [say_hello(name) for name in NAMES]
    sequential_s = time.monotonic() - start

    results: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def collect(result: str | None, error: BaseException | None) -> None:
        with lock:  # callbacks run on the pool's threads
            if error is None:
                assert result is not None
                results.append(result)
            else:
                failures.append(error)

    with anypool.Pool("thread", 5, max_pending=2) as pool:
        start = time.monotonic()
        for name in NAMES:
            pool.submit(say_hello, name, callback=collect)  # waits while 2 are queued
        assert pool.join(timeout=30)
        pooled_s = time.monotonic() - start
        # a second batch on the same pool: a failing request reaches its callback too
        pool.submit(say_hello, "h", loudly=True, callback=collect)  # TypeError in the task
        pool.join()

    print(f"sequential {sequential_s:.2f} s, pool of 5 {pooled_s:.2f} s")
    assert sorted(results) == sorted(sequential)
    assert len(failures) == 1
    assert isinstance(failures[0], TypeError)
    assert pooled_s < sequential_s  # 7 sleeps on 5 workers: about 2 rounds instead of 7


if __name__ == "__main__":
    main()
