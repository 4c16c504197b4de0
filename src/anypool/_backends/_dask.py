"""Dask backend: tasks run on a ``distributed`` cluster through a Dask ``Client``.

::

    Pool.submit ─► Task ─► dumps_call ─► TaskQueue (fifo/lifo/priority)
      dispatcher thread: every task queued so far (or one per free slot, see below)
        ─► client.map(_run_on_dask, topics, keys, bytes, retries=, priority=)
                                           │ scheduler ─► a worker thread
                      task.mark_started ◄──┤ log_event(topic, key) ─► IO loop handler
                                           ▼ run_payload ─► bytes
    collector thread ◄─ as_completed ◄─────┘
      gather a batch, loads_outcome ─► task.settle / task.fail
    future.cancel() before the start event ─► client.cancel(dask future)

Three ways to reach a cluster (``Pool`` keyword options): none, which starts a
local cluster and closes it at shutdown (unless Dask's own ``DASK_SCHEDULER_ADDRESS``
setting names a scheduler, which is then used as ``distributed.Client()`` would);
``address="tcp://host:port"``, which connects to a running scheduler;
``client=``, an existing ``distributed.Client`` that anypool uses and never closes.

The local cluster listens on 127.0.0.1 only, and ``workers=N`` means N tasks at
once there too: at most one worker process per usable CPU, each with threads for
its share of N, so ``workers=200`` on 2 CPUs is 2 processes x 100 threads, not 200
interpreters (which took minutes to start on a 2-core machine).

On a cluster anypool did not start, an explicit ``workers=N`` caps the pool at N
running tasks: anypool's own queue (fifo/lifo/priority) holds the rest and a
dispatcher thread hands one over per free slot, so a pool behaves the same on a
shared cluster as on a local one. Without ``workers=`` the pool takes the
cluster's size and hands everything to Dask at once.

A worker announces each start with ``log_event``, so futures go RUNNING when
the task really starts: ``cancel()`` works until then, as with local pools.
Dask cannot stop a running task, so ``timeout=`` raises CapabilityError and a
killed or abandoned task keeps running on its worker, its result discarded.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import re
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import CancelledError
from typing import Any

from .._errors._exceptions import BrokenPool, PoolClosed, SerializationError, fresh_copy
from .._local._atexit import register_for_exit
from .._local._queue import TaskQueue
from .._local._threads import start_thread
from .._runtime import usable_cpus
from .._task import Task
from .._wire._remote import dumps_call, loads_outcome, run_payload
from ..abc import Backend, BackendConfig, Capabilities

__all__ = ["DaskBackend", "backend_class"]

# Typed as Any on purpose: distributed's annotations are partial and change between
# releases, and mypy --strict must pass whichever one CI installs.
distributed: Any = importlib.import_module("distributed")

_OPTIONS = ("address", "client", "cluster_kwargs")
# Most tasks handed to Dask in one Client.map by the dispatcher.
_MAX_BATCH = 1024
# How long closing a client or local cluster may take before anypool gives up on it.
_CLOSE_TIMEOUT_S = 10


def _run_on_dask(topic: str, key: str, payload: bytes) -> bytes:
    """What a Dask worker runs: announce the start, then run the call (see _remote)."""
    distributed.get_worker().log_event(topic, {"key": key})
    return run_payload(payload)


def _key(task: Task) -> str:
    # Dask groups keys by the part before the last '-hex' in its dashboard: name them by function
    name = re.sub(r"[^\w.]", "_", getattr(task.fn, "__name__", "task"))
    return f"{name}{'-chunk' if task.chunk else ''}-{uuid.uuid4().hex}"


def _check_values(options: Mapping[str, Any]) -> None:
    """The values of its own options; which names it accepts, and which pool options, the
    engine checked from ``accepted_options`` and the capabilities (_backends._options)."""
    if options.get("address") is not None and options.get("client") is not None:
        raise ValueError("pass address= or client= to the dask backend, not both")
    client = options.get("client")
    if client is not None and not isinstance(client, distributed.Client):
        raise TypeError(f"client= must be a distributed.Client, got {type(client).__name__}")
    address = options.get("address")
    if address is not None and not isinstance(address, str):
        raise TypeError(f"address= must be a str like 'tcp://host:8786', got {address!r}")
    if options.get("cluster_kwargs") and (address is not None or client is not None):
        raise ValueError("cluster_kwargs= only applies to the local cluster (no address/client)")


def _configured_address(options: Mapping[str, Any]) -> str | None:
    """Dask's own ``scheduler-address`` setting (``DASK_SCHEDULER_ADDRESS``), as ``Client()``
    honours it; ignored when the caller asked for a configured local cluster."""
    if options.get("cluster_kwargs"):
        return None
    import dask.config

    address = dask.config.get("scheduler-address", None)
    return str(address) if address else None


class _InitializerPlugin(distributed.WorkerPlugin):  # type: ignore[misc]
    """Runs the pool's ``initializer(*initargs)`` on every worker, present and future."""

    def __init__(self, initializer: Any, initargs: tuple[Any, ...]) -> None:
        self.initializer = initializer
        self.initargs = initargs

    def setup(self, worker: Any) -> None:
        self.initializer(*self.initargs)


class DaskBackend(Backend):
    name = "dask"
    capabilities = Capabilities(
        kills_running_tasks=False,  # Dask has no way to interrupt a task on a worker
        shares_memory=False,
        needs_pickling=True,
        isolates_crashes=True,  # a dead worker's tasks are rescheduled elsewhere
        parallel_cpu=True,
        remote=True,
        supports_priority=True,  # onto Dask's priority=
        supports_retries=True,  # onto Dask's retries=
        supports_timeouts=False,  # a timeout could not stop the task
        runs_initializer=True,  # a worker plugin, on present and future workers
    )
    accepted_options = frozenset(_OPTIONS)

    def __init__(self, config: BackendConfig) -> None:
        _check_values(config.options)
        super().__init__(config)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._tasks: dict[str, Task] = {}  # key -> task, until its outcome is delivered
        self._futures: dict[str, Any] = {}
        self._tracked = 0  # dask futures added to the as_completed and not yet collected
        self._closed = False
        self._released = False
        self._topic = f"anypool-started-{uuid.uuid4().hex}"
        self._plugin: str | None = None
        self._cluster: Any = None
        self._client, self._owns_client = self._connect(config)
        self._client.subscribe_topic(self._topic, self._on_started)
        self._completed = distributed.as_completed([], loop=self._client.loop)
        if config.initializer is not None:
            self._install_initializer(config)
        self._queue = TaskQueue(config.order)
        self._slots: threading.Semaphore | None = None
        if self._cluster is None:
            self._share_cluster(config)
        self._dispatcher: threading.Thread | None = self._thread(self._dispatch, "dispatcher")
        self._collector = self._thread(self._collect, "collector")
        register_for_exit(self)

    def _thread(self, target: Any, role: str) -> threading.Thread:
        name = f"anypool-dask-{role}-{self._topic[-8:]}"
        thread = threading.Thread(target=target, name=name, daemon=True)
        start_thread(thread)
        return thread

    def _share_cluster(self, config: BackendConfig) -> None:
        """On a cluster anypool did not start, ``workers=N`` caps this pool at N running
        tasks (anypool's own queue holds the rest, so cancel, order and the contract's
        "N workers" hold); without it the pool sizes itself from the cluster."""
        if not config.workers_given:
            threads = sum(self._client.nthreads().values())
            self.config = dataclasses.replace(config, workers=max(1, threads))
            return
        self._slots = threading.Semaphore(config.workers)

    # -- connecting -------------------------------------------------------------------------
    def _connect(self, config: BackendConfig) -> tuple[Any, bool]:
        options = config.options
        if options.get("client") is not None:
            return options["client"], False
        address = options.get("address") or _configured_address(options)
        if address is not None:
            return distributed.Client(address, set_as_default=False), True
        processes, threads = local_layout(config.workers)
        cluster_kwargs = {
            "n_workers": processes,
            "threads_per_worker": threads,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
            "worker_dashboard_address": None,
            # the scheduler serves /health and /metrics even without a dashboard, by default
            # on :8787 of every interface: keep it off that port (a user's dashboard) and local
            "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            **(options.get("cluster_kwargs") or {}),
        }
        self._cluster = distributed.LocalCluster(**cluster_kwargs)
        try:
            return distributed.Client(self._cluster, set_as_default=False), True
        except BaseException:
            self._cluster.close()
            raise

    def _install_initializer(self, config: BackendConfig) -> None:
        name = f"anypool-initializer-{self._topic[-32:]}"
        try:
            self._client.register_plugin(
                _InitializerPlugin(config.initializer, config.initargs), name=name
            )
        except Exception as exc:
            self.broken = BrokenPool(f"the initializer failed on a Dask worker: {exc!r}")
            self.broken.__cause__ = exc
            return
        self._plugin = name

    # -- submission -------------------------------------------------------------------------
    def _priority(self, task: Task) -> float:
        # anypool: smaller priority runs first (queue.PriorityQueue); Dask: larger runs first
        if self.config.order == "priority":
            return -task.priority
        if self.config.order == "lifo":
            return task.seq
        return 0

    def submit(self, task: Task) -> None:
        with self._lock:
            if self.broken is not None:
                raise fresh_copy(self.broken)
            if self._closed:
                raise PoolClosed("cannot submit: the pool is shut down")
        try:
            dumps_call(task)
        except SerializationError as exc:  # fails this one future, as on every backend
            task.fail(exc)
            return
        self._queue.put(task)

    def _dispatch(self) -> None:
        """Hand queued tasks to Dask: one per free slot in a pool capped by ``workers=`` on
        a shared cluster, else every task queued so far in one batch (one graph update for
        the scheduler instead of one per task: Dask's per-task cost is mostly per update)."""
        queue, slots = self._queue, self._slots
        while True:
            if slots is not None:
                slots.acquire()
            task = queue.get()
            if task is None:
                if slots is not None:
                    slots.release()
                break
            batch = [task]
            while slots is None and len(batch) < _MAX_BATCH:
                more = queue.get_nowait()
                if more is None:
                    break
                batch.append(more)
            live = [t for t in batch if not t.future.cancelled()]
            if slots is not None and not live:
                slots.release()
            if live:
                self._send(live)
        with self._wake:
            self._dispatcher = None  # the collector may finish once nothing else can come
            self._wake.notify_all()

    def _send(self, tasks: list[Task]) -> None:
        """Submit ``tasks`` to Dask, one ``Client.map`` per group of equal options."""
        groups: dict[tuple[int, float], list[Task]] = {}
        for task in tasks:
            groups.setdefault((task.retries, self._priority(task)), []).append(task)
        for (retries, priority), group in groups.items():
            keys = [_key(task) for task in group]
            with self._lock:  # before submitting: the start event may beat client.map
                self._tasks.update(zip(keys, group))
            futures = self._client.map(
                _run_on_dask,
                [self._topic] * len(group),
                keys,
                [dumps_call(task) for task in group],  # cached on each task by submit()
                key=keys,
                pure=False,
                retries=retries or None,
                priority=priority,
            )
            with self._wake:
                for key, future in zip(keys, futures):
                    self._futures[key] = future
                    self._completed.add(future)
                self._tracked += len(futures)
                self._wake.notify_all()
            for key, task in zip(keys, group):
                task.future.add_done_callback(functools.partial(self._cancel_if_cancelled, key))

    def _cancel_if_cancelled(self, key: str, cf_future: Any) -> None:
        if not cf_future.cancelled():
            return
        with self._lock:
            future = self._futures.get(key)
        if future is not None:
            self._cancel_dask([future])

    def _cancel_dask(self, futures: list[Any]) -> None:
        # never block: this can run on any thread, the client's IO loop included
        self._client.loop.add_callback(self._client.cancel, futures, asynchronous=True)

    def _on_started(self, event: tuple[float, Any]) -> None:
        """IO-loop handler of a worker's start event: the future goes RUNNING."""
        msg = event[1]
        with self._lock:
            task = self._tasks.get(msg["key"])
            if task is not None and not task.future.done():
                task.mark_started(str(msg.get("worker", "dask")))

    # -- collecting outcomes ----------------------------------------------------------------
    def _collect(self) -> None:
        while True:
            with self._wake:
                while not self._tracked and not (self._closed and self._dispatcher is None):
                    self._wake.wait()
                if not self._tracked:
                    break
            for batch in self._completed.batches():
                self._deliver(batch)
        self._release()

    def _deliver(self, batch: list[Any]) -> None:
        finished = [f for f in batch if f.status == "finished"]
        try:
            blobs = self._client.gather(finished) if finished else []
        except Exception:  # one lost result must not take the batch with it
            blobs = [self._gather_one(f) for f in finished]
        outcomes = dict(zip((f.key for f in finished), blobs))
        for future in batch:
            with self._lock:
                self._tracked -= 1
                task = self._tasks.pop(future.key, None)
                self._futures.pop(future.key, None)
            if task is not None:
                self._resolve(task, future, outcomes.get(future.key))
            if self._slots is not None:
                self._slots.release()

    def _gather_one(self, future: Any) -> Any:
        try:
            return future.result()
        except BaseException as exc:
            return exc

    def _resolve(self, task: Task, future: Any, blob: Any) -> None:
        if task.attempts == 0 and not task.mark_started("dask"):
            return  # cancelled before it started: nothing to deliver
        if isinstance(blob, bytes):
            ok, value = loads_outcome(blob)
            (task.settle if ok else task.fail)(value)
        elif future.status == "error":
            task.fail(_engine_error(future))
        elif isinstance(blob, BaseException):
            task.fail(blob)
        else:
            task.fail(CancelledError(f"Dask cancelled the task (status {future.status!r})"))

    # -- lifecycle --------------------------------------------------------------------------
    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
            tasks = list(self._tasks.items())
            self._wake.notify_all()
        if cancel_pending or kill_running:
            queued = self._queue.drain()
            for task in queued + [task for _, task in tasks]:
                if task.attempts == 0:  # not started on a worker yet
                    task.cancel_pending()
        self._queue.close()
        if kill_running:
            self._abandon([(key, task) for key, task in tasks if task.attempts > 0])
        if wait and self._collector is not threading.current_thread():
            dispatcher = self._dispatcher
            if dispatcher is not None:
                dispatcher.join()
            self._collector.join()
            self._release()

    def _abandon(self, running: list[tuple[str, Task]]) -> None:
        for _, task in running:
            task.fail(
                CancelledError(
                    "the pool was shut down with kill_running=True while this task ran; Dask "
                    "cannot stop a running task, so it was abandoned (its result is discarded)"
                )
            )
        with self._lock:
            futures = [self._futures[key] for key, _ in running if key in self._futures]
        if futures:
            self._cancel_dask(futures)

    def _release(self) -> None:
        """Give back what this pool took from the cluster; idempotent."""
        with self._lock:
            if self._released:
                return
            self._released = True
        try:
            self._client.unsubscribe_topic(self._topic)
            if self._plugin is not None:
                self._client.unregister_worker_plugin(self._plugin)
        except Exception:  # the cluster may be gone already; nothing left to give back
            pass
        if self._owns_client:
            self._client.close(timeout=_CLOSE_TIMEOUT_S)
        if self._cluster is not None:
            self._cluster.close(timeout=_CLOSE_TIMEOUT_S)

    # -- introspection and control ----------------------------------------------------------
    def workers_alive(self) -> int:
        """Worker threads the scheduler knows (each runs one task at a time)."""
        if self._released:
            return 0
        try:
            return sum(self._client.nthreads().values())
        except Exception:
            return 0

    def pending(self) -> int:
        queued = len(self._queue)
        with self._lock:
            return queued + sum(1 for task in self._tasks.values() if task.attempts == 0)

    def resize(self, workers: int) -> None:
        if self._cluster is None:
            raise NotImplementedError(
                "only a local Dask cluster started by anypool can be resized; "
                "scale a remote cluster with its own tools"
            )
        threads = _threads_per_worker(self._cluster)
        self._cluster.scale(max(1, math.ceil(workers / threads)))
        self.config = dataclasses.replace(self.config, workers=workers)

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` this pool submits through."""
        return self._client

    def primitives(self) -> Any:
        """The hook ``pool.Lock()``, ``Semaphore()``, ``Event()``, ``Queue()`` use: objects of
        ``distributed`` that tasks take as arguments to coordinate across the cluster."""
        from .._sync._dask import DaskPrimitives

        return DaskPrimitives(self._client)


def local_layout(workers: int) -> tuple[int, int]:
    """Worker processes and threads per process for ``workers`` tasks at once on a local
    cluster: a process per usable CPU at most (more would only take turns on the CPUs and
    each costs an interpreter and seconds to start), threads for the rest (tasks that
    wait overlap on threads, as on the thread backend)."""
    processes = max(1, min(workers, usable_cpus()))
    return processes, math.ceil(workers / processes)


def _threads_per_worker(cluster: Any) -> int:
    spec: Any = next(iter(cluster.worker_spec.values()), {})
    return max(1, int(spec.get("options", {}).get("nthreads", 1)))


def _engine_error(future: Any) -> BaseException:
    """A Dask-level failure (not the task's own exception) as an anypool exception."""
    exc = future.exception()
    if isinstance(exc, distributed.KilledWorker):
        from .._errors._process import WorkerCrashed

        error = WorkerCrashed(
            f"the Dask workers running this task kept dying ({exc}); Dask gave up on it. "
            "Likely causes: the task crashes its process (segfault, os._exit) or runs "
            "out of memory"
        )
        error.__cause__ = exc
        return error
    return exc if isinstance(exc, BaseException) else BrokenPool(f"Dask failed the task: {exc!r}")


backend_class = DaskBackend
