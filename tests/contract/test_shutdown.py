"""Contract: shutdown variants and the context manager, on every backend."""

from __future__ import annotations

import concurrent.futures as cf
import time

import pytest

import anypool

from ._tasks import record, recorded, sleep_then, square, wait_for_gate


def _wait_running(future, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not (future.running() or future.done()):
        if time.monotonic() > deadline:
            pytest.fail(f"{future!r} never started")
        time.sleep(0.005)


def test_shutdown_wait_true_finishes_all_submitted_work(backend, make_pool):
    pool = make_pool(backend, 2)
    futures = [pool.submit(sleep_then, 0.02, i) for i in range(10)]
    pool.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(10))


def test_shutdown_wait_false_returns_at_once_and_work_still_completes(backend, make_pool):
    pool = make_pool(backend, 1)
    futures = [pool.submit(sleep_then, 0.3, i) for i in range(2)]
    start = time.monotonic()
    pool.shutdown(wait=False)
    elapsed = time.monotonic() - start
    if not pool.capabilities.runs_in_caller:  # inline has already run everything in submit
        assert elapsed < 0.25, f"shutdown(wait=False) blocked for {elapsed:.2f}s"
    assert [f.result(timeout=20) for f in futures] == [0, 1]


def test_shutdown_cancel_pending_cancels_queued_futures(backend, make_pool, tmp_path):
    log = str(tmp_path / "ran.txt")
    workers, queued = 1, 6
    pool = make_pool(backend, workers)
    first = pool.submit(record, log, "first", 0.3)
    _wait_running(first)
    rest = [pool.submit(record, log, i) for i in range(queued)]
    pool.shutdown(wait=True, cancel_pending=True)
    assert first.result() == "first"  # a running task is not cancelled
    assert all(f.done() for f in rest)
    cancelled = [f for f in rest if f.cancelled()]
    completed = [f for f in rest if not f.cancelled()]
    if pool.capabilities.runs_in_caller:
        assert not cancelled, "inline runs at submission: nothing is ever queued"
    else:
        # at most one task per worker may already have been handed over
        assert len(cancelled) >= queued - workers, f"only {len(cancelled)} of {queued} cancelled"
    ran = recorded(log)
    assert ran[0] == "first"
    assert sorted(ran[1:]) == sorted(str(f.result()) for f in completed)
    for future in cancelled:
        with pytest.raises(cf.CancelledError):
            future.result()


def test_shutdown_kill_running_fails_running_tasks_with_cancelled_error(
    backend, make_pool, tmp_path
):
    """docs/failure-model.md: one outcome on every backend. A running task's future fails
    with CancelledError at once, whether its worker is killed or (a thread) abandoned,
    and the queued ones are cancelled; shutdown does not wait for the running one."""
    pool = make_pool(backend, 1)
    if pool.capabilities.runs_in_caller:  # submit ran it: nothing can be running at shutdown
        done = pool.submit(square, 3)
        pool.shutdown(wait=True, cancel_pending=True, kill_running=True)
        assert done.result(timeout=0) == 9
        return
    gate = tmp_path / "gate"
    running = pool.submit(wait_for_gate, str(gate))
    _wait_running(running)
    queued = [pool.submit(square, i) for i in range(3)]
    start = time.monotonic()
    try:
        pool.shutdown(wait=True, kill_running=True)
        elapsed = time.monotonic() - start
    finally:
        gate.touch()  # an abandoned task ends now, not at its timeout
    assert elapsed < 10, f"shutdown(kill_running=True) waited {elapsed:.1f}s for the task"
    for future in [running, *queued]:
        with pytest.raises(cf.CancelledError):
            future.result(timeout=10)
    assert not running.cancelled()  # it had started: it failed, it was not cancelled
    with pytest.raises(anypool.PoolClosed):
        pool.submit(square, 1)


def test_shutdown_without_cancel_pending_runs_queued_work(backend, make_pool):
    pool = make_pool(backend, 1)
    first = pool.submit(sleep_then, 0.2, "first")
    rest = [pool.submit(square, i) for i in range(5)]
    pool.shutdown(wait=True, cancel_pending=False)
    assert first.result() == "first"
    assert [f.result() for f in rest] == [0, 1, 4, 9, 16]


def test_submit_after_shutdown_raises_pool_closed(backend, make_pool):
    pool = make_pool(backend, 1)
    assert pool.submit(square, 2).result(timeout=10) == 4
    pool.shutdown()
    with pytest.raises(anypool.PoolClosed) as info:
        pool.submit(square, 2)
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, anypool.AnyPoolError)
    assert "shut" in str(info.value)


def test_map_after_shutdown_raises_pool_closed(backend, make_pool):
    pool = make_pool(backend, 1)
    pool.shutdown()
    with pytest.raises(anypool.PoolClosed):
        list(pool.map(square, [1, 2, 3]))


def test_shutdown_twice_and_in_any_order_is_fine(backend, make_pool):
    pool = make_pool(backend, 2)
    future = pool.submit(square, 3)
    pool.shutdown(wait=False)
    pool.shutdown(wait=True)
    pool.shutdown(wait=True, cancel_pending=True)
    pool.shutdown()
    assert future.result(timeout=10) == 9


def test_shutdown_of_an_unused_pool(backend, make_pool):
    pool = make_pool(backend, 2)
    start = time.monotonic()
    pool.shutdown()
    assert time.monotonic() - start < 5


def test_context_manager_returns_the_pool_and_shuts_it_down(backend, make_pool):
    with make_pool(backend, 2) as pool:
        assert isinstance(pool, anypool.Pool)
        futures = [pool.submit(sleep_then, 0.05, i) for i in range(4)]
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 1, 2, 3]
    with pytest.raises(anypool.PoolClosed):
        pool.submit(square, 1)


def test_context_manager_shuts_down_when_the_body_raises(backend, make_pool):
    pool = make_pool(backend, 2)

    def body():
        with pool:
            future = pool.submit(sleep_then, 0.05, "done")
            raise LookupError(future)

    with pytest.raises(LookupError) as info:
        body()
    future = info.value.args[0]
    assert future.result(timeout=0) == "done"  # wait=True: finished before __exit__ returned
    with pytest.raises(anypool.PoolClosed):
        pool.submit(square, 1)


def test_pool_introspection(backend, make_pool):
    pool = make_pool(backend, 2)
    assert pool.backend == backend
    assert pool.workers == 2
    assert backend in repr(pool)
    pool.shutdown()
    assert "closed" in repr(pool)
