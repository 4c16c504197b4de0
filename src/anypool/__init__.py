"""anypool: one pool API over threads, processes, asyncio, Dask and Ray.

The public API is what this module exports; everything in underscore modules
is private. Every name but the exceptions is resolved on first use
(see ``_LAZY``), so that ``import anypool`` imports neither :mod:`multiprocessing` nor
the parts of the package a program does not use.
"""

from __future__ import annotations

import importlib

from ._exceptions import AnyPoolError as AnyPoolError
from ._exceptions import BackendUnavailable as BackendUnavailable
from ._exceptions import BrokenPool as BrokenPool
from ._exceptions import BrokenThreadPool as BrokenThreadPool
from ._exceptions import CapabilityError as CapabilityError
from ._exceptions import PoolClosed as PoolClosed
from ._exceptions import PoolFull as PoolFull
from ._exceptions import SerializationError as SerializationError
from ._exceptions import TaskTimeout as TaskTimeout

# Type checkers treat any name TYPE_CHECKING as true; importing it from typing would cost
# ``import anypool`` the whole typing module (~15 ms, a third of the import).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._aio import AwaitableFuture as AwaitableFuture
    from ._executors import ThreadPoolExecutor as ThreadPoolExecutor
    from ._map import MapIterator as MapIterator
    from ._named import TaskFunction as TaskFunction
    from ._named import pool as pool
    from ._named import task as task
    from ._named import wait as wait
    from ._named import wait_all as wait_all
    from ._pipeline import Stage as Stage
    from ._pipeline import pipeline as pipeline
    from ._pool import Pool as Pool
    from ._pool import map as map
    from ._process_errors import BrokenProcessPool as BrokenProcessPool
    from ._process_errors import TaskUnpicklingError as TaskUnpicklingError
    from ._process_errors import WorkerCrashed as WorkerCrashed
    from ._process_errors import WorkersCannotStart as WorkersCannotStart
    from ._process_executor import ProcessPoolExecutor as ProcessPoolExecutor
    from ._process_handle import Process as Process
    from ._scheduler._select import Decision as Decision
    from ._scheduler._select import Measurements as Measurements
    from ._scheduler._select import RuntimeSnapshot as RuntimeSnapshot
    from ._stats import PoolStatistics as PoolStatistics
    from ._timeline import Timeline as Timeline
    from ._timeline import TimelineEvent as TimelineEvent
    from ._timers import Periodic as Periodic

__version__ = "0.1.0"

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
    "task",
    "wait",
    "wait_all",
]

# Public names resolved on first use: ``import anypool`` costs about what
# ``import concurrent.futures`` does, and a spawned worker (which imports this package
# first) does not pay for the pool, the coordination primitives or the CLI it never uses.
# The exceptions above stay eager: they are cheap and ``except anypool.X`` must not import.
_LAZY = {
    "AwaitableFuture": "._aio",
    "ThreadPoolExecutor": "._executors",
    "MapIterator": "._map",
    "TaskFunction": "._named",
    "pool": "._named",
    "task": "._named",
    "wait": "._named",
    "wait_all": "._named",
    "Pool": "._pool",
    "Stage": "._pipeline",
    "pipeline": "._pipeline",
    "Process": "._process_handle",
    "map": "._pool",
    "BrokenProcessPool": "._process_errors",
    "WorkerCrashed": "._process_errors",
    "WorkersCannotStart": "._process_errors",
    "TaskUnpicklingError": "._process_errors",
    "ProcessPoolExecutor": "._process_executor",
    "Decision": "._scheduler._select",
    "Measurements": "._scheduler._select",
    "RuntimeSnapshot": "._scheduler._select",
    "PoolStatistics": "._stats",
    "Timeline": "._timeline",
    "TimelineEvent": "._timeline",
    "Periodic": "._timers",
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
