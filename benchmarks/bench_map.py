"""``map`` with every default: read-ahead and memory on large records, and a slow head item.

Usage::

    python benchmarks/bench_map.py                          # both cases, this checkout
    git archive <rev> src | tar -x -C /tmp/old
    python benchmarks/bench_map.py --baseline-src /tmp/old/src   # before and after, one run

::

    main ── for each case, each package (this one, then --baseline-src) ──► fresh child
      ▲        python bench_map.py --child CASE BACKEND WORKERS    (own interpreter)
      └──────────── "RESULT {json}" on its stdout ◄──────────┘

memory: a generator of 10 KB records (fresh bytes objects) through a cheap function
(``record_size``), TAKE results taken; the child records how far the generator was
pulled ahead of the consumer (at most, over the run) and the peak RSS growth over
the RSS after the pool was created and its workers warmed (sampled every 2 ms).
Targets (issue 10): under 50 MB of growth on threads (4 and 16) and processes (2).

uneven: 60 items, every 10th sleeps 1 s and the rest 10 ms, 4 thread workers, ordered;
the time against ``ThreadPoolExecutor.map`` on the same items in the same child.
Target: at most 1.05x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _tasks import record_size, uneven  # noqa: E402

RECORD = 10 * 1024
TAKE = 30_000
UNEVEN_ITEMS = 60
MEMORY_CASES = [("thread", 4), ("thread", 16), ("process", 2)]


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
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss())


def child_memory(backend: str, workers: int) -> dict[str, Any]:
    import anypool

    pulled = 0
    taken = 0
    ahead = 0

    def records() -> Iterator[bytes]:
        nonlocal pulled, ahead
        while True:
            pulled += 1
            ahead = max(ahead, pulled - taken)
            yield bytes(RECORD)  # a fresh 10 KB object each time

    with anypool.Pool(backend, workers) as pool:
        list(pool.map(record_size, [b"warm"] * (workers * 4)))  # workers up, not timed
        base = _rss()
        peak = _Peak()
        start = time.perf_counter()
        results = pool.map(record_size, records())
        for _ in results:
            taken += 1
            if taken >= TAKE:
                break
        seconds = time.perf_counter() - start
        results.close()
        top = peak.stop()
    return {
        "read_ahead_max": ahead,
        "rss_growth_mb": round((top - base) / 1e6, 1),
        "seconds": round(seconds, 3),
    }


def child_uneven() -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    import anypool

    items = list(range(UNEVEN_ITEMS))
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as ex:
        expected = list(ex.map(uneven, items))
    stdlib = time.perf_counter() - start
    with anypool.Pool("thread", 4) as pool:
        start = time.perf_counter()
        got = list(pool.map(uneven, items))
        ours = time.perf_counter() - start
    assert got == expected
    return {
        "stdlib_s": round(stdlib, 3),
        "anypool_s": round(ours, 3),
        "ratio": round(ours / stdlib, 3),
    }


def run_child(args: list[str], src: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    return {"error": (out.stderr or out.stdout)[-500:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-src", help="a src/ folder of another anypool to compare")
    parser.add_argument("--case", choices=["memory", "uneven"], action="append")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case = args.child[0]
        result = child_uneven() if case == "uneven" else child_memory(case, int(args.child[1]))
        print("RESULT " + json.dumps(result), flush=True)
        return
    sources = [("this", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    cases = args.case or ["memory", "uneven"]
    if "memory" in cases:
        print(f"memory: {TAKE} results of 10 KB records, defaults")
        for backend, workers in MEMORY_CASES:
            for label, src in sources:
                result = run_child([backend, str(workers)], src)
                print(f"  {backend} x{workers:<3} {label:9} {json.dumps(result)}", flush=True)
    if "uneven" in cases:
        print(f"uneven: {UNEVEN_ITEMS} items, a 1 s item every 10, 4 threads, defaults")
        for label, src in sources:
            print(f"  {label:9} {json.dumps(run_child(['uneven'], src))}", flush=True)


if __name__ == "__main__":
    main()
