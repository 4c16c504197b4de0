"""pool.submit_after and pool.every: timing within tolerance, cancel, no overlap, no drift.

Tolerances are generous on the late side (a shared 2-core machine can be slow
to wake a thread) and strict on the early side (a timer must never fire early).
"""

from __future__ import annotations

import threading
import time

import pytest

import anypool

BACKENDS = ["thread", "process"]
LATE_S = 0.25  # how late a timer may fire on a loaded machine


def stamp():
    return time.monotonic()


def fail():
    raise RuntimeError("boom")


# -- submit_after ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [*BACKENDS, "inline"])
def test_submit_after_runs_after_the_delay(make_pool, backend):
    pool = make_pool(backend, 1)
    if backend == "process":
        pool.submit(abs, 1).result(timeout=30)  # start the worker, so only the delay is timed
    start = time.monotonic()
    future = pool.submit_after(0.3, stamp)
    assert not future.done()
    ran_at = future.result(timeout=30)
    assert 0.3 <= ran_at - start < 0.3 + LATE_S + (0.5 if backend == "process" else 0)


def test_submit_after_zero_delay_and_arguments(make_pool):
    pool = make_pool("thread", 1)
    assert pool.submit_after(0, divmod, 7, 2).result(timeout=10) == (3, 1)
    assert pool.submit_after(0.01, int, "ff", base=16).result(timeout=10) == 255


def test_submit_after_cancel_before_it_fires(make_pool):
    pool = make_pool("thread", 1)
    ran = threading.Event()
    future = pool.submit_after(0.2, ran.set)
    assert future.cancel()
    time.sleep(0.4)
    assert not ran.is_set()
    assert pool.join(timeout=1)


def test_join_waits_for_delayed_tasks(make_pool):
    pool = make_pool("thread", 1)
    future = pool.submit_after(0.2, stamp)
    assert pool.join(timeout=10)
    assert future.done()


def test_submit_after_callback_and_options(make_pool):
    pool = make_pool("thread", 1, order="priority")
    seen = []
    future = pool.submit_after(0.05, abs, -3, priority=1, callback=lambda r, e: seen.append(r))
    assert future.result(timeout=10) == 3
    assert pool.join(timeout=10)
    assert seen == [3]


def test_shutdown_cancels_delayed_tasks(make_pool):
    pool = make_pool("thread", 1)
    future = pool.submit_after(30, stamp)
    start = time.monotonic()
    pool.shutdown(wait=True)
    assert time.monotonic() - start < 5
    assert future.cancelled()


def test_delayed_tasks_skip_max_pending(make_pool):
    pool = make_pool("thread", 1, max_pending=1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    pool.submit(abs, 1)  # the queue is now full
    delayed = pool.submit_after(0.05, abs, -2)  # accepted when scheduled: never blocks the timer
    time.sleep(0.2)
    gate.set()
    assert delayed.result(timeout=10) == 2


# -- every ----------------------------------------------------------------------------------------
def test_every_runs_on_the_ideal_grid(make_pool):
    pool = make_pool("thread", 1)
    stamps = pool.Queue()
    interval = 0.1
    start = time.monotonic()
    handle = pool.every(interval, _put_stamp, stamps)
    time.sleep(0.75)
    handle.cancel()
    assert handle.wait(timeout=10)
    times = _drain(stamps)
    assert 5 <= len(times) <= 8
    for k, t in enumerate(times, start=1):
        # each run is scheduled at start + k*interval: never early, and lateness does not add up
        assert t - start >= k * interval - 0.01
        assert t - start < k * interval + LATE_S
    assert handle.runs == len(times)


@pytest.mark.timeout(60)
def test_every_on_processes(make_pool):
    # the schedule is the same code on every backend (tested precisely above); here: runs
    # reach worker processes, in order, never early. Counts are not timed: a loaded
    # machine may make each round trip slower than the interval (ticks are then skipped).
    pool = make_pool("process", 1)
    stamps = pool.Queue()
    interval = 0.1
    start = time.monotonic()
    handle = pool.every(interval, _put_stamp, stamps)
    deadline = time.monotonic() + 30
    while handle.runs < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    handle.cancel()
    assert handle.wait(timeout=30)
    times = _drain(stamps)
    assert len(times) == handle.runs >= 4
    assert times == sorted(times)
    for k, t in enumerate(times, start=1):
        assert t - start >= k * interval - 0.01


def _put_stamp(q):
    q.put(time.monotonic())


def _drain(q):
    out = []
    while not q.empty():
        out.append(q.get())
    return out


def test_every_never_overlaps_and_skips_missed_ticks(make_pool):
    pool = make_pool("thread", 4)
    running, overlaps, starts = [0], [], []
    lock = threading.Lock()
    interval = 0.2

    def slow():
        with lock:
            running[0] += 1
            overlaps.append(running[0])
            starts.append(time.monotonic())
        time.sleep(0.25)  # 1.25 intervals: the tick after each run is missed
        with lock:
            running[0] -= 1

    start = time.monotonic()
    handle = pool.every(interval, slow)
    time.sleep(1.1)
    handle.cancel()
    assert handle.wait(timeout=10)
    assert max(overlaps) == 1  # 4 idle workers, yet never two runs at once
    # On the grid: runs at 0.2, then the first tick after 0.45 is 0.6, then 1.0. A
    # schedule that waited an interval after each run would drift: 0.2, 0.65, 1.1.
    ticks = [int((s - start + 0.01) // interval) for s in starts]
    assert ticks[:3] == [1, 3, 5]
    for s, k in zip(starts, ticks):
        assert -0.005 <= (s - start) - k * interval < 0.05  # late only by wake-up latency


def test_every_stops_on_error_and_keeps_it(make_pool):
    pool = make_pool("thread", 1)
    handle = pool.every(0.05, fail)
    assert handle.wait(timeout=10)
    assert isinstance(handle.exception, RuntimeError)
    assert handle.runs == 1
    assert handle.cancelled


def test_every_cancel_waits_for_the_running_run(make_pool):
    pool = make_pool("thread", 1)
    started, release = threading.Event(), threading.Event()
    done = []

    def run():
        started.set()
        release.wait(10)
        done.append(1)

    handle = pool.every(0.05, run)
    assert started.wait(10)
    handle.cancel()
    assert not handle.wait(timeout=0.1)  # a run is still going
    release.set()
    assert handle.wait(timeout=10)
    assert done == [1]
    assert handle.runs == 1
    time.sleep(0.2)
    assert done == [1]  # and none after it


def test_shutdown_stops_every(make_pool):
    pool = make_pool("thread", 1)
    handle = pool.every(0.05, stamp)
    time.sleep(0.2)
    pool.shutdown(wait=True)
    assert handle.wait(timeout=5)
    runs = handle.runs
    time.sleep(0.2)
    assert handle.runs == runs
    assert "stopped" in repr(handle)


def test_join_does_not_wait_for_future_ticks(make_pool):
    pool = make_pool("thread", 1)
    handle = pool.every(0.05, stamp)
    time.sleep(0.12)
    assert pool.join(timeout=5)  # only the run in flight, if any
    handle.cancel()


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-1, "1", float("nan"), float("inf"), True])
def test_bad_delay(make_pool, bad):
    with pytest.raises(ValueError, match="delay must be a non-negative number"):
        make_pool("thread", 1).submit_after(bad, stamp)


@pytest.mark.parametrize("bad", [0, -1, "1", float("nan")])
def test_bad_interval(make_pool, bad):
    with pytest.raises(ValueError, match="interval must be a positive number"):
        make_pool("thread", 1).every(bad, stamp)


def test_timers_need_a_callable_and_an_open_pool(make_pool):
    pool = make_pool("thread", 1)
    with pytest.raises(TypeError, match="fn must be callable"):
        pool.submit_after(1, 42)
    with pytest.raises(TypeError, match="fn must be callable"):
        pool.every(1, None)
    with pytest.raises(ValueError, match="order='priority'"):
        pool.submit_after(1, stamp, priority=2)
    pool.shutdown()
    with pytest.raises(anypool.PoolClosed):
        pool.submit_after(1, stamp)
    with pytest.raises(anypool.PoolClosed):
        pool.every(1, stamp)
