"""Faults on the thread backend (a timed-out thread is abandoned, never killed) and the
behaviour every backend shares: return_exceptions, shutdown that cancels and abandons.

Tasks here block on an Event the test sets at the end, so an abandoned thread finishes
before the autouse leak check looks for it.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest
from faultlib import raise_if_odd

import anypool


@pytest.fixture
def release():
    """An Event that blocked tasks wait on; set when the test ends."""
    event = threading.Event()
    yield event
    event.set()


def block(event: threading.Event, value: object = None) -> object:
    event.wait(30)
    return value


def meet(barrier: threading.Barrier, value: object) -> object:
    barrier.wait()
    return value


def test_thread_timeout_abandons_the_thread_and_keeps_full_strength(make_pool, release):
    pool = make_pool("thread", 2)
    stuck = pool.submit(block, release, "stuck", timeout=0.2)
    start = time.monotonic()
    with pytest.raises(anypool.TaskTimeout, match=r"timeout of 0\.2 s.*abandoned"):
        stuck.result(timeout=5)
    assert time.monotonic() - start < 2
    # both slots work at once while the abandoned thread is still blocked: two tasks that
    # can only finish together
    barrier = threading.Barrier(2, timeout=10)
    pair = [pool.submit(meet, barrier, i) for i in range(2)]
    assert [f.result(timeout=10) for f in pair] == [0, 1]
    assert not release.is_set()  # the stuck task really is still running


def test_kill_abandons_a_running_thread_task_and_keeps_full_strength(make_pool, release):
    pool = make_pool("thread", 2)
    stuck = pool.submit(block, release, "stuck")
    while not stuck.running():
        time.sleep(0.01)
    assert pool.kill(stuck) is True
    assert stuck.done()
    with pytest.raises(CancelledError, match="abandoned"):
        stuck.result(timeout=0)
    assert pool.kill(stuck) is False  # done already
    barrier = threading.Barrier(2, timeout=10)  # both slots at once, as after a timeout
    pair = [pool.submit(meet, barrier, i) for i in range(2)]
    assert [f.result(timeout=10) for f in pair] == [0, 1]
    assert pool.statistics().worker_restarts == 1
    start = time.monotonic()
    pool.shutdown(wait=True)  # does not wait for the abandoned call
    assert time.monotonic() - start < 2
    assert not release.is_set()


def test_thread_pool_timeout_applies_to_every_task(make_pool, release):
    pool = make_pool("thread", 2, timeout=0.2)
    stuck = [pool.submit(block, release) for _ in range(3)]
    for future in stuck:
        with pytest.raises(anypool.TaskTimeout):
            future.result(timeout=5)
    assert pool.submit(pow, 2, 5).result(timeout=5) == 32


def test_thread_map_timeout_fails_only_the_stuck_item(make_pool, release):
    pool = make_pool("thread", 2)
    done = threading.Event()
    done.set()
    events = [release if i == 2 else done for i in range(5)]  # only item 2 blocks
    out = list(pool.map(block, events, range(5), timeout=0.3, return_exceptions=True))
    assert out[:2] == [0, 1]
    assert out[3:] == [3, 4]
    assert isinstance(out[2], anypool.TaskTimeout)


BACKENDS = ["thread", "process", "inline", "asyncio"]


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("backend", BACKENDS)
def test_return_exceptions_on_every_backend(make_pool, backend, ordered):
    pool = make_pool(backend, 2)
    out = list(pool.map(raise_if_odd, range(10), ordered=ordered, return_exceptions=True))
    values = [o for o in out if not isinstance(o, BaseException)]
    errors = [o for o in out if isinstance(o, BaseException)]
    assert sorted(values) == [0, 2, 4, 6, 8]
    assert sorted(str(e) for e in errors) == [f"odd {i}" for i in (1, 3, 5, 7, 9)]
    assert all(isinstance(e, ValueError) for e in errors)
    if ordered:
        assert [o if not isinstance(o, BaseException) else str(o) for o in out] == [
            i if i % 2 == 0 else f"odd {i}" for i in range(10)
        ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_return_exceptions_the_error_is_raised_at_its_item(make_pool, backend):
    pool = make_pool(backend, 2)
    iterator = pool.map(raise_if_odd, range(10))
    assert next(iterator) == 0
    with pytest.raises(ValueError, match="odd 1"):
        next(iterator)
