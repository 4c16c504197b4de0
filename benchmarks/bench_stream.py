"""pool.stream() throughput and memory: a worker yields 1,000,000 small items.

Side by side in one run, rounds interleaved, items per second received by the parent:

* ``pool.stream`` on the process backend (default buffer, and a bigger one);
* a hand-made producer-consumer: a ``multiprocessing.Process`` that puts each item on a
  ``multiprocessing.Queue(maxsize=1024)`` and a parent that gets them (the producer is
  started and waiting before the clock starts, as the pool's worker is);
* ``pool.Queue()`` (the pool's own cross-process queue primitive, a manager proxy) used
  the same way, on fewer items: it is far slower;
* ``pool.stream`` on the thread backend, for reference.

The parent's RSS is read before, every 100,000 items (its peak) and after each run.
Then the backpressure bound: a consumer that takes 3 items and stops reading; how many
items had the worker produced beyond those 3, for several buffers?

    python benchmarks/bench_stream.py [--items 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil

import anypool

_ME = psutil.Process()
_SAMPLE_EVERY = 100_000
_QUEUE_MAXSIZE = 1024


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def counted(n: int, produced: Any) -> Iterator[int]:
    for i in range(n):
        produced.value += 1  # one producer: no read-modify-write race to guard
        yield i


def _mp_producer(queue: Any, go: Any, n: int) -> None:
    go.wait()
    for i in range(n):
        queue.put(i)
    queue.put(None)


def _pool_queue_producer(queue: Any, n: int) -> None:
    for i in range(n):
        queue.put(i)
    queue.put(None)


def _rss_mib() -> float:
    return float(_ME.memory_info().rss) / 2**20


def _consume(items: Any) -> tuple[int, float]:
    """Count the items; the RSS peak sampled every _SAMPLE_EVERY items."""
    count = 0
    peak = _rss_mib()
    for _ in items:
        count += 1
        if count % _SAMPLE_EVERY == 0:
            peak = max(peak, _rss_mib())
    return count, peak


def _queue_items(queue: Any) -> Iterator[int]:
    get = queue.get
    while (item := get()) is not None:
        yield item


Run = tuple[float, float, float, float]  # items/s, rss before, peak, after (MiB)


def run_stream(pool: anypool.Pool, n: int, buffer: int) -> Run:
    before = _rss_mib()
    start = time.perf_counter()
    count, peak = _consume(pool.stream(numbers, n, buffer=buffer))
    elapsed = time.perf_counter() - start
    assert count == n, count
    return n / elapsed, before, peak, _rss_mib()


def run_mp_queue(n: int) -> Run:
    ctx = multiprocessing.get_context()
    queue = ctx.Queue(_QUEUE_MAXSIZE)
    go = ctx.Event()
    producer = ctx.Process(target=_mp_producer, args=(queue, go, n))
    producer.start()
    before = _rss_mib()
    start = time.perf_counter()
    go.set()
    count, peak = _consume(_queue_items(queue))
    elapsed = time.perf_counter() - start
    producer.join()
    queue.close()
    queue.join_thread()
    assert count == n, count
    return n / elapsed, before, peak, _rss_mib()


def run_pool_queue(pool: anypool.Pool, n: int) -> Run:
    queue = pool.Queue(_QUEUE_MAXSIZE)
    before = _rss_mib()
    start = time.perf_counter()
    done = pool.submit(_pool_queue_producer, queue, n)
    count, peak = _consume(_queue_items(queue))
    elapsed = time.perf_counter() - start
    done.result()
    assert count == n, count
    return n / elapsed, before, peak, _rss_mib()


def overshoot(pool: anypool.Pool, buffer: int, taken: int = 3) -> int:
    """Items the worker produced beyond those the consumer took, once it had paused."""
    produced = pool.Value("q", 0)
    stream = pool.stream(counted, 10 * buffer + 1000, produced, buffer=buffer)
    for _ in range(taken):
        next(stream)
    last = -1
    while produced.value != last:  # until the worker stops producing
        last = produced.value
        time.sleep(0.2)
    stream.close()
    return int(last) - taken


def _row(name: str, runs: list[Run], baseline: float | None) -> str:
    rates = [r[0] for r in runs]
    median = statistics.median(rates)
    ratio = f"{median / baseline:.1f}x" if baseline else "1.0x"
    rss = " / ".join(f"{max(r[i] for r in runs):.0f}" for i in (1, 2, 3))
    spread = f"{min(rates):,.0f}-{max(rates):,.0f}"
    return f"| {name} | {median:,.0f} ({spread}) | {ratio} | {rss} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queue-items", type=int, default=20_000, help="for pool.Queue()")
    args = parser.parse_args()
    n = args.items

    cases: dict[str, Callable[[], Run]] = {}
    with (
        anypool.Pool("process", workers=1) as process,
        anypool.Pool("thread", workers=1) as thread,
    ):
        list(process.stream(numbers, 10))  # the worker is up, as the hand-made producer is
        cases["multiprocessing.Queue, one put per item"] = lambda: run_mp_queue(n)
        cases["pool.stream, process, buffer=1024 (default)"] = lambda: run_stream(process, n, 1024)
        cases["pool.stream, process, buffer=8192"] = lambda: run_stream(process, n, 8192)
        cases["pool.stream, thread, buffer=1024"] = lambda: run_stream(thread, n, 1024)
        cases[f"pool.Queue() (manager proxy), {args.queue_items:,} items"] = lambda: run_pool_queue(
            process, args.queue_items
        )
        runs: dict[str, list[Run]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, case in cases.items():
                runs[name].append(case())
        bounds = {b: overshoot(process, b) for b in (1, 16, 1024, 8192)}

    baseline = statistics.median(r[0] for r in runs["multiprocessing.Queue, one put per item"])
    print(f"## pool.stream: {n:,} small items from one worker, {args.rounds} rounds\n")
    rss = "parent RSS MiB before / peak / after"
    print(f"| contender | items/s, median (min-max) | vs mp.Queue | {rss} |")
    print("|---|---|---|---|")
    for name, case_runs in runs.items():
        print(_row(name, case_runs, baseline))
    print("\n## backpressure: the consumer took 3 items and stopped reading\n")
    print("| buffer | undelivered items (produced - taken) | beyond the buffer |")
    print("|---|---|---|")
    for buffer, extra in bounds.items():
        print(f"| {buffer} | {extra} | {max(0, extra - buffer)} |")


if __name__ == "__main__":
    main()
