"""Starting anypool's own threads so that Ctrl-C always reaches the main thread.

The kernel gives a process-directed SIGINT to any thread that does not block it. Given
to one of our threads, it only sets Python's flag: a main thread blocked in
``future.result()`` or ``pool.join()`` is not woken, and the program ignores Ctrl-C
until something else wakes it (seen: ~1 Ctrl-C in 10 while process workers started).
So the threads anypool starts for its own machinery (dispatchers, timers, drains) block
SIGINT from their first instruction: each inherits the mask of the thread that starts it,
which blocks SIGINT just for the ``start()`` call. Threads that run tasks do not: a
process a task starts inherits its thread's mask, and a ``subprocess`` child must still
get the terminal's Ctrl-C (the stdlib's worker threads do not block it either).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

__all__ = [
    "MAIN_WAIT_SLICE_S",
    "deadline_in",
    "start_task_thread",
    "start_thread",
    "time_left",
    "wait_for",
    "wait_slice",
]

_CAN_MASK = hasattr(signal, "pthread_sigmask")

# Blocking the machinery threads' SIGINT is not enough on its own: a Ctrl-C that lands
# between the main thread's last check for signals and its sleep on a lock (or that one of
# the user's own threads takes) sets Python's flag and wakes nobody. A main thread that
# waits for anypool therefore wakes at least this often, and the next wake-up raises the
# KeyboardInterrupt (seen once in a CI run: Ctrl-C as the main thread entered result()
# while the forkserver started, Python 3.13; the program ignored it for good).
MAIN_WAIT_SLICE_S = 0.2


def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, the new thread with SIGINT blocked for its whole life."""
    _start_with(thread, signal.SIG_BLOCK if _CAN_MASK else None)


def start_task_thread(thread: threading.Thread) -> None:
    """``thread.start()`` for a thread that runs tasks: SIGINT unblocked in it whatever the
    starting thread's mask (a thread backend's replacement worker is started by the timer
    thread, which blocks it), so processes its tasks start get Ctrl-C."""
    _start_with(thread, signal.SIG_UNBLOCK if _CAN_MASK else None)


def _start_with(thread: threading.Thread, how: int | None) -> None:
    """Start ``thread`` while this thread's SIGINT is blocked or unblocked (``how``), so the
    new thread inherits that; this thread's mask is restored after. None: no masks here."""
    if how is None:
        thread.start()
        return
    previous = signal.pthread_sigmask(how, {signal.SIGINT})
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def deadline_in(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` reading at which a wait of ``timeout`` seconds ends (None:
    never). A wait made of several waits (a loop, or one wait after another) counts down
    from this with :func:`time_left`, so the whole stays within ``timeout``."""
    return None if timeout is None else time.monotonic() + timeout


def time_left(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (from :func:`deadline_in`), never below 0; None:
    no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def wait_slice() -> float | None:
    """The longest a wait for anypool may sleep before it looks for a Ctrl-C again:
    MAIN_WAIT_SLICE_S in the main thread (which alone runs Python's signal handlers), None
    (as long as it takes) in any other."""
    return MAIN_WAIT_SLICE_S if threading.current_thread() is threading.main_thread() else None


def wait_for(
    cond: threading.Condition, predicate: Callable[[], bool], timeout: float | None
) -> bool:
    """``cond.wait_for(predicate, timeout)`` (``cond`` held) that, in the main thread, wakes
    every MAIN_WAIT_SLICE_S, so that a Ctrl-C which woke nobody is still raised."""
    slice_s = wait_slice()
    if slice_s is None:
        return cond.wait_for(predicate, timeout)
    deadline = deadline_in(timeout)
    while not (result := predicate()):
        left = time_left(deadline)
        if left == 0:
            break
        cond.wait(slice_s if left is None else min(slice_s, left))
    return result
