"""Coroutines on many cores: ``pool.map(async_fn, ...)`` on the process backend.

Lesson: one event loop uses one core. When each coroutine also spends CPU on what it
fetched (parsing JSON, here), a single loop is soon CPU-bound. Hand an ``async def``
function to a process pool: each worker runs the coroutines of a map's chunk on an event
loop of its own, all at once, so ``workers x chunk`` requests are in flight across the
cores. ``async for`` hands the results back in order without blocking this loop, which
meanwhile serves the requests.

The "service" is a tiny TCP server in this process that answers each request with a
JSON body of ~50 KB; the workers' coroutines connect to it on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time

import anypool

BODY_ITEMS = 2000  # ~50 KB of JSON per response


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    n = int((await reader.readline()).decode())
    body = json.dumps([{"id": i, "value": (n * i) % 97} for i in range(BODY_ITEMS)])
    writer.write(body.encode() + b"\n")
    await writer.drain()
    writer.close()


async def fetch_and_reduce(port: int, n: int) -> int:
    """A request (network wait), then CPU on the answer: parse and reduce it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{n}\n".encode())
    await writer.drain()
    records = json.loads(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return sum(record["value"] for record in records)


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    requests = range(200)
    async with server, anypool.Pool("process", 2) as pool:
        start = time.monotonic()
        total = 0
        async for reduced in pool.map(fetch_and_reduce, [port] * len(requests), requests):
            total += reduced
        elapsed = time.monotonic() - start
        print(f"{len(requests)} requests on 2 worker processes: total {total} in {elapsed:.2f} s")

        expected = sum(sum((n * i) % 97 for i in range(BODY_ITEMS)) for n in requests)
        assert total == expected
        # the same coroutine one at a time through await, as any coroutine would
        assert await pool.submit(fetch_and_reduce, port, 3) == sum(
            (3 * i) % 97 for i in range(BODY_ITEMS)
        )


if __name__ == "__main__":
    asyncio.run(main())
