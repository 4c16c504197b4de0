"""Per-task overhead of anypool on Dask and Ray, side by side with the engines' own APIs.

Run: ``python benchmarks/bench_cluster.py [--tiny 100000] [--raw-tiny 3000] [--small 1000]``

On one local cluster per engine (Dask: a LocalCluster of 2 single-threaded worker
processes on 127.0.0.1; Ray: ``ray.init(num_cpus=2)``), in the same run:

* small tasks (1 ms of busy CPU each, ``--small`` of them): raw ``Client.map`` + ``gather`` /
  raw ``ray.remote`` against anypool's ``Pool.map`` (chunksize="auto") and a ``submit`` loop;
* tiny tasks (identity, ``--tiny`` of them): anypool's ``Pool.map``, which batches them,
  against the engines' raw per-task rate. The engines do a few hundred to a few thousand
  tiny tasks per second, so 100 000 of them raw would take minutes: the raw rate is
  measured on ``--raw-tiny`` tasks and the table says so.

Ratios are anypool's throughput over the raw API's (above 1: anypool is faster).

``--wide`` measures ``workers=`` as "tasks at once" instead (issue 10): in a fresh
interpreter per engine, ``Pool(engine, workers=200)`` starts its own local cluster
(open time: create the pool and run one task), then 2000 x ``time.sleep(0.05)`` run
through ``map`` and through a ``submit`` loop; the ideal is 2000 / 200 x 50 ms = 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

# Ray binds to the machine's address unless told otherwise; keep it on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

SMALL_TASK_S = 0.001


def tiny(x: int) -> int:
    return x


def small(x: int) -> int:
    end = time.perf_counter() + SMALL_TASK_S
    while time.perf_counter() < end:
        pass
    return x


Row = tuple[str, str, int, float]  # engine, case, tasks, seconds


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_dask(args: argparse.Namespace) -> list[Row]:
    import distributed

    import anypool

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    )
    client = distributed.Client(cluster, set_as_default=False)
    rows: list[Row] = []
    try:
        client.gather(client.map(tiny, range(100), pure=False))  # warm up the workers

        def raw(fn: Callable[[int], int], n: int) -> None:
            client.gather(client.map(fn, range(n), pure=False))

        rows.append(
            ("dask", "raw Client.map small", args.small, timed(lambda: raw(small, args.small)))
        )
        rows.append(
            ("dask", "raw Client.map tiny", args.raw_tiny, timed(lambda: raw(tiny, args.raw_tiny)))
        )
        # no workers=: the pool takes the cluster's size and hands everything to Dask at once
        with anypool.Pool("dask", client=client) as pool:
            list(pool.map(tiny, range(100)))
            rows += _anypool_rows("dask", pool, args)
    finally:
        client.close()
        cluster.close()
    return rows


def bench_ray(args: argparse.Namespace) -> list[Row]:
    import ray

    import anypool

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    rows: list[Row] = []
    try:
        remote_tiny, remote_small = ray.remote(tiny), ray.remote(small)
        ray.get([remote_tiny.remote(i) for i in range(100)])  # warm up the workers

        def raw(fn: Any, n: int) -> None:
            ray.get([fn.remote(i) for i in range(n)])

        rows.append(
            (
                "ray",
                "raw ray.remote small",
                args.small,
                timed(lambda: raw(remote_small, args.small)),
            )
        )
        rows.append(
            (
                "ray",
                "raw ray.remote tiny",
                args.raw_tiny,
                timed(lambda: raw(remote_tiny, args.raw_tiny)),
            )
        )
        with anypool.Pool("ray", 2) as pool:
            list(pool.map(tiny, range(100)))
            rows += _anypool_rows("ray", pool, args)
    finally:
        ray.shutdown()
    return rows


def _anypool_rows(engine: str, pool: Any, args: argparse.Namespace) -> list[Row]:
    def submit_loop() -> None:
        for future in [pool.submit(small, i) for i in range(args.small)]:
            future.result()

    return [
        (
            engine,
            "anypool map small",
            args.small,
            timed(lambda: list(pool.map(small, range(args.small)))),
        ),
        (engine, "anypool submit small", args.small, timed(submit_loop)),
        (
            engine,
            "anypool map tiny",
            args.tiny,
            timed(lambda: sum(pool.map(tiny, range(args.tiny)))),
        ),
    ]


WIDE_CHILD = """
import json, sys, time
import anypool

def nap(seconds):
    time.sleep(seconds)
    return seconds

if __name__ == "__main__":
    engine = sys.argv[1]
    options = {"init_kwargs": {"log_to_driver": False}} if engine == "ray" else {}
    start = time.perf_counter()
    with anypool.Pool(engine, workers=200, **options) as pool:
        pool.submit(nap, 0).result()
        opened = time.perf_counter() - start
        start = time.perf_counter()
        list(pool.map(nap, [0.05] * 2000))
        mapped = time.perf_counter() - start
        start = time.perf_counter()
        [f.result() for f in [pool.submit(nap, 0.05) for _ in range(2000)]]
        submitted = time.perf_counter() - start
    print("RESULT " + json.dumps([opened, mapped, submitted]))
"""


def bench_wide(engines: list[str], rounds: int) -> str:
    import json
    import subprocess
    import sys

    lines = [f"{'engine':<6} {'open s':>7} {'map s':>7} {'submit s':>9}  (ideal 0.5 s)"]
    for _ in range(rounds):
        for engine in engines:
            out = subprocess.run(
                [sys.executable, "-c", WIDE_CHILD, engine],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            found = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
            if not found:
                lines.append(f"{engine:<6} failed: {out.stderr[-300:]}")
                continue
            opened, mapped, submitted = json.loads(found[-1][len("RESULT ") :])
            lines.append(f"{engine:<6} {opened:>7.2f} {mapped:>7.2f} {submitted:>9.2f}")
    return "\n".join(lines)


def report(rows: list[Row]) -> str:
    rate = {(e, c): n / s for e, c, n, s in rows}
    lines = [
        f"{'engine':<6} {'case':<24} {'tasks':>7} {'seconds':>8} {'tasks/s':>10} {'vs raw':>8}",
    ]
    for engine, case, n, seconds in rows:
        raw_case = "raw Client.map" if engine == "dask" else "raw ray.remote"
        size = "small" if case.endswith("small") else "tiny"
        ratio = rate[(engine, case)] / rate[(engine, f"{raw_case} {size}")]
        lines.append(
            f"{engine:<6} {case:<24} {n:>7} {seconds:>8.2f} {n / seconds:>10.0f} {ratio:>7.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="small (1 ms) tasks per case")
    parser.add_argument("--tiny", type=int, default=100_000, help="tiny tasks through anypool")
    parser.add_argument("--raw-tiny", type=int, default=3000, help="tiny tasks through raw APIs")
    parser.add_argument("--engines", default="dask,ray", help="comma-separated: dask, ray")
    parser.add_argument("--wide", action="store_true", help="workers=200 on 2000 sleeps")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of --wide")
    args = parser.parse_args()
    rows: list[Row] = []
    engines = args.engines.split(",")
    if args.wide:
        print(bench_wide(engines, args.rounds))
        return
    if "dask" in engines:
        rows += bench_dask(args)
    if "ray" in engines:
        rows += bench_ray(args)
    print(report(rows))


if __name__ == "__main__":
    main()
