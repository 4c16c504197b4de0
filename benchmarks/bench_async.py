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
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=5000)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in ROWS}
    for _ in range(args.rounds):
        for name, (body, _) in ROWS.items():
            samples[name].append(one_run(body, args.tasks))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{args.tasks} tasks, {args.rounds} rounds; us per task")
    print(f"| {'row':48} | median | best  | vs  |")
    print(f"|{'-' * 50}|--------|-------|-----|")
    for name, values in samples.items():
        ratio = medians[name] / medians[ROWS[name][1]]
        print(f"| {name:48} | {medians[name]:6.1f} | {min(values):5.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
