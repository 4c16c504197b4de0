"""``map`` with every default: bounded read-ahead, no head-of-line stall, no leaked pools.

Issue 10, items 2, 4 and 5. Read-ahead is measured with a generator that records how
far it was pulled beyond what the consumer had taken; head-of-line blocking
structurally (later items start while the head item still runs); leaks by counting
worker processes and file descriptors in a real script.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from anypool._scheduler._chunking import MAX_READ_AHEAD, MAX_READ_AHEAD_BYTES

RECORD = 10 * 1024


class Ahead:
    """A generator of items that records the most it was ever pulled ahead of ``taken``."""

    def __init__(self, make: type[bytes] | type[int], size: int = 0) -> None:
        self.pulled = 0
        self.taken = 0
        self.most_ahead = 0
        self._make = make
        self._size = size

    def __iter__(self) -> Iterator[object]:
        while True:
            self.pulled += 1
            self.most_ahead = max(self.most_ahead, self.pulled - self.taken)
            yield self._make(self._size) if self._make is bytes else self.pulled

    def take(self, results: Iterator[object], n: int) -> None:
        for _ in results:
            self.taken += 1
            if self.taken >= n:
                return


def identity(x: object) -> object:
    return x


@pytest.mark.parametrize(("backend", "workers"), [("thread", 4), ("thread", 16), ("process", 2)])
def test_large_records_are_read_ahead_by_bytes_not_by_chunks(make_pool, backend, workers):
    # 10 KB records, results as large (identity): before, 100,000s of items were read
    # ahead (1-13 GB of RSS); the bound is MAX_READ_AHEAD_BYTES, estimated
    pool = make_pool(backend, workers)
    source = Ahead(bytes, RECORD)
    with pool.map(identity, source) as results:
        source.take(results, 4000)
    bound = 2 * MAX_READ_AHEAD_BYTES // RECORD  # 2x: slack for the estimate
    assert source.most_ahead <= bound, f"read {source.most_ahead} records ahead, bound {bound}"


def test_small_items_are_read_ahead_at_most_max_read_ahead(make_pool):
    # before: 5 chunks of up to 32,768 items (~164,000 ahead); now MAX_READ_AHEAD in all
    pool = make_pool("thread", 2)
    source = Ahead(int)
    with pool.map(identity, source) as results:
        source.take(results, 3 * MAX_READ_AHEAD)
    assert source.most_ahead <= MAX_READ_AHEAD, source.most_ahead


def _head_waits_for_the_rest(started: threading.Event, count: list[int], rest: int):
    lock = threading.Lock()

    def task(i: int) -> bool:
        if i == 0:
            # the head item: runs until every later item has started (or gives up)
            return started.wait(10)
        with lock:
            count[0] += 1
            if count[0] == rest:
                started.set()
        return True

    return task


@pytest.mark.parametrize("chunksize", ["auto", 1])
def test_a_slow_head_item_does_not_stall_the_workers(make_pool, chunksize):
    # issue: 60 items, 4 workers; finished items behind a slow head held every window
    # slot, so the workers sat idle. Now the head's wait ends only if all 59 later items
    # START while it runs.
    pool = make_pool("thread", 4)
    started = threading.Event()
    task = _head_waits_for_the_rest(started, [0], 59)
    results = list(pool.map(task, range(60), chunksize=chunksize))
    assert results[0] is True, "later items waited for the slow head item to finish"
    assert results == [True] * 60


def test_unordered_map_does_not_stall_either(make_pool):
    pool = make_pool("thread", 4)
    started = threading.Event()
    task = _head_waits_for_the_rest(started, [0], 59)
    assert list(pool.map(task, range(60), ordered=False)).count(True) == 60


def test_explicit_window_is_still_a_strict_bound(make_pool):
    # window=N: at most N chunks read ahead, finished or not (memory over throughput)
    pool = make_pool("thread", 4)
    source = Ahead(int)
    with pool.map(identity, source, chunksize=1, window=3) as results:
        source.take(results, 200)
    assert source.most_ahead <= 3 + 1, source.most_ahead


LEAK_SCRIPT = textwrap.dedent(
    """
    import gc, os, sys, time
    import psutil
    import anypool

    def square(x):
        return x * x

    def helper(method):
        pool = anypool.Pool("process", 2, start_method=method)
        assert list(pool.map(square, range(20))) == [x * x for x in range(20)]
        return pool._backend.worker_pids()

    def alive(pids):
        out = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.NoSuchProcess:
                pass
        return out

    def fds():
        return len(os.listdir("/proc/self/fd"))

    def settle(pids):
        deadline = time.monotonic() + 10
        while (alive(pids) or fds() > before) and time.monotonic() < deadline:
            time.sleep(0.05)

    if __name__ == "__main__":
        method = sys.argv[1]
        before = 10**6
        settle(helper(method))  # the forkserver and resource tracker start once, not per pool
        gc.collect()
        time.sleep(0.3)
        before = fds()
        for collect in (False, True):
            if not collect:
                gc.disable()  # released by reference counting alone: no cycle holds the pool
            pids = []
            for _ in range(5):
                pids += helper(method)
                if collect:
                    gc.collect()
            settle(pids)
            print(f"collect={collect} seen={len(pids)} alive={len(alive(pids))} "
                  f"fds={fds() - before}", flush=True)
            gc.enable()
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts fds in /proc")
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_dropped_pool_releases_its_workers_and_fds(tmp_path: Path, method: str):
    # issue: 5 calls of a helper that makes a 2-worker process pool, maps and returns left
    # 10 processes and 40 fds, even after gc.collect(); the stdlib leaves 0
    script = tmp_path / "dropped_pools.py"
    script.write_text(LEAK_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), method],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines == [
        "collect=False seen=10 alive=0 fds=0",
        "collect=True seen=10 alive=0 fds=0",
    ], out.stdout + out.stderr[-2000:]


def test_a_chunk_done_before_submit_returns_does_not_stop_read_ahead():
    # A thread worker can finish a tiny chunk before submit() returns; the map used to take
    # that for the inline backend and read nothing more ahead until the consumer asked,
    # so a later item that waits for an item after it never saw that item start.
    from concurrent.futures import Future

    from anypool._core._map import MapIterator, ReadAhead
    from anypool._scheduler._chunking import FixedChunks
    from anypool._task import ChunkResult

    def done_at_once(chunk):
        future = Future()
        future.set_result(ChunkResult(list(chunk), {}, 0.0))
        return future

    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield i

    results = MapIterator(
        done_at_once,
        source(),
        chunker=FixedChunks(1),
        window=ReadAhead(4, workers=2),
        ordered=True,
        return_exceptions=False,
    )
    assert next(results) == 0
    assert len(pulled) > 1, "read-ahead stopped after a chunk that was done at submit"
    assert list(results) == list(range(1, 100))


def test_inline_still_runs_one_chunk_per_consumed_item(make_pool):
    pool = make_pool("inline")
    pulled = []

    def source():
        for i in range(50):
            pulled.append(i)
            yield i

    results = pool.map(abs, source(), chunksize=1)
    assert next(results) == 0
    assert len(pulled) == 1  # inline: nothing runs before the consumer asks for it
    results.close()


@pytest.mark.parametrize("ordered", [True, False])
def test_the_read_ahead_budget_leaves_no_sliver_chunks(ordered):
    # Chunks of 1, 8, ... 4096, 32768 filled MAX_READ_AHEAD unevenly: what was left of it
    # (down to 1 item) went out as a chunk of its own each time the consumer took a small
    # one, and then every cycle (auto's tiny map: 25000, 25000, 15526, 1, 1, 8; each
    # sliver a round trip and a gap). Now a chunk waits until about the size it wants fits.
    from concurrent.futures import Future

    from anypool._core._map import MapIterator, ReadAhead
    from anypool._scheduler._chunking import MAX_CHUNK, AdaptiveChunks
    from anypool._task import ChunkResult

    sizes: list[int] = []

    def done_at_once(chunk):
        sizes.append(len(chunk))
        future = Future()
        future.set_result(ChunkResult(list(chunk), {}, 1e-8 * len(chunk)))  # tiny items
        return future

    total = 400_000
    results = MapIterator(
        done_at_once,
        range(total),
        chunker=AdaptiveChunks(1, total),
        window=ReadAhead(3, workers=1),
        ordered=ordered,
        return_exceptions=False,
    )
    assert sorted(results) == list(range(total))
    full = sizes.index(MAX_CHUNK)  # the ramp-up before it is the chunker's, not the budget's
    slivers = [n for n in sizes[full:-1] if n < MAX_CHUNK // 2]
    assert not slivers, sizes


def test_chunks_that_run_in_submit_wait_for_the_consumer_after_sampled_ones():
    # Auto sends its first chunks out while it samples, then chooses inline: those chunks
    # are done, and taking them must not run more input first. Filling first kept one
    # inline chunk run ahead of the consumer for the rest of the map.
    from concurrent.futures import Future

    from anypool._core._map import MapIterator, ReadAhead
    from anypool._scheduler._chunking import AdaptiveChunks
    from anypool._task import ChunkResult, Task

    sampled = 4
    counts = {"submitted": 0, "taken": 0, "calls": 0}
    ahead_at_run: list[int] = []

    def submit(chunk):
        future: Future[ChunkResult] = Future()
        if counts["calls"] < sampled:  # a probe's: finished elsewhere
            future.set_result(ChunkResult(list(chunk), {}, 1e-8 * len(chunk)))
        else:  # inline: runs here, now
            ahead_at_run.append(counts["submitted"] - counts["taken"])
            future.set_result(Task(identity, chunk, {}, Future(), chunk=True).run())
        counts["calls"] += 1
        counts["submitted"] += len(chunk)
        return future

    total = 100_000
    results = MapIterator(
        submit,
        range(total),
        chunker=AdaptiveChunks(2, total),
        window=ReadAhead(5, workers=2),
        ordered=True,
        return_exceptions=False,
    )
    for expected, value in enumerate(results):
        assert value == expected
        counts["taken"] += 1
    assert counts["taken"] == total
    assert len(ahead_at_run) > 2
    # the first one ran while sampled chunks were unconsumed; none after it
    assert ahead_at_run[1:] == [0] * (len(ahead_at_run) - 1), ahead_at_run
