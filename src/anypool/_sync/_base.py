"""Coordination primitives that match the pool's backend: what ``pool.Lock()`` & co. return.

::

    pool.Lock() ──► Primitives for the backend ──► thread / inline: threading.Lock()
                                               └─► process: named semaphore, or a proxy
                                                     │ to a manager process (Queue, Barrier);
                                                     ▼ both pickle into task arguments
                                               worker process: lock.acquire() ...

    pool.Value() / Array() ──► thread / inline: SharedValue(ctypes object, threading.RLock)
                           └─► process: the ctypes object in named shared memory, and a
                                 named-semaphore RLock; pickles as (segment name, ctypes
                                 type, lock), the worker maps the segment by name

Threads share the parent's memory, so they get the ``threading`` and ``queue``
objects themselves. Worker processes do not: they get named semaphores that
pickle into task arguments (locks, semaphores, conditions, events) and proxies
to queues and barriers in one manager process per pool (see
:mod:`anypool._sync._process`, loaded only when a process pool first asks). A
backend can bring its own set by defining ``primitives()`` (the Dask backend
can map them onto ``distributed``'s).

The protocols below are the common surface of both kinds, with the method
names and semantics of the ``threading`` and ``queue`` modules.
"""

from __future__ import annotations

import ctypes
import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Protocol

from .._errors._exceptions import SerializationError
from ..abc import Order

__all__ = [
    "TYPECODES",
    "ArrayLike",
    "BarrierLike",
    "CharArrayLike",
    "ConditionLike",
    "EventLike",
    "LockLike",
    "Primitives",
    "QueueLike",
    "SemaphoreLike",
    "SharedArray",
    "SharedString",
    "SharedValue",
    "ThreadPrimitives",
    "ValueLike",
    "array_type",
    "check_array",
    "check_barrier",
    "check_queue",
    "check_semaphore",
    "check_shareable",
    "check_value",
    "filled",
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


class SynchronizedLike(Protocol):
    """What ``multiprocessing``'s synchronized wrappers share: the lock that guards them."""

    def get_lock(self) -> LockLike: ...
    def get_obj(self) -> Any: ...
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> bool: ...
    def __exit__(self, *exc_info: object) -> None: ...


class ValueLike(SynchronizedLike, Protocol):
    """``multiprocessing.Value``'s surface: ``.value`` under the lock, and ``get_lock()``."""

    value: Any


class ArrayLike(SynchronizedLike, Protocol):
    """``multiprocessing.Array``'s surface: a fixed-length sequence, and ``get_lock()``."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: Any) -> Any: ...
    def __setitem__(self, index: Any, value: Any) -> None: ...
    def __iter__(self) -> Iterator[Any]: ...


class CharArrayLike(ArrayLike, Protocol):
    """An array of typecode ``'c'``, as ``multiprocessing.Array('c', ...)``: its bytes up to
    the first NUL (``value``) and all of them (``raw``), both assignable."""

    @property
    def value(self) -> bytes: ...
    @value.setter
    def value(self, new: bytes) -> None: ...
    @property
    def raw(self) -> bytes: ...
    @raw.setter
    def raw(self, new: bytes) -> None: ...


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


# Optional on a Primitives (Dask has none): Value(ctype, init) and Array(ctype, size_or_init),
# with ``ctype`` from check_value and ``size_or_init`` from check_array.


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

    def Value(self, ctype: Any, init: Any) -> ValueLike:
        return SharedValue(filled(ctype(), init), threading.RLock())

    def Array(self, ctype: Any, size_or_init: int | Sequence[Any]) -> ArrayLike:
        cls = SharedString if ctype is ctypes.c_char else SharedArray
        return cls(filled(array_type(ctype, size_or_init)(), size_or_init), threading.RLock())

    def close(self) -> None:
        pass  # nothing outlives the objects themselves


# -- Value and Array: one ctypes object and one lock, as multiprocessing.sharedctypes -----------
# The typecodes of the array module, as multiprocessing.Value and Array take them.
TYPECODES: dict[str, Any] = {
    "c": ctypes.c_char,
    "u": ctypes.c_wchar,
    "b": ctypes.c_byte,
    "B": ctypes.c_ubyte,
    "h": ctypes.c_short,
    "H": ctypes.c_ushort,
    "i": ctypes.c_int,
    "I": ctypes.c_uint,
    "l": ctypes.c_long,
    "L": ctypes.c_ulong,
    "q": ctypes.c_longlong,
    "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float,
    "d": ctypes.c_double,
}


def array_type(ctype: Any, size_or_init: int | Sequence[Any]) -> Any:
    return ctype * (size_or_init if isinstance(size_or_init, int) else len(size_or_init))


def filled(obj: Any, init: Any) -> Any:
    """A fresh ctypes object (zeroed, wherever its memory lives) set to ``init``."""
    if isinstance(obj, ctypes.Array):
        if not isinstance(init, int):  # a size: the memory is already zeros
            obj[:] = init
    elif init is not None:
        obj.value = init
    return obj


class _Guarded:
    """A ctypes object and the lock that guards it; the lock API of multiprocessing's."""

    __slots__ = ("_lock", "_obj", "_raw")

    def __init__(self, obj: Any, lock: Any) -> None:
        self._obj = obj
        self._lock = lock
        # each access takes the lock: through the process lock's wrapper (a NativeLock) that
        # costs 3 us, through the multiprocessing RLock inside it ~1 us; same semaphore
        self._raw = getattr(lock, "_obj", lock)

    def get_lock(self) -> LockLike:
        lock: LockLike = self._lock
        return lock

    def get_obj(self) -> Any:
        return self._obj

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc_info: object) -> None:
        self._lock.__exit__(*exc_info)


class SharedValue(_Guarded):
    """What ``pool.Value()`` returns: ``.value`` reads and writes under the lock; a
    read-modify-write (``+= 1``) needs ``with v.get_lock():`` around it, as in multiprocessing."""

    __slots__ = ()

    @property
    def value(self) -> Any:
        with self._raw:
            return self._obj.value

    @value.setter
    def value(self, new: Any) -> None:
        with self._raw:
            self._obj.value = new

    def __repr__(self) -> str:
        return f"<anypool Value {type(self._obj).__name__}({self.value!r})>"


class SharedArray(_Guarded):
    """What ``pool.Array()`` returns: a fixed-length sequence, each access under the lock."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._obj)

    def __getitem__(self, index: Any) -> Any:
        with self._raw:
            return self._obj[index]

    def __setitem__(self, index: Any, value: Any) -> None:
        with self._raw:
            self._obj[index] = value

    def __iter__(self) -> Iterator[Any]:
        return iter(self[:])

    def __repr__(self) -> str:
        return f"<anypool Array {self._obj._type_.__name__}{self[:]!r}>"


class SharedString(SharedArray):
    """``pool.Array('c', ...)``, as ``multiprocessing``'s: items are one-byte ``bytes`` (a slice
    is ``bytes``), and ``.value`` (up to the first NUL) and ``.raw`` (every byte) read and
    write the whole array under the lock."""

    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        data: bytes = self[:]
        return (data[i : i + 1] for i in range(len(data)))  # iterating bytes would give ints

    @property
    def value(self) -> bytes:
        with self._raw:
            return bytes(self._obj.value)

    @value.setter
    def value(self, new: bytes) -> None:
        with self._raw:
            self._obj.value = new

    @property
    def raw(self) -> bytes:
        with self._raw:
            return bytes(self._obj.raw)

    @raw.setter
    def raw(self, new: bytes) -> None:
        with self._raw:
            self._obj.raw = new


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


def check_value(typecode: object) -> Any:
    """The ctypes type for ``typecode``: an array-module code ('i', 'd', ...) or a ctypes type."""
    if isinstance(typecode, str):
        if typecode in TYPECODES:
            return TYPECODES[typecode]
    elif isinstance(typecode, type) and issubclass(typecode, ctypes._SimpleCData):
        return typecode
    raise ValueError(
        f"typecode must be one of {''.join(TYPECODES)!r} (as in multiprocessing.Value) or a "
        f"ctypes type such as ctypes.c_int, got {typecode!r}"
    )


def check_array(size_or_init: object) -> int | Sequence[Any]:
    """``Array(typecode, size_or_init)``'s second argument: a size (zeros) or the contents."""
    if isinstance(size_or_init, int) and not isinstance(size_or_init, bool):
        if size_or_init < 0:
            raise ValueError(f"Array size must be >= 0, got {size_or_init}")
        return size_or_init
    if isinstance(size_or_init, (str, bytes)):  # for typecodes 'u' and 'c'
        return size_or_init
    if not isinstance(size_or_init, Iterable):
        raise TypeError(
            f"Array needs a size (int) or a sequence of initial values, got {size_or_init!r}"
        )
    return list(size_or_init)


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
        if type(value) in (SharedValue, SharedArray, SharedString):  # not the process kinds
            name = "Value" if isinstance(value, SharedValue) else "Array"
            raise SerializationError(
                f"{where} is a {name} made by a thread or inline pool, whose memory only that "
                f"process sees, so it cannot reach the {backend!r} backend's worker "
                f"processes; create it with this pool's pool.{name}() instead"
            )


def _factory_name(value: object) -> str:
    if isinstance(value, (queue.Queue, queue.SimpleQueue)):
        return "Queue"
    name = type(value).__name__
    return {"lock": "Lock", "_RLock": "RLock"}.get(name, name)
