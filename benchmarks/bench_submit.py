"""Per-task overhead of ``submit``: anypool next to ``concurrent.futures``, one task at a time.

Usage::

    python benchmarks/bench_submit.py                       # 5 rounds, 20 000 tasks
    python benchmarks/bench_submit.py --baseline-src ../old/src   # also an older anypool

``map`` batches tiny tasks into chunks (see run.py's "tiny" case); this measures the path
it cannot batch: a loop of ``submit(noop, i)`` then every ``result()``, which is what code
written for ``concurrent.futures`` does. Each run is a fresh interpreter, pool created
and warmed before timing, rounds interleaved so machine load hits every row alike.
Reported: µs per task (median and best over rounds) and the ratio to the stdlib's
executor of the same kind.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# name -> (how to make the pool inside the child, stdlib row it is compared with)
IMPLS: dict[str, tuple[str, str]] = {
    "ThreadPoolExecutor": ("cf.ThreadPoolExecutor(2)", "ThreadPoolExecutor"),
    "anypool thread": ("anypool.Pool('thread', 2)", "ThreadPoolExecutor"),
    "anypool inline": ("anypool.Pool('inline')", "ThreadPoolExecutor"),
    "ProcessPoolExecutor": ("cf.ProcessPoolExecutor(2)", "ProcessPoolExecutor"),
    "anypool process": ("anypool.Pool('process', 2)", "ProcessPoolExecutor"),
}

CHILD = """
import concurrent.futures as cf, json, sys, time
import anypool

def noop(x):
    return x

if __name__ == "__main__":
    n = int(sys.argv[1])
    with {make} as pool:
        [f.result() for f in [pool.submit(noop, i) for i in range(200)]]  # warm the workers
        start = time.perf_counter()
        futures = [pool.submit(noop, i) for i in range(n)]
        for f in futures:
            f.result()
        print(json.dumps((time.perf_counter() - start) / n * 1e6))
"""


def one_run(make: str, n: int, src: str | None) -> float:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(make=make), str(n)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=600,
    )
    return float(json.loads(proc.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--process-tasks", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-src", help="an older anypool's src/, run as extra rows")
    args = parser.parse_args()

    rows: dict[str, tuple[str, str | None]] = {n: (make, None) for n, (make, _) in IMPLS.items()}
    if args.baseline_src:
        src = str(Path(args.baseline_src).resolve())
        for name, (make, _) in IMPLS.items():
            if name.startswith("anypool"):
                rows[f"{name} (baseline)"] = (make, src)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (make, src) in rows.items():
            n = args.process_tasks if "process" in make.lower() else args.tasks
            times[name].append(one_run(make, n, src))

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.rounds} rounds")
    print("| implementation | µs/task (median) | µs/task (best) | vs stdlib |")
    print("|---|---|---|---|")
    for name, values in times.items():
        base = IMPLS[name.removesuffix(" (baseline)")][1]
        ratio = statistics.median(values) / statistics.median(times[base])
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
