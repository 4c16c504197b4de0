"""Interpreter-exit handling shared by every local backend.

Backends register themselves in a WeakSet; one hook, run by ``threading``'s
shutdown sequence before non-daemon threads are joined (the same place
``concurrent.futures`` hooks), shuts each live backend down with
``wait=True`` so work still pending at exit is completed, as the stdlib documents.
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol

__all__ = ["register_for_exit"]


class _Stoppable(Protocol):
    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None: ...


_live: weakref.WeakSet[_Stoppable] = weakref.WeakSet()
_hooked = False
_lock = threading.Lock()


def _at_exit() -> None:
    for backend in list(_live):
        backend.shutdown(wait=True, cancel_pending=False, kill_running=False)


def register_for_exit(backend: _Stoppable) -> None:
    global _hooked
    with _lock:
        _live.add(backend)
        if not _hooked:
            # threading._register_atexit exists since 3.9 and is what concurrent.futures uses;
            # plain atexit runs too late (after non-daemon threads are joined).
            threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
            _hooked = True
