"""A crash survived: a task that kills its worker fails alone, the pool carries on.

Lesson: with ``concurrent.futures.ProcessPoolExecutor`` one worker that segfaults, calls
``os._exit()`` or is killed by the OOM killer breaks the whole executor: every pending
future fails with ``BrokenProcessPool`` and the executor is dead. anypool gives each
worker its own pipe, so it knows which task a dead worker was running: only that future
fails, with ``anypool.WorkerCrashed`` (a ``BrokenProcessPool``) naming the pid, the
signal or exit code and the likely cause. The worker is replaced and everything else
completes. With ``retries=N`` the lost task is run again, up to N times.
"""

from __future__ import annotations

import ctypes
import os
import tempfile

import anypool


def risky(x: int) -> int:
    if x == 3:
        ctypes.string_at(0)  # a segfault, as a buggy C extension might cause
    if x == 5:
        os._exit(1)  # a library that calls exit()
    return x * x


def flaky(counter: str) -> str:
    """Kills its worker the first two times it runs, then succeeds."""
    with open(counter, "a") as file:
        file.write("x")
    with open(counter) as file:
        if len(file.read()) <= 2:
            os._exit(1)
    return "succeeded on the third attempt"


def main() -> None:
    with anypool.Pool("process", 2) as pool:
        results = list(pool.map(risky, range(8), chunksize=1, return_exceptions=True))
        for x, result in enumerate(results):
            print(f"risky({x}) -> {result!r}")
        crashed = [x for x, r in enumerate(results) if isinstance(r, anypool.WorkerCrashed)]
        assert crashed == [3, 5], crashed
        assert pool.submit(risky, 7).result() == 49  # the pool is still healthy

        with tempfile.TemporaryDirectory() as tmp:
            outcome = pool.submit(flaky, os.path.join(tmp, "calls"), retries=2).result()
        print(f"with retries=2: {outcome}")
        assert outcome == "succeeded on the third attempt"


if __name__ == "__main__":
    main()
