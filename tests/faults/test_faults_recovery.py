"""Recovery on the process backend: exactly-once delivery under random external kills,
retries, timeouts that stop the task, Pool.kill, recycling by task count and by memory,
shutdown that kills, and initializers that fail."""

from __future__ import annotations

import collections
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future

import cheaptasks
import pytest
from faultlib import (
    crash_until,
    getpid,
    grow,
    ignore_sigterm_and_sleep,
    initializer_exits,
    initializer_raises,
    sleep_and_return,
    square,
    worker_pids,
)

import anypool


@pytest.fixture(autouse=True)
def _no_future_state_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every recovery here (a retry, a requeue from a dead or killed worker, a timeout) runs
    a task again, or resolves it while it was queued; none may make concurrent.futures log
    "Future ... in unexpected state" at CRITICAL, as starting a started future does."""
    caplog.set_level(logging.CRITICAL, logger="concurrent.futures")
    yield
    records = caplog.get_records("setup") + caplog.get_records("call")
    bad = [r.getMessage() for r in records if r.name == "concurrent.futures"]
    assert bad == [], bad


# -- exactly once --------------------------------------------------------------------------
class Killer:
    """A thread that SIGKILLs a random worker process of ``pool`` every ``interval`` seconds.

    It asks the pool for its workers rather than listing this process's children: in a
    session that also runs Ray or a Dask cluster, those are children too, and killing
    Ray's raylet takes the test process down with it."""

    def __init__(self, pool: anypool.Pool, interval: float) -> None:
        self.pool = pool
        self.interval = interval
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="killer")

    def _run(self) -> None:
        rng = random.Random(1234)
        while not self._stop.wait(self.interval):
            backend = self.pool._backend
            # only workers that have started (said READY): a start takes longer than the
            # interval on a loaded machine, and ten deaths in a row before READY break the
            # pool by design (WorkersCannotStart), which is not what this tests
            workers = sorted(w.process.pid for w in list(backend._workers.values()) if w.ready)  # type: ignore[attr-defined]
            if workers:
                try:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    self.kills += 1
                except ProcessLookupError:
                    pass

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.timeout(150)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_exactly_once_under_random_kills(make_pool, start_method):
    """Every result exactly once, none lost, none twice, while a thread SIGKILLs a random
    worker every 50 ms. The task lives in a module that is free to import: a fresh worker
    imports the task's module while running its first task, and a retried task always
    goes first, so a module that takes 50 ms to import would make this a test of
    retries=3 against a kill every 50 ms instead."""
    n = 5000
    pool = make_pool("process", 2, max_tasks_per_worker=10, retries=3, start_method=start_method)
    with Killer(pool, interval=0.05) as killer:
        task = cheaptasks.square_after_a_moment
        futures = [pool.submit(task, i) for i in range(n // 2)]
        deliveries: collections.Counter[int] = collections.Counter()
        for index, future in enumerate(futures):
            future.add_done_callback(lambda _f, index=index: deliveries.update([index]))
        mapped = list(
            pool.map(task, range(n // 2, n), chunksize=1, ordered=False, return_exceptions=True)
        )
        results = [_outcome(f) for f in futures]
    assert killer.kills >= 20, f"only {killer.kills} kills: the test did not test much"
    # A task the killer hits on all 4 attempts fails, as retries=3 promises; on a loaded CI
    # machine (slow worker starts) that happens now and then. It must be that and nothing
    # else, and rare: every other item delivers its own result, exactly once.
    failed = [x for x in [*results, *mapped] if isinstance(x, BaseException)]
    assert all(_retries_exhausted(x) for x in failed), failed[:3]
    assert len(failed) <= n // 100, f"{len(failed)} of {n} tasks lost all 4 attempts"
    assert all(r == i * i or _retries_exhausted(r) for i, r in enumerate(results))
    values = [x for x in mapped if not isinstance(x, BaseException)]
    assert len(mapped) == n - n // 2  # one outcome per item: none lost
    assert len(set(values)) == len(values)  # none twice
    assert set(values) <= {i * i for i in range(n // 2, n)}
    assert len(deliveries) == n // 2
    assert set(deliveries.values()) == {1}


def _outcome(future: Future[int]) -> int | BaseException:
    error = future.exception(timeout=60)
    return error if error is not None else future.result()


def _retries_exhausted(outcome: object) -> bool:
    return isinstance(outcome, anypool.WorkerCrashed) and "(attempt 4 of 4)" in str(outcome)


def test_a_killed_forkserver_is_replaced(make_pool):
    from multiprocessing import forkserver

    pool = make_pool("process", 1, max_tasks_per_worker=1, start_method="forkserver")
    first = pool.submit(getpid).result(timeout=30)
    os.kill(forkserver._forkserver._forkserver_pid, signal.SIGKILL)  # type: ignore[attr-defined]
    time.sleep(0.1)
    assert pool.submit(getpid).result(timeout=30) != first


# -- retries -------------------------------------------------------------------------------
def calls(counter: str) -> int:
    with open(counter) as file:
        return len(file.read())


@pytest.mark.parametrize("where", ["pool", "submit", "map"])
def test_retries_rerun_a_task_whose_worker_died(make_pool, tmp_path, where):
    pool = make_pool("process", 2, retries=2 if where == "pool" else 0)
    counter = str(tmp_path / "calls")
    if where == "map":
        outcome = next(pool.map(crash_until, [counter], [2], ["done"], retries=2))
    elif where == "submit":
        outcome = pool.submit(crash_until, counter, 2, "done", retries=2).result(timeout=30)
    else:
        outcome = pool.submit(crash_until, counter, 2, "done").result(timeout=30)
    assert outcome == "done"
    assert calls(counter) == 3


def test_retries_run_out(make_pool, tmp_path):
    pool = make_pool("process", 2)
    counter = str(tmp_path / "calls")
    future = pool.submit(crash_until, counter, 5, "done", retries=2)
    with pytest.raises(anypool.WorkerCrashed, match=r"exited with code 9.*\(attempt 3 of 3\)"):
        future.result(timeout=30)
    assert calls(counter) == 3
    assert pool.submit(square, 3).result(timeout=30) == 9


# -- timeouts ------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["pool", "submit"])
def test_timeout_stops_the_task_and_only_it(make_pool, where):
    pool = make_pool("process", 2, timeout=0.5 if where == "pool" else None)
    kwargs = {"timeout": 0.5} if where == "submit" else {}
    slow = pool.submit(sleep_and_return, "slow", 30, **kwargs)
    fast = [pool.submit(sleep_and_return, i, 0.05, **kwargs) for i in range(10)]
    start = time.monotonic()
    with pytest.raises(anypool.TaskTimeout, match=r"timeout of 0\.5 s.*worker process \d+"):
        slow.result(timeout=10)
    assert time.monotonic() - start < 3
    assert [f.result(timeout=10) for f in fast] == list(range(10))
    assert isinstance(anypool.TaskTimeout("x"), TimeoutError)


def test_map_timeout_fails_only_the_slow_item(make_pool):
    pool = make_pool("process", 2)
    delays = [0.0, 0.0, 30.0, 0.0, 0.0]
    out = list(pool.map(sleep_and_return, range(5), delays, timeout=0.5, return_exceptions=True))
    assert out[:2] == [0, 1]
    assert out[3:] == [3, 4]
    assert isinstance(out[2], anypool.TaskTimeout)


def test_timeout_kills_a_worker_that_ignores_sigterm(make_pool):
    pool = make_pool("process", 1)
    stuck = pool.submit(ignore_sigterm_and_sleep, 30, timeout=0.3)
    with pytest.raises(anypool.TaskTimeout):
        stuck.result(timeout=10)
    assert pool.submit(square, 4).result(timeout=10) == 16  # SIGKILL after the grace


def test_timeout_clock_starts_when_the_task_starts(make_pool):
    # spawn: the first task waits for the interpreter to start; prefetched tasks wait in
    # the pipe behind the running one; neither wait counts against the timeout
    pool = make_pool("process", 1, start_method="spawn")
    futures = [pool.submit(sleep_and_return, i, 0.4, timeout=1.0) for i in range(3)]
    assert [f.result(timeout=30) for f in futures] == [0, 1, 2]


# -- Pool.kill and shutdown ----------------------------------------------------------------
def test_kill_stops_a_running_task(make_pool):
    pool = make_pool("process", 1)
    victim = pool.submit(sleep_and_return, "victim", 30)
    waiting = pool.submit(sleep_and_return, "next", 0)  # prefetched behind the victim
    while not victim.running():
        time.sleep(0.01)
    time.sleep(0.2)
    assert pool.kill(victim) is True
    with pytest.raises(CancelledError):
        victim.result(timeout=5)
    assert waiting.result(timeout=10) == "next"  # requeued, never blamed


@pytest.fixture
def prefetch_always(monkeypatch):
    """Send a second task to a busy worker whatever its function's measured duration.
    The process backend does that only for functions measured to be quick (a task behind
    a slow one would wait while another worker idles); these tests need tasks that wait
    in a worker's pipe behind long ones, to fault that state."""
    from anypool._backends._process import _dispatcher as _process

    def small_enough(self, worker, task):
        return self._size(worker, task) <= _process._PREFETCH_MAX_BYTES

    monkeypatch.setattr(_process.ProcessBackend, "_may_wait_in_pipe", small_enough)


@pytest.mark.usefixtures("prefetch_always")
def test_kill_a_task_waiting_behind_the_running_one(make_pool):
    pool = make_pool("process", 1)
    running = pool.submit(sleep_and_return, "first", 0.5)
    doomed = pool.submit(sleep_and_return, "doomed", 30)
    time.sleep(0.2)
    assert doomed.running()  # sent to the worker's pipe: future.cancel() cannot stop it
    assert doomed.cancel() is False
    assert pool.kill(doomed) is True
    assert running.result(timeout=10) == "first"
    with pytest.raises(CancelledError):
        doomed.result(timeout=5)
    assert pool.submit(square, 5).result(timeout=10) == 25


@pytest.mark.usefixtures("prefetch_always")
def test_tasks_requeued_from_a_killed_worker_run_once_and_quietly(make_pool):
    # sent to the victim's worker behind it (RUNNING there), then requeued when kill()
    # ends that worker: started again elsewhere, which must not look like a started future
    # started twice (the autouse fixture checks the log)
    pool = make_pool("process", 1)
    victim = pool.submit(sleep_and_return, "victim", 30)
    behind = [pool.submit(sleep_and_return, i, 0) for i in range(3)]
    while not all(f.running() for f in behind[:1]):
        time.sleep(0.01)
    assert pool.kill(victim) is True
    assert [f.result(timeout=10) for f in behind] == [0, 1, 2]
    assert pool.statistics().tasks_done == 3


# -- recycling -----------------------------------------------------------------------------
@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_max_tasks_per_worker_never_deadlocks(make_pool, n):
    pool = make_pool("process", 2, max_tasks_per_worker=n)
    pids = [f.result(timeout=30) for f in [pool.submit(cheaptasks.getpid) for _ in range(20)]]
    pids += list(pool.map(cheaptasks.getpid, range(20), chunksize=1))
    per_worker = collections.Counter(pids)
    assert max(per_worker.values()) <= n
    assert len(per_worker) >= 40 // n


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", [1, 3])
def test_process_pool_executor_max_tasks_per_child(n):
    with anypool.ProcessPoolExecutor(2, max_tasks_per_child=n) as executor:
        pids = list(executor.map(getpid, range(15)))
    assert max(collections.Counter(pids).values()) <= n


def test_max_worker_memory_replaces_a_worker_that_grew(make_pool):
    pool = make_pool("process", 1, max_worker_memory=200 * 1024 * 1024)
    # 3 tasks at once: the third waits in the pipe of the worker that retires after the
    # second, and must run on the replacement
    first, second, third = [pool.submit(grow, 120) for _ in range(3)]
    assert first.result(timeout=30) == second.result(timeout=30)
    assert third.result(timeout=30) != first.result()


# -- initializers --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("initializer", "pattern"),
    [(initializer_raises, "initializer failed"), (initializer_exits, "exited with code 4")],
)
def test_failing_initializer_breaks_the_pool(initializer, pattern):
    pool = anypool.Pool("process", 2, initializer=initializer)
    futures = [pool.submit(square, i) for i in range(4)]
    for future in futures:
        with pytest.raises(anypool.BrokenProcessPool, match=pattern):
            future.result(timeout=30)
    with pytest.raises(anypool.BrokenProcessPool):
        pool.submit(square, 1)
    pool.shutdown()


class _Interrupt(Exception):
    pass


def _raise_interrupt(*_: object) -> None:
    raise _Interrupt


@pytest.mark.usefixtures("prefetch_always")
def test_shutdown_still_waits_after_an_interrupted_shutdown():
    """A Ctrl-C that interrupts shutdown()'s wait must not make the next shutdown() return
    before the pool is done. (Python < 3.13: a Thread.join() interrupted by a signal
    handler's exception marks the still-running thread stopped, and later joins return at
    once; a signal other than SIGINT stands in for Ctrl-C here.)"""
    before = worker_pids()
    pool = anypool.Pool("process", 2)
    # two running (they ignore SIGTERM: stopping them takes the SIGKILL grace) and two
    # waiting in the workers' pipes, which the pool fails once the workers are gone
    futures = [pool.submit(ignore_sigterm_and_sleep, 30) for _ in range(4)]
    while not all(f.running() for f in futures):
        time.sleep(0.01)
    time.sleep(0.2)
    previous = signal.signal(signal.SIGUSR1, _raise_interrupt)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(_Interrupt):
            pool.shutdown()  # waits for the 30 s tasks until the "Ctrl-C"
    finally:
        timer.join()
        signal.signal(signal.SIGUSR1, previous)
    pool.shutdown(cancel_pending=True, kill_running=True)
    assert all(f.done() for f in futures), "shutdown returned before the pool was done"
    assert worker_pids() - before == set(), "shutdown returned with workers still alive"
