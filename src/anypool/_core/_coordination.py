"""Coordination primitives for :class:`~anypool.Pool`: one part the pool is composed of.

::

    pool.Lock() / Queue() / Value() ... ─► Coordination ─► primitives_for(backend)
        threading objects (threads) · named semaphores and manager proxies (processes)
        · Dask's distributed primitives (Dask) · CapabilityError (Ray)

The family is made on first use, so a pool that never asks for a lock never starts a
manager process; it is closed with the pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

from .._errors._exceptions import CapabilityError, PoolClosed
from .._sync import primitives_for
from .._sync._base import (
    ArrayLike,
    BarrierLike,
    ConditionLike,
    EventLike,
    LockLike,
    Primitives,
    QueueLike,
    SemaphoreLike,
    ValueLike,
    check_array,
    check_barrier,
    check_queue,
    check_semaphore,
    check_value,
)
from ..abc import Backend, Order

__all__ = ["Coordination"]


class Coordination:
    """Makes the primitives that work between one pool's workers (see the module doc)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._primitives: Primitives | None = None
        self._closed = False
        self._lock = threading.Lock()

    def factory(self) -> Primitives:
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot create a primitive: the pool is shut down")
            if self._primitives is None:
                self._primitives = primitives_for(self._backend)
            return self._primitives

    def close(self, wait: bool) -> None:
        """The pool shut down: no new primitives. With ``wait=False`` tasks may still be
        using them; the manager then goes when the pool is garbage-collected or at exit."""
        with self._lock:
            self._closed = True
            primitives = self._primitives if wait else None
            if wait:
                self._primitives = None
        if primitives is not None:
            primitives.close()

    def Lock(self) -> LockLike:
        return self.factory().Lock()

    def RLock(self) -> LockLike:
        return self.factory().RLock()

    def Condition(self, lock: LockLike | None = None) -> ConditionLike:
        return self.factory().Condition(lock)

    def Semaphore(self, value: int = 1) -> SemaphoreLike:
        check_semaphore(value)
        return self.factory().Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> SemaphoreLike:
        check_semaphore(value)
        return self.factory().BoundedSemaphore(value)

    def Event(self) -> EventLike:
        return self.factory().Event()

    def Barrier(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> BarrierLike:
        check_barrier(parties, action, timeout)
        return self.factory().Barrier(parties, action, timeout)

    def Queue(self, maxsize: int = 0, order: Order = "fifo") -> QueueLike:
        check_queue(maxsize, order)
        return self.factory().Queue(maxsize, order)

    def Value(self, typecode: str | type, init: Any = 0) -> ValueLike:
        ctype = check_value(typecode)
        return cast(ValueLike, self._shared("Value")(ctype, init))

    def Array(self, typecode: str | type, size_or_init: Any) -> ArrayLike:
        ctype = check_value(typecode)
        return cast(ArrayLike, self._shared("Array")(ctype, check_array(size_or_init)))

    def _shared(self, kind: str) -> Callable[..., Any]:
        try:
            make = getattr(self.factory(), kind, None)
        except CapabilityError:  # Ray: no primitives at all
            make = None
        if make is None:  # Dask, Ray: workers on other machines share no memory
            raise CapabilityError(
                f"the {self._backend.name!r} backend has no shared {kind}: its workers share "
                f"no memory with this process; return results from the tasks instead, or "
                f"use a process or thread pool"
            )
        return cast("Callable[..., Any]", make)
