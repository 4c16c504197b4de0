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
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

import anypool
from polling import wait_until

# Shutdown of a healthy pool must finish within this bound (loky checks the same).
SHUTDOWN_BOUND_S = 10.0
# Threads and processes get this long after a test to finish exiting.
LEAK_GRACE_S = 5.0

LOCAL_BACKENDS = ["thread", "process", "inline"]

# Root pids of clusters that session-scoped fixtures started (a Dask scheduler and workers,
# a Ray head). They and everything they spawn outlive single tests by design: a Dask nanny
# restarts a killed worker, Ray grows its worker pool on demand. Not leaks.
SESSION_PROCESS_ROOTS: set[int] = set()
# Process-wide threads an engine starts once and never stops: distributed's offload executor.
ENGINE_THREAD_PREFIXES = ("pydevd", "Dask-Offload")

# Ray binds to the machine's address unless told otherwise; tests stay on 127.0.0.1.
# Read once, when ray is first imported, so it is set here, before any test imports it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# When CI provides a Dask cluster, every Pool("dask") of the session uses it (Dask's own
# setting, read when dask is first imported), so the contract suite runs unchanged against it.
if os.environ.get("ANYPOOL_DASK_ADDRESS"):
    os.environ.setdefault("DASK_SCHEDULER_ADDRESS", os.environ["ANYPOOL_DASK_ADDRESS"])


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


def _session_cluster_process(proc: psutil.Process) -> bool:
    try:
        lineage = {proc.pid} | {p.pid for p in proc.parents()}
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return True
    return bool(lineage & SESSION_PROCESS_ROOTS)


def live_children() -> set[int]:
    me = psutil.Process(os.getpid())
    out = set()
    for child in me.children(recursive=True):
        try:
            if (
                child.status() != psutil.STATUS_ZOMBIE
                and not _helper_process(child)
                and not _session_cluster_process(child)
            ):
                out.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def wait_for(predicate: Callable[[], bool], timeout: float = LEAK_GRACE_S) -> bool:
    return wait_until(predicate, timeout)


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    threads_before = live_threads()
    children_before = live_children()
    yield
    if request.node.get_closest_marker("allow_leaks"):
        return
    gc.collect()

    def new_threads() -> set[threading.Thread]:
        return {
            t
            for t in live_threads() - threads_before
            if not t.name.startswith(ENGINE_THREAD_PREFIXES)
        }

    def new_children() -> set[int]:
        return live_children() - children_before

    wait_for(lambda: not new_threads() and not new_children())
    assert not new_threads(), f"threads leaked: {sorted(t.name for t in new_threads())}"
    assert not new_children(), f"child processes leaked: {sorted(new_children())}"


@pytest.fixture(scope="session")
def session_process_roots() -> set[int]:
    """Add the pid of a process a session fixture started; its process tree is not a leak."""
    return SESSION_PROCESS_ROOTS


@pytest.fixture(scope="session")
def ray_session(session_process_roots: set[int]) -> Iterator[None]:
    """One local ``ray.init`` for the session (starting Ray takes seconds); pools reuse it."""
    ray = pytest.importorskip(
        "ray", reason="ray has no wheel for this Python/platform: pip install 'anypool[ray]'"
    )
    if ray.is_initialized():
        yield
        return
    me = psutil.Process()
    before = {c.pid for c in me.children()}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        # workers import test modules by name to unpickle test functions
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}},
    )
    session_process_roots.update({c.pid for c in me.children()} - before)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session", autouse=True)
def _shared_ray_for_extra_backends(request: pytest.FixtureRequest) -> None:
    """``ANYPOOL_EXTRA_BACKENDS`` naming ray: every ``Pool("ray")`` of the session reuses one
    Ray instead of starting and stopping its own for each test."""
    if "ray" in os.environ.get("ANYPOOL_EXTRA_BACKENDS", "").replace(" ", "").split(","):
        request.getfixturevalue("ray_session")


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


@pytest.fixture
def workers_gone() -> Callable[[], bool]:
    """Snapshot threads and child processes now; the returned callable waits (up to
    LEAK_GRACE_S) until every thread and child started since the snapshot has exited.

    For checks in the middle of a test, e.g. "the one-shot ``anypool.map`` shut its
    pool down as soon as the iterator was exhausted", before teardown could do it.
    """
    threads_before = live_threads()
    children_before = live_children()

    def check() -> bool:
        def none_new() -> bool:
            return not (live_threads() - threads_before) and not (live_children() - children_before)

        return wait_for(none_new)

    return check


def _processes_tagged(tag: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``ANYPOOL_TEST_RUN=tag``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.environ().get("ANYPOOL_TEST_RUN") == tag
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python ARGS`` in a subprocess and check that it left no process behind.

    The subprocess and everything it starts (workers, forkserver, grandchildren)
    inherit a unique ``ANYPOOL_TEST_RUN`` environment variable; once it has exited,
    no live process may still carry that tag after LEAK_GRACE_S. Orphans are
    re-parented away from us, so the tag is how they are found.
    """

    def run(
        *args: str, cwd: str | os.PathLike[str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        tag = uuid.uuid4().hex
        env = {**os.environ, "ANYPOOL_TEST_RUN": tag}
        # files, not pipes: a leaked grandchild holding a pipe would block the read
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            returncode = subprocess.run(
                [sys.executable, *args], stdout=out, stderr=err, timeout=timeout, cwd=cwd, env=env
            ).returncode
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(args, returncode, out.read(), err.read())
        wait_for(lambda: not _processes_tagged(tag))
        leftovers = _processes_tagged(tag)
        for leftover in leftovers:  # do not let one leak poison the next tests
            leftover.kill()
        assert not leftovers, f"processes left behind: {[p.cmdline() for p in leftovers]}"
        return proc

    return run
