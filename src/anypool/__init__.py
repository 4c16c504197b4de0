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
    from ._frontends._named import pool as pool
    from ._frontends._named import task as task
    from ._frontends._named import wait as wait
    from ._frontends._named import wait_all as wait_all
    from ._frontends._pipeline import Stage as Stage
    from ._frontends._pipeline import pipeline as pipeline
    from ._frontends._process_api import Process as Process
    from ._frontends._process_executor import ProcessPoolExecutor as ProcessPoolExecutor
    from ._observe._stats import PoolStatistics as PoolStatistics
    from ._observe._timeline import Timeline as Timeline
    from ._observe._timeline import TimelineEvent as TimelineEvent
    from ._scheduler._select import Decision as Decision
    from ._scheduler._select import Measurements as Measurements
    from ._scheduler._select import RuntimeSnapshot as RuntimeSnapshot


__all__ = [
    "AnyPoolError",
    "AwaitableFuture",
    "BackendUnavailable",
    "BrokenPool",
    "BrokenProcessPool",
    "BrokenThreadPool",
    "CapabilityError",
    "Decision",
    "MapIterator",
    "Measurements",
    "Periodic",
    "Pool",
    "PoolClosed",
    "PoolFull",
    "PoolStatistics",
    "Process",
    "ProcessPoolExecutor",
    "RuntimeSnapshot",
    "SerializationError",
    "Stage",
    "StreamIterator",
    "TaskFunction",
    "TaskTimeout",
    "TaskUnpicklingError",
    "ThreadPoolExecutor",
    "Timeline",
    "TimelineEvent",
    "WorkerCrashed",
    "WorkersCannotStart",
    "map",
    "pipeline",
    "pool",
    "register_backend",
    "task",
    "wait",
    "wait_all",
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
    "pool": "._frontends._named",
    "task": "._frontends._named",
    "wait": "._frontends._named",
    "wait_all": "._frontends._named",
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
    "register_backend": "._backends",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'anypool' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
