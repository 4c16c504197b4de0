"""From vthread to anypool: the before/after of docs/migration/vthread.md.

Lesson: ``@vthread.pool(5, gqueue="net")`` is a named pool, ``anypool.named_pool("net",
workers=5)``, plus ``@anypool.task(pool="net")``. A vthread call returns ``None`` (results
go through shared state under ``vthread.lock``, exceptions are printed and lost); an
anypool call returns a Future with the value or the exception. ``vthread.pool.wait`` is
``anypool.join_named``. The vthread half runs only where vthread is installed.
"""

from __future__ import annotations

import importlib.util
import time

import anypool

PAGES = [f"page {n}" for n in range(10)]


@anypool.task(pool="net")
def fetch(n: int) -> str:
    time.sleep(0.05)  # stands in for a download
    if n < 0:
        raise ValueError(f"no page {n}")
    return f"page {n}"


@anypool.task(pool="disk")
def save(n: int) -> int:
    time.sleep(0.05)
    return n


def before() -> list[str]:
    import vthread

    pages: list[str] = []

    @vthread.pool(5, gqueue="net")  # five threads in the group "net"
    def fetch_v(n: int) -> None:
        time.sleep(0.05)
        with vthread.lock:
            pages.append(f"page {n}")  # a call returns None: results go through shared state

    @vthread.pool(2, gqueue="disk")
    def save_v(n: int) -> None:
        time.sleep(0.05)

    try:
        for n in range(10):
            fetch_v(n)
        for n in range(4):
            save_v(n)
        vthread.pool.wait(gqueue="net")
        vthread.pool.waitall()
        # vthread's wait reads two queues without a lock, so it can return a moment before
        # the last call has finished: give the stragglers a bounded grace period
        deadline = time.monotonic() + 10
        while len(pages) < len(PAGES) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        vthread.unpatch_all()  # vthread replaced print() with a locked, prefixed one
    return sorted(pages)


def after() -> list[str]:
    anypool.named_pool("net", backend="thread", workers=5)  # configure before the first call
    anypool.named_pool("disk", backend="thread", workers=2)
    futures = [fetch(n) for n in range(10)]  # each call returns a Future
    saved = list(save.map(range(4)))  # map on the decorator's pool
    assert anypool.join_named("net", timeout=30)
    assert anypool.join_all_named(timeout=30)
    assert saved == [0, 1, 2, 3]
    try:
        fetch(-1).result(timeout=30)
        raise AssertionError("fetch(-1) should have raised")
    except ValueError as exc:  # vthread would have printed it and moved on
        print("the caller got:", exc)
    pages = sorted(f.result() for f in futures)
    anypool.named_pool("net").shutdown()
    anypool.named_pool("disk").shutdown()
    return pages


def main() -> None:
    assert after() == sorted(PAGES)
    print("anypool: 10 pages through the net group, 4 saves through the disk group")
    if importlib.util.find_spec("vthread") is None:
        print("vthread is not installed: ran the anypool half only (pip install vthread)")
        return
    assert before() == sorted(PAGES)
    print("vthread gave the same pages")


if __name__ == "__main__":
    main()
