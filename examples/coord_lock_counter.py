"""A counter shared by many workers, kept exact by ``pool.Lock()`` — on threads and on processes.

Lesson: ``counter += 1`` is a read, an add and a write. Two workers that read the
same value both write value + 1 and one increment is lost. A mutex makes the three
steps one. With anypool the same code runs on threads (the lock is a
``threading.Lock``) and on processes (a named semaphore that rides in the task's
arguments); only the place where the counter lives differs.
"""

from __future__ import annotations

import os
import tempfile
import time

import anypool

TASKS, INCREMENTS = 4, 5_000


def bump_shared_list(counter: list[int], lock, times: int) -> None:
    for _ in range(times):
        with lock:
            value = counter[0]
            time.sleep(0)  # let another thread in between the read and the write
            counter[0] = value + 1


def bump_file(path: str, lock, times: int) -> None:
    # processes share no memory: the counter lives in a file, read and written unsafely
    fd = os.open(path, os.O_RDWR)
    try:
        for _ in range(times):
            with lock:
                value = int.from_bytes(os.pread(fd, 8, 0), "little")
                os.pwrite(fd, (value + 1).to_bytes(8, "little"), 0)
    finally:
        os.close(fd)


def on_threads() -> int:
    counter = [0]
    with anypool.Pool("thread", TASKS) as pool:
        lock = pool.Lock()
        for _ in range(TASKS):
            pool.submit(bump_shared_list, counter, lock, INCREMENTS)
        pool.join()
    return counter[0]


def on_processes() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "counter")
        with open(path, "wb") as f:
            f.write(bytes(8))
        with anypool.Pool("process", TASKS) as pool:
            lock = pool.Lock()
            futures = [pool.submit(bump_file, path, lock, INCREMENTS) for _ in range(TASKS)]
            for future in futures:
                future.result()  # re-raises a worker's exception, if any
        with open(path, "rb") as f:
            return int.from_bytes(f.read(), "little")


def main() -> None:
    expected = TASKS * INCREMENTS
    threads, processes = on_threads(), on_processes()
    print(f"threads:   {threads} (expected {expected})")
    print(f"processes: {processes} (expected {expected})")
    assert threads == expected
    assert processes == expected


if __name__ == "__main__":
    main()
