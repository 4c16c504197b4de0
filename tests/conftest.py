"""Shared fixtures: leak checks on every test, and pools whose shutdown is timed.

Every test runs under ``_no_leaks`` (autouse): after the test, no thread that
was not alive before it, and no child process that was not there before it,
may still be alive once a short grace period has passed. Pools made through
the ``make_pool`` fixture are shut down at teardown and must finish within
``SHUTDOWN_BOUND_S``.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

import anypool

# Shutdown of a healthy pool must finish within this bound (loky checks the same).
SHUTDOWN_BOUND_S = 10.0
# Threads and processes get this long after a test to finish exiting.
LEAK_GRACE_S = 5.0

LOCAL_BACKENDS = ["thread", "process", "inline"]


def _helper_process(proc: psutil.Process) -> bool:
    """multiprocessing's own long-lived helpers (forkserver, resource tracker) are not leaks."""
    server = "multiprocessing.forkserver import main"
    try:
        cmdline = " ".join(proc.cmdline())
        if server in cmdline:
            # the processes the forkserver forks (workers) share its command line: only the
            # server itself is a helper
            parent = proc.parent()
            return parent is None or server not in " ".join(parent.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return True
    return "multiprocessing.resource_tracker import main" in cmdline


def live_children() -> set[int]:
    me = psutil.Process(os.getpid())
    out = set()
    for child in me.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and not _helper_process(child):
                out.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def wait_for(predicate: Callable[[], bool], timeout: float = LEAK_GRACE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    threads_before = live_threads()
    children_before = live_children()
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    gc.collect()

    def new_threads() -> set[threading.Thread]:
        return {t for t in live_threads() - threads_before if not t.name.startswith("pydevd")}

    def new_children() -> set[int]:
        return live_children() - children_before

    wait_for(lambda: not new_threads() and not new_children())
    assert not new_threads(), f"threads leaked: {sorted(t.name for t in new_threads())}"
    assert not new_children(), f"child processes leaked: {sorted(new_children())}"


@pytest.fixture
def make_pool() -> Iterator[Callable[..., anypool.Pool]]:
    """Build pools that are shut down at teardown, within SHUTDOWN_BOUND_S."""
    pools: list[anypool.Pool] = []

    def factory(*args: Any, **kwargs: Any) -> anypool.Pool:
        pool = anypool.Pool(*args, **kwargs)
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        start = time.monotonic()
        pool.shutdown(wait=True)
        elapsed = time.monotonic() - start
        assert elapsed < SHUTDOWN_BOUND_S, f"{pool!r} took {elapsed:.1f}s to shut down"
