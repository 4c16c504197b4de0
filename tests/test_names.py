"""Public names settled before the first release (issue #11): the stdlib's spellings work."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import anypool


@pytest.mark.parametrize("keyword", ["cancel_futures", "cancel_pending"])
def test_shutdown_cancels_queued_tasks_by_the_stdlib_name(
    make_pool: Callable[..., anypool.Pool], keyword: str
) -> None:
    pool = make_pool("thread", workers=1)
    gate = threading.Event()
    running = pool.submit(gate.wait, 10)
    queued = [pool.submit(pow, 2, i) for i in range(5)]
    pool.shutdown(wait=False, **{keyword: True})
    gate.set()
    assert running.result(timeout=10) is True  # started tasks finish, as in the stdlib
    assert all(f.cancelled() for f in queued)


def test_shutdown_without_cancel_runs_queued_tasks(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", workers=1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    queued = [pool.submit(pow, 2, i) for i in range(3)]
    gate.set()
    pool.shutdown(wait=True)
    assert [f.result() for f in queued] == [1, 2, 4]


def test_the_primitive_protocols_describe_what_the_factories_return(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool("thread", workers=1)
    lock: anypool.LockLike = pool.Lock()
    queue: anypool.QueueLike = pool.Queue()
    with lock:
        queue.put(1)
    assert queue.get() == 1
    assert issubclass(anypool.RemoteTraceback, Exception)


@pytest.mark.parametrize(
    ("habit", "name"),
    [
        ("max_workers", "workers"),
        ("processes", "workers"),
        ("maxtasksperchild", "max_tasks_per_worker"),
    ],
)
def test_a_stdlib_option_name_is_pointed_at_anypools(habit: str, name: str) -> None:
    with pytest.raises(TypeError, match=f"unknown option.*{habit}.*for {habit}= use {name}="):
        anypool.Pool("thread", **{habit: 2})
