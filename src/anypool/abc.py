"""The backend abstraction: what every anypool backend implements and declares.

A backend turns :class:`~anypool.abc.Task` objects into resolved futures. The
:class:`~anypool.Pool` engine owns everything above that line — argument
checking, chunking, the lazy ``map`` window, retries bookkeeping, statistics —
so a backend only has to *run* tasks and say, through :class:`Capabilities`,
what it can and cannot do. Callers (and ``backend="auto"``) read those flags,
never backend names::

    Pool.submit / Pool.map ──► Task ──► Backend.submit(task)
                                              │ runs it somewhere
    future.result() ◄── task.settle / task.fail ◄┘

Backends are looked up by name in :mod:`anypool._backends` and imported only
when first used, so ``import anypool`` never imports multiprocessing, Dask or Ray.
A third party's joins them through :func:`anypool.register_backend` or the
``anypool.backends`` entry-point group; ``Pool()`` checks its options against the
flags (and ``Backend.accepted_options``) before building it, so a backend never sees
an option it did not declare it honours (docs/design.md, "Backend contract").
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ._task import ChunkResult, Task

__all__ = ["Backend", "BackendConfig", "Capabilities", "ChunkResult", "Order", "Task"]

Order = Literal["fifo", "lifo", "priority"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the engine and ``backend="auto"`` decide from these flags."""

    kills_running_tasks: bool
    """A running task can be stopped (timeouts and ``Pool.kill`` really stop it)."""
    shares_memory: bool
    """Tasks run in the caller's process and see its objects (no copies)."""
    needs_pickling: bool
    """Functions, arguments and results cross a process boundary."""
    isolates_crashes: bool
    """A task that crashes its worker (segfault, ``os._exit``) fails only itself."""
    parallel_cpu: bool
    """Pure-Python CPU-bound tasks run in parallel (false for threads under the GIL)."""
    remote: bool = False
    """Workers may live on other machines."""
    supports_priority: bool = True
    """``priority=`` is honoured."""
    supports_retries: bool = True
    """``retries=`` re-runs a task whose worker died."""
    supports_timeouts: bool = True
    """``timeout=`` is honoured (stopping or abandoning the task, see kills_running_tasks).
    A backend that leaves it True must enforce ``task.timeout`` itself (fail the task with
    ``anypool.TaskTimeout`` once it has run that long); set it False to have the engine
    refuse ``timeout=`` with a ``CapabilityError`` instead."""
    runs_in_caller: bool = False
    """Tasks run synchronously in the submitting thread (``submit`` returns a finished future)."""
    # The per-worker options below are refused (CapabilityError) by a backend whose flag is
    # false: a third-party backend gets none of them until it says it honours them.
    runs_initializer: bool = False
    """``initializer=``/``initargs=`` run once in every worker before its first task."""
    has_start_methods: bool = False
    """``start_method=`` ("fork", "forkserver", "spawn") chooses how worker processes start."""
    recycles_workers: bool = False
    """``max_tasks_per_worker=`` replaces a worker after that many tasks."""
    limits_worker_memory: bool = False
    """``max_worker_memory=`` replaces a worker whose memory grows past that many bytes."""
    names_threads: bool = False
    """``thread_name_prefix=`` names the threads that run the tasks."""
    awaits_coroutines: bool = False
    """A coroutine function's tasks are awaited on the backend's own event loop; otherwise
    the engine runs each on a loop in the worker."""


@dataclass(frozen=True)
class BackendConfig:
    """The pool options a backend receives; backend-specific ones sit in ``options``."""

    workers: int
    order: Order = "fifo"
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    start_method: str | None = None
    max_tasks_per_worker: int | None = None
    max_worker_memory: int | None = None
    thread_name_prefix: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    workers_given: bool = True
    """False when ``workers`` came from ``default_workers()``: a backend attached to an
    existing cluster then sizes itself from the cluster instead."""


class Backend(abc.ABC):
    """Runs tasks. One instance per pool; thread-safe ``submit``.

    A subclass sets ``name`` and ``capabilities`` and implements the three abstract
    methods; every other method the engine calls has a default here. The engine checks
    the pool's options against ``capabilities`` and ``accepted_options`` before the
    backend is built, so ``__init__`` only sees options it declared it honours.
    Register one with :func:`anypool.register_backend` or the ``anypool.backends``
    entry-point group.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    accepted_options: ClassVar[frozenset[str]] = frozenset()
    """The backend-specific ``Pool(**backend_options)`` names it reads (in
    ``config.options``); any other name raises ``TypeError`` before it is built."""
    is_router: ClassVar[bool] = False
    """A router (``backend="auto"``) picks a backend for each task function and takes
    ``prefer=``/``require=`` as its settings; any other backend refuses ``prefer=`` and
    must meet ``require=`` with its own capabilities."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        #: Set once the backend can no longer run work; submit raises it.
        self.broken: BaseException | None = None

    @classmethod
    def default_workers(cls) -> int:
        """How many workers a pool gets when ``workers=None``."""
        from ._runtime import usable_cpus

        return usable_cpus()

    @abc.abstractmethod
    def submit(self, task: Task) -> None:
        """Schedule ``task``; it must eventually settle, fail or cancel ``task.future``."""

    @abc.abstractmethod
    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        """Stop accepting work; optionally cancel queued tasks and stop running ones."""

    @abc.abstractmethod
    def workers_alive(self) -> int:
        """Workers currently alive (started and not exited)."""

    def pending(self) -> int:
        """Tasks accepted but not yet started; 0 when the backend cannot tell."""
        return 0

    def worker_pids(self) -> list[int]:
        """OS process ids of the live worker processes this backend started; empty when its
        workers are threads of this process or processes an engine (Dask, Ray) owns."""
        return []

    def worker_restarts(self) -> int:
        """Workers replaced so far (after a crash, a timeout or recycling); 0 for backends
        whose workers are never replaced by anypool (the engine may still do it)."""
        return 0

    def kill(self, task: Task) -> bool:
        """Stop ``task`` if it is running; True if it was stopped. Default: cannot."""
        return False

    def resize(self, workers: int) -> None:
        """Change the number of workers at run time."""
        raise NotImplementedError(f"the {self.name} backend cannot be resized")

    def workers_for(self, fn: Callable[..., Any]) -> int:
        """Workers that run ``fn``'s tasks (``Pool.map`` sizes its chunks and read-ahead
        from it). Default: the pool's; a router answers per function."""
        return self.config.workers

    def primitives(self) -> Any:
        """The coordination primitives (``pool.Lock()`` and friends) that work between
        this backend's workers, or None (the default) to have them picked from the
        capability flags: thread ones for ``shares_memory``, process ones for a local
        backend that ``needs_pickling``."""
        return None

    def current_backend(self) -> Backend:
        """The backend whose workers run the tasks now: this one, or for a router the
        one it chose last (statistics and timelines report its name)."""
        return self

    def decision(self) -> Any:
        """An :class:`anypool.Decision` saying which backend runs the tasks and why, for
        ``Pool.explain()``; None (the default) when the caller named this backend."""
        return None
