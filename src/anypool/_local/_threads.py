"""Starting anypool's own threads so that Ctrl-C always reaches the main thread.

The kernel gives a process-directed SIGINT to any thread that does not block it. Given
to one of our threads, it only sets Python's flag: a main thread blocked in
``future.result()`` or ``pool.join()`` is not woken, and the program ignores Ctrl-C
until something else wakes it (seen: ~1 Ctrl-C in 10 while process workers started).
So every thread anypool starts blocks SIGINT from its first instruction: it inherits the
mask of the thread that starts it, which blocks SIGINT just for the ``start()`` call.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["start_thread"]

_CAN_MASK = hasattr(signal, "pthread_sigmask")


def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, the new thread with SIGINT blocked for its whole life."""
    if not _CAN_MASK:
        thread.start()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
