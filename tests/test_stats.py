"""pool.statistics(): counts in items that add up, and durations, on real pools."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import pytest

import anypool


def fail_on_three(x: int) -> int:
    if x % 10 == 3:
        raise ValueError("three")
    return x


def nap(x: float) -> float:
    time.sleep(x)
    return x


def die_once(marker: str) -> str:
    """Kill the worker on the first attempt, succeed on the retry."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died")
        os._exit(13)
    return "ok"


def adds_up(stats: anypool.PoolStatistics) -> bool:
    finished = stats.tasks_done + stats.tasks_failed + stats.tasks_cancelled
    total: int = finished + stats.tasks_queued + stats.tasks_running
    return total == stats.tasks_submitted


@pytest.mark.parametrize("backend", ["thread", "process", "inline"])
def test_submit_counts_add_up(make_pool: Callable[..., anypool.Pool], backend: str) -> None:
    pool = make_pool(backend, 2)
    futures = [pool.submit(fail_on_three, i) for i in range(20)]
    anypool_wait(futures)
    stats = pool.statistics()
    assert stats.backend == backend
    assert (stats.tasks_submitted, stats.tasks_done, stats.tasks_failed) == (20, 18, 2)
    assert stats.tasks_cancelled == stats.tasks_queued == stats.tasks_running == 0
    assert stats.tasks_done + stats.tasks_failed + stats.tasks_cancelled == stats.tasks_submitted


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_chunked_map_counts_items(make_pool: Callable[..., anypool.Pool], backend: str) -> None:
    pool = make_pool(backend, 2)
    out = list(pool.map(fail_on_three, range(100), chunksize=10, return_exceptions=True))
    assert sum(isinstance(o, ValueError) for o in out) == 10
    stats = pool.statistics()
    assert (stats.tasks_submitted, stats.tasks_done, stats.tasks_failed) == (100, 90, 10)
    assert adds_up(stats)


def test_queued_running_and_cancelled(make_pool: Callable[..., anypool.Pool]) -> None:
    gate = threading.Event()
    pool = make_pool("thread", 1)
    blocker = pool.submit(gate.wait, 10)
    waiting = [pool.submit(nap, 0) for _ in range(5)]
    deadline = time.monotonic() + 5
    while pool.statistics().tasks_running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = pool.statistics()
    assert (stats.tasks_running, stats.tasks_queued, stats.tasks_submitted) == (1, 5, 6)
    assert adds_up(stats)
    assert all(f.cancel() for f in waiting)
    gate.set()
    assert blocker.result(timeout=5) is True
    stats = pool.statistics()
    assert (stats.tasks_done, stats.tasks_cancelled, stats.tasks_failed) == (1, 5, 0)
    assert stats.tasks_done + stats.tasks_failed + stats.tasks_cancelled == stats.tasks_submitted


def test_durations_and_busy_fraction(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", 2)
    assert pool.statistics().duration_p50 is None
    list(pool.map(nap, [0.01] * 9 + [0.1], chunksize=1))
    stats = pool.statistics()
    assert stats.duration_p50 is not None
    assert stats.duration_p95 is not None
    assert stats.duration_max is not None
    assert 0.009 <= stats.duration_p50 <= stats.duration_p95 <= stats.duration_max
    assert stats.duration_max >= 0.1
    assert 0.0 < stats.busy_fraction <= 1.0
    assert stats.uptime_s > 0


def test_statistics_is_frozen(make_pool: Callable[..., anypool.Pool]) -> None:
    stats = make_pool("thread", 1).statistics()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.tasks_done = 3  # type: ignore[misc]


def test_auto_reports_its_choice(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    assert pool.statistics().backend == "auto"
    list(pool.map(nap, [0.01] * 10))
    stats = pool.statistics()
    assert stats.backend == pool.explain().backend == "thread"
    assert stats.tasks_done == stats.tasks_submitted == 10


def test_workers_alive(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", 2)
    list(pool.map(nap, [0.02] * 4, chunksize=1))
    assert 1 <= pool.statistics().workers_alive <= 2
    assert pool.statistics().workers == 2


@pytest.mark.timeout(60)
def test_retries_and_restarts_counted(
    make_pool: Callable[..., anypool.Pool], tmp_path: Path
) -> None:
    pool = make_pool("process", 1, retries=1)
    assert pool.submit(die_once, str(tmp_path / "marker")).result(timeout=30) == "ok"
    stats = pool.statistics()
    assert (stats.retries, stats.worker_restarts) == (1, 1)
    assert (stats.tasks_done, stats.tasks_failed) == (1, 0)


def test_a_thread_replaced_after_a_timeout_is_a_restart(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool("thread", 1)
    assert pool.statistics().worker_restarts == 0
    with pytest.raises(anypool.TaskTimeout):
        pool.submit(nap, 0.3, timeout=0.05).result(timeout=5)
    assert pool.submit(abs, -1).result(timeout=5) == 1  # the replacement thread runs it
    assert pool.statistics().worker_restarts == 1


def test_executor_tasks_are_counted() -> None:
    with anypool.ThreadPoolExecutor(2) as executor:
        assert list(executor.map(abs, [-1, -2, -3])) == [1, 2, 3]
        stats = executor._pool.statistics()
    assert stats.tasks_done == stats.tasks_submitted == 3


def anypool_wait(futures: Sequence[Future[Any]]) -> None:
    _done, pending = wait(futures, timeout=30)
    assert not pending


def test_timer_tasks_are_counted(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", 2)
    assert pool.submit_after(0.01, abs, -1).result(timeout=5) == 1
    stats = pool.statistics()
    assert stats.tasks_submitted == stats.tasks_done == 1


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "recycling", [{"max_tasks_per_worker": 2}, {"max_worker_memory": 1}], ids=["tasks", "memory"]
)
def test_recycled_workers_count_as_restarts(
    make_pool: Callable[..., anypool.Pool], recycling: dict[str, int]
) -> None:
    # docs/observability.md: worker_restarts counts recycling; it stayed 0 (issue 10)
    pool = make_pool("process", 1, **recycling)
    pids = {pool.submit(os.getpid).result(timeout=30) for _ in range(6)}
    assert len(pids) >= 3, pids  # the worker was replaced at least twice
    assert _wait_for(lambda: pool.statistics().worker_restarts >= len(pids) - 1)
    assert pool.statistics().worker_restarts <= len(pids)
