"""Coordination primitives for the Dask backend: ``distributed``'s, with threading's manners.

::

    pool.Lock() / Semaphore(n) / Event() / Queue(maxsize)
        ─► DaskPrimitives ─► distributed.Lock / Semaphore / Event / Queue, named uniquely,
                             living on the scheduler; they pickle by name, so tasks take
                             them as ordinary arguments and reach the same object from
                             any worker

``distributed.Lock`` and ``Event`` already speak ``threading``'s language; the
semaphore and the queue get thin wrappers for ``acquire(blocking, timeout)``,
``put(item, block, timeout)`` and ``queue.Empty``/``queue.Full``. What Dask has no
equivalent for (RLock, Condition, Barrier, a queue's ``task_done``/``join``, LIFO or
priority queues) raises CapabilityError rather than half-working.
"""

from __future__ import annotations

import asyncio
import importlib
import queue
import uuid
from collections.abc import Callable
from typing import Any

from .._errors._exceptions import CapabilityError
from ..abc import Order

__all__ = ["DaskPrimitives"]

# Typed as Any: see _backends/_dask.py.
distributed: Any = importlib.import_module("distributed")


def _unsupported(what: str) -> CapabilityError:
    return CapabilityError(f"the 'dask' backend has no {what}: distributed offers none")


class DaskSemaphore:
    """``threading.Semaphore`` manners over ``distributed.Semaphore`` (bounded, like Dask's)."""

    def __init__(self, semaphore: Any) -> None:
        self._semaphore = semaphore

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking:
            timeout = 0
        return bool(self._semaphore.acquire(timeout=timeout))

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._semaphore.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


# distributed's timeout=0 times out before the scheduler is even asked on Python < 3.12
# (asyncio.wait_for with 0 never lets the request run), so a non-blocking call checks
# the size first and then allows one scheduler round trip.
_NOWAIT_ROUND_TRIP_S = 5.0
# before 3.11 asyncio.TimeoutError is not the builtin TimeoutError
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)


class DaskQueue:
    """``queue.Queue`` manners over ``distributed.Queue`` (FIFO; no task_done/join)."""

    def __init__(self, inner: Any) -> None:
        self._queue = inner

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if not block:
            if self.full():
                raise queue.Full
            timeout = _NOWAIT_ROUND_TRIP_S
        try:
            self._queue.put(item, timeout=timeout)
        except _TIMEOUTS as exc:
            raise queue.Full from exc

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            if self.empty():
                raise queue.Empty
            timeout = _NOWAIT_ROUND_TRIP_S
        try:
            return self._queue.get(timeout=timeout)
        except _TIMEOUTS as exc:
            raise queue.Empty from exc

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def qsize(self) -> int:
        return int(self._queue.qsize())

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        maxsize = int(self._queue.maxsize or 0)
        return maxsize > 0 and self.qsize() >= maxsize

    def task_done(self) -> None:
        raise _unsupported("Queue.task_done()")

    def join(self) -> None:
        raise _unsupported("Queue.join()")


class DaskPrimitives:
    """The factory ``pool.Lock()`` and friends use on a Dask pool (see ``_sync.Primitives``)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _name(self, kind: str) -> str:
        return f"anypool-{kind}-{uuid.uuid4().hex}"

    def _rpc(self) -> dict[str, Any]:
        return {"scheduler_rpc": self._client.scheduler, "loop": self._client.loop}

    def Lock(self) -> Any:
        return distributed.Lock(self._name("lock"), **self._rpc())

    def RLock(self) -> Any:
        raise _unsupported("RLock")

    def Condition(self, lock: Any) -> Any:
        raise _unsupported("Condition")

    def Semaphore(self, value: int) -> DaskSemaphore:
        if value < 1:
            raise ValueError(f"a Dask semaphore needs a value >= 1, got {value}")
        name = self._name("semaphore")
        return DaskSemaphore(distributed.Semaphore(max_leases=value, name=name, **self._rpc()))

    def BoundedSemaphore(self, value: int) -> DaskSemaphore:
        # distributed's Semaphore refuses more releases than acquires: it is bounded already
        return self.Semaphore(value)

    def Event(self) -> Any:
        return distributed.Event(self._name("event"), client=self._client)

    def Barrier(
        self, parties: int, action: Callable[[], object] | None, timeout: float | None
    ) -> Any:
        raise _unsupported("Barrier")

    def Queue(self, maxsize: int, order: Order) -> DaskQueue:
        if order != "fifo":
            raise _unsupported(f"{order} Queue (distributed.Queue is FIFO)")
        return DaskQueue(
            distributed.Queue(self._name("queue"), client=self._client, maxsize=maxsize)
        )

    def close(self) -> None:
        pass  # they live on the scheduler and go with the pool's client
