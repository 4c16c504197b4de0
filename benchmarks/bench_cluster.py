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
    args = parser.parse_args()
    rows: list[Row] = []
    engines = args.engines.split(",")
    if "dask" in engines:
        rows += bench_dask(args)
    if "ray" in engines:
        rows += bench_ray(args)
    print(report(rows))


if __name__ == "__main__":
    main()
