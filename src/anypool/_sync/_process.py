"""Cross-process coordination primitives that pickle into task arguments at any time.

::

    parent                                    worker process
    pool.Lock() ─► named POSIX semaphore ◄──── sem_open(name) when the task's
      │ (multiprocessing.synchronize)           arguments are unpickled; then
      ▼ pickled into a task's arguments         acquire/release are futex calls
    pool.Queue() / Barrier() ─► proxy ─ socket ─► manager process (started on first
                                                 use) holding queue.Queue / Barrier
    pool.Value() / Array() ─► ctypes object in a ─► mapped by name when unpickled (once
      │ named shared-memory segment + RLock        per process), the lock as above
      ▼ unlinked when the pool closes

``multiprocessing.Lock`` and friends refuse to pickle except while a child is
being spawned, because on some platforms their handle cannot be reopened.
Created under a spawn or forkserver context on POSIX they *are* named
semaphores that any process can reopen by name while the creator holds them,
so :class:`_Native` pickles the object the way a spawning child would (the
same ``__getstate__``) at any time. That keeps locks as fast as
``multiprocessing``'s own (microseconds, no server round trip).

Queues and barriers keep state beyond semaphores (a deque, a shared-memory
counter), so they live in a manager process and are reached through proxies;
a proxy pickles to the manager's address and the object's id, and workers
reconnect with the authentication key they inherit from the parent. Our
proxy classes turn a lost manager (the pool was shut down) into a
:class:`~anypool.PoolClosed` that says so, instead of a bare socket error. A Value
or Array whose memory is gone unpickles all the same, into one whose every use
raises that :class:`~anypool.PoolClosed` (an argument that fails to unpickle would
fail its task as a ``TaskUnpicklingError`` instead).

Misuse raises what ``threading`` raises (``RuntimeError`` for a release of a lock
not held, or a Condition used without its lock), not ``multiprocessing``'s
``ValueError`` / ``AssertionError``.

On Windows, where semaphores cannot be reopened by name, everything goes
through the manager. This module imports :mod:`multiprocessing`: it is loaded
only when a process pool first asks for a primitive.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pickle
import queue
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing import context as mp_context
from multiprocessing import get_context, shared_memory
from multiprocessing import synchronize as mp_sync
from multiprocessing.connection import Connection
from multiprocessing.managers import BaseProxy, SyncManager
from multiprocessing.reduction import ForkingPickler
from typing import Any, ClassVar, NoReturn, cast

from .._errors._exceptions import CapabilityError, PoolClosed, SerializationError
from .._local._threads import deadline_in, time_left
from .._runtime import MAIN_GUARD_EXIT, MAIN_GUARD_MESSAGE, check_main_guard, default_start_method
from ..abc import Order
from ._base import (
    ArrayLike,
    BarrierLike,
    ConditionLike,
    EventLike,
    LockLike,
    QueueLike,
    SemaphoreLike,
    SharedArray,
    SharedString,
    SharedValue,
    ValueLike,
    array_type,
    filled,
)

__all__ = ["ProcessPrimitives"]

# Shutting a manager down waits this long for it to exit before killing it.
_MANAGER_STOP_S = 2.0

_LOST = (ConnectionError, EOFError, FileNotFoundError)
# Named semaphores can be reopened by name everywhere but on Windows.
_NATIVE = sys.platform != "win32"


# -- semaphore-based primitives ------------------------------------------------------------------
class _Reducing:
    """Stands in for a spawning Popen while a synchronize object is pickled (see docstring)."""


@contextmanager
def _as_if_spawning() -> Iterator[None]:
    previous = mp_context.get_spawning_popen()
    mp_context.set_spawning_popen(_Reducing())  # type: ignore[arg-type]  # a stand-in
    try:
        yield
    finally:
        mp_context.set_spawning_popen(previous)


def _rebuild_native(cls: type[_Native], data: bytes) -> _Native:
    return cls(pickle.loads(data))


class _Native:
    """Wraps a ``multiprocessing.synchronize`` object so that it pickles at any time."""

    __slots__ = ("_obj",)
    _kind: ClassVar[str] = "primitive"

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __reduce__(self) -> tuple[Any, ...]:
        with _as_if_spawning():
            data = bytes(ForkingPickler.dumps(self._obj))
        return (_rebuild_native, (type(self), data))

    def __repr__(self) -> str:
        return f"<anypool process {self._kind} {self._obj!r}>"


def _misuse(exc: ValueError | AssertionError) -> Exception:
    """``threading``'s error for a release that ``multiprocessing`` refuses its own way."""
    if isinstance(exc, AssertionError):  # an RLock this thread does not hold
        return RuntimeError("cannot release un-acquired lock")
    return RuntimeError("release unlocked lock")  # SemLock: "released too many times"


class _NativeAcquirer(_Native):
    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        # threading spells "forever" timeout=-1; SemLock reads a negative timeout as 0
        if timeout is None or timeout < 0:
            return bool(self._obj.acquire(blocking))
        return bool(self._obj.acquire(blocking, timeout))

    def release(self) -> None:
        try:
            self._obj.release()
        except (ValueError, AssertionError) as exc:
            raise _misuse(exc) from None

    def __enter__(self) -> bool:
        return bool(self._obj.acquire())

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class NativeLock(_NativeAcquirer):
    __slots__ = ()
    _kind = "Lock"

    def locked(self) -> bool:
        """As ``threading.Lock.locked()``: held by anyone, in any process."""
        return bool(self._obj._semlock._is_zero())


class NativeSemaphore(_NativeAcquirer):
    __slots__ = ()
    _kind = "Semaphore"

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            try:
                self._obj.release()
            except ValueError:  # a BoundedSemaphore's bound, in threading's words
                raise ValueError("Semaphore released too many times") from None


class NativeCondition(_NativeAcquirer):
    __slots__ = ()
    _kind = "Condition"

    def wait(self, timeout: float | None = None) -> bool:
        self._check_owned("wait on")
        return bool(self._obj.wait(timeout))

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        return _wait_for(self, predicate, timeout)

    def notify(self, n: int = 1) -> None:
        self._check_owned("notify on")
        self._obj.notify(n)

    def notify_all(self) -> None:
        self._check_owned("notify on")
        self._obj.notify_all()

    def _check_owned(self, verb: str) -> None:
        # multiprocessing asserts this (gone under python -O); threading raises RuntimeError
        if not self._obj._lock._semlock._is_mine():
            raise RuntimeError(f"cannot {verb} un-acquired lock")


def _wait_for(condition: ConditionLike, predicate: Callable[[], Any], timeout: float | None) -> Any:
    """``threading.Condition.wait_for`` over ``condition.wait``: the predicate runs in the
    caller, so it reads the caller's state and need not pickle."""
    result = predicate()
    deadline = deadline_in(timeout)
    while not result:
        remaining = time_left(deadline)
        if remaining == 0:
            break
        condition.wait(remaining)
        result = predicate()
    return result


class NativeEvent(_Native):
    __slots__ = ()
    _kind = "Event"

    def is_set(self) -> bool:
        return bool(self._obj.is_set())

    def set(self) -> None:
        self._obj.set()

    def clear(self) -> None:
        self._obj.clear()

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._obj.wait(timeout))


# -- Value and Array: ctypes objects in named shared memory ---------------------------------------
class _Segment(shared_memory.SharedMemory):
    """Shared memory that a ctypes object may still point into when it is closed."""

    def close(self) -> None:
        # the descriptor first: the mapping does not need it, and it must not leak
        fd = getattr(self, "_fd", -1)
        if os.name == "posix" and fd >= 0:
            os.close(fd)
            self._fd = -1
        try:
            super().close()
        except BufferError:
            pass  # a ctypes object still maps it: the mapping goes when that object goes


# One mapping per segment per process, however many copies of a Value a worker unpickles.
_ATTACHED: weakref.WeakValueDictionary[str, mmap.mmap] = weakref.WeakValueDictionary()


def _attach(name: str) -> mmap.mmap:
    """Map a segment another process created. Not through SharedMemory, which (before 3.13)
    registers it with a resource tracker: a worker forked before the parent's tracker ran
    starts its own, which unlinks the segment when that worker exits."""
    import _posixshmem  # type: ignore[import-not-found, unused-ignore]

    mapping = _ATTACHED.get(name)
    if mapping is not None:
        return mapping
    try:
        fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    except FileNotFoundError as exc:
        raise PoolClosed(
            "this Value or Array belonged to a process pool that has been shut down "
            f"(its shared memory {name!r} is gone)"
        ) from exc
    try:
        mapping = mmap.mmap(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)  # the mapping does not need it
    _ATTACHED[name] = mapping
    return mapping


def _rebuild_shared(
    cls: type[_SharedMemoryMixin], ctype: Any, length: int | None, name: str, lock: Any
) -> Any:
    kind = ctype if length is None else ctype * length
    try:
        mapping = _attach(name)
    except PoolClosed as exc:
        # raised here, it would fail the task before it runs, as an argument that does not
        # unpickle (TaskUnpicklingError); the task gets the PoolClosed where it uses the value
        return cls(_Gone(kind, str(exc)), lock, name)
    # the ctypes object keeps the mapping alive; the name is kept for pickling it again
    return cls(kind.from_buffer(mapping), lock, name)


class _Gone:
    """Stands in for the ctypes object of a Value or Array whose pool has been shut down
    (its shared memory is gone): reading or writing it raises PoolClosed."""

    __slots__ = ("kind", "message")

    def __init__(self, kind: Any, message: str) -> None:
        self.kind = kind  # the ctypes type, to pickle it on
        self.message = message

    def _closed(self, *args: object) -> NoReturn:
        raise PoolClosed(self.message)

    value = raw = property(_closed, _closed)
    __len__ = __getitem__ = __setitem__ = _closed


class _SharedMemoryMixin:
    """Pickles as the segment's name, the ctypes type and the lock (a named semaphore)."""

    _obj: Any
    _lock: Any

    def __init__(self, obj: Any, lock: Any, name: str, segment: _Segment | None = None) -> None:
        super().__init__(obj, lock)  # type: ignore[call-arg]  # SharedValue or SharedArray
        self._name = name
        self._segment = segment  # the creator's: unlinked when the pool closes

    def __reduce__(self) -> tuple[Any, ...]:
        kind = self._obj.kind if isinstance(self._obj, _Gone) else type(self._obj)
        # an array type (c_int * 4) is made at run time and does not pickle by reference
        ctype, length = (
            (kind._type_, kind._length_) if issubclass(kind, ctypes.Array) else (kind, None)
        )
        return (_rebuild_shared, (type(self), ctype, length, self._name, self._lock))

    def __repr__(self) -> str:
        if isinstance(self._obj, _Gone):
            what = "Value" if isinstance(self, SharedValue) else "Array"
            return f"<anypool {what} of a process pool that has been shut down>"
        return str(super().__repr__())


class ProcessValue(_SharedMemoryMixin, SharedValue):
    """``pool.Value()`` on processes: the ctypes object lives in named shared memory and the
    lock is a named semaphore, so it pickles into task arguments at any time."""


class ProcessArray(_SharedMemoryMixin, SharedArray):
    """``pool.Array()`` on processes, as :class:`ProcessValue`."""


class ProcessString(_SharedMemoryMixin, SharedString):
    """``pool.Array('c', ...)`` on processes, as :class:`ProcessValue`."""


# -- manager-based primitives ---------------------------------------------------------------------


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
        return _wait_for(self, predicate, timeout)

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


def _check_action(action: Callable[[], object]) -> None:
    """A Barrier action runs in the manager process, reached by pickling it by reference: a
    lambda, closure or method of a local class cannot be, and pickle's own words
    ("Can't pickle local object") do not say what to do."""
    try:
        pickle.dumps(action)
    except Exception as exc:
        raise SerializationError(
            f"the Barrier action {getattr(action, '__qualname__', action)!r} cannot be sent "
            "to the process that runs it (a process pool's Barrier runs its action in a "
            "manager process): use a function defined at module level"
        ) from exc


class _AnypoolManager(SyncManager):
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
    _AnypoolManager.register(_typeid, _factory, _proxy)


def _init_manager(lifeline: Connection) -> None:
    """Runs first in the manager process: survive Ctrl-C, but not the pool's process."""
    # Ctrl-C goes to the whole foreground group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(lifeline,), daemon=True).start()


def _watch_parent(lifeline: Connection) -> None:
    # The parent holds the other end and never writes: the read ends only when its end
    # closes, which the kernel does when the parent dies, even while it lingers unreaped.
    # (Polling the pid would miss that, and so would getppid() under forkserver, whose
    # server lives as long as any process it forked — this one included.)
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(0)


class ProcessPrimitives:
    """Primitives for a process pool: named semaphores, plus a manager for queues and barriers."""

    def __init__(self, start_method: str | None) -> None:
        # fork would make unnamed semaphores and a manager forked from a threaded parent;
        # neither needs fork's copy of the parent, so "fork" pools use the safe default too
        method = start_method if start_method in ("spawn", "forkserver") else None
        self._ctx = get_context(method or default_start_method())
        self._manager: _AnypoolManager | None = None
        self._lifeline: Connection | None = None  # closes when we die: the manager follows
        self._lock = threading.Lock()
        self._closed = False
        self._segments: list[_Segment] = []  # Value and Array memory, unlinked at close()

    # -- semaphore-based ---------------------------------------------------------------------
    def Lock(self) -> LockLike:
        if not _NATIVE:
            return cast(LockLike, self._managed("Lock"))
        return NativeLock(mp_sync.Lock(ctx=self._ctx))

    def RLock(self) -> LockLike:
        if not _NATIVE:
            return cast(LockLike, self._managed("RLock"))
        return NativeLock(mp_sync.RLock(ctx=self._ctx))

    def Condition(self, lock: LockLike | None) -> ConditionLike:
        if not _NATIVE:
            self._check_lock(lock, LockProxy)
            return cast(ConditionLike, self._managed("Condition", lock))
        self._check_lock(lock, NativeLock)
        inner = None if lock is None else cast(NativeLock, lock)._obj
        return NativeCondition(mp_sync.Condition(inner, ctx=self._ctx))

    def Semaphore(self, value: int) -> SemaphoreLike:
        if not _NATIVE:
            return cast(SemaphoreLike, self._managed("Semaphore", value))
        return NativeSemaphore(mp_sync.Semaphore(value, ctx=self._ctx))

    def BoundedSemaphore(self, value: int) -> SemaphoreLike:
        if not _NATIVE:
            return cast(SemaphoreLike, self._managed("BoundedSemaphore", value))
        return NativeSemaphore(mp_sync.BoundedSemaphore(value, ctx=self._ctx))

    def Event(self) -> EventLike:
        if not _NATIVE:
            return cast(EventLike, self._managed("Event"))
        return NativeEvent(mp_sync.Event(ctx=self._ctx))

    # -- shared memory -----------------------------------------------------------------------
    def Value(self, ctype: Any, init: Any) -> ValueLike:
        lock = self._shared_lock()
        segment = self._segment(ctype)
        obj = filled(ctype.from_buffer(segment.buf), init)
        return ProcessValue(obj, lock, segment.name, segment)

    def Array(self, ctype: Any, size_or_init: int | Sequence[Any]) -> ArrayLike:
        lock = self._shared_lock()
        kind = array_type(ctype, size_or_init)
        segment = self._segment(kind)
        obj = filled(kind.from_buffer(segment.buf), size_or_init)
        cls = ProcessString if ctype is ctypes.c_char else ProcessArray
        return cls(obj, lock, segment.name, segment)

    def _segment(self, ctype: Any) -> _Segment:
        """A new zeroed segment for one ``ctype``; close() unlinks it."""
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot create a primitive: the pool is shut down")
            segment = _Segment(create=True, size=max(1, ctypes.sizeof(ctype)))
            self._segments.append(segment)
        return segment

    def _shared_lock(self) -> Any:
        if not _NATIVE:  # the segment is mapped by name with POSIX calls too
            raise CapabilityError("pool.Value() and pool.Array() need POSIX shared memory")
        # re-entrant, as multiprocessing's: `with v.get_lock(): v.value += 1` takes it twice
        return self.RLock()

    @staticmethod
    def _check_lock(lock: object, kind: type) -> None:
        if lock is not None and not isinstance(lock, kind):
            raise TypeError(
                "Condition(lock) on a process pool needs a lock made by a process pool's "
                f"pool.Lock() or pool.RLock(), got {type(lock).__name__}"
            )

    # -- manager-based -----------------------------------------------------------------------
    def Barrier(
        self, parties: int, action: Callable[[], object] | None, timeout: float | None
    ) -> BarrierLike:
        # the action runs in the manager process, so it must pickle (by reference)
        if action is not None:
            _check_action(action)
        return cast(BarrierLike, self._managed("Barrier", parties, action, timeout))

    def Queue(self, maxsize: int, order: Order) -> QueueLike:
        return cast(QueueLike, self._managed(order, maxsize))

    def _managed(self, typeid: str, *args: Any) -> Any:
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot create a primitive: the pool is shut down")
            if self._manager is None:
                self._manager = self._start_manager()
            manager = self._manager
        return getattr(manager, typeid)(*args)

    def _start_manager(self) -> _AnypoolManager:
        check_main_guard()  # a worker importing an unguarded script stops here
        lifeline, ours = self._ctx.Pipe(duplex=False)
        manager = _AnypoolManager(ctx=self._ctx)
        try:
            manager.start(_init_manager, (lifeline,))
            self._lifeline = ours
        except EOFError as exc:  # it died before it said where it listens
            ours.close()
            process = manager._process  # type: ignore[attr-defined]
            process.join(_MANAGER_STOP_S)
            if process.exitcode == MAIN_GUARD_EXIT:
                raise RuntimeError(MAIN_GUARD_MESSAGE) from None
            raise RuntimeError(
                f"the pool's manager process (for queues and barriers) exited with code "
                f"{process.exitcode} as it started"
            ) from exc
        finally:
            lifeline.close()  # the manager has its copy
        return manager

    def close(self) -> None:
        """Stop the manager and unlink shared memory (the objects this process holds keep
        their memory); semaphore-based primitives live on while anything holds them."""
        with self._lock:
            self._closed = True
            manager, self._manager = self._manager, None
            lifeline, self._lifeline = self._lifeline, None
            segments, self._segments = self._segments, []
        for segment in segments:
            try:
                segment.unlink()
            except FileNotFoundError:
                pass  # already gone
        if manager is None:
            return
        process = manager._process  # type: ignore[attr-defined]
        manager.shutdown()
        if lifeline is not None:
            lifeline.close()
        process.join(_MANAGER_STOP_S)
        if process.is_alive():  # pragma: no cover - shutdown() already terminates on timeout
            process.kill()
            process.join()
