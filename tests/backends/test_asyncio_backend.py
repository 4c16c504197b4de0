"""Behaviour specific to the asyncio backend (the shared contract suite covers the rest)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import anypool


async def double_later(x: int, delay: float = 0.05) -> int:
    await asyncio.sleep(delay)
    return 2 * x


def test_coroutines_run_concurrently_up_to_the_worker_bound(make_pool):
    pool = make_pool("asyncio", 50)
    start = time.monotonic()
    assert list(pool.map(double_later, range(200))) == [2 * i for i in range(200)]
    elapsed = time.monotonic() - start
    # 200 sleeps of 50 ms, 50 at a time: 4 rounds (0.2 s). One at a time would take 10 s;
    # the bound is loose because CI machines are noisy, and still fails a serial run.
    assert elapsed < 5.0, elapsed


def test_plain_functions_run_off_the_loop_thread(make_pool):
    pool = make_pool("asyncio", 4)
    name = pool.submit(lambda: threading.current_thread().name).result(timeout=5)
    assert name != "anypool-asyncio"


def test_timeout_cancels_the_coroutine(make_pool):
    pool = make_pool("asyncio", 2)
    cancelled = threading.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = pool.submit(stuck, timeout=0.2)
    with pytest.raises(anypool.TaskTimeout):
        future.result(timeout=5)
    assert cancelled.wait(5), "the coroutine was not cancelled"
    assert pool.submit(double_later, 3).result(timeout=5) == 6


def test_a_task_raising_timeout_error_is_not_reported_as_a_pool_timeout(make_pool):
    pool = make_pool("asyncio", 2)

    async def raises() -> None:
        raise TimeoutError("mine")

    with pytest.raises(TimeoutError, match="mine") as info:
        pool.submit(raises, timeout=5).result(timeout=5)
    assert not isinstance(info.value, anypool.TaskTimeout)


def test_priority_order_with_one_worker(make_pool):
    pool = make_pool("asyncio", 1, order="priority")
    gate = threading.Event()
    ran: list[int] = []

    async def record(i: int) -> None:
        ran.append(i)

    blocker = pool.submit(lambda: gate.wait(5))
    # the one worker must hold the blocker before the others are queued; otherwise it takes
    # whichever is queued first and the order is a race (it failed so once in CI)
    deadline = time.monotonic() + 10
    while not blocker.running() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert blocker.running(), "the blocking task never started"
    futures = [pool.submit(record, i, priority=-i) for i in range(5)]
    gate.set()
    blocker.result(timeout=5)
    for future in futures:
        future.result(timeout=5)
    assert ran == [4, 3, 2, 1, 0]


def test_initializer_failure_breaks_the_pool(make_pool):
    def bad() -> None:
        raise RuntimeError("no")

    pool = make_pool("asyncio", 2, initializer=bad)
    with pytest.raises(anypool.BrokenPool, match="initializer"):
        pool.submit(abs, -1).result(timeout=5)
