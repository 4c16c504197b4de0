"""The process backend's dispatch: a queued task never waits behind a slow one in a busy
worker's pipe while another worker is free.

A worker may be sent a second task while it runs one (it saves the round trip between
tiny tasks), but only for functions measured to be quick: a 20 ms task queued behind a
3 s one used to finish at 3 s while the other worker sat idle (the stdlib's
ProcessPoolExecutor, with its shared call queue, finished it at once).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import as_completed

import pytest

import anypool

pytestmark = pytest.mark.timeout(60)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


SLOW_S = 2.0


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_a_task_does_not_wait_behind_a_slow_one_while_a_worker_is_free(
    make_pool: Callable[..., anypool.Pool], start_method: str
) -> None:
    pool = make_pool("process", 2, start_method=start_method)
    for _ in range(2):  # workers up, and nap's duration measured
        pool.submit(nap, 0.02).result(timeout=30)
    slow = pool.submit(nap, SLOW_S)
    fast = [pool.submit(nap, 0.02) for _ in range(8)]
    order = list(as_completed([slow, *fast], timeout=30))
    # structural, not a timing: every fast task ran on the free worker before the slow
    # one ended (8 x 20 ms against 2 s leaves a wide margin on a loaded machine)
    assert order[-1] is slow, [f is slow for f in order]


def test_quick_tasks_still_complete_in_order_of_submission(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    # tiny tasks may wait in a busy worker's pipe: nothing is lost or run twice
    pool = make_pool("process", 2)
    futures = [pool.submit(abs, -i) for i in range(2000)]
    assert [f.result(timeout=30) for f in futures] == list(range(2000))


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def ok() -> int:
    return 1


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_two_fork_pools_starting_workers_at_once_still_see_a_worker_die() -> None:
    # A worker that pool B forks while pool A is between creating its worker's pipes and
    # closing the child's ends inherits A's ends; A's worker's death was then never seen
    # and its task hung (found by the fault fuzzer; it hung within a few rounds)
    for _ in range(40):
        a = anypool.Pool("process", 1, start_method="fork")
        b = anypool.Pool("process", 1, start_method="fork")
        try:
            starter = threading.Thread(target=b.submit, args=(ok,))
            starter.start()
            dying = a.submit(die)
            starter.join()
            assert isinstance(dying.exception(timeout=10), anypool.WorkerCrashed)
        finally:
            a.shutdown(cancel_pending=True, kill_running=True)
            b.shutdown(cancel_pending=True, kill_running=True)
