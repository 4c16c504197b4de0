"""Interpreter-exit handling shared by every local backend.

Backends register themselves in a WeakSet; one hook, run by ``threading``'s
shutdown sequence before non-daemon threads are joined (the same place
``concurrent.futures`` hooks), shuts each live backend down with
``wait=True`` so work still pending at exit is completed, as the stdlib documents.
Backends marked with ``stop_at_exit`` (the pools of daemonic ``anypool.Process``
objects) are stopped first instead, without waiting for their work.

A forked child inherits the hook and copies of the parent's backends, but none
of their threads: waiting for such a copy would hang the child's exit forever
(a fork worker ending after its task's ``sys.exit()``, say). The child
forgets them at fork, and the hook only ever acts in the process that
registered the backend.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from typing import Any, Protocol

__all__ = ["closed_message", "interpreter_exiting", "register_for_exit", "stop_at_exit"]


class _Stoppable(Protocol):
    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None: ...


_live: weakref.WeakSet[_Stoppable] = weakref.WeakSet()
# Stopped, not waited for, at exit: the workers of daemonic anypool.Process objects.
_daemons: weakref.WeakSet[_Stoppable] = weakref.WeakSet()
_hooked = False
_lock = threading.Lock()
_owner_pid = os.getpid()  # the process whose backends _live and _daemons hold


def _forget_after_fork() -> None:
    """In a forked child: the parent's backends are not ours to wait for (no threads here)."""
    global _lock, _owner_pid
    _lock = threading.Lock()  # another thread may have held it at the fork
    _live.clear()
    _daemons.clear()
    _owner_pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


_interrupted = False
_exiting = False  # the interpreter is shutting down: pools refuse work with the stdlib's words


def _note_interrupt(hook: Any) -> Any:
    """Wrap sys.excepthook: remember that the program is ending because of Ctrl-C."""

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> Any:
        global _interrupted
        if issubclass(exc_type, KeyboardInterrupt):
            _interrupted = True
        return hook(exc_type, exc, tb)

    return excepthook


def interpreter_exiting() -> bool:
    """True once the interpreter's exit has started stopping pools."""
    return _exiting


def closed_message() -> str:
    """What submitting to a closed pool says: the stdlib's words, which code greps for."""
    if _exiting:
        return "cannot schedule new futures after interpreter shutdown"
    return "cannot schedule new futures after shutdown"


def _at_exit() -> None:
    """Finish pending work, as the stdlib does, unless the program ends on Ctrl-C: then stop
    everything at once. A Ctrl-C while this waits switches to stopping at once, for every
    pool, however often it comes (shutdown is idempotent, so starting over is safe)."""
    global _interrupted, _exiting
    if os.getpid() != _owner_pid:
        return  # a forked child whose at-fork hook did not run: nothing here is ours
    _exiting = True
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
