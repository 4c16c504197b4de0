"""Task functions for the contract suite.

They live at module level in an importable module so that the process backend
can pickle them by reference under every start method (``spawn`` and
``forkserver`` children import this module afresh). Lambdas and closures are
tested separately, on purpose.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Rebound in the parent by the start-method test: a forked child sees the new
# value, a spawned or forkserver child imports this module afresh and does not.
MARKER = "as-imported"


class MarkerError(Exception):
    """A user-defined exception type: must come back as itself, not as a generic error."""


class Unpicklable(Exception):
    """An exception that cannot cross a process boundary (it holds a lock)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def identity(x: Any) -> Any:
    return x


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def sleep_then(seconds: float, value: Any) -> Any:
    time.sleep(seconds)
    return value


def whoami(_: Any = None) -> tuple[int, int]:
    """The worker that ran this: (pid, thread id)."""
    return os.getpid(), threading.get_ident()


def item_and_worker(x: Any) -> tuple[Any, tuple[int, int]]:
    return x, whoami()


def timed_item(x: Any, seconds: float) -> tuple[Any, float, float]:
    """(x, start, end) on the system-wide monotonic clock (comparable across processes)."""
    start = time.monotonic()
    time.sleep(seconds)
    return x, start, time.monotonic()


def slow_whoami(seconds: float) -> tuple[int, int]:
    time.sleep(seconds)
    return whoami()


def read_marker(_: Any = None) -> str:
    return MARKER


def fail_at(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def exit_at(x: int, bad: int) -> int:
    """sys.exit() inside the task: a BaseException that is the item's outcome."""
    if x == bad:
        sys.exit(f"exit at item {x}")
    return x


def raise_marker(message: str) -> None:
    raise MarkerError(message)  # the worker's frame: tests look for this line


def raise_unpicklable(message: str) -> None:
    raise Unpicklable(message)


def record(path: str, x: Any, delay: float = 0.0) -> Any:
    """Append ``x`` to ``path`` (O_APPEND: whole lines even from many processes), then return it."""
    time.sleep(delay)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{x}\n".encode())
    finally:
        os.close(fd)
    return x


def wait_for_gate(gate: str, timeout: float = 20.0) -> str:
    """Block until the file ``gate`` exists (any process can open it), or fail after
    ``timeout``: a task that stays running exactly as long as the test wants."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} was never opened")
        time.sleep(0.01)
    return "opened"


def recorded(path: str | Path) -> list[str]:
    """What :func:`record` wrote, in the order it was written."""
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []


class Counted(Iterator[Any]):
    """Wraps an iterable and counts how many items were pulled from it (in the parent)."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = iter(items)
        self.pulled = 0

    def __iter__(self) -> Counted:
        return self

    def __next__(self) -> Any:
        item = next(self._items)
        self.pulled += 1
        return item


def record_or_fail(path: str, x: int, bad: int, delay: float = 0.0) -> int:
    """:func:`record`, then fail like :func:`fail_at` when ``x == bad``."""
    record(path, x, delay)
    return fail_at(x, bad)
