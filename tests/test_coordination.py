"""Scheduling order, backpressure (max_pending), join, callbacks, resize and their bad inputs.

Ordering is made observable the same way on every backend: one worker, a
first task that blocks on an Event until everything else is queued, then the
order in which the rest ran (recorded through a pool.Queue, which works on
threads and across processes alike). The process backend sends a busy worker
one task ahead into its pipe (that task counts as started), so ``occupy``
fills that slot too before the tasks under test are submitted.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import CancelledError

import pytest

import anypool

BACKENDS = ["thread", "process"]


def record(queue, value):
    queue.put(value)
    return value


def wait_event(event, timeout=10.0):
    assert event.wait(timeout), "the test never released the blocking task"
    return "released"


def drain(queue):
    out = []
    while not queue.empty():
        out.append(queue.get())
    return out


def occupy(pool, gate):
    """Make the only worker busy, and fill the slot of a backend that sends one task ahead."""
    wait_started(pool.submit(wait_event, gate))
    ahead = pool.submit(wait_event, gate)
    if not wait_started(ahead, timeout=0.3, required=False):
        assert ahead.cancel()  # this backend keeps it queued: take it back out


def ran_in_order(pool, submissions):
    """Block the only worker, submit (value, options) pairs, release, return the run order."""
    gate, ran = pool.Event(), pool.Queue()
    occupy(pool, gate)
    futures = [pool.submit(record, ran, value, **options) for value, options in submissions]
    gate.set()
    for future in futures:
        future.result(timeout=30)
    return drain(ran)


def wait_started(future, timeout=10.0, required=True):
    deadline = time.monotonic() + timeout
    while not future.running() and not future.done():
        if time.monotonic() > deadline:
            assert not required, "the blocking task never started"
            return False
        time.sleep(0.005)
    return True


# -- order ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_fifo_runs_in_submission_order(make_pool, backend):
    pool = make_pool(backend, 1, order="fifo")
    assert ran_in_order(pool, [(i, {}) for i in range(6)]) == list(range(6))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lifo_runs_newest_first(make_pool, backend):
    pool = make_pool(backend, 1, order="lifo")
    assert ran_in_order(pool, [(i, {}) for i in range(6)]) == list(reversed(range(6)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_priority_runs_smallest_first_and_ties_keep_submission_order(make_pool, backend):
    pool = make_pool(backend, 1, order="priority")
    priorities = [5, 1, 3, 1, -2, 3, 0.5]
    got = ran_in_order(pool, [((p, i), {"priority": p}) for i, p in enumerate(priorities)])
    assert got == sorted(((p, i) for i, p in enumerate(priorities)), key=lambda x: (x[0], x[1]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_priority_goes_ahead_of_lower_priority_submits(make_pool, backend):
    pool = make_pool(backend, 1, order="priority")
    gate, ran = pool.Event(), pool.Queue()
    occupy(pool, gate)
    late = [pool.submit(record, ran, ("submit", i), priority=10) for i in range(3)]
    mapped = pool.map(record, [ran] * 3, [("map", i) for i in range(3)], priority=0, chunksize=1)
    # map is lazy: its window is submitted when iteration starts, which then waits for
    # the first item, so the gate is opened from another thread
    opener = threading.Timer(0.3, gate.set)
    opener.start()
    try:
        assert list(mapped) == [("map", i) for i in range(3)]
    finally:
        opener.join()
    for future in late:
        future.result(timeout=30)
    assert drain(ran) == [
        ("map", 0),
        ("map", 1),
        ("map", 2),
        ("submit", 0),
        ("submit", 1),
        ("submit", 2),
    ]


# -- backpressure ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pending_block_false_raises_pool_full(make_pool, backend):
    pool = make_pool(backend, 1, max_pending=2)
    assert pool.max_pending == 2
    gate = pool.Event()
    occupy(pool, gate)
    queued = [pool.submit(abs, -i) for i in range(2)]
    with pytest.raises(anypool.PoolFull, match="max_pending=2"):
        pool.submit(abs, -9, block=False)
    start = time.monotonic()
    with pytest.raises(anypool.PoolFull, match=r"after waiting 0\.2 s"):
        pool.submit(abs, -9, block=0.2)
    assert time.monotonic() - start >= 0.19
    gate.set()
    assert [f.result(timeout=30) for f in queued] == [0, 1]
    assert pool.submit(abs, -3, block=False).result(timeout=30) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pending_blocks_until_a_task_starts(make_pool, backend):
    pool = make_pool(backend, 1, max_pending=1)
    gate = pool.Event()
    occupy(pool, gate)
    pool.submit(abs, -1)  # fills the queue
    submitted = threading.Event()

    def producer():
        pool.submit(abs, -2).result(timeout=30)
        submitted.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not submitted.wait(0.3), "submit() should block while the queue is full"
    gate.set()
    assert submitted.wait(30), "submit() should unblock once the queue drains"
    thread.join()


def test_max_pending_counts_queued_not_running(make_pool):
    pool = make_pool("thread", 2, max_pending=1)
    gate = threading.Event()
    running = [pool.submit(gate.wait, 10) for _ in range(2)]
    for future in running:
        wait_started(future)
    pool.submit(abs, 1)  # two running tasks do not count: one may still queue
    with pytest.raises(anypool.PoolFull):
        pool.submit(abs, 2, block=False)
    gate.set()


def test_cancelled_queued_task_frees_its_slot(make_pool):
    pool = make_pool("thread", 1, max_pending=1)
    gate = threading.Event()
    wait_started(pool.submit(gate.wait, 10))
    queued = pool.submit(abs, -1)
    assert queued.cancel()
    assert pool.submit(abs, -2, block=False) is not None
    gate.set()


def test_blocked_submitter_gets_pool_closed_on_shutdown(make_pool):
    pool = make_pool("thread", 1, max_pending=1)
    gate = threading.Event()
    wait_started(pool.submit(gate.wait, 10))
    pool.submit(abs, -1)
    errors = []

    def producer():
        try:
            pool.submit(abs, -2)
        except anypool.PoolClosed as exc:
            errors.append(exc)

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive()  # waiting for room
    pool.shutdown(wait=False)  # the queue is still full: only the shutdown can wake it
    thread.join(10)
    gate.set()
    assert not thread.is_alive()
    assert len(errors) == 1
    assert "shut down while this call waited" in str(errors[0])


# -- join -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_join_waits_for_everything_submitted_and_keeps_the_pool_open(make_pool, backend):
    pool = make_pool(backend, 2)
    futures = [pool.submit(time.sleep, 0.05) for _ in range(6)]
    assert pool.join(timeout=30) is True
    assert all(f.done() for f in futures)
    assert pool.submit(abs, -5).result(timeout=30) == 5  # still open
    assert pool.join(timeout=30) is True


def test_join_timeout_returns_false(make_pool):
    pool = make_pool("thread", 1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    assert pool.join(timeout=0.1) is False
    gate.set()
    assert pool.join(timeout=10) is True


def test_join_counts_failures_and_cancellations(make_pool):
    pool = make_pool("thread", 1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    doomed = pool.submit(abs, 1)
    failing = pool.submit(math.sqrt, -1)
    doomed.cancel()
    gate.set()
    assert pool.join(timeout=10)
    assert isinstance(failing.exception(), ValueError)


def test_join_on_an_idle_pool_returns_at_once(make_pool):
    assert make_pool("thread", 1).join(timeout=0) is True


# -- callbacks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_submit_callback_gets_result_or_exception_in_the_parent(make_pool, backend):
    pool = make_pool(backend, 2)
    seen = []
    lock = threading.Lock()

    def callback(result, error):
        with lock:
            seen.append((result, type(error).__name__ if error else None, os.getpid()))

    pool.submit(abs, -4, callback=callback)
    pool.submit(math.sqrt, -1, callback=callback)
    assert pool.join(timeout=30)  # join returns after the callbacks ran
    assert sorted((s[:2] for s in seen), key=repr) == [(4, None), (None, "ValueError")]
    assert {s[2] for s in seen} == {os.getpid()}  # in the parent, also for process workers


def test_callback_on_cancel_gets_cancelled_error(make_pool):
    pool = make_pool("thread", 1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    seen = []
    queued = pool.submit(abs, 1, callback=lambda r, e: seen.append(e))
    queued.cancel()
    gate.set()
    pool.join(10)
    assert len(seen) == 1
    assert isinstance(seen[0], CancelledError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_callback_is_called_per_item_as_the_iterator_reaches_it(make_pool, backend):
    pool = make_pool(backend, 2)
    seen = []
    results = list(
        pool.map(
            math.sqrt,
            [4, -1, 9],
            callback=lambda r, e: seen.append((r, type(e).__name__ if e else None)),
            return_exceptions=True,
        )
    )
    assert results[0] == 2.0
    assert isinstance(results[1], ValueError)
    assert results[2] == 3.0
    assert seen == [(2.0, None), (None, "ValueError"), (3.0, None)]


def test_inline_callback_runs_at_once(make_pool):
    pool = make_pool("inline")
    seen = []
    pool.submit(abs, -1, callback=lambda r, e: seen.append(r))
    assert seen == [1]


# -- resize ---------------------------------------------------------------------------------------
def wait_for_value(fn, expected, timeout=10.0):
    deadline = time.monotonic() + timeout
    while fn() != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return fn()


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_grows_and_shrinks_at_run_time(make_pool, backend):
    pool = make_pool(backend, 1)
    pool.resize(3)
    assert pool.workers == 3
    barrier = pool.Barrier(3, timeout=20)
    # three tasks can only pass a 3-party barrier if three workers run at once
    passed = [pool.submit(barrier.wait) for _ in range(3)]
    assert sorted(f.result(timeout=30) for f in passed) == [0, 1, 2]
    pool.resize(1)
    assert pool.workers == 1
    assert pool.submit(abs, -1).result(timeout=30) == 1


@pytest.mark.parametrize("order", ["fifo", "lifo", "priority"])
def test_shrinking_an_idle_thread_pool_limits_the_next_tasks_at_once(make_pool, order):
    # idle threads asleep in the queue took one more task each before they retired: after
    # resize(1) the next 4 tasks ran 4 at once (a concurrency limit that did not hold)
    pool = make_pool("thread", 4, order=order)
    barrier = threading.Barrier(4, timeout=20)
    assert sorted(f.result(timeout=30) for f in [pool.submit(barrier.wait) for _ in range(4)]) == [
        0,
        1,
        2,
        3,
    ]  # four threads started, now idle
    pool.resize(1)
    counter = _Peak()
    assert [f.result(timeout=30) for f in [pool.submit(counter.run) for _ in range(4)]] == [1] * 4
    assert counter.peak == 1
    assert wait_for_value(lambda: pool.statistics().workers_alive, 1) == 1


class _Peak:
    """Tasks that count how many of them run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = 0

    def run(self) -> int:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.05)
        with self.lock:
            self.now -= 1
        return 1


def test_resize_bad_input(make_pool):
    pool = make_pool("thread", 1)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be a positive int"):
            pool.resize(bad)


def test_resize_unsupported_backend_is_a_capability_error(make_pool):
    with pytest.raises(anypool.CapabilityError, match="cannot change its number of workers"):
        make_pool("inline").resize(2)


def test_resize_after_shutdown(make_pool):
    pool = make_pool("thread", 1)
    pool.shutdown()
    with pytest.raises(anypool.PoolClosed):
        pool.resize(2)


# -- bad input ------------------------------------------------------------------------------------
def test_unknown_order(make_pool):
    with pytest.raises(ValueError, match="order must be one of"):
        make_pool("thread", 1, order="random")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_max_pending(make_pool, bad):
    with pytest.raises(ValueError, match="max_pending must be a positive int"):
        make_pool("thread", 1, max_pending=bad)


@pytest.mark.parametrize("order", ["fifo", "lifo"])
def test_priority_on_a_non_priority_pool_is_a_value_error(make_pool, order):
    pool = make_pool("thread", 1, order=order)
    with pytest.raises(ValueError, match="priority= needs a pool created with order='priority'"):
        pool.submit(abs, 1, priority=1)
    with pytest.raises(ValueError, match="order='priority'"):
        pool.map(abs, [1], priority=1)


def test_priority_on_inline_is_a_capability_error(make_pool):
    with pytest.raises(anypool.CapabilityError):
        make_pool("inline").submit(abs, 1, priority=1)


@pytest.mark.parametrize(
    ("bad", "error"), [("high", TypeError), (True, TypeError), (math.nan, ValueError)]
)
def test_bad_priority_values(make_pool, bad, error):
    pool = make_pool("thread", 1, order="priority")
    with pytest.raises(error, match="priority"):
        pool.submit(abs, 1, priority=bad)


@pytest.mark.parametrize(
    ("bad", "error"), [(-1, ValueError), ("yes", ValueError), (math.inf, ValueError)]
)
def test_bad_block(make_pool, bad, error):
    pool = make_pool("thread", 1, max_pending=1)
    with pytest.raises(error, match="block must be"):
        pool.submit(abs, 1, block=bad)


def test_bad_callback(make_pool):
    pool = make_pool("thread", 1)
    with pytest.raises(TypeError, match="callback must be callable"):
        pool.submit(abs, 1, callback=42)
    with pytest.raises(TypeError, match="callback must be callable"):
        pool.map(abs, [1], callback="nope")


def test_bad_join_timeout(make_pool):
    with pytest.raises(ValueError, match="timeout must be"):
        make_pool("thread", 1).join(timeout=-1)
