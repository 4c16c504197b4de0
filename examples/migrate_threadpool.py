"""From the old ``threadpool`` package to anypool: the before/after of docs/migration/threadpool.md.

Lesson: ``makeRequests`` + ``putRequest`` + ``wait()`` become ``submit(..., callback=)``
per request + ``pool.join()``; ``q_size`` becomes ``max_pending``; ``callback(request,
result)`` and ``exc_callback(request, exc_info)`` become one ``callback(result, error)``,
which runs on the pool thread that finished the task (threadpool ran it in the thread
calling ``wait()``), so shared state needs a lock. The threadpool half runs only where
the package is installed.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import time
from typing import Any

import anypool

NAMES = ["a", "b", "c", "d", "e", "f", "g"]


def say_hello(name: str) -> str:
    time.sleep(0.05)  # stands in for a network call
    if name == "bad":
        raise ValueError("no hello for bad")
    return f"hello: {name}"


def before() -> tuple[list[str], list[str]]:
    import threadpool

    results: list[str] = []
    failures: list[str] = []

    def done(request: Any, result: str) -> None:  # runs in the thread that calls wait()
        results.append(result)

    def failed(request: Any, exc_info: Any) -> None:
        failures.append(f"{request.args[0]}: {exc_info[1]}")

    pool = threadpool.ThreadPool(5, q_size=2)
    for request in threadpool.makeRequests(say_hello, [*NAMES, "bad"], done, failed):
        pool.putRequest(request)
    pool.wait()
    pool.dismissWorkers(5)  # daemon threads: they exit within their 5 s poll, or with us
    return sorted(results), failures


def after() -> tuple[list[str], list[str]]:
    results: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()

    def done(name: str, result: str | None, error: BaseException | None) -> None:
        with lock:  # runs on the pool thread that finished the task
            if error is None:
                assert result is not None
                results.append(result)
            else:
                failures.append(f"{name}: {error}")

    with anypool.Pool("thread", 5, max_pending=2) as pool:
        for name in [*NAMES, "bad"]:
            # functools.partial carries the request's key, as requestID did
            pool.submit(say_hello, name, callback=functools.partial(done, name))
        assert pool.join(timeout=30)  # every callback has run
    return sorted(results), failures


def main() -> None:
    expected = [f"hello: {name}" for name in NAMES], ["bad: no hello for bad"]
    assert after() == expected
    print("anypool:", len(expected[0]), "hellos and", expected[1])
    if importlib.util.find_spec("threadpool") is None:
        print("threadpool is not installed: ran the anypool half only (pip install threadpool)")
        return
    assert before() == expected
    print("threadpool gave the same results")


if __name__ == "__main__":
    main()
