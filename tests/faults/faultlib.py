"""Fault injectors for the fault suite: objects that break pickling at a chosen point, and
tasks that crash their worker in every way a worker can crash.

Workers import this module by name (it sits next to the tests, which pytest puts on
``sys.path``), so every start method can rebuild these objects.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from typing import Any

import psutil


class FailsToUnpickle:
    """Pickles fine; unpickling it raises (in the worker, for a call's argument)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _raise_value_error, ("FailsToUnpickle cannot be rebuilt",)


def _raise_value_error(message: str) -> None:
    raise ValueError(message)


class ExitsOnUnpickle:
    """Unpickling it ends the process that unpickles it with ``os._exit(code)``."""

    def __init__(self, code: int) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return os._exit, (self.code,)


class ExitsOnPickle:
    """Pickling it ends the process that pickles it (the worker, for a result)."""

    def __init__(self, code: int) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        os._exit(self.code)


class FailsInParent:
    """Pickles and unpickles anywhere except in the process ``parent``."""

    def __init__(self, parent: int) -> None:
        self.parent = parent

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_unless_parent, (self.parent,)


def _rebuild_unless_parent(parent: int) -> FailsInParent:
    if os.getpid() == parent:
        raise ValueError("FailsInParent cannot be rebuilt in the parent")
    return FailsInParent(parent)


class UnpicklableError(Exception):
    """Pickles, but unpickling calls ``__init__`` with one argument: a TypeError."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def fault(spec: tuple[str, int, Any]) -> Any:
    """Run one item of the crash table: ``(kind, index, payload)``."""
    kind, index, payload = spec
    if kind == "task_raises":
        raise ValueError(f"boom {index}")
    if kind == "task_exit":
        os._exit(7)
    if kind == "task_sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    if kind == "task_segfault":
        ctypes.string_at(0)
    if kind == "result_pickle":
        return threading.Lock()
    if kind == "result_pickle_exits":
        return ExitsOnPickle(5)
    if kind == "result_unpickle_parent":
        return FailsInParent(payload)
    if kind == "exception_unpicklable":
        raise UnpicklableError(f"unpicklable {index}", 1)
    return ("ok", index)  # "ok" and the call-pickling cases (the payload is the fault)


def make_spec(kind: str, index: int, parent: int) -> tuple[str, int, Any]:
    payloads = {
        "call_pickle": threading.Lock(),
        "call_unpickle_raises": FailsToUnpickle(),
        "call_unpickle_exits": ExitsOnUnpickle(3),
        "result_unpickle_parent": parent,
    }
    return (kind, index, payloads.get(kind))


def sleep_and_return(x: Any, seconds: float = 0.0) -> Any:
    time.sleep(seconds)
    return x


def square(x: int) -> int:
    return x * x


def getpid(_: Any = None) -> int:
    return os.getpid()


_hoard: list[Any] = []


def grow(megabytes: int) -> int:
    """Keep ``megabytes`` of memory alive in this worker (a leak, on purpose)."""
    _hoard.append([0] * (megabytes * 1024 * 1024 // 8))
    return os.getpid()


def processes_with_marker(marker: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries ``ANYPOOL_FAULT_MARK=marker``:
    a script and every process it started, even after they were re-parented."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("ANYPOOL_FAULT_MARK") == marker and (
                proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def mark_and_sleep(x: Any, seconds: float = 60.0) -> Any:
    """Say "started" by creating a file in $ANYPOOL_FAULT_DIR, then sleep: a long task a
    test can wait for before it sends a signal."""
    directory = os.environ["ANYPOOL_FAULT_DIR"]
    with open(os.path.join(directory, f"{os.getpid()}-{threading.get_ident()}-{x}"), "w"):
        pass
    time.sleep(seconds)
    return x


def wait_for_started(count: int, timeout: float = 30.0) -> None:
    """Block until ``count`` tasks called :func:`mark_and_sleep`."""
    directory = os.environ["ANYPOOL_FAULT_DIR"]
    deadline = time.monotonic() + timeout
    while len(os.listdir(directory)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(os.listdir(directory))} of {count} tasks started")
        time.sleep(0.01)


def without_pdeathsig_mark_and_sleep(x: Any, seconds: float = 60.0) -> Any:
    """:func:`mark_and_sleep` in a worker that first turns PR_SET_PDEATHSIG off, so only
    the worker's own watch on its parent can notice that the parent died."""
    ctypes.CDLL(None).prctl(1, 0)  # PR_SET_PDEATHSIG, no signal
    return mark_and_sleep(x, seconds)


def crash_until(path: str, crashes: int, value: Any) -> Any:
    """Crash the worker (os._exit) on the first ``crashes`` calls, counted in file ``path``;
    then return ``value``."""
    with open(path, "a+") as counter:
        counter.write("x")
    with open(path) as counter:
        calls = len(counter.read())
    if calls <= crashes:
        os._exit(9)
    return value


def ignore_sigterm_and_sleep(seconds: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


def raise_if_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


def initializer_raises() -> None:
    raise RuntimeError("the initializer failed on purpose")


def initializer_exits() -> None:
    os._exit(4)


class FunctionThatFailsToUnpickle:
    """A callable that pickles but cannot be rebuilt in the worker."""

    def __call__(self, x: Any) -> Any:
        return x

    def __reduce__(self) -> tuple[Any, ...]:
        return _raise_value_error, ("this function cannot be rebuilt",)


_SERVER = "multiprocessing.forkserver import main"
_TRACKER = "multiprocessing.resource_tracker import main"


def _is_helper(proc: psutil.Process) -> bool:
    """The forkserver itself or the resource tracker (processes the forkserver forks share
    its command line: those are workers)."""
    cmdline = " ".join(proc.cmdline())
    if _TRACKER in cmdline:
        return True
    if _SERVER not in cmdline:
        return False
    parent = proc.parent()
    return parent is None or _SERVER not in " ".join(parent.cmdline())


def worker_pids() -> set[int]:
    """Live worker processes of this process (children and the forkserver's children)."""
    pids = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and not _is_helper(child):
                pids.add(child.pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            pass
    return pids
