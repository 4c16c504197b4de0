"""anypool: one pool API over threads, processes, asyncio, Dask and Ray.

The public API is what this module exports; everything in underscore modules
is private. Every name but the exceptions is resolved on first use
(see ``_LAZY``), so that ``import anypool`` imports neither :mod:`multiprocessing` nor
the parts of the package a program does not use.
"""

from __future__ import annotations

import importlib

from ._errors._exceptions import AnyPoolError as AnyPoolError
from ._errors._exceptions import BackendUnavailable as BackendUnavailable
from ._errors._exceptions import BrokenPool as BrokenPool
from ._errors._exceptions import BrokenThreadPool as BrokenThreadPool
from ._errors._exceptions import CapabilityError as CapabilityError
from ._errors._exceptions import PoolClosed as PoolClosed
from ._errors._exceptions import PoolFull as PoolFull
from ._errors._exceptions import SerializationError as SerializationError
from ._errors._exceptions import TaskTimeout as TaskTimeout
from ._version import __version__ as __version__

# Type checkers treat any name TYPE_CHECKING as true; importing it from typing would cost
# ``import anypool`` the whole typing module (~15 ms, a third of the import).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._backends import register_backend as register_backend
    from ._core._aio import AwaitableFuture as AwaitableFuture
    from ._core._decorators import TaskFunction as TaskFunction
    from ._core._map import MapIterator as MapIterator
    from ._core._pool import Pool as Pool
    from ._core._pool import map as map
    from ._core._stream import StreamIterator as StreamIterator
    from ._core._timers import Periodic as Periodic
    from ._errors._process import BrokenProcessPool as BrokenProcessPool
    from ._errors._process import TaskUnpicklingError as TaskUnpicklingError
    from ._errors._process import WorkerCrashed as WorkerCrashed
    from ._errors._process import WorkersCannotStart as WorkersCannotStart
    from ._frontends._executors import ThreadPoolExecutor as ThreadPoolExecutor
    from ._frontends._named import join_all_named as join_all_named
    from ._frontends._named import join_named as join_named
    from ._frontends._named import named_pool as named_pool
    from ._frontends._named import task as task
    from ._frontends._pipeline import Stage as Stage
    from ._frontends._pipeline import pipeline as pipeline
    from ._frontends._process_api import Process as Process
    from ._frontends._process_executor import ProcessPoolExecutor as ProcessPoolExecutor
    from ._observe._stats import PoolStatistics as PoolStatistics
    from ._observe._timeline import Timeline as Timeline
    from ._observe._timeline import TimelineEvent as TimelineEvent
    from ._scheduler._select import Candidate as Candidate
    from ._scheduler._select import Decision as Decision
    from ._scheduler._select import Estimate as Estimate
    from ._scheduler._select import Measurements as Measurements
    from ._scheduler._select import RuntimeSnapshot as RuntimeSnapshot
    from ._sync._base import ArrayLike as ArrayLike
    from ._sync._base import BarrierLike as BarrierLike
    from ._sync._base import CharArrayLike as CharArrayLike
    from ._sync._base import ConditionLike as ConditionLike
    from ._sync._base import EventLike as EventLike
    from ._sync._base import LockLike as LockLike
    from ._sync._base import QueueLike as QueueLike
    from ._sync._base import SemaphoreLike as SemaphoreLike
    from ._sync._base import ValueLike as ValueLike
    from ._wire._pickle import RemoteTraceback as RemoteTraceback


__all__ = [
    "AnyPoolError",
    "ArrayLike",
    "AwaitableFuture",
    "BackendUnavailable",
    "BarrierLike",
    "BrokenPool",
    "BrokenProcessPool",
    "BrokenThreadPool",
    "Candidate",
    "CapabilityError",
    "CharArrayLike",
    "ConditionLike",
    "Decision",
    "Estimate",
    "EventLike",
    "LockLike",
    "MapIterator",
    "Measurements",
    "Periodic",
    "Pool",
    "PoolClosed",
    "PoolFull",
    "PoolStatistics",
    "Process",
    "ProcessPoolExecutor",
    "QueueLike",
    "RemoteTraceback",
    "RuntimeSnapshot",
    "SemaphoreLike",
    "SerializationError",
    "Stage",
    "StreamIterator",
    "TaskFunction",
    "TaskTimeout",
    "TaskUnpicklingError",
    "ThreadPoolExecutor",
    "Timeline",
    "TimelineEvent",
    "ValueLike",
    "WorkerCrashed",
    "WorkersCannotStart",
    "join_all_named",
    "join_named",
    "map",
    "named_pool",
    "pipeline",
    "register_backend",
    "task",
]

# Public names resolved on first use: ``import anypool`` costs about what
# ``import concurrent.futures`` does, and a spawned worker (which imports this package
# first) does not pay for the pool, the coordination primitives or the CLI it never uses.
# The exceptions above stay eager: they are cheap and ``except anypool.X`` must not import.
_LAZY = {
    "AwaitableFuture": "._core._aio",
    "ThreadPoolExecutor": "._frontends._executors",
    "MapIterator": "._core._map",
    "TaskFunction": "._core._decorators",
    "named_pool": "._frontends._named",
    "task": "._frontends._named",
    "join_named": "._frontends._named",
    "join_all_named": "._frontends._named",
    "Pool": "._core._pool",
    "Stage": "._frontends._pipeline",
    "pipeline": "._frontends._pipeline",
    "Process": "._frontends._process_api",
    "map": "._core._pool",
    "BrokenProcessPool": "._errors._process",
    "WorkerCrashed": "._errors._process",
    "WorkersCannotStart": "._errors._process",
    "TaskUnpicklingError": "._errors._process",
    "ProcessPoolExecutor": "._frontends._process_executor",
    "Decision": "._scheduler._select",
    "Measurements": "._scheduler._select",
    "RuntimeSnapshot": "._scheduler._select",
    "PoolStatistics": "._observe._stats",
    "Timeline": "._observe._timeline",
    "TimelineEvent": "._observe._timeline",
    "Periodic": "._core._timers",
    "StreamIterator": "._core._stream",
    "RemoteTraceback": "._wire._pickle",
    "Estimate": "._scheduler._select",
    "Candidate": "._scheduler._select",
    "ValueLike": "._sync._base",
    "SemaphoreLike": "._sync._base",
    "QueueLike": "._sync._base",
    "LockLike": "._sync._base",
    "EventLike": "._sync._base",
    "ConditionLike": "._sync._base",
    "BarrierLike": "._sync._base",
    "ArrayLike": "._sync._base",
    "CharArrayLike": "._sync._base",
    "register_backend": "._backends",
}

# Names settled before the first release (CHANGELOG.md): the old ones say where they went.
_RENAMED = {"pool": "named_pool", "wait": "join_named", "wait_all": "join_all_named"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        renamed = _RENAMED.get(name)
        hint = f"; it was renamed anypool.{renamed} (see CHANGELOG.md)" if renamed else ""
        raise AttributeError(f"module 'anypool' has no attribute {name!r}{hint}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
