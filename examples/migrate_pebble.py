"""From pebble to anypool: the before/after of docs/migration/pebble.md.

Lesson: ``schedule(f, args=, timeout=)`` is ``submit(f, *args, timeout=)`` and both stop
the task; pebble's map iterator lets you go on after an item's error, anypool's
``map(..., return_exceptions=True)`` yields the error in its place; pebble's ``cancel()``
stops a running task, anypool's ``cancel()`` keeps the stdlib meaning and
``pool.kill(future)`` stops it. The pebble half runs only where pebble is installed.
"""

from __future__ import annotations

import importlib.util
import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import Any

import anypool


def work(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def before() -> tuple[float, list[Any]]:
    from pebble import ProcessPool

    with ProcessPool(max_workers=2) as pool:
        fast = pool.schedule(work, args=(0.01,), timeout=5)
        stuck = pool.schedule(work, args=(30,), timeout=0.2)
        results: list[Any] = []
        items = pool.map(work, [0.01, 0.02, 30], timeout=0.3).result()
        while True:
            try:
                results.append(next(items))
            except StopIteration:
                break
            except FuturesTimeoutError as error:  # the stuck item; the loop goes on
                results.append(error)
        try:
            stuck.result()
            raise AssertionError("pebble did not stop the stuck call")
        except FuturesTimeoutError:  # the builtin TimeoutError from 3.11 on
            pass
        doomed = pool.schedule(work, args=(30,))
        time.sleep(0.2)
        assert doomed.cancel()  # pebble: stops the running task
    return fast.result(), results


def after() -> tuple[float, list[Any]]:
    with anypool.Pool("process", 2) as pool:
        fast = pool.submit(work, 0.01, timeout=5)
        stuck = pool.submit(work, 30, timeout=0.2)
        results = list(pool.map(work, [0.01, 0.02, 30], timeout=0.3, return_exceptions=True))
        try:
            stuck.result()
            raise AssertionError("anypool did not stop the stuck call")
        except anypool.TaskTimeout:  # a TimeoutError
            pass
        doomed = pool.submit(work, 30)
        deadline = time.monotonic() + 30
        while not doomed.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not doomed.cancel()  # the stdlib meaning: a running task is not cancelled
        assert pool.kill(doomed)  # this stops it
        try:
            doomed.result(timeout=10)
            raise AssertionError("the killed task finished")
        except CancelledError:
            pass
    return fast.result(), results


def check(name: str, outcome: tuple[float, list[Any]]) -> None:
    fast, results = outcome
    assert fast == 0.01
    assert results[:2] == [0.01, 0.02]
    assert isinstance(results[2], FuturesTimeoutError)  # TaskTimeout is one on every Python
    print(f"{name}: {results[:2]} and a {type(results[2]).__name__} for the stuck item")


def main() -> None:
    check("anypool", after())
    if importlib.util.find_spec("pebble") is None:
        print("pebble is not installed: ran the anypool half only (pip install pebble)")
        return
    check("pebble", before())


if __name__ == "__main__":
    main()
