"""Blocking calls from a coroutine: ``await pool.submit(...)`` on a thread pool.

Lesson: a coroutine must never call a blocking function directly (``time.sleep``, a
sync database driver, ``requests``): the whole event loop stops while it runs. Hand the
call to a pool and ``await`` the future it returns. The future is an ordinary
``concurrent.futures.Future`` that can also be awaited, so the same pool serves sync
code too.

Cancelling the awaiting task (here ``asyncio.wait_for`` gives up) cancels the pool's
task if it has not started. A call already running on a thread cannot be stopped: the
wait is abandoned and the call finishes on its own. On the process backend it is killed.
"""

from __future__ import annotations

import asyncio
import time

import anypool


def blocking_lookup(key: str) -> str:
    time.sleep(0.2)  # stands in for a sync driver call
    return key.upper()


async def heartbeat(beats: list[float]) -> None:
    while True:  # shows that the loop keeps running while the lookups block their threads
        beats.append(time.monotonic())
        await asyncio.sleep(0.02)


async def main() -> None:
    beats: list[float] = []
    async with anypool.Pool("thread", 4) as pool:
        ticker = asyncio.ensure_future(heartbeat(beats))
        start = time.monotonic()
        values = await asyncio.gather(*(pool.submit(blocking_lookup, k) for k in "abcd"))
        elapsed = time.monotonic() - start
        print(f"4 blocking lookups of 0.2 s on 4 threads: {values} in {elapsed:.2f} s")
        print(f"meanwhile the event loop ran {len(beats)} heartbeats")
        assert values == ["A", "B", "C", "D"]
        assert len(beats) >= 3, "the event loop was blocked"

        # every thread busy, so the next lookup is still queued when wait_for gives up
        busy = [pool.submit(blocking_lookup, "busy") for _ in range(4)]
        queued = pool.submit(blocking_lookup, "late")
        try:
            await asyncio.wait_for(queued, timeout=0.05)
        except asyncio.TimeoutError:
            print(f"gave up waiting: the queued lookup was cancelled: {queued.cancelled()}")
        assert queued.cancelled()
        await asyncio.gather(*busy)
        ticker.cancel()


if __name__ == "__main__":
    asyncio.run(main())
