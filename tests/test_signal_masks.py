"""Which threads block SIGINT (anypool._local._threads).

anypool's own machinery threads block it, so a Ctrl-C always reaches the main thread
(tests/faults/test_faults_ctrl_c.py shows the hang that fixed). Threads that run tasks do
not: a process a task starts inherits its thread's mask and must still get Ctrl-C.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

import anypool

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status (Linux)"
)


def child_blocks_sigint() -> bool:
    """Whether a process started from this thread starts with SIGINT blocked."""
    out = subprocess.run(
        ["grep", "^SigBlk:", "/proc/self/status"], capture_output=True, text=True, check=True
    ).stdout
    mask = int(out.split()[1], 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


def test_a_subprocess_started_by_a_thread_task_gets_ctrl_c(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool("thread", workers=2)
    assert pool.submit(child_blocks_sigint).result(timeout=30) is False


def test_a_replacement_worker_started_by_the_timer_thread_too(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    # a timed-out task's thread is abandoned and the timer thread (which blocks SIGINT)
    # starts its replacement: that one must not inherit the block
    pool = make_pool("thread", workers=1)
    stuck = pool.submit(time.sleep, 1.0, timeout=0.1)
    with pytest.raises(anypool.TaskTimeout):
        stuck.result(timeout=30)
    assert pool.statistics().worker_restarts == 1
    assert pool.submit(child_blocks_sigint).result(timeout=30) is False


def test_a_subprocess_started_by_an_asyncio_task_gets_ctrl_c(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    async def check() -> bool:
        return child_blocks_sigint()

    pool = make_pool("asyncio", workers=1)
    assert pool.submit(check).result(timeout=30) is False
