"""Faults while large payloads travel through shared memory (issue 13): nothing is left.

After each fault (a worker's os._exit mid-task, SIGKILL of a worker, a task timeout,
Pool.kill, a worker dying while it pickles a large result, SIGKILL of the parent, Ctrl-C)
the tests count what could leak: payload segments among the parent's open descriptors
(/proc/self/fd), new entries in /dev/shm, and the resource tracker's complaints about
leaked objects (segments are memfds: they never have a name, so none can be registered).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import psutil
import pytest

import anypool
from anypool._wire import _shm

pytestmark = pytest.mark.skipif(not _shm.SUPPORTED, reason="memfd segments are Linux-only")

BIG = 4 << 20
ROOT = Path(__file__).resolve().parents[2]


def memfds(pid: int | str = "self") -> int:
    count = 0
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in names:
        try:
            if "anypool-payload" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                count += 1
        except OSError:
            pass
    return count


def shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def settled(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def crash(data: Any) -> None:
    os._exit(3)


def sleep_holding(data: Any, path: str = "") -> int:
    if path:
        Path(path).write_text(str(os.getpid()))
    time.sleep(30)
    return len(data)


class ExitWhilePickled:
    """A result that ends its worker while it is being pickled (after the large buffer
    beside it has been collected for the segment)."""

    def __reduce__(self) -> Any:
        os._exit(4)


def big_result_then_crash(_: Any) -> Any:
    return [memoryview(bytes(BIG)), ExitWhilePickled()]


def wait_for_file(path: Path) -> int:
    assert settled(lambda: path.exists() and path.read_text() != "", timeout=30)
    return int(path.read_text())


@pytest.fixture
def clean() -> Any:
    """Counts before the test; after it, the pool shut down, nothing more may be open."""
    before_fds, before_shm = memfds(), shm_entries()
    yield before_fds
    assert settled(lambda: memfds() == before_fds), f"segments still open: {memfds()}"
    assert settled(lambda: not shm_entries() - before_shm), shm_entries() - before_shm


def test_worker_exit_mid_task(make_pool, clean):
    pool = make_pool("process", 2)
    assert pool.submit(len, bytes(BIG)).result(timeout=30) == BIG  # a segment to reuse
    with pytest.raises(anypool.WorkerCrashed):
        pool.submit(crash, bytes(BIG)).result(timeout=30)
    assert pool.submit(len, memoryview(bytes(BIG))).result(timeout=30) == BIG
    pool.shutdown()


def test_worker_sigkill_mid_task(make_pool, clean, tmp_path):
    pool = make_pool("process", 1)
    path = tmp_path / "pid"
    future = pool.submit(sleep_holding, bytes(BIG), str(path))
    os.kill(wait_for_file(path), signal.SIGKILL)
    with pytest.raises(anypool.WorkerCrashed):
        future.result(timeout=30)
    assert pool.submit(len, bytes(BIG)).result(timeout=30) == BIG
    pool.shutdown()


def test_task_timeout_and_kill(make_pool, clean, tmp_path):
    pool = make_pool("process", 1)
    with pytest.raises(anypool.TaskTimeout):
        pool.submit(sleep_holding, bytes(BIG), timeout=0.5).result(timeout=30)
    path = tmp_path / "pid"
    future = pool.submit(sleep_holding, bytes(BIG), str(path))
    wait_for_file(path)
    assert pool.kill(future)
    with pytest.raises(CancelledError):
        future.result(timeout=30)
    assert pool.submit(len, bytes(BIG)).result(timeout=30) == BIG
    pool.shutdown()


def test_worker_dies_while_pickling_a_large_result(make_pool, clean):
    pool = make_pool("process", 1)
    with pytest.raises(anypool.WorkerCrashed):
        pool.submit(big_result_then_crash, None).result(timeout=30)
    assert pool.submit(len, bytes(BIG)).result(timeout=30) == BIG
    pool.shutdown()


def test_shutdown_with_segments_in_flight(clean):
    # tasks queued and running with their segments, the pool killed: all closed
    pool = anypool.Pool("process", 2)
    futures = [pool.submit(sleep_holding, bytes([i]) * BIG) for i in range(6)]
    time.sleep(0.3)
    pool.shutdown(wait=True, cancel_pending=True, kill_running=True)
    assert all(f.done() for f in futures)


# -- the parent dies, or is interrupted: a real program -------------------------------------
PROGRAM = """
import os, sys, time
import anypool

def hold(data):
    time.sleep(60)
    return len(data)

def slow_len(data):
    time.sleep(0.05)
    return len(data)

def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()

if __name__ == "__main__":
    with anypool.Pool("process", 2) as pool:
        items = [bytes([i]) * (4 << 20) for i in range(40)]
        list(pool.map(len, items[:4], chunksize=1))  # segments cached on both sides
        pids = {pool.submit(pid_after, 0.3).result() for _ in range(1)}
        pids |= set(pool.map(pid_after, [0.3, 0.3], chunksize=1))
        futures = [pool.submit(hold, memoryview(items[i])) for i in range(2)]
        time.sleep(0.3)
        print(*sorted(pids), flush=True)
        if sys.argv[1] == "interrupt":
            for _ in pool.map(slow_len, items, chunksize=1):
                pass
        else:
            time.sleep(60)
"""


def _program(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    script = tmp_path / "payload_program.py"
    script.write_text(textwrap.dedent(PROGRAM))
    proc = subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip(), proc.stderr.read() if proc.stderr else ""
    return proc, [int(pid) for pid in line.split()]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("mode", ["sigkill", "interrupt"])
def test_the_parent_dies_or_is_interrupted(tmp_path, mode):
    before_shm = shm_entries()
    proc, workers = _program(tmp_path, mode)
    assert len(workers) == 2
    assert all(memfds(pid) + memfds(proc.pid) >= 0 for pid in workers)  # readable
    if mode == "sigkill":
        os.kill(proc.pid, signal.SIGKILL)
    else:
        time.sleep(0.3)  # inside the map over large items
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole group
    _, stderr = proc.communicate(timeout=30)
    if mode == "interrupt":
        assert proc.returncode != 0
        assert "KeyboardInterrupt" in stderr
    assert settled(lambda: all(_gone(pid) for pid in workers), timeout=10), workers
    assert settled(lambda: not shm_entries() - before_shm), shm_entries() - before_shm
    # the resource tracker outlives the parent and reports what it was left to clean up
    assert "leaked" not in stderr, stderr
    assert "resource_tracker" not in stderr, stderr


def big_result_without_descriptors(_: Any) -> Any:
    """In the worker: no descriptor left to make a segment with, then a large result."""
    import resource

    lowest_free = os.dup(0)  # the number the next descriptor would get
    os.close(lowest_free)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    return memoryview(bytes(BIG))


def test_no_segment_for_a_result_fails_only_that_task(make_pool, clean):
    pool = make_pool("process", 1)
    with pytest.raises(anypool.SerializationError, match="shared memory"):
        pool.submit(big_result_without_descriptors, None).result(timeout=30)
    assert pool.submit(len, b"small").result(timeout=30) == 5  # the worker carries on
    pool.shutdown()


def test_no_segment_for_arguments_fails_only_that_task(make_pool, clean, monkeypatch):
    pool = make_pool("process", 1)

    def no_memory(self: Any) -> None:
        raise OSError(24, "Too many open files")

    with monkeypatch.context() as patched:
        patched.setattr(_shm._Segment, "__init__", no_memory)
        with pytest.raises(anypool.SerializationError, match="shared memory"):
            pool.submit(len, bytes(BIG)).result(timeout=30)
    assert pool.submit(len, bytes(BIG)).result(timeout=30) == BIG
    pool.shutdown()
