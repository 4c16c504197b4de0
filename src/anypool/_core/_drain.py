"""Maps that are never iterated: run to the end, never silently dropped.

::

    Pool.map() ──► PendingMaps.add(iterator, state)   (a weakref.finalize on the iterator)
        │ first next() or close(): begin() ──► forgotten: the consumer drives it
        │ iterator garbage-collected first ──► _orphaned ──► thread "anypool-map-drain":
        │                                       state.drain(), results dropped, a
        │                                       RuntimeWarning if items raised
        └ Pool.shutdown(wait=True) ──► each map still held: drained here, results kept
                                       for a later iteration (as Executor.map has them);
                                       then the drain threads are joined
      shutdown(wait=False) or cancel_futures=True ──► dropped, with a RuntimeWarning
      interpreter exit (threading atexit, before the backends' hook) ──► as shutdown

Why: ``with Pool() as pool: pool.map(save, paths)`` is the commonest shape of
``concurrent.futures`` code, and the stdlib runs every item; a lazy map that
nobody pulls would otherwise do nothing. See docs/design.md, "A map that is
never iterated", for the decision and what happens with endless inputs.

A pending map's state keeps the pool alive (the work must run), and the
registry holds it only until the map begins, so nothing else pins the pool.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from .._errors._exceptions import PoolClosed
from .._local._threads import start_thread

if TYPE_CHECKING:
    from ._map import _MapState

__all__ = ["ENDLESS_WARNING_S", "PendingMaps"]

# A drain of an input without a length that is still running after this long may be an
# endless input, which never ends: say so (once) while waiting on.
ENDLESS_WARNING_S = 10.0

_registries: weakref.WeakSet[PendingMaps] = weakref.WeakSet()
_hooked = False
_hook_lock = threading.Lock()
_owner_pid = os.getpid()


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class _Label(str):
    """A map's name in the warnings, carrying where the user's code made the map: a warning
    raised later, from a drain thread or at shutdown, is reported at that line (the place
    to fix), not inside anypool."""

    origin: tuple[str, int] | None = None


def _labelled(name: str) -> _Label:
    """``name`` with the first caller outside anypool as its origin (~1 us, once per map)."""
    label = _Label(name)
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    if frame is not None:
        label.origin = (frame.f_code.co_filename, frame.f_lineno)
    return label


def _forget_after_fork() -> None:
    """A forked child (a fork worker) has none of the parent's pools' threads to drain with."""
    global _hook_lock, _owner_pid
    _hook_lock = threading.Lock()
    _registries.clear()
    _owner_pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


class _Drain:
    """One never-iterated map being run to its end in a thread of its own."""

    def __init__(self, state: _MapState, name: str, done: Callable[[_Drain], None]) -> None:
        self.state: _MapState | None = state
        self.sized = state.sized
        self._done = done
        self.name = name
        self.stop_requested = False
        self.thread = threading.Thread(
            target=self._run, name=f"anypool-map-drain-{name}", daemon=True
        )

    def _run(self) -> None:
        state = self.state
        assert state is not None
        try:
            state.drain(lambda: self.stop_requested)
        except PoolClosed:
            # the pool stopped under it (Ctrl-C, kill): finish() has said so if it asked
            # this drain to stop; otherwise say it here, in the same words
            if not self.stop_requested:
                _warn(_cut_short(self.name, "while it ran in the background"), self.name)
        except Exception as exc:  # the input itself broke
            _warn(
                f"{self.name} was never iterated; running it in the background failed: {exc!r}",
                self.name,
            )
        else:
            _report_failures(state, self.name, "in the background")
        finally:
            # the state keeps the pool alive: let go of it, so a dropped pool can be collected
            self.state = None
            self._done(self)

    @property
    def items_done(self) -> int:
        state = self.state
        return 0 if state is None else state.items_done


def _warn(message: str, name: str) -> None:
    """A RuntimeWarning about map ``name``, reported where the user made it, if known."""
    origin = getattr(name, "origin", None)
    if origin is None:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    else:
        warnings.warn_explicit(message, RuntimeWarning, origin[0], origin[1])


def _report_failures(state: _MapState, name: str, where: str) -> None:
    failures = state.failures
    if failures:
        _warn(
            f"{name} was never iterated; it ran to the end {where} and {len(failures)} of its "
            f"{state.items_done} items raised, the first: {failures[0]!r} (iterate the map, "
            "or pass callback=, to see each item's outcome)",
            name,
        )


class PendingMaps:
    """The never-iterated maps of one pool, and the threads draining orphaned ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[weakref.finalize[Any, Any], str]] = {}
        self._drains: set[_Drain] = set()

    def add(self, iterator: object, state: _MapState, name: str = "a map") -> None:
        key = id(state)
        name = _labelled(name)
        finalizer = weakref.finalize(iterator, self._orphaned, key, state, name)
        finalizer.atexit = False  # the exit hook below drains them, while backends still run
        with self._lock:
            self._waiting[key] = (finalizer, name)
        state._on_begin = functools.partial(self._forget, key)
        _hook_exit(self)

    def _forget(self, key: int) -> None:
        with self._lock:
            entry = self._waiting.pop(key, None)
        if entry is not None:
            entry[0].detach()

    def _orphaned(self, key: int, state: _MapState, name: str) -> None:
        """The iterator was garbage-collected before anyone iterated it: run it anyway."""
        with self._lock:
            self._waiting.pop(key, None)
            drain = _Drain(state, name, self._drain_done)
            self._drains.add(drain)
        state.begin()
        start_thread(drain.thread)

    def _drain_done(self, drain: _Drain) -> None:
        with self._lock:
            self._drains.discard(drain)

    def finish(self, *, wait: bool, cancel: bool) -> None:
        """At pool shutdown: run (``wait`` and not ``cancel``) or drop what never ran."""
        with self._lock:
            waiting = list(self._waiting.values())
            self._waiting.clear()
        states = []
        for finalizer, name in waiting:
            detached = finalizer.detach()
            if detached is not None:
                states.append((detached[2][1], name))
        if wait and not cancel:
            for state, name in states:
                _drain_here(state, name)
            self._join_drains()
            return
        for state, name in states:
            state.begin()
            state.stop()
            how = _how(wait)
            _warn(
                f"{name} was never iterated and the pool was shut down {how}: it did not run", name
            )
        with self._lock:
            drains = list(self._drains)
        for drain in drains:
            if drain.thread is threading.current_thread():
                continue  # a one-shot map's own shutdown, at the end of its drain
            drain.stop_requested = True
            _warn(
                _cut_short(drain.name, f"{_how(wait)} while it ran in the background"), drain.name
            )

    def _join_drains(self) -> None:
        with self._lock:
            drains = list(self._drains)
        for drain in drains:
            if drain.thread is threading.current_thread():
                continue
            drain.thread.join(ENDLESS_WARNING_S)
            if drain.thread.is_alive():
                if not drain.sized:
                    _warn_endless(drain.name, drain.items_done)
                drain.thread.join()
        with self._lock:
            self._drains.difference_update(drains)


def _cut_short(name: str, how: str) -> str:
    return (
        f"{name} was never iterated; the pool was shut down {how}: the rest of its input "
        "did not run"
    )


def _how(wait: bool) -> str:
    return "with cancel_futures=True" if wait else "with wait=False"


def _warn_endless(name: str, items_done: int) -> None:
    _warn(
        f"the pool is waiting for {name}, which was never iterated, to run to the end of its "
        f"input ({items_done} items so far); an endless input never ends: iterate or "
        "close() the map, or shut the pool down with cancel_futures=True",
        name,
    )


def _drain_here(state: _MapState, name: str) -> None:
    """Run a still-referenced, never-iterated map to its end in this thread and keep its
    results, so that iterating it after the ``with`` block yields them (as with the stdlib)."""
    started = time.monotonic()
    warned = False

    def check() -> bool:
        nonlocal warned
        if not warned and not state.sized and time.monotonic() - started > ENDLESS_WARNING_S:
            warned = True
            _warn_endless(name, state.items_done)
        return False

    state.keep(check)


def _at_exit() -> None:
    from .._local import _atexit as _registry

    if os.getpid() != _owner_pid:
        return
    interrupted = _registry._interrupted
    for registry in list(_registries):
        try:
            registry.finish(wait=True, cancel=interrupted)
        except KeyboardInterrupt:
            interrupted = True
            registry.finish(wait=True, cancel=True)


def _hook_exit(registry: PendingMaps) -> None:
    global _hooked
    with _hook_lock:
        _registries.add(registry)
        if _hooked:
            return
        _hooked = True
    try:
        # runs before the backends' own exit hook (registered earlier: they run in reverse)
        threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
    except RuntimeError:  # the interpreter is already shutting down
        pass
