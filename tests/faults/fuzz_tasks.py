"""What the fault fuzzer runs and breaks: one task function, the objects that carry a fault
to the point where it fires, and the faults themselves.

Workers of every start method import this module by name, so it stays cheap to import
(no anypool, no psutil: a spawned worker pays for every import at each start).

An item is ``(label, index, kind, variant, payload)``. ``label`` says where the fault
fires (see :func:`call`); a healthy item has label ``"ok"`` and returns ``("ok", index)``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

# os._exit() code and sys.exit() code the faults use, so a check can tell them apart from
# an interpreter's own exit codes (1 for an uncaught exception).
EXIT_CODE = 7
SYS_EXIT_CODE = 5


class FuzzError(Exception):
    """The fuzzer's ordinary exception."""


class FuzzBaseError(BaseException):
    """A user-defined ``BaseException`` subclass: caught by nothing that catches Exception."""


BASE_EXCEPTIONS: dict[str, type[BaseException]] = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "FuzzBaseError": FuzzBaseError,
}


def trigger(kind: str, variant: str) -> None:
    """Fire one fault in the calling process (and thread)."""
    if kind == "exception":
        raise FuzzError(f"fuzz fault {variant}")
    if kind == "base_exception":
        raise BASE_EXCEPTIONS[variant]("fuzz fault")
    if kind == "sys_exit":
        sys.exit(SYS_EXIT_CODE)
    if kind == "os_exit":
        os._exit(EXIT_CODE)
    if kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # the signal is delivered before this returns
    if kind == "segfault":
        import ctypes

        ctypes.string_at(0)
    raise AssertionError(f"unknown fault kind {kind!r}")


class FaultOnPickle:
    """Pickling it fires the fault in the process that pickles it."""

    def __init__(self, kind: str, variant: str) -> None:
        self.kind = kind
        self.variant = variant

    def __reduce__(self) -> tuple[Any, ...]:
        trigger(self.kind, self.variant)
        raise AssertionError("unreachable")


class FaultOnUnpickle:
    """Pickles anywhere; unpickling it fires the fault, in process ``only_in`` if given."""

    def __init__(self, kind: str, variant: str, only_in: int | None = None) -> None:
        self.kind = kind
        self.variant = variant
        self.only_in = only_in

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.kind, self.variant, self.only_in)


def _rebuild(kind: str, variant: str, only_in: int | None) -> FaultOnUnpickle:
    if only_in is None or os.getpid() == only_in:
        if kind == "leak_fd":  # the fuzzer's self-test: a leak it must report
            os.open(os.devnull, os.O_RDONLY)
        else:
            trigger(kind, variant)
    return FaultOnUnpickle(kind, variant, only_in)


def call(item: tuple[str, int, str, str, Any]) -> Any:
    """The task. A fault in the call's arguments (``payload``) fires while they are
    pickled or unpickled, before this runs; the others fire here or in the result."""
    label, index, kind, variant, payload = item
    if label == "task":
        trigger(kind, variant)
    if label == "result_pickle":
        return FaultOnPickle(kind, variant)
    if label == "result_unpickle":
        return FaultOnUnpickle(kind, variant, only_in=payload)
    if label == "sleep":  # the fuzzer's self-tests: a task that outlives every bound,
        time.sleep(payload)
    if label == "register":  # and a resource-tracker registration never released
        from multiprocessing import resource_tracker

        resource_tracker.register(f"/anypool-fuzz-selftest-{os.getpid()}", "semaphore")
    return ("ok", index)


def initializer(kind: str, variant: str, lock: Any = None) -> None:
    """A worker initializer that fires the fault at every worker start (none for kind
    ``""``). ``lock``, a multiprocessing lock, is there to be held by the pool: under
    spawn and forkserver it is a resource-tracker registration until it is let go."""
    if kind:
        trigger(kind, variant)
