"""Cross-process coordination primitives: proxies to objects in one manager process per pool.

::

    parent                            manager process (started on first use)
    pool.Lock() ── create ──────────► threading.Lock()  ◄─┐
      │ returns LockProxy(token)                           │ one server thread
      ▼ pickled into a task's arguments                    │ per connection
    worker process: LockProxy(token).acquire() ── call ───┘

A proxy pickles to its token (the manager's address and the object's id), so
it can ride in any task's arguments at any time, not only at worker start —
which is what ``multiprocessing.Lock`` cannot do. Workers reconnect with the
authentication key they inherit from the parent.

Our proxy classes turn a lost manager (the pool was shut down) into a
:class:`~anypool.PoolClosed` that says so, instead of a bare socket error.
This module imports :mod:`multiprocessing`: it is loaded only when a process
pool first asks for a primitive.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing import get_context
from multiprocessing.managers import BaseProxy, SyncManager
from typing import Any, cast

from ._exceptions import PoolClosed
from ._runtime import default_start_method
from ._sync import BarrierLike, ConditionLike, EventLike, LockLike, QueueLike, SemaphoreLike
from .abc import Order

__all__ = ["ManagerPrimitives"]

# How often the manager checks that the pool's process is still alive; it exits
# within this long of a parent killed with SIGKILL (no cleanup ran).
_PARENT_POLL_S = 0.5
# Shutting a manager down waits this long for it to exit before killing it.
_MANAGER_STOP_S = 2.0

_LOST = (ConnectionError, EOFError, FileNotFoundError)


class _Proxy(BaseProxy):
    """Base of our proxies: one place that turns a lost manager into a clear error."""

    _kind = "primitive"

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return cast(Any, self._callmethod(method, args))
        except _LOST as exc:
            raise PoolClosed(
                f"this {self._kind} belonged to a process pool that has been shut down "
                f"(its manager process is gone: {exc!r})"
            ) from exc


class _Acquirer(_Proxy):
    """acquire / release / ``with``, shared by locks, semaphores and conditions."""

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        # threading.Lock spells "forever" timeout=-1 and Semaphore timeout=None: send neither
        if timeout is None or timeout < 0:
            return bool(self._call("acquire", blocking))
        return bool(self._call("acquire", blocking, timeout))

    def __enter__(self) -> bool:
        return bool(self._call("acquire"))

    def __exit__(self, *exc_info: object) -> None:
        self._call("release")


class LockProxy(_Acquirer):
    _exposed_ = ("acquire", "release")
    _kind = "Lock"

    def release(self) -> None:
        self._call("release")


class SemaphoreProxy(_Acquirer):
    _exposed_ = ("acquire", "release")
    _kind = "Semaphore"

    def release(self, n: int = 1) -> None:
        self._call("release", n)


class ConditionProxy(_Acquirer):
    _exposed_ = ("acquire", "release", "wait", "notify", "notify_all")
    _kind = "Condition"

    def release(self) -> None:
        self._call("release")

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._call("wait", timeout))

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        # evaluated here, in the caller, like threading.Condition.wait_for: the predicate
        # reads the caller's state and need not pickle
        result = predicate()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not result:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            self.wait(remaining)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        self._call("notify", n)

    def notify_all(self) -> None:
        self._call("notify_all")


class EventProxy(_Proxy):
    _exposed_ = ("is_set", "set", "clear", "wait")
    _kind = "Event"

    def is_set(self) -> bool:
        return bool(self._call("is_set"))

    def set(self) -> None:
        self._call("set")

    def clear(self) -> None:
        self._call("clear")

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._call("wait", timeout))


class BarrierProxy(_Proxy):
    _exposed_ = ("__getattribute__", "wait", "abort", "reset")
    _kind = "Barrier"

    def wait(self, timeout: float | None = None) -> int:
        return int(self._call("wait", timeout))

    def abort(self) -> None:
        self._call("abort")

    def reset(self) -> None:
        self._call("reset")

    @property
    def parties(self) -> int:
        return int(self._call("__getattribute__", "parties"))

    @property
    def n_waiting(self) -> int:
        return int(self._call("__getattribute__", "n_waiting"))

    @property
    def broken(self) -> bool:
        return bool(self._call("__getattribute__", "broken"))


class QueueProxy(_Proxy):
    _exposed_ = (
        "put",
        "get",
        "put_nowait",
        "get_nowait",
        "task_done",
        "join",
        "qsize",
        "empty",
        "full",
    )
    _kind = "Queue"

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._call("put", item, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._call("get", block, timeout)

    def put_nowait(self, item: Any) -> None:
        self._call("put_nowait", item)

    def get_nowait(self) -> Any:
        return self._call("get_nowait")

    def task_done(self) -> None:
        self._call("task_done")

    def join(self) -> None:
        self._call("join")

    def qsize(self) -> int:
        return int(self._call("qsize"))

    def empty(self) -> bool:
        return bool(self._call("empty"))

    def full(self) -> bool:
        return bool(self._call("full"))


class _Manager(SyncManager):
    """A SyncManager whose objects come back as our proxies."""


_REGISTRY: dict[str, tuple[Callable[..., Any], type[BaseProxy]]] = {
    "Lock": (threading.Lock, LockProxy),
    "RLock": (threading.RLock, LockProxy),
    "Semaphore": (threading.Semaphore, SemaphoreProxy),
    "BoundedSemaphore": (threading.BoundedSemaphore, SemaphoreProxy),
    "Condition": (threading.Condition, ConditionProxy),
    "Event": (threading.Event, EventProxy),
    "Barrier": (threading.Barrier, BarrierProxy),
    "fifo": (queue.Queue, QueueProxy),
    "lifo": (queue.LifoQueue, QueueProxy),
    "priority": (queue.PriorityQueue, QueueProxy),
}
for _typeid, (_factory, _proxy) in _REGISTRY.items():
    _Manager.register(_typeid, _factory, _proxy)


def _init_manager(parent_pid: int) -> None:
    """Runs first in the manager process: survive Ctrl-C, but not the pool's process."""
    # Ctrl-C goes to the whole foreground group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    # With forkserver our OS parent is the fork server, so poll the pool's process itself.
    while True:
        time.sleep(_PARENT_POLL_S)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass  # exists, owned by someone else (cannot happen for our parent, but harmless)


class ManagerPrimitives:
    """Primitives for a process pool, served by a manager process started on first use."""

    def __init__(self, start_method: str | None) -> None:
        # The manager never needs fork's copy of the parent, and fork is unsafe once
        # threads exist, so "fork" pools still start it with the safe default.
        method = start_method if start_method in ("spawn", "forkserver") else None
        self._method = method or default_start_method()
        self._manager: _Manager | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _create(self, typeid: str, *args: Any) -> Any:
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot create a primitive: the pool is shut down")
            if self._manager is None:
                manager = _Manager(ctx=get_context(self._method))
                manager.start(_init_manager, (os.getpid(),))
                self._manager = manager
            manager = self._manager
        return getattr(manager, typeid)(*args)

    def Lock(self) -> LockLike:
        return cast(LockLike, self._create("Lock"))

    def RLock(self) -> LockLike:
        return cast(LockLike, self._create("RLock"))

    def Condition(self, lock: LockLike | None) -> ConditionLike:
        if lock is not None:
            self._check_own(lock, "Condition(lock)")
        return cast(ConditionLike, self._create("Condition", lock))

    def Semaphore(self, value: int) -> SemaphoreLike:
        return cast(SemaphoreLike, self._create("Semaphore", value))

    def BoundedSemaphore(self, value: int) -> SemaphoreLike:
        return cast(SemaphoreLike, self._create("BoundedSemaphore", value))

    def Event(self) -> EventLike:
        return cast(EventLike, self._create("Event"))

    def Barrier(
        self, parties: int, action: Callable[[], object] | None, timeout: float | None
    ) -> BarrierLike:
        # the action runs in the manager process, so it must pickle (by reference)
        return cast(BarrierLike, self._create("Barrier", parties, action, timeout))

    def Queue(self, maxsize: int, order: Order) -> QueueLike:
        return cast(QueueLike, self._create(order, maxsize))

    def _check_own(self, lock: object, what: str) -> None:
        manager = self._manager
        same = (
            isinstance(lock, LockProxy)
            and manager is not None
            and lock._token.address == manager.address  # type: ignore[attr-defined]
        )
        if not same:
            raise TypeError(
                f"{what} on a process pool needs a lock made by this pool's pool.Lock() or "
                f"pool.RLock(), got {type(lock).__name__}"
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            manager, self._manager = self._manager, None
        if manager is None:
            return
        process = manager._process  # type: ignore[attr-defined]
        manager.shutdown()
        process.join(_MANAGER_STOP_S)
        if process.is_alive():  # pragma: no cover - shutdown() already terminates on timeout
            process.kill()
            process.join()
