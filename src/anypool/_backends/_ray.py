"""Ray backend: tasks run as Ray tasks, on a local Ray or on a cluster.

::

    Pool.submit ─► dumps_call ─► TaskQueue (fifo/lifo/priority)
                                    │ dispatcher thread: one slot per worker
                                    ▼ mark_started, _remote_fn.remote(bytes)
                     ObjectRef.future() ─done─► _finish (Ray's callback thread):
                                    loads_outcome ─► task.settle / task.fail, free the slot
    Deadlines ── timeout ──► ray.cancel(ref, force=True) ─► fail(TaskTimeout)
    Pool.kill / shutdown(kill_running=True) ─► ray.cancel(ref, force=True)

anypool keeps the queue itself and hands Ray at most ``workers`` tasks at a
time, so a task handed to Ray is running: ``cancel()`` works on queued tasks,
a timeout counts from the real start, and priorities and LIFO order hold.
The price is one hand-off per task (about 3x Ray's own rate on un-chunked tiny
tasks, measured in benchmarks/); ``map`` batches tiny tasks, which hides it.

``workers=N`` means N tasks at once. Each task reserves ``cpus_per_task`` of a
Ray CPU: 1 by default, or, when N is more than the cluster's CPUs, the
cluster's CPUs / N, so that N waiting tasks run together. Below one CPU per
task, the tasks run on threaded actors (one per cluster CPU, each with threads
for its share of N) instead of one Ray worker process per task: 200 sleeping
tasks on 2 CPUs are 2 processes x 100 threads, not 200 interpreters that Ray
would start a few at a time::

    dispatcher ─► task with a timeout or retries ─► _remote_fn (num_cpus=cpus_per_task)
               └► any other task, with up to 15 queued behind it (a slot each)
                    ─► _Runner actor .run_many([bytes, ...]): each on a thread of its pool

A task on an actor thread cannot be stopped alone (Ray cannot interrupt a thread):
``Pool.kill`` returns False for it, and ``shutdown(kill_running=True)`` kills the
actors. Tasks with ``timeout=`` or ``retries=`` stay plain Ray tasks, so they keep
those promises.

With no ``address`` the first pool starts a local Ray with one CPU per usable CPU,
listening on 127.0.0.1 only, and the last pool to shut down stops it; a Ray that
the program started itself (``ray.init``) is used as it is and left running.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import CancelledError, Future
from typing import Any

from .._errors._exceptions import PoolClosed, SerializationError, TaskTimeout
from .._local._atexit import register_for_exit
from .._local._deadlines import Deadlines, Handle
from .._local._queue import TaskQueue
from .._local._threads import start_thread
from .._runtime import usable_cpus
from .._task import Task
from .._wire._remote import dumps_call, loads_outcome, run_payload
from ..abc import Backend, BackendConfig, Capabilities

__all__ = ["RayBackend", "backend_class"]

# Typed as Any on purpose: ray's annotations are partial and change between releases,
# and mypy --strict must pass whichever one CI installs.
ray: Any = importlib.import_module("ray")

_OPTIONS = ("address", "init_kwargs", "remote_options", "cpus_per_task")

_remote_fn: Any = None
# Pools using a Ray that anypool started; the last one to shut down stops it.
_owned_users = 0
_init_lock = threading.Lock()


def _acquire_ray(config: BackendConfig) -> bool:
    """Make sure Ray is initialised; True if anypool started it (and must stop it)."""
    global _owned_users
    with _init_lock:
        if _owned_users:
            _owned_users += 1
            return True
        if ray.is_initialized():
            return False
        address = config.options.get("address")
        kwargs: dict[str, Any] = {"include_dashboard": False}
        if address is None:
            # one Ray CPU per usable CPU: workers= beyond that is met with fractions of a
            # CPU per task (see RayBackend), not with more Ray worker processes than CPUs
            kwargs["num_cpus"] = usable_cpus()
            kwargs["runtime_env"] = _local_runtime_env()
            kwargs["_node_ip_address"] = "127.0.0.1"
        kwargs.update(config.options.get("init_kwargs") or {})
        if address is None and kwargs.get("_node_ip_address") == "127.0.0.1":
            _init_on_loopback(kwargs)
        else:
            ray.init(address=address, **kwargs)
        _owned_users = 1
        return True


def _init_on_loopback(kwargs: dict[str, Any]) -> None:
    """Start a local Ray whose servers listen on 127.0.0.1 only.

    Ray binds its gRPC servers (GCS, raylet, workers) to the node address when that is a
    loopback one, and to every interface otherwise; but ``ray.init`` replaces a loopback
    ``_node_ip_address`` by the machine's outward address first (so that a one-node
    cluster can grow). A local Ray that anypool starts for one program has no reason to
    be reachable from the network, so that replacement is skipped while it starts.
    """
    services: Any = importlib.import_module("ray._private.services")
    original = getattr(services, "resolve_ip_for_localhost", None)
    if original is not None:
        services.resolve_ip_for_localhost = lambda host: host
    try:
        ray.init(**kwargs)
    finally:
        if original is not None:
            services.resolve_ip_for_localhost = original


def _local_runtime_env() -> dict[str, Any]:
    """A local Ray's workers see this program's import path, as process workers and a local
    Dask cluster's (spawned, so they inherit ``sys.path``) do: a function from a module the
    program can import unpickles on them. Ray's workers start from their own path otherwise.
    ``init_kwargs={"runtime_env": ...}`` replaces this."""
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}


def _release_ray() -> None:
    global _owned_users
    with _init_lock:
        _owned_users -= 1
        if _owned_users == 0:
            ray.shutdown()


def _remote_function(max_calls: int | None) -> Any:
    global _remote_fn
    if max_calls is not None:  # a decoration-time setting: .options() refuses it
        return ray.remote(max_calls=max_calls)(run_payload)
    if _remote_fn is None:
        _remote_fn = ray.remote(run_payload)
    return _remote_fn


class _Runner:
    """A threaded actor: runs groups of pickled calls (see _remote), each call on a thread
    of its own pool, so that a group's calls run at once and one Ray call carries many."""

    def __init__(self, threads: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="anypool-ray-actor")

    def run_many(self, payloads: list[bytes]) -> list[bytes]:
        return list(self._pool.map(run_payload, payloads))


# Most tasks in one call to an actor. Grouping saves Ray's per-call cost (~0.5 ms of the
# dispatcher's time: 2000 calls took 1.7 s for 2000 x 50 ms sleeps on 200 threads) but a
# group's results come back together, when its slowest task ends: only tasks already
# queued are grouped, and never more than this many.
_GROUP = 16


def _check_values(options: Mapping[str, Any]) -> None:
    """The values of its own options; which names it accepts, and which pool options, the
    engine checked from ``accepted_options`` and the capabilities (_backends._options)."""
    address = options.get("address")
    if address is not None and not isinstance(address, str):
        raise TypeError(
            f"address= must be a str like 'ray://host:10001' or 'auto', got {address!r}"
        )
    for name in ("init_kwargs", "remote_options"):
        if not isinstance(options.get(name) or {}, Mapping):
            raise TypeError(f"{name}= must be a dict, got {type(options[name]).__name__}")
    share = options.get("cpus_per_task")
    if share is not None and (
        isinstance(share, bool) or not isinstance(share, (int, float)) or not share > 0
    ):
        raise ValueError(
            f"cpus_per_task= must be a number of CPUs > 0 (0.05 for tasks that mostly "
            f"wait), got {share!r}"
        )


class RayBackend(Backend):
    name = "ray"
    capabilities = Capabilities(
        kills_running_tasks=True,  # ray.cancel(force=True) ends the worker process
        shares_memory=False,
        needs_pickling=True,
        isolates_crashes=True,
        parallel_cpu=True,
        remote=True,
        supports_priority=True,  # anypool's own queue orders tasks before Ray sees them
        supports_retries=True,  # onto Ray's max_retries (worker deaths only, like anypool)
        supports_timeouts=True,  # onto ray.cancel(force=True)
        # Ray runs its own workers: worker set-up goes through init_kwargs={"runtime_env": ...}
        recycles_workers=True,  # onto max_calls=
    )
    accepted_options = frozenset(_OPTIONS)

    def __init__(self, config: BackendConfig) -> None:
        _check_values(config.options)
        super().__init__(config)
        self._queue = TaskQueue(config.order)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running: dict[Task, Any] = {}
        self._on_actor: set[Task] = set()  # running on an actor thread: cannot be stopped
        self._slots = threading.Semaphore(config.workers)
        self._closed = False
        self._released = False
        self._deadlines: Deadlines | None = None
        self._owns_ray = _acquire_ray(config)
        self._cpus_per_task = self._share(config)
        self._remote_options: dict[str, Any] = {
            "num_cpus": self._cpus_per_task,
            **(config.options.get("remote_options") or {}),
        }
        self._fn = _remote_function(config.max_tasks_per_worker)
        self._actors = self._start_actors(config)
        self._next_actor = itertools.cycle(self._actors)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="anypool-ray-dispatcher", daemon=True
        )
        start_thread(self._dispatcher)
        register_for_exit(self)

    def _share(self, config: BackendConfig) -> float:
        """CPUs one task reserves: as given, or 1, or less when ``workers`` is more than
        the cluster's CPUs (then the tasks must mostly wait, or they could not run that
        many at once; a CPU's worth of them share it, as threads share a core)."""
        given = config.options.get("cpus_per_task")
        if given is not None:
            return float(given)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        if config.workers <= cpus:
            return 1.0
        return max(cpus / config.workers, 1e-4)  # Ray's resource granularity

    def _start_actors(self, config: BackendConfig) -> list[Any]:
        """Threaded actors for tasks of less than a CPU each; none for whole CPUs (or when
        each task needs a fresh worker, max_tasks_per_worker=, which actors cannot do)."""
        share = self._cpus_per_task
        if share >= 1.0 or config.max_tasks_per_worker is not None:
            return []
        per_actor = max(1, math.floor(1.0 / share))  # tasks that fill one CPU
        count = max(1, math.ceil(config.workers / per_actor))
        threads = math.ceil(config.workers / count)
        runner = ray.remote(_Runner).options(
            num_cpus=share * threads, max_concurrency=threads, max_restarts=-1
        )
        return [runner.remote(threads) for _ in range(count)]

    # -- submission -------------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        with self._lock:
            if self._closed:
                raise PoolClosed("cannot submit: the pool is shut down")
        try:
            dumps_call(
                task
            )  # pickled here, so a bad call fails at once and the dispatcher stays quick
        except SerializationError as exc:
            task.fail(exc)
            return
        self._queue.put(task)

    def _dispatch(self) -> None:
        while True:
            self._slots.acquire()
            task = self._queue.get()
            if task is None:
                break
            if not task.mark_started("ray"):
                self._slots.release()
                continue
            if self._on_actors(task):
                self._start_group(self._group(task))
            else:
                self._start(task)
        self._slots.release()
        with self._idle:
            while self._running:
                self._idle.wait()
        self._release()

    def _on_actors(self, task: Task) -> bool:
        """Runs on a threaded actor: there are actors, and nothing needs a plain Ray task
        (a timeout, to force-cancel it; retries, Ray's max_retries)."""
        return bool(self._actors) and task.timeout is None and not task.retries

    def _group(self, first: Task) -> list[Task]:
        """``first`` and the tasks queued behind it, each with a free slot of its own, up
        to _GROUP; a queued task that needs a plain Ray task is started on the way."""
        group = [first]
        while len(group) < _GROUP and self._slots.acquire(blocking=False):
            task = self._queue.get_nowait()
            if task is None or not task.mark_started("ray"):
                self._slots.release()
                if task is None:
                    break
                continue
            if self._on_actors(task):
                group.append(task)
            else:
                self._start(task)
        return group

    def _start_group(self, group: list[Task]) -> None:
        try:
            ref = next(self._next_actor).run_many.remote([dumps_call(t) for t in group])
        except BaseException as exc:
            for task in group:
                self._slots.release()
                task.fail(exc)
            return
        with self._lock:
            for task in group:
                self._running[task] = ref
                self._on_actor.add(task)
        ref.future().add_done_callback(lambda f: self._finish_group(group, f))

    def _start(self, task: Task) -> None:
        try:
            options = {**self._remote_options, "max_retries": task.retries}
            ref = self._fn.options(**options).remote(dumps_call(task))
        except BaseException as exc:
            self._slots.release()
            task.fail(exc)
            return
        handle = self._watch(task, ref) if task.timeout is not None else None
        with self._lock:
            self._running[task] = ref
        ref.future().add_done_callback(lambda f: self._finish(task, f, handle))

    def _finish(self, task: Task, future: Future[Any], handle: Handle | None) -> None:
        if handle is not None:
            handle.cancel()
        self._done(task)
        if task.future.done():
            return  # timed out or killed: its outcome is already set
        exc = future.exception()
        if exc is None:
            ok, value = loads_outcome(future.result())
            (task.settle if ok else task.fail)(value)
        else:
            task.fail(_engine_error(exc))

    def _finish_group(self, group: list[Task], future: Future[Any]) -> None:
        exc = future.exception()
        blobs = future.result() if exc is None else [None] * len(group)
        for task, blob in zip(group, blobs):
            self._done(task)
            if task.future.done():
                continue  # killed with the pool: its outcome is already set
            if exc is not None:
                task.fail(_engine_error(exc))
            else:
                ok, value = loads_outcome(blob)
                (task.settle if ok else task.fail)(value)

    def _done(self, task: Task) -> None:
        with self._idle:
            self._running.pop(task, None)
            self._on_actor.discard(task)
            self._idle.notify_all()
        self._slots.release()

    # -- timeouts and killing ---------------------------------------------------------------
    def _watch(self, task: Task, ref: Any) -> Handle:
        with self._lock:
            if self._deadlines is None:
                self._deadlines = Deadlines("anypool-ray-deadlines")
        assert task.timeout is not None
        return self._deadlines.schedule(
            time.monotonic() + task.timeout, lambda: self._expire(task, ref)
        )

    def _expire(self, task: Task, ref: Any) -> None:
        task.fail(
            TaskTimeout(
                f"task {task.fn!r} ran longer than its timeout of {task.timeout} s and was stopped"
            )
        )
        ray.cancel(ref, force=True)

    def kill(self, task: Task) -> bool:
        with self._lock:
            ref = self._running.get(task)
            threaded = task in self._on_actor
        if ref is None or threaded or task.future.done():
            return False
        task.fail(CancelledError("the task was killed by Pool.kill() while it ran"))
        ray.cancel(ref, force=True)
        return True

    # -- lifecycle --------------------------------------------------------------------------
    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
            running = list(self._running.items())
        if cancel_pending or kill_running:
            for task in self._queue.drain():
                task.cancel_pending()
        self._queue.close()
        if kill_running:
            with self._lock:
                threaded = set(self._on_actor)
            for task, ref in running:
                task.fail(
                    CancelledError(
                        "the pool was shut down with kill_running=True while this task ran"
                    )
                )
                if task not in threaded:
                    ray.cancel(ref, force=True)
            self._kill_actors()  # stops the threads' tasks with their process
        if wait and self._dispatcher is not threading.current_thread():
            self._dispatcher.join()
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
            deadlines = self._deadlines
        if deadlines is not None:
            deadlines.stop()
        self._kill_actors()
        if self._owns_ray:
            _release_ray()

    def _kill_actors(self) -> None:
        actors, self._actors = self._actors, []
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # Ray is going away already
                pass

    # -- introspection ----------------------------------------------------------------------
    def workers_alive(self) -> int:
        """CPU slots in the Ray cluster (each runs one task at a time)."""
        if self._released or not ray.is_initialized():
            return 0
        return int(ray.cluster_resources().get("CPU", 0))

    def pending(self) -> int:
        return len(self._queue)


def _engine_error(exc: BaseException) -> BaseException:
    """A Ray-level failure (not the task's own exception) as an anypool exception."""
    if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.RayActorError)):
        from .._errors._process import WorkerCrashed

        crashed = WorkerCrashed(
            "the Ray worker running this task died (killed by a signal, os._exit, a segfault "
            f"or the out-of-memory killer) and its retries are used up: {exc}"
        )
        crashed.__cause__ = exc
        return crashed
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        cancelled = CancelledError(f"Ray cancelled the task: {exc}")
        cancelled.__cause__ = exc
        return cancelled
    return exc


backend_class = RayBackend
