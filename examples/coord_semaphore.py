"""A semaphore caps how many workers do something at once, even when more could.

Lesson: a mutex lets one worker in; a semaphore with n permits lets n in (three
free stalls: the fourth visitor waits). ``BoundedSemaphore`` also catches the
bug of releasing more often than acquiring. Here 10 workers each want a
"connection", but only 3 may hold one at a time — on threads, then processes.
"""

from __future__ import annotations

import os
import tempfile
import time

import anypool

PERMITS, WORKERS, JOBS = 3, 10, 12


def use_connection(permits, books_lock, books: str) -> None:
    with permits:
        inside = _count(books_lock, books, +1)
        time.sleep(0.05)  # hold the connection for a while
        _count(books_lock, books, -1)
        assert inside <= PERMITS


def _count(lock, path: str, delta: int) -> int:
    """Move the number of workers inside by ``delta``; keep the peak. A file, for processes."""
    with lock, open(path, "r+") as f:
        now, peak = map(int, f.read().split())
        now += delta
        f.seek(0)
        f.write(f"{now} {max(peak, now)}".ljust(32))
        f.truncate()
        return now


def peak_concurrency(backend: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        books = os.path.join(tmp, "books")
        with open(books, "w") as f:
            f.write("0 0")
        with anypool.Pool(backend, WORKERS) as pool:
            permits, books_lock = pool.BoundedSemaphore(PERMITS), pool.Lock()
            futures = [pool.submit(use_connection, permits, books_lock, books) for _ in range(JOBS)]
            for future in futures:
                future.result(timeout=60)
            try:
                permits.release()  # one more release than acquires
            except ValueError:
                print(f"{backend}: BoundedSemaphore refused an extra release")
            else:
                raise AssertionError("a BoundedSemaphore must refuse an extra release")
        with open(books) as f:
            now, peak = map(int, f.read().split())
        assert now == 0
        return peak


def main() -> None:
    for backend in ("thread", "process"):
        peak = peak_concurrency(backend)
        print(f"{backend}: {WORKERS} workers, {JOBS} jobs, at most {peak} inside at once")
        assert peak == PERMITS


if __name__ == "__main__":
    main()
