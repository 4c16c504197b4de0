"""Coordination primitives that match the pool's backend: what ``pool.Lock()`` & co. return.

::

    pool.Lock() ──► Primitives for the backend ──► thread / inline: threading.Lock()
                                               └─► process: named semaphore, or a proxy
                                                     │ to a manager process (Queue, Barrier);
                                                     ▼ both pickle into task arguments
                                               worker process: lock.acquire() ...

Threads share the parent's memory, so they get the ``threading`` and ``queue``
objects themselves. Worker processes do not: they get named semaphores that
pickle into task arguments (locks, semaphores, conditions, events) and proxies
to queues and barriers in one manager process per pool (see
:mod:`anypool._sync_process`, loaded only when a process pool first asks). A
backend can bring its own set by defining ``primitives()`` (the Dask backend
can map them onto ``distributed``'s).

The protocols below are the common surface of both kinds, with the method
names and semantics of the ``threading`` and ``queue`` modules.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol

from ._exceptions import CapabilityError, SerializationError
from .abc import Backend, Order

__all__ = [
    "BarrierLike",
    "ConditionLike",
    "EventLike",
    "LockLike",
    "Primitives",
    "QueueLike",
    "SemaphoreLike",
    "ThreadPrimitives",
    "check_barrier",
    "check_queue",
    "check_semaphore",
    "check_shareable",
    "primitives_for",
]

_ORDERS = ("fifo", "lifo", "priority")


class LockLike(Protocol):
    """A lock: ``threading.Lock`` / ``RLock`` on threads, a proxy on processes."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class SemaphoreLike(Protocol):
    """``threading.Semaphore`` / ``BoundedSemaphore`` or a proxy to one."""

    def acquire(self, blocking: bool = ..., timeout: float | None = ...) -> bool: ...
    def release(self, n: int = ...) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class ConditionLike(Protocol):
    """``threading.Condition`` or a proxy to one."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...
    def wait(self, timeout: float | None = ...) -> bool: ...
    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = ...) -> Any: ...
    def notify(self, n: int = ...) -> None: ...
    def notify_all(self) -> None: ...


class EventLike(Protocol):
    """``threading.Event`` or a proxy to one."""

    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = ...) -> bool: ...


class BarrierLike(Protocol):
    """``threading.Barrier`` or a proxy to one."""

    def wait(self, timeout: float | None = ...) -> int: ...
    def reset(self) -> None: ...
    def abort(self) -> None: ...
    @property
    def parties(self) -> int: ...
    @property
    def n_waiting(self) -> int: ...
    @property
    def broken(self) -> bool: ...


class QueueLike(Protocol):
    """``queue.Queue`` / ``LifoQueue`` / ``PriorityQueue`` or a proxy to one."""

    def put(self, item: Any, block: bool = ..., timeout: float | None = ...) -> None: ...
    def get(self, block: bool = ..., timeout: float | None = ...) -> Any: ...
    def put_nowait(self, item: Any) -> None: ...
    def get_nowait(self) -> Any: ...
    def task_done(self) -> None: ...
    def join(self) -> None: ...
    def qsize(self) -> int: ...
    def empty(self) -> bool: ...
    def full(self) -> bool: ...


class Primitives(Protocol):
    """A factory of coordination objects for one pool; arguments are already validated."""

    def Lock(self) -> LockLike: ...
    def RLock(self) -> LockLike: ...
    def Condition(self, lock: LockLike | None) -> ConditionLike: ...
    def Semaphore(self, value: int) -> SemaphoreLike: ...
    def BoundedSemaphore(self, value: int) -> SemaphoreLike: ...
    def Event(self) -> EventLike: ...
    def Barrier(
        self, parties: int, action: Callable[[], object] | None, timeout: float | None
    ) -> BarrierLike: ...
    def Queue(self, maxsize: int, order: Order) -> QueueLike: ...
    def close(self) -> None: ...


_QUEUE_CLASSES: dict[str, type[queue.Queue[Any]]] = {
    "fifo": queue.Queue,
    "lifo": queue.LifoQueue,
    "priority": queue.PriorityQueue,
}


class ThreadPrimitives:
    """The ``threading`` and ``queue`` objects themselves: right for threads and inline."""

    def Lock(self) -> LockLike:
        return threading.Lock()

    def RLock(self) -> LockLike:
        return threading.RLock()

    def Condition(self, lock: LockLike | None) -> ConditionLike:
        return threading.Condition(lock)  # type: ignore[arg-type]  # any acquire/release pair

    def Semaphore(self, value: int) -> SemaphoreLike:
        return threading.Semaphore(value)

    def BoundedSemaphore(self, value: int) -> SemaphoreLike:
        return threading.BoundedSemaphore(value)

    def Event(self) -> EventLike:
        return threading.Event()

    def Barrier(
        self, parties: int, action: Callable[[], object] | None, timeout: float | None
    ) -> BarrierLike:
        return threading.Barrier(parties, action, timeout)  # type: ignore[arg-type]

    def Queue(self, maxsize: int, order: Order) -> QueueLike:
        return _QUEUE_CLASSES[order](maxsize)

    def close(self) -> None:
        pass  # nothing outlives the objects themselves


def primitives_for(backend: Backend) -> Primitives:
    """The primitives that work between this backend's workers, chosen by capability flags."""
    hook = getattr(backend, "primitives", None)
    if callable(hook):
        made: Primitives = hook()
        return made
    caps = backend.capabilities
    if caps.shares_memory:
        return ThreadPrimitives()
    if caps.needs_pickling and not caps.remote:
        from ._sync_process import ProcessPrimitives

        return ProcessPrimitives(backend.config.start_method)
    raise CapabilityError(f"the {backend.name!r} backend has no coordination primitives")


# -- argument checks shared by every backend ---------------------------------------------------
def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_semaphore(value: object) -> None:
    _check_int("Semaphore value", value, 0)


def check_barrier(parties: object, action: object, timeout: object) -> None:
    _check_int("Barrier parties", parties, 1)
    if action is not None and not callable(action):
        raise TypeError(f"Barrier action must be callable or None, got {action!r}")
    if timeout is not None and not _positive_number(timeout):
        raise ValueError(f"Barrier timeout must be a positive number or None, got {timeout!r}")


def check_queue(maxsize: object, order: object) -> None:
    _check_int("Queue maxsize", maxsize, 0)
    if order not in _ORDERS:
        raise ValueError(f"Queue order must be one of {_ORDERS}, got {order!r}")


def _positive_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


# -- catching a thread primitive on its way into a worker process ------------------------------
def _thread_only_types() -> tuple[type, ...]:
    return (
        type(threading.Lock()),
        type(threading.RLock()),
        threading.Condition,
        threading.Semaphore,
        threading.Event,
        threading.Barrier,
        queue.Queue,
        queue.SimpleQueue,
    )


_THREAD_ONLY = _thread_only_types()


def check_shareable(args: Sequence[Any], kwargs: dict[str, Any], backend: str) -> None:
    """Refuse a ``threading``/``queue`` object bound for another process, naming it.

    Pickling would fail anyway, but with "cannot pickle '_thread.lock' object"
    and no hint. Only the top level of the call is scanned: it is where these
    objects are passed, and it costs nothing measurable.
    """
    places = [(f"argument {i}", a) for i, a in enumerate(args)]
    places += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for where, value in places:
        if isinstance(value, _THREAD_ONLY):
            name = _factory_name(value)
            module = "queue" if name == "Queue" else "threading"
            raise SerializationError(
                f"{where} is a {module}.{name}, which only works between threads of one "
                f"process and cannot reach the {backend!r} backend's worker processes; "
                f"create it with this pool's pool.{name}() instead"
            )


def _factory_name(value: object) -> str:
    if isinstance(value, (queue.Queue, queue.SimpleQueue)):
        return "Queue"
    name = type(value).__name__
    return {"lock": "Lock", "_RLock": "RLock"}.get(name, name)
