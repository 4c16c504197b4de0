"""Named groups of workers and decorators, in the style of ``vthread`` — but with futures.

Lesson: ``vthread`` let you open several thread pools by group number and send a
function to one by decorating it; calling the function queued it. anypool does
the same with named pools (``anypool.named_pool("net", workers=5)``), ``@anypool.task``
and ``@pool.task``; calls return Futures, ``fn.map`` maps, ``anypool.join_named`` waits
for a group and a group may be processes.
"""

from __future__ import annotations

import os
import threading
import time

import anypool

busy = {"net": 0, "disk": 0}
peak = {"net": 0, "disk": 0}
books = threading.Lock()


def enter(group: str) -> None:
    with books:
        busy[group] += 1
        peak[group] = max(peak[group], busy[group])


def leave(group: str) -> None:
    with books:
        busy[group] -= 1


net = anypool.named_pool("net", backend="thread", workers=5)  # like vthread.pool(5, gqueue=1)
anypool.named_pool("disk", workers=2)  # like vthread.pool(2, gqueue=2)


@net.task
def fetch(n: int) -> str:
    enter("net")
    time.sleep(0.05)
    leave("net")
    return f"page {n}"


@anypool.task(pool="disk")
def save(n: int) -> str:
    enter("disk")
    time.sleep(0.05)
    leave("disk")
    return f"saved {n}"


@anypool.task(pool="disk")
def index(n: int) -> int:
    enter("disk")
    time.sleep(0.05)
    leave("disk")
    return n


def checksum(data: bytes) -> int:
    return sum(data) % 251


def main() -> None:
    pages = [fetch(i) for i in range(10)]
    saved = [save(i) for i in range(4)]
    indexed = list(index.map(range(2)))  # map runs on the decorator's pool
    assert anypool.join_named("net", timeout=30)
    assert anypool.join_all_named(timeout=30)
    assert [p.result() for p in pages] == [f"page {i}" for i in range(10)]
    assert [s.result() for s in saved] == [f"saved {i}" for i in range(4)]
    assert indexed == [0, 1]
    print(f"net ran {len(pages)} fetches, at most {peak['net']} at once (5 workers)")
    print(f"disk ran {len(saved) + len(indexed)} tasks, at most {peak['disk']} at once (2 workers)")
    assert peak["net"] == 5
    assert peak["disk"] == 2

    # a group of processes, and a plain call of the decorator
    anypool.named_pool("cpu", backend="process", workers=2)
    summed = anypool.task(checksum, pool="cpu")
    results = list(summed.map([bytes([i]) * 1000 for i in range(4)]))
    assert results == [(i * 1000) % 251 for i in range(4)]
    assert summed(b"\x01\x02").result(timeout=30) == 3
    pid = anypool.task(os.getpid, pool="cpu")().result(timeout=30)
    assert pid != os.getpid()
    print(f"cpu group ran in worker process {pid}")
    # named pools shut down by themselves at interpreter exit, after their pending work


if __name__ == "__main__":
    main()
