"""From ``threading`` and ``queue`` to anypool: the before/after of docs/migration/threading.md.

Lesson: four threads looping on a bounded ``queue.Queue`` with sentinels, a lock around
the results and a ``threading.Timer`` become one ``Pool("thread", 4)``: ``map`` returns
the values in order, ``submit_after`` is the timer, and an exception reaches the caller
instead of killing a worker (which would leave ``jobs.join()`` waiting forever).
"""

from __future__ import annotations

import queue
import threading
import time

import anypool


def fetch(n: int) -> int:
    time.sleep(0.01)  # stands in for a network call
    if n < 0:
        raise ValueError(f"no page {n}")
    return n * 10


def worker(jobs: queue.Queue[int | None], results: dict[int, int], lock: threading.Lock) -> None:
    while True:
        n = jobs.get()
        if n is None:  # the sentinel: no more work
            jobs.task_done()
            return
        value = fetch(n)  # if this raised, the thread would die and jobs.join() hang
        with lock:
            results[n] = value
        jobs.task_done()


def before() -> list[int]:
    jobs: queue.Queue[int | None] = queue.Queue(maxsize=8)
    results: dict[int, int] = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=worker, args=(jobs, results, lock)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for n in range(20):
        jobs.put(n)  # blocks while 8 jobs wait
    for _ in threads:
        jobs.put(None)
    jobs.join()
    for thread in threads:
        thread.join()
    fired = threading.Event()
    reminder = threading.Timer(0.05, fired.set)
    reminder.start()
    reminder.join()
    assert fired.is_set()
    return [results[n] for n in range(20)]


def after() -> list[int]:
    with anypool.Pool("thread", 4) as pool:
        results = list(pool.map(fetch, range(20)))  # in order; an exception is raised here
        fired = threading.Event()
        pool.submit_after(0.05, fired.set).result(timeout=10)  # threading.Timer
        assert fired.is_set()
        try:
            pool.submit(fetch, -1).result(timeout=10)
            raise AssertionError("fetch(-1) should have raised")
        except ValueError as exc:  # the task's own exception, in the caller
            print("the caller got:", exc)
        assert pool.submit(fetch, 3).result(timeout=10) == 30  # and the pool goes on
    return results


def main() -> None:
    expected = [n * 10 for n in range(20)]
    assert before() == expected
    assert after() == expected
    print("hand-made thread pool and anypool.Pool gave the same 20 results")


if __name__ == "__main__":
    main()
