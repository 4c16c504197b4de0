"""FIFO, LIFO and priority queues — for items (``pool.Queue``) and for the pool's own tasks.

Lesson: ``queue.Queue`` hands items out first in, first out; ``LifoQueue`` last in,
first out (a stack); ``PriorityQueue`` smallest first, so ``(priority, data)``
tuples come out by priority. A ``maxsize`` makes ``put`` wait (or raise ``Full``)
when the queue is full. anypool offers the same three orders for items and for
the tasks waiting for a worker.
"""

from __future__ import annotations

import queue
import threading

import anypool

ITEMS = [(3, "c"), (1, "a"), (2, "b")]


def main() -> None:
    with anypool.Pool("process", 1) as pool:  # the same on "thread": only the objects differ
        for order, expected in [
            ("fifo", [(3, "c"), (1, "a"), (2, "b")]),
            ("lifo", [(2, "b"), (1, "a"), (3, "c")]),
            ("priority", [(1, "a"), (2, "b"), (3, "c")]),
        ]:
            q = pool.Queue(order=order)
            for item in ITEMS:
                q.put(item)
            assert q.qsize() == 3
            got = [q.get() for _ in range(3)]
            print(f"{order:>8}: {got}")
            assert got == expected
            assert q.empty()

        bounded = pool.Queue(maxsize=2)
        bounded.put(1)
        bounded.put(2)
        assert bounded.full()
        try:
            bounded.put(3, timeout=0.05)
        except queue.Full:
            print("a full queue with maxsize=2 refused a third item")
        else:
            raise AssertionError("put() on a full queue must time out")

    # the pool's own waiting room: a priority pool runs urgent tasks first
    ran: list[str] = []
    with anypool.Pool("thread", 1, order="priority") as pool:
        gate = threading.Event()
        pool.submit(gate.wait)  # keeps the only worker busy while the rest queue up
        for name, priority in [("backup", 9), ("alert", 0), ("report", 5), ("page", 0)]:
            pool.submit(ran.append, name, priority=priority)
        gate.set()
        pool.join()
    print("tasks ran:", ran)
    assert ran == ["alert", "page", "report", "backup"]  # ties keep submission order


if __name__ == "__main__":
    main()
