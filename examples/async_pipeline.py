"""A mixed pipeline: async fetching, CPU work on processes, blocking writes on threads.

Lesson: each kind of work goes where it runs best, and one event loop coordinates them.

- fetch: ``async def``, many at once on this process's loop (network waits);
- parse: pure-Python CPU work, ``await procs.submit(parse, page)`` on worker processes,
  so it uses every core and never stalls the loop;
- store: a blocking call (a sync database driver, say), ``await threads.submit(...)``.

Bounded queues between the stages keep memory flat: a fast stage waits for room.
``async with`` shuts both pools down without blocking the loop; a Ctrl-C (which cancels
the main task under ``asyncio.run``) cancels their queued tasks and stops the workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import anypool

PAGES = 40
DONE = None  # end-of-stream marker on the queues


async def fetch(n: int) -> bytes:
    await asyncio.sleep(0.02)  # stands in for a network call
    return f"page {n} ".encode() * 2000


def parse(page: bytes) -> str:
    digest = page
    for _ in range(200):  # CPU-bound: holds the GIL, so it wants processes
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:12]


def store(db: dict[str, int], key: str, n: int) -> None:
    time.sleep(0.005)  # stands in for a blocking driver call
    db[key] = n


async def fetcher(out: asyncio.Queue[tuple[int, bytes] | None]) -> None:
    async def one(n: int) -> None:
        await out.put((n, await fetch(n)))

    await asyncio.gather(*(one(n) for n in range(PAGES)))
    await out.put(DONE)


async def parser(
    procs: anypool.Pool,
    pages: asyncio.Queue[tuple[int, bytes] | None],
    out: asyncio.Queue[tuple[int, str] | None],
) -> None:
    pending: set[asyncio.Task[None]] = set()

    async def one(n: int, page: bytes) -> None:
        await out.put((n, await procs.submit(parse, page)))

    while (item := await pages.get()) is not DONE:
        pending.add(asyncio.ensure_future(one(*item)))
    await asyncio.gather(*pending)
    await out.put(DONE)


async def storer(
    threads: anypool.Pool, parsed: asyncio.Queue[tuple[int, str] | None], db: dict[str, int]
) -> None:
    while (item := await parsed.get()) is not DONE:
        n, key = item
        await threads.submit(store, db, key, n)


async def main() -> None:
    db: dict[str, int] = {}
    pages: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(maxsize=8)
    parsed: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue(maxsize=8)
    start = time.monotonic()
    async with anypool.Pool("process", 2) as procs, anypool.Pool("thread", 4) as threads:
        await asyncio.gather(
            fetcher(pages), parser(procs, pages, parsed), storer(threads, parsed, db)
        )
    elapsed = time.monotonic() - start
    print(f"{PAGES} pages fetched, parsed on 2 processes, stored from threads in {elapsed:.2f} s")
    assert sorted(db.values()) == list(range(PAGES))
    assert db == {parse(f"page {n} ".encode() * 2000): n for n in range(PAGES)}


if __name__ == "__main__":
    asyncio.run(main())
