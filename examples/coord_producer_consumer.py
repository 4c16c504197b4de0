"""Three producers, one consumer, a queue between them, and ``task_done``/``join``.

Lesson: producers ``put`` work, a consumer ``get``s it and calls ``task_done()``
for each item; ``join()`` returns once every item put has been marked done — so a
producer can wait until its work was not just taken but finished. The queue
does not make anything faster; it makes the hand-over orderly. Here every role
is a task of one process pool and the queue crosses process boundaries.
"""

from __future__ import annotations

import os

import anypool

PRODUCERS, ITEMS_EACH = 3, 5


def produce(jobs, name: str) -> str:
    for i in range(ITEMS_EACH):
        jobs.put((name, i))
    jobs.join()  # back only when the consumer has finished everything put so far
    return name


def consume(jobs, done) -> int:
    handled = 0
    while True:
        item = jobs.get()
        if item is None:  # the sentinel: no more work
            jobs.task_done()
            return handled
        done.put((item, os.getpid()))
        handled += 1
        jobs.task_done()


def main() -> None:
    with anypool.Pool("process", PRODUCERS + 1) as pool:
        jobs, done = pool.Queue(maxsize=4), pool.Queue()
        consumer = pool.submit(consume, jobs, done)
        producers = [pool.submit(produce, jobs, f"producer-{p}") for p in range(PRODUCERS)]
        assert sorted(f.result(timeout=30) for f in producers) == [
            f"producer-{p}" for p in range(PRODUCERS)
        ]
        jobs.put(None)
        assert consumer.result(timeout=30) == PRODUCERS * ITEMS_EACH
        jobs.join()
        handled = [done.get() for _ in range(PRODUCERS * ITEMS_EACH)]
        assert done.empty()
    items = sorted(item for item, _ in handled)
    assert items == sorted(
        (f"producer-{p}", i) for p in range(PRODUCERS) for i in range(ITEMS_EACH)
    )
    pids = {pid for _, pid in handled}
    assert len(pids) == 1
    assert os.getpid() not in pids
    print(f"{len(items)} items from {PRODUCERS} producers, each consumed exactly once")


if __name__ == "__main__":
    main()
