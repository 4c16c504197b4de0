"""Per-task overhead of anypool from async code, next to ``loop.run_in_executor``.

Usage::

    python benchmarks/bench_async.py              # 5 rounds, 5 000 tasks
    python benchmarks/bench_async.py --rounds 3 --tasks 2000

Rows (2 worker threads everywhere; µs per task):

- ``sequential``: one task at a time, ``await`` each before the next, so each task pays
  the full round trip loop -> worker thread -> loop. ``run_in_executor`` on the stdlib's
  ThreadPoolExecutor against ``await pool.submit(noop, i)`` (the target of issue 12:
  at most 1.1x) and ``await asyncio.wrap_future(pool.submit(...))`` (the old way).
- ``gather``: every task submitted, then ``asyncio.gather`` over them.
- ``map``: ``await pool.map(noop, range(n))`` (chunks) against gathering
  ``run_in_executor`` calls, the stdlib's nearest way to map from async code.
- ``coroutine``: ``await pool.submit(async_noop, i)`` one at a time: each coroutine task
  runs on an event loop of its own in the worker (asyncio.run per call).

Each run is a fresh interpreter, its pool warmed before timing; rounds interleave the
rows so that machine load hits every row alike. Reported: median and best per row, and
the ratio of the medians to the row it is compared with.

``--ab RUNS``: the issue's target row alone, measured the way least hurt by a loaded
machine: in one interpreter, blocks of 200 sequential ``run_in_executor`` awaits and 200
``await pool.submit`` alternate (60 blocks each); reported per run: both medians and the
median of the per-block ratios.

``--requests N`` runs the other benchmark instead: N GETs against a local aiohttp server
on 127.0.0.1 (its own process), each answered with a ~50 KB JSON body that the coroutine
parses and reduces, so CPU counts. Side by side, each in a fresh interpreter, with its
defaults unless "tuned": anypool processes x coroutines (``await pool.map``, and
``asyncio.gather`` over one ``pool.submit`` per request),
aiomultiprocess (defaults, and tuned), and one ``asyncio.gather`` with a semaphore of 100
in one process. Reported: requests per second. Needs ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# name -> (timed body inside ``async def main``, the row it is compared with)
ROWS: dict[str, tuple[str, str]] = {
    "sequential: run_in_executor(ThreadPoolExecutor)": (
        "for i in range(n): await loop.run_in_executor(tpe, noop, i)",
        "sequential: run_in_executor(ThreadPoolExecutor)",
    ),
    "sequential: await pool.submit": (
        "for i in range(n): await pool.submit(noop, i)",
        "sequential: run_in_executor(ThreadPoolExecutor)",
    ),
    "sequential: await wrap_future(pool.submit)": (
        "for i in range(n): await asyncio.wrap_future(pool.submit(noop, i))",
        "sequential: run_in_executor(ThreadPoolExecutor)",
    ),
    "gather: run_in_executor(ThreadPoolExecutor)": (
        "await asyncio.gather(*[loop.run_in_executor(tpe, noop, i) for i in range(n)])",
        "gather: run_in_executor(ThreadPoolExecutor)",
    ),
    "gather: pool.submit": (
        "await asyncio.gather(*[pool.submit(noop, i) for i in range(n)])",
        "gather: run_in_executor(ThreadPoolExecutor)",
    ),
    "map: await pool.map": (
        "await pool.map(noop, range(n))",
        "gather: run_in_executor(ThreadPoolExecutor)",
    ),
    "coroutine: await pool.submit(async_noop)": (
        "for i in range(n): await pool.submit(async_noop, i)",
        "sequential: run_in_executor(ThreadPoolExecutor)",
    ),
}

CHILD = """
import asyncio, concurrent.futures as cf, json, sys, time
import anypool

def noop(x):
    return x

async def async_noop(x):
    return x

async def main(n):
    loop = asyncio.get_running_loop()
    with cf.ThreadPoolExecutor(2) as tpe, anypool.Pool("thread", 2) as pool:
        for i in range(200):  # warm both pools' threads
            await loop.run_in_executor(tpe, noop, i)
            await pool.submit(noop, i)
        start = time.perf_counter()
        {body}
        return (time.perf_counter() - start) / n * 1e6

print(json.dumps(asyncio.run(main(int(sys.argv[1])))))
"""


def one_run(body: str, n: int) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(body=body), str(n)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr}")
    return float(json.loads(proc.stdout))


AB_CHILD = """
import asyncio, concurrent.futures as cf, statistics, time
import anypool

def noop(x):
    return x

async def main():
    loop = asyncio.get_running_loop()
    with cf.ThreadPoolExecutor(2) as tpe, anypool.Pool("thread", 2) as pool:
        for i in range(500):
            await loop.run_in_executor(tpe, noop, i)
            await pool.submit(noop, i)
        stdlib, ours = [], []
        for _ in range(60):
            start = time.perf_counter()
            for i in range(200):
                await loop.run_in_executor(tpe, noop, i)
            stdlib.append((time.perf_counter() - start) / 200 * 1e6)
            start = time.perf_counter()
            for i in range(200):
                await pool.submit(noop, i)
            ours.append((time.perf_counter() - start) / 200 * 1e6)
        ratio = statistics.median(b / a for a, b in zip(stdlib, ours))
        print(statistics.median(stdlib), statistics.median(ours), ratio)

asyncio.run(main())
"""


def ab_benchmark(runs: int) -> None:
    print("run | run_in_executor us | await pool.submit us | median per-block ratio")
    ratios = []
    for run in range(1, runs + 1):
        proc = subprocess.run(
            [sys.executable, "-c", AB_CHILD], capture_output=True, text=True, check=True
        )
        stdlib, ours, ratio = (float(x) for x in proc.stdout.split())
        ratios.append(ratio)
        print(f"{run:3} | {stdlib:18.1f} | {ours:20.1f} | {ratio:.2f}x")
    print(f"median of the runs' ratios: {statistics.median(ratios):.2f}x")


# -- many requests ----------------------------------------------------------------------------
SERVER = """
import json, sys
from aiohttp import web

BODY = json.dumps([{"id": i, "value": i % 97, "name": f"item {i}"} for i in range(1100)]).encode()

async def handle(request):
    return web.Response(body=BODY, content_type="application/json")

app = web.Application()
app.router.add_get("/", handle)
runner = web.AppRunner(app, access_log=None)

async def main():
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], len(BODY), flush=True)
    await asyncio.Event().wait()

import asyncio
asyncio.run(main())
"""

CLIENT = """
import asyncio, json, sys, time

URL = sys.argv[2]

async def fetch(i):
    # HTTP/1.0 by hand on asyncio streams: the same client code for every contender
    reader, writer = await asyncio.open_connection("127.0.0.1", int(URL))
    writer.write(b"GET / HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
    raw = await reader.read()
    writer.close()
    body = raw.split(b"\\r\\n\\r\\n", 1)[1]
    return sum(record["value"] for record in json.loads(body))

async def noop():
    return 1

async def single(n):
    room = asyncio.Semaphore(100)
    async def one(i):
        async with room:
            return await fetch(i)
    return await asyncio.gather(*(one(i) for i in range(n)))

async def anypool_processes(n):
    import anypool
    async with anypool.Pool("process") as pool:
        await pool.submit(abs, 1)  # started before timing, as the others
        start = time.perf_counter()
        results = await pool.map(fetch, range(n))
        return results, time.perf_counter() - start

async def anypool_submitted(n):
    import anypool
    async with anypool.Pool("process") as pool:
        await pool.submit(abs, 1)  # started before timing, as the others
        start = time.perf_counter()
        results = await asyncio.gather(*(pool.submit(fetch, i) for i in range(n)))
        return results, time.perf_counter() - start

async def aiomp(n, **options):
    import aiomultiprocess
    async with aiomultiprocess.Pool(**options) as pool:
        await pool.apply(noop, ())
        start = time.perf_counter()
        results = await pool.map(fetch, range(n))
        return results, time.perf_counter() - start

async def main(kind, n):
    if kind == "single":
        start = time.perf_counter()
        results = await single(n)
        elapsed = time.perf_counter() - start
    elif kind == "anypool":
        results, elapsed = await anypool_processes(n)
    elif kind == "anypool-submit":
        results, elapsed = await anypool_submitted(n)
    elif kind == "aiomultiprocess":
        results, elapsed = await aiomp(n)
    else:
        results, elapsed = await aiomp(n, processes=2, childconcurrency=64)
    assert len(results) == n and len(set(results)) == 1, "wrong results"
    print(n / elapsed)

if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[3])))
"""

CONTENDERS = {
    "anypool processes x coroutines, await pool.map (defaults)": "anypool",
    "anypool processes x coroutines, gather(pool.submit) (defaults)": "anypool-submit",
    "aiomultiprocess (defaults)": "aiomultiprocess",
    "aiomultiprocess (processes=2, childconcurrency=64)": "aiomultiprocess-tuned",
    "one loop: asyncio.gather + Semaphore(100)": "single",
}


def requests_benchmark(n: int, rounds: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert server.stdout is not None
        port, size = server.stdout.readline().split()
        samples: dict[str, list[float]] = {name: [] for name in CONTENDERS}
        with tempfile.TemporaryDirectory() as tmp:
            client = os.path.join(tmp, "client.py")  # a file: process workers import it
            with open(client, "w", encoding="utf-8") as f:
                f.write(CLIENT)
            for _ in range(rounds):
                for name, kind in CONTENDERS.items():
                    proc = subprocess.run(
                        [sys.executable, client, kind, port, str(n)],
                        capture_output=True,
                        text=True,
                        cwd=tmp,
                        check=False,
                    )
                    if proc.returncode != 0:
                        raise RuntimeError(f"{name} failed:\n{proc.stderr}")
                    samples[name].append(float(proc.stdout.split()[-1]))
    finally:
        server.kill()
        server.wait()
    single = statistics.median(samples["one loop: asyncio.gather + Semaphore(100)"])
    print(f"{n} GETs of a {int(size) // 1024} KB JSON body, {rounds} rounds; requests/s")
    print(f"| {'contender':62} | median | best  | vs one loop |")
    print(f"|{'-' * 64}|--------|-------|-------------|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name:62} | {median:6.0f} | {max(values):5.0f} | {median / single:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=0, help="run the many-requests benchmark")
    parser.add_argument("--only", default="", help="only the rows whose name contains this")
    parser.add_argument("--ab", type=int, default=0, help="in-process A/B of the target row")
    args = parser.parse_args()
    if args.ab:
        ab_benchmark(args.ab)
        return
    if args.requests:
        requests_benchmark(args.requests, args.rounds)
        return
    # a row is always measured with the row it is compared with
    wanted = {name for name in ROWS if args.only in name}
    wanted |= {ROWS[name][1] for name in wanted}
    samples: dict[str, list[float]] = {name: [] for name in ROWS if name in wanted}
    for _ in range(args.rounds):
        for name in samples:
            samples[name].append(one_run(ROWS[name][0], args.tasks))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{args.tasks} tasks, {args.rounds} rounds; us per task")
    print(f"| {'row':48} | median | best  | vs  |")
    print(f"|{'-' * 50}|--------|-------|-----|")
    for name, values in samples.items():
        ratio = medians[name] / medians[ROWS[name][1]]
        print(f"| {name:48} | {medians[name]:6.1f} | {min(values):5.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
