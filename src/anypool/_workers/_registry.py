"""Interpreter-exit handling shared by every local backend.

Backends register themselves in a WeakSet; one hook, run by ``threading``'s
shutdown sequence before non-daemon threads are joined (the same place
``concurrent.futures`` hooks), shuts each live backend down with
``wait=True`` so work still pending at exit is completed, as the stdlib documents.
Backends marked with ``stop_at_exit`` (the pools of daemonic ``anypool.Process``
objects) are stopped first instead, without waiting for their work.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any, Protocol

__all__ = ["register_for_exit", "stop_at_exit"]


class _Stoppable(Protocol):
    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None: ...


_live: weakref.WeakSet[_Stoppable] = weakref.WeakSet()
# Stopped, not waited for, at exit: the workers of daemonic anypool.Process objects.
_daemons: weakref.WeakSet[_Stoppable] = weakref.WeakSet()
_hooked = False
_lock = threading.Lock()


_interrupted = False


def _note_interrupt(hook: Any) -> Any:
    """Wrap sys.excepthook: remember that the program is ending because of Ctrl-C."""

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> Any:
        global _interrupted
        if issubclass(exc_type, KeyboardInterrupt):
            _interrupted = True
        return hook(exc_type, exc, tb)

    return excepthook


def _at_exit() -> None:
    """Finish pending work, as the stdlib does, unless the program ends on Ctrl-C: then stop
    everything at once. A Ctrl-C while this waits switches to stopping at once, for every
    pool, however often it comes (shutdown is idempotent, so starting over is safe)."""
    global _interrupted
    while True:
        try:
            for backend in list(_daemons):
                backend.shutdown(wait=True, cancel_pending=True, kill_running=True)
            for backend in list(_live):
                backend.shutdown(wait=True, cancel_pending=_interrupted, kill_running=_interrupted)
            return
        except KeyboardInterrupt:
            _interrupted = True


def stop_at_exit(backend: _Stoppable) -> None:
    """At exit, stop ``backend``'s running work instead of waiting for it (daemons)."""
    with _lock:
        _daemons.add(backend)


def register_for_exit(backend: _Stoppable) -> None:
    global _hooked
    with _lock:
        _live.add(backend)
        if not _hooked:
            # threading._register_atexit exists since 3.9 and is what concurrent.futures uses;
            # plain atexit runs too late (after non-daemon threads are joined).
            threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
            sys.excepthook = _note_interrupt(sys.excepthook)
            _hooked = True
