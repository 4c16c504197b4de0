"""Child side of the benchmark: run ONE (case, implementation) pair and print its metrics.

::

    run.py ──spawn──► python _cases.py CASE IMPL PARAMS_JSON   (fresh interpreter, own session)
                         │ build the pool, warm its workers (not timed)
                         │ time the case
                         └─► stdout: "RESULT {json}"  ──► run.py parses the last such line

A case that would run too long (a peer that materialises a 2M-item input) is
cut off by a watchdog after ``cap_s``: it prints what it measured so far with
``"timed_out": true`` and exits at once; run.py then kills the leftovers of the
child's session (its workers).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import AbstractContextManager, contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _tasks import ident, nap, spin, spin_timed

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]
ChunkRule = Callable[[Iterable[Any]], int]
Factory = Callable[[int, dict[str, Any]], AbstractContextManager[Mapper]]


def emit(result: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def tuned_chunksize(n: int, workers: int) -> int:
    """What multiprocessing.Pool.map picks: 4 chunks per worker."""
    return max(1, math.ceil(n / (4 * workers)))


def tuned(workers: int, p: dict[str, Any]) -> ChunkRule:
    """Chunks tuned to the input: from its length, or from the case's size for a generator."""

    def rule(items: Iterable[Any]) -> int:
        return tuned_chunksize(len(items) if isinstance(items, Sized) else p["n"], workers)

    return rule


def default_chunks(items: Iterable[Any]) -> int:
    return 1  # the default of every executor-style map


# -- implementations: each yields a ``map(fn, items)`` on a live pool -------------------------
@contextmanager
def anypool_map(backend: str, workers: int, **opts: Any) -> Iterator[Mapper]:
    import anypool

    with anypool.Pool(backend, workers, **opts) as pool:
        yield lambda fn, items: pool.map(fn, items)


@contextmanager
def anypool_unsized(workers: int, p: dict[str, Any]) -> Iterator[Mapper]:
    """The input is a plain iterator: no len() to size chunks from."""
    with anypool_map("process", workers) as run:
        yield lambda fn, items: run(fn, iter(items))


@contextmanager
def stdlib_executor(kind: str, workers: int, chunks: ChunkRule) -> Iterator[Mapper]:
    from concurrent import futures

    cls = futures.ThreadPoolExecutor if kind == "thread" else futures.ProcessPoolExecutor
    with cls(workers) as ex:
        yield lambda fn, items: ex.map(fn, items, chunksize=chunks(items))


@contextmanager
def mp_pool(workers: int, how: str, chunks: ChunkRule | None) -> Iterator[Mapper]:
    import multiprocessing

    with multiprocessing.Pool(workers) as pool:
        if how == "map":  # its own default: 4 chunks per worker
            yield lambda fn, items: pool.map(fn, items)
        else:
            yield lambda fn, items: pool.imap(fn, items, chunks(items) if chunks else 1)


@contextmanager
def mp_thread_pool(workers: int, p: dict[str, Any]) -> Iterator[Mapper]:
    from multiprocessing.pool import ThreadPool

    with ThreadPool(workers) as pool:
        yield lambda fn, items: pool.map(fn, items)


@contextmanager
def joblib_map(workers: int, prefer: str | None, lazy: bool = False) -> Iterator[Mapper]:
    from joblib import Parallel, delayed

    how = "generator" if lazy else "list"
    with Parallel(n_jobs=workers, prefer=prefer, return_as=how) as parallel:
        yield lambda fn, items: parallel(delayed(fn)(x) for x in items)


@contextmanager
def loky_map(workers: int, chunks: ChunkRule) -> Iterator[Mapper]:
    import loky

    ex = loky.get_reusable_executor(max_workers=workers)
    try:
        yield lambda fn, items: ex.map(fn, items, chunksize=chunks(items))
    finally:
        ex.shutdown(wait=True)


@contextmanager
def pebble_map(kind: str, workers: int, chunks: ChunkRule) -> Iterator[Mapper]:
    import pebble

    pool = pebble.ThreadPool(workers) if kind == "thread" else pebble.ProcessPool(workers)
    try:
        yield lambda fn, items: pool.map(fn, items, chunksize=chunks(items)).result()
    finally:
        pool.close()
        pool.join()


@contextmanager
def mpire_map(workers: int, method: str, lazy: bool = False) -> Iterator[Mapper]:
    from mpire import WorkerPool

    # keep_alive: reuse the workers across map calls, as the other pools do
    with WorkerPool(workers, start_method=method, keep_alive=True) as pool:
        if lazy:
            yield lambda fn, items: pool.imap(fn, items)
        else:
            yield lambda fn, items: pool.map(fn, items)


MAPPERS: dict[str, Factory] = {
    "anypool process": lambda w, p: anypool_map("process", w),
    "anypool process (unsized iter)": anypool_unsized,
    "anypool thread": lambda w, p: anypool_map("thread", w),
    "ThreadPoolExecutor.map": lambda w, p: stdlib_executor("thread", w, default_chunks),
    "ProcessPoolExecutor.map": lambda w, p: stdlib_executor("process", w, default_chunks),
    "ProcessPoolExecutor.map tuned": lambda w, p: stdlib_executor("process", w, tuned(w, p)),
    "multiprocessing.Pool.map": lambda w, p: mp_pool(w, "map", None),
    "multiprocessing.Pool.imap": lambda w, p: mp_pool(w, "imap", None),
    "multiprocessing.Pool.imap tuned": lambda w, p: mp_pool(w, "imap", tuned(w, p)),
    "multiprocessing ThreadPool.map": mp_thread_pool,
    "joblib": lambda w, p: joblib_map(w, None),
    "joblib threads": lambda w, p: joblib_map(w, "threads"),
    "joblib generator": lambda w, p: joblib_map(w, None, lazy=True),
    "loky tuned": lambda w, p: loky_map(w, tuned(w, p)),
    "loky": lambda w, p: loky_map(w, default_chunks),
    "pebble tuned": lambda w, p: pebble_map("process", w, tuned(w, p)),
    "pebble": lambda w, p: pebble_map("process", w, default_chunks),
    "pebble threads": lambda w, p: pebble_map("thread", w, default_chunks),
    "mpire": lambda w, p: mpire_map(w, "fork"),
    "mpire threading": lambda w, p: mpire_map(w, "threading"),
    "mpire imap": lambda w, p: mpire_map(w, "fork", lazy=True),
}


def warm(run: Mapper, workers: int) -> None:
    """Start every worker before timing: each gets a short nap (workers start on demand)."""
    for _ in run(nap, [0.02] * (2 * workers)):
        pass


# -- the cases --------------------------------------------------------------------------------
def case_tiny(impl: str, p: dict[str, Any]) -> dict[str, Any]:
    n, workers = p["n"], p["workers"]
    with MAPPERS[impl](workers, p) as run:
        warm(run, workers)
        start = time.perf_counter()
        count = sum(1 for _ in run(ident, range(n)))
        elapsed = time.perf_counter() - start
    assert count == n, f"{impl} returned {count} items, expected {n}"
    return {"seconds": elapsed, "items_per_s": n / elapsed}


def case_cpu(impl: str, p: dict[str, Any]) -> dict[str, Any]:
    """Speedup over sequential, both measured in this child: sequential runs before and
    after the map and their mean is the baseline, so that a change in load from other
    jobs during the case hits both sides. ``busy``: the share of the map's wall time the
    workers spent inside tasks, a measure of the pool's own overhead that load from
    other jobs does not skew (tasks stretch with the wall time)."""
    n, tasks, workers = p["spin"], p["tasks"], p["workers"]
    work = [n] * tasks
    before, expected = _sequential(work)
    with MAPPERS[impl](workers, p) as run:
        warm(run, workers)
        start = time.perf_counter()
        got = list(run(spin_timed, work))
        elapsed = time.perf_counter() - start
    after, _ = _sequential(work)
    assert [value for value, _ in got] == expected, f"{impl} returned wrong results"
    sequential = (before + after) / 2
    return {
        "seconds": elapsed,
        "sequential_s": sequential,
        "speedup": sequential / elapsed,
        "busy_pct": 100 * sum(seconds for _, seconds in got) / (elapsed * workers),
    }


def _sequential(work: list[int]) -> tuple[float, list[int]]:
    start = time.perf_counter()
    values = [spin(x) for x in work]
    return time.perf_counter() - start, values


def case_io(impl: str, p: dict[str, Any]) -> dict[str, Any]:
    tasks, delay, workers = p["tasks"], p["delay"], p["workers"]
    with MAPPERS[impl](workers, p) as run:
        warm(run, workers)
        start = time.perf_counter()
        count = sum(1 for _ in run(nap, [delay] * tasks))
        elapsed = time.perf_counter() - start
    assert count == tasks
    ideal = tasks / workers * delay
    return {"seconds": elapsed, "ideal_s": ideal, "overhead_pct": 100 * (elapsed / ideal - 1)}


class PeakRss:
    """Peak resident memory of this process: a sampling thread plus getrusage's high-water mark."""

    def __init__(self, interval: float = 0.002) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._maxrss_base = _maxrss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def growth_mib(self) -> float:
        sampled = max(self.peak, self._proc.memory_info().rss) - self.base
        by_rusage = _maxrss() - self._maxrss_base
        return max(sampled, by_rusage) / 2**20

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.growth_mib()


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def case_streaming(impl: str, p: dict[str, Any]) -> dict[str, Any]:
    n, take, workers, cap = p["n"], p["take"], p["workers"], p["cap_s"]
    with MAPPERS[impl](workers, p) as run:
        warm(run, workers)
        rss = PeakRss()
        state: dict[str, Any] = {"first_ms": None, "taken": 0}
        start = time.perf_counter()
        _watchdog(cap, lambda: _partial(state, rss, start, cap))
        results = iter(run(ident, (i for i in range(n))))
        for i, _ in zip(range(take), results):
            if i == 0:
                state["first_ms"] = 1000 * (time.perf_counter() - start)
            state["taken"] = i + 1
        elapsed = time.perf_counter() - start
        growth = rss.stop()
        result = {"first_ms": state["first_ms"], "take_s": elapsed, "rss_growth_mib": growth}
        emit({**result, "taken": state["taken"], "timed_out": False})
        os._exit(0)  # some peers would now drain or cancel 2M items; not part of the case


def _partial(state: dict[str, Any], rss: PeakRss, start: float, cap: float) -> None:
    emit(
        {
            "first_ms": state["first_ms"],
            "take_s": time.perf_counter() - start,
            "rss_growth_mib": rss.growth_mib(),
            "taken": state["taken"],
            "timed_out": True,
            "note": f"cut off after {cap:g} s",
        }
    )
    os._exit(0)


def _watchdog(seconds: float, on_expiry: Callable[[], None]) -> None:
    timer = threading.Timer(seconds, on_expiry)
    timer.daemon = True
    timer.start()


# -- startup: create, one task, result, shutdown ------------------------------------------------
def cycle_anypool(backend: str, method: str | None) -> Callable[[], None]:
    import anypool

    opts = {"start_method": method} if method else {}

    def cycle() -> None:
        with anypool.Pool(backend, 2, **opts) as pool:
            pool.submit(ident, 1).result()

    return cycle


def cycle_stdlib(kind: str, method: str | None) -> Callable[[], None]:
    import multiprocessing
    from concurrent import futures

    def cycle() -> None:
        if kind == "thread":
            ex: futures.Executor = futures.ThreadPoolExecutor(2)
        else:
            ex = futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method))
        with ex:
            ex.submit(ident, 1).result()

    return cycle


def cycle_mp_pool(method: str | None) -> Callable[[], None]:
    import multiprocessing

    def cycle() -> None:
        pool = multiprocessing.get_context(method).Pool(2)
        pool.apply(ident, (1,))
        pool.close()
        pool.join()

    return cycle


def cycle_peer(name: str) -> Callable[[], None]:
    def cycle() -> None:
        if name == "loky":
            import loky

            with loky.ProcessPoolExecutor(2) as ex:
                ex.submit(ident, 1).result()
        elif name == "pebble":
            import pebble

            with pebble.ProcessPool(2) as pool:
                pool.schedule(ident, (1,)).result()
        elif name == "mpire":
            from mpire import WorkerPool

            with WorkerPool(2) as pool:
                pool.map(ident, [1])

    return cycle


def startup_cycle(impl: str) -> Callable[[], None]:
    name, _, method = impl.partition(" ")
    method = method or None
    if name == "anypool-thread":
        return cycle_anypool("thread", None)
    if name == "anypool-process":
        return cycle_anypool("process", method)
    if name == "ThreadPoolExecutor":
        return cycle_stdlib("thread", None)
    if name == "ProcessPoolExecutor":
        return cycle_stdlib("process", method)
    if name == "multiprocessing.Pool":
        return cycle_mp_pool(method)
    return cycle_peer(name)


def case_startup(impl: str, p: dict[str, Any]) -> dict[str, Any]:
    import concurrent.futures.process  # noqa: F401  imports are not part of start-up
    import multiprocessing.pool  # noqa: F401

    cycle = startup_cycle(impl)
    times = []
    for _ in range(p["cycles"]):
        start = time.perf_counter()
        cycle()
        times.append(time.perf_counter() - start)
    warm_times = times[1:] or times
    return {
        "first_ms": 1000 * times[0],
        "ms": 1000 * statistics.median(warm_times),
        "best_ms": 1000 * min(warm_times),
    }


CASES: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "tiny": case_tiny,
    "cpu": case_cpu,
    "io": case_io,
    "streaming": case_streaming,
    "startup": case_startup,
}


def main() -> None:
    case, impl, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    emit(CASES[case](impl, params))


if __name__ == "__main__":
    main()
