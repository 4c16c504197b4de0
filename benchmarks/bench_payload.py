"""Large payloads through process pools: MiB/s of payload moved, side by side in one run.

Usage::

    python benchmarks/bench_payload.py                  # every case, every peer installed
    python benchmarks/bench_payload.py --case bytes --repeats 3
    python benchmarks/bench_payload.py --ray            # Ray tasks too (slow to start)
    python benchmarks/bench_payload.py --threshold      # where out of band starts to pay

::

    main ── for each case, each library, each repeat ──► fresh child
      ▲        python bench_payload.py --child CASE LIBRARY   (own interpreter, own RSS)
      └──────────── "RESULT {json}" on its stdout ◄──────────┘

Cases (issue 13), each on 2 process workers, pool created and warmed before the clock:

- bytes: 50 distinct 8 MiB ``bytes``, ``map(len)`` (400 MiB in);
- arrays: 50 distinct 64 MiB float64 NumPy arrays, ``map(nbytes)`` (3200 MiB in);
- results: 40 tasks each returning a fresh 64 MiB array (2 workers x 20; 2560 MiB out).

Every library maps with ``chunksize=1`` and its default start method (fork for the peers
on Linux; anypool's default is forkserver). The child also samples its RSS (every 2 ms)
(every 10 ms)  Each child
maps the case twice on the same pool: "first" (a warm pool's first large payloads: its
shared-memory segments are made then) and "again" (steady state: anypool rewrites the
segments it made).

--threshold: round trips of ``pool.submit(len, bytes(n))`` on one worker for n from 4 KiB
to 4 MiB, the argument out of band (threshold 0) and in band (threshold above n) in
alternation, medians of 180 each: where the two cross is anypool._wire._shm.OOB_THRESHOLD.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _payload_tasks as tasks  # noqa: E402

WORKERS = 2
BYTES_ITEMS, BYTES_SIZE = 50, 8 << 20
ARRAY_ITEMS = 50
RESULT_ITEMS = 40
MIB = 1 << 20
LIBRARIES = [
    "anypool",
    "mpire",
    "ProcessPoolExecutor",
    "multiprocessing.Pool",
    "pebble",
    "loky",
    "ray",
]


# -- the child: one library, one case ------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Peak:
    """Samples this process's RSS in a thread; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _inputs(case: str) -> tuple[Callable[..., Any], list[Any], float]:
    """(function, items, MiB moved)."""
    if case == "bytes":
        items: list[Any] = [bytes([i]) * BYTES_SIZE for i in range(BYTES_ITEMS)]
        return tasks.length, items, BYTES_ITEMS * BYTES_SIZE / MIB
    if case == "arrays":
        import numpy

        items = [numpy.full(tasks.ARRAY_ITEMS, float(i)) for i in range(ARRAY_ITEMS)]
        return tasks.nbytes, items, ARRAY_ITEMS * tasks.ARRAY_ITEMS * 8 / MIB
    return tasks.make_array, list(range(RESULT_ITEMS)), RESULT_ITEMS * tasks.ARRAY_ITEMS * 8 / MIB


def _consume(results: Iterable[Any]) -> int:
    count = 0
    for _ in results:
        count += 1  # each result dropped at once, as a consumer that moves on would
    return count


def _twice(run: Callable[[], Any]) -> list[float]:
    """Seconds of a first run on the warm pool, then of a second run on the same pool."""
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        _consume(run())
        seconds.append(time.perf_counter() - start)
    return seconds


def _run_anypool(fn: Callable[..., Any], items: list[Any]) -> list[float]:
    import anypool

    with anypool.Pool("process", workers=WORKERS) as pool:
        # workers started and warm: iterated, as anypool's map is lazy (the un-iterated
        # map of earlier runs left the second worker's start inside the timed first map)
        list(pool.map(tasks.length, [b"x"] * 8))
        return _twice(lambda: pool.map(fn, items, chunksize=1))


def _run_mpire(fn: Callable[..., Any], items: list[Any]) -> list[float]:
    from mpire import WorkerPool

    with WorkerPool(n_jobs=WORKERS, keep_alive=True) as pool:
        pool.map(tasks.length, [b"x"] * 8, chunk_size=1)
        return _twice(lambda: pool.imap(fn, items, chunk_size=1))


def _run_executor(fn: Callable[..., Any], items: list[Any]) -> list[float]:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(WORKERS) as pool:
        list(pool.map(tasks.length, [b"x"] * 8))
        return _twice(lambda: pool.map(fn, items, chunksize=1))


def _run_mp_pool(fn: Callable[..., Any], items: list[Any]) -> list[float]:
    import multiprocessing

    with multiprocessing.Pool(WORKERS) as pool:
        pool.map(tasks.length, [b"x"] * 8)
        return _twice(lambda: pool.imap(fn, items, chunksize=1))


def _run_pebble(fn: Callable[..., Any], items: list[Any]) -> list[float]:
    from pebble import ProcessPool

    with ProcessPool(WORKERS) as pool:
        list(pool.map(tasks.length, [b"x"] * 8).result())
        return _twice(lambda: pool.map(fn, items, chunksize=1).result())


def _run_loky(fn: Callable[..., Any], items: list[Any]) -> list[float]:
    from loky import get_reusable_executor

    pool = get_reusable_executor(WORKERS)
    list(pool.map(tasks.length, [b"x"] * 8))
    seconds = _twice(lambda: pool.map(fn, items, chunksize=1))
    pool.shutdown(wait=True)
    return seconds


def _run_ray(fn: Callable[..., Any], items: list[Any]) -> list[float]:
    import ray

    ray.init(num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        warm = ray.remote(tasks.length)
        ray.get([warm.remote(b"x") for _ in range(8)])  # workers started
        remote = ray.remote(fn)
        # in order, each dropped once taken, as the pools' consumers do
        return _twice(lambda: (ray.get(ref) for ref in [remote.remote(i) for i in items]))
    finally:
        ray.shutdown()


RUNNERS: dict[str, Callable[[Callable[..., Any], list[Any]], list[float]]] = {
    "anypool": _run_anypool,
    "mpire": _run_mpire,
    "ProcessPoolExecutor": _run_executor,
    "multiprocessing.Pool": _run_mp_pool,
    "pebble": _run_pebble,
    "loky": _run_loky,
    "ray": _run_ray,
}


def child(case: str, library: str) -> None:
    fn, items, mib = _inputs(case)
    base = _rss()
    peak = _Peak()
    first, second = RUNNERS[library](fn, items)
    growth = peak.stop() - base
    result = {"mib_s": mib / first, "again": mib / second, "rss": growth}
    print("RESULT " + json.dumps(result))


# -- the threshold sweep -------------------------------------------------------------------------
SWEEP_SIZES = [k << 10 for k in (4, 16, 32, 64, 128, 256, 512, 1024, 4096)]


def threshold_child() -> None:
    """One pool; for each size, round trips with the argument in band and out of band,
    alternated (only the writer, this process, decides: the worker reads either)."""
    import anypool
    from anypool._wire import _shm

    rows = []
    with anypool.Pool("process", workers=1) as pool:
        for size in SWEEP_SIZES:
            data = bytes(size)
            times: dict[bool, list[float]] = {False: [], True: []}
            for round_ in range(400):
                out_of_band = round_ % 2 == 1
                _shm.OOB_THRESHOLD = 0 if out_of_band else 1 << 40
                start = time.perf_counter()
                pool.submit(tasks.length, data).result()
                if round_ >= 40:  # warm: segments cached, caches hot
                    times[out_of_band].append(time.perf_counter() - start)
            rows.append(
                [size, statistics.median(times[False]) * 1e6, statistics.median(times[True]) * 1e6]
            )
    print("RESULT " + json.dumps({"rows": rows}))


# -- the parent --------------------------------------------------------------------------------
def _in_child(*args: str) -> dict[str, Any] | None:
    command = [sys.executable, os.path.abspath(__file__), *args]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    sys.stderr.write(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}\n")
    return None


def _available(library: str, use_ray: bool) -> bool:
    if library == "ray" and not use_ray:
        return False
    module = {"ProcessPoolExecutor": "concurrent", "multiprocessing.Pool": "multiprocessing"}
    try:
        __import__(module.get(library, library))
    except ImportError:
        return False
    return True


def _sweep() -> None:
    result = _in_child("--threshold-child")
    if result is None:
        return
    print("| bytes | in band (us per round trip) | out of band (us) | out of band / in band |")
    print("|---|---|---|---|")
    for size, inband, oob in result["rows"]:
        print(f"| {size >> 10} KiB | {inband:.0f} | {oob:.0f} | {oob / inband:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["bytes", "arrays", "results"], action="append")
    parser.add_argument("--library", action="append", choices=LIBRARIES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ray", action="store_true", help="include Ray tasks")
    parser.add_argument("--threshold", action="store_true", help="the threshold sweep only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--threshold-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.threshold_child:
        threshold_child()
        return
    if args.threshold:
        _sweep()
        return
    libraries = [lib for lib in args.library or LIBRARIES if _available(lib, args.ray)]
    for case in args.case or ["bytes", "arrays", "results"]:
        print(f"\n### {case}: MiB/s, median (min-max) of {args.repeats}; parent RSS peak growth")
        print("| library | first map, MiB/s | vs mpire | again, MiB/s | vs mpire | RSS growth |")
        print("|---|---|---|---|---|---|")
        rows: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libraries}
        for _ in range(args.repeats):  # interleaved: a noisy moment hits every library
            for library in libraries:
                result = _in_child("--child", case, library)
                if result is not None:
                    rows[library].append(result)
        _print_rows(rows)


def _cells(results: list[dict[str, Any]], mpire: list[dict[str, Any]], key: str) -> str:
    speeds = [r[key] for r in results]
    median = statistics.median(speeds)
    ratio = f"{median / statistics.median(r[key] for r in mpire):.2f}x" if mpire else "-"
    return f"{median:.0f} ({min(speeds):.0f}-{max(speeds):.0f}) | {ratio}"


def _print_rows(rows: dict[str, list[dict[str, Any]]]) -> None:
    mpire = rows.get("mpire") or []
    for library, results in rows.items():
        if results:
            rss = max(r["rss"] for r in results) / MIB
            first, again = _cells(results, mpire, "mib_s"), _cells(results, mpire, "again")
            print(f"| {library} | {first} | {again} | {rss:.0f} MiB |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
