"""Timeouts that stop the task: a hung call fails with TaskTimeout, the rest go on.

Lesson: ``future.result(timeout=5)`` in ``concurrent.futures`` only stops *waiting*;
the hung task keeps its worker forever. anypool's ``timeout=`` stops the task itself:
on the process backend its worker is terminated (SIGTERM, then SIGKILL after half a
second) and replaced, and the future raises ``anypool.TaskTimeout`` (a ``TimeoutError``).
In ``map`` only the slow item fails; with ``return_exceptions=True`` the exception takes
its place and the iteration goes on.

On the thread backend a thread cannot be killed: the future still fails at the deadline
and a fresh thread takes the stuck one's place, but the stuck call runs on in the
background. Prefer processes for work that can hang.
"""

from __future__ import annotations

import time

import anypool


def fetch(seconds: float) -> str:
    time.sleep(seconds)  # stands in for a call that sometimes hangs
    return f"done in {seconds} s"


def main() -> None:
    with anypool.Pool("process", 2) as pool:
        start = time.monotonic()
        hung = pool.submit(fetch, 60, timeout=0.5)  # the clock starts when the task does
        try:
            hung.result()
        except anypool.TaskTimeout as exc:
            print(f"after {time.monotonic() - start:.1f} s (worker start-up included): {exc}")
        else:
            raise AssertionError("the hung call should have timed out")

        delays = [0.1, 0.1, 60, 0.1]
        results = list(pool.map(fetch, delays, timeout=0.5, return_exceptions=True))
        for delay, result in zip(delays, results):
            print(f"  fetch({delay}) -> {result!r}")
        assert isinstance(results[2], anypool.TaskTimeout)
        assert results[3] == "done in 0.1 s"
        print(f"map finished in {time.monotonic() - start:.1f} s, not 60")


if __name__ == "__main__":
    main()
