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

``pool.stream(gen_fn)`` runs on Ray's own streaming generators (``num_returns="streaming"``);
``stream_channel`` is the hook anypool._core._stream calls (not part of abc.Backend: its
channel protocol is _core's private one)::

    caller: RayStream ◄── batches (ObjectRefGenerator) ◄── Ray task run_stream
      take: next(gen), ray.get              first [] (started), item batches, last _Outcome
      stop: ray.cancel(gen) ─► GeneratorExit in run_stream ─► drive_stream stops its thread,
            which closes gen_fn's generator (its finally runs) before the task ends
    Ray pauses run_stream at a yield while ``objects`` batches are unconsumed
    (_generator_backpressure_num_objects); drive_stream, on a thread beside it, runs at
    most one batch ahead of it: a slow generator's items are yielded within _TICK_S.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import CancelledError, Future
from typing import Any

from .._errors._exceptions import PoolClosed, SerializationError, TaskTimeout
from .._local._atexit import register_for_exit
from .._local._deadlines import Deadlines, Handle
from .._local._queue import TaskQueue
from .._local._threads import start_thread
from .._runtime import usable_cpus
from .._task import Task, overran
from .._wire._pickle import cloudpickle_dumps, split_at_unpicklable, wrap_exception
from .._wire._remote import dumps_call, loads_outcome, run_payload
from ..abc import Backend, BackendConfig, Capabilities

__all__ = ["RayBackend", "RayStream", "backend_class", "run_stream"]

# Typed as Any on purpose: ray's annotations are partial and change between releases,
# and mypy --strict must pass whichever one CI installs.
ray: Any = importlib.import_module("ray")

_OPTIONS = ("address", "init_kwargs", "remote_options", "cpus_per_task")

_remote_fn: Any = None
_stream_fn: Any = None
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


def _stream_function(max_calls: int | None) -> Any:
    global _stream_fn
    if max_calls is not None:
        return ray.remote(max_calls=max_calls)(run_stream)
    if _stream_fn is None:
        _stream_fn = ray.remote(run_stream)
    return _stream_fn


class _Runner:
    """A threaded actor: runs groups of pickled calls (see _remote), each call on a thread
    of its own pool, so that a group's calls run at once and one Ray call carries many."""

    def __init__(self, threads: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="anypool-ray-actor")

    def run_many(self, payloads: list[bytes]) -> list[bytes]:
        return list(self._pool.map(run_payload, payloads))

    def ping(self) -> None:
        """Answers once this incarnation of the actor is up (see RayBackend._revive)."""


# Most tasks in one call to an actor. Grouping saves Ray's per-call cost (~0.5 ms of the
# dispatcher's time: 2000 calls took 1.7 s for 2000 x 50 ms sleeps on 200 threads) but a
# group's results come back together, when its slowest task ends: only tasks already
# queued are grouped, and never more than this many.
_GROUP = 16
# A downed actor is pinged with this timeout, and again after this pause when the ping fails.
_PING_S = 5.0
_PING_PAUSE_S = 0.05


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
        self._next_actor = itertools.cycle(range(len(self._actors)))
        # Actors seen dead (a call failed with RayActorError) and not yet answering again:
        # no work goes to them until Ray has restarted them (see _suspect).
        self._down: set[int] = set()
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
        return (
            len(self._down) < len(self._actors)
            and task.timeout is None
            and not task.retries
            and not _is_stream(task)
        )

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
        index = self._pick_actor()
        if index is None:  # every actor went down since _on_actors: plain Ray tasks
            for task in group:
                self._start(task)
            return
        try:
            ref = self._actors[index].run_many.remote([dumps_call(t) for t in group])
        except BaseException as exc:
            for task in group:
                self._slots.release()
                task.fail(exc)
            return
        with self._lock:
            for task in group:
                self._running[task] = ref
                self._on_actor.add(task)
        ref.future().add_done_callback(lambda f: self._finish_group(group, f, index))

    def _pick_actor(self) -> int | None:
        """The next actor in turn that is up; None if none is."""
        with self._lock:
            for _ in range(len(self._actors)):
                index = next(self._next_actor)
                if index not in self._down:
                    return index
        return None

    def _start(self, task: Task) -> None:
        if _is_stream(task):
            self._start_stream(task, task.args[0].stream)
            return
        options = {**self._remote_options, "max_retries": task.retries}
        launched = self._launch(task, lambda: self._fn.options(**options).remote(dumps_call(task)))
        if launched is not None:
            ref, handle = launched
            ref.future().add_done_callback(lambda f: self._finish(task, f, handle))

    def _launch(self, task: Task, remote: Callable[[], Any]) -> tuple[Any, Handle | None] | None:
        """Hand ``task`` to Ray (``remote()``), watch its timeout and count it running;
        None if Ray refused it (the task failed and its slot is free again)."""
        try:
            ref = remote()
        except BaseException as exc:
            self._slots.release()
            task.fail(exc)
            return None
        handle = self._watch(task, ref) if task.timeout is not None else None
        with self._lock:
            self._running[task] = ref
        return ref, handle

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

    def _start_stream(self, task: Task, stream: RayStream) -> None:
        options = {
            **self._remote_options,
            "num_returns": "streaming",
            "_generator_backpressure_num_objects": stream.objects,
            "max_retries": 0,  # a re-run would deliver the items before the crash twice
        }

        def remote() -> Any:
            fn = _stream_function(self.config.max_tasks_per_worker)
            return fn.options(**options).remote(dumps_call(task), stream.end.token, stream.batch)

        launched = self._launch(task, remote)
        if launched is None:
            return
        gen, handle = launched
        stream.attach(task, gen)
        gen.completed().future().add_done_callback(
            lambda f: self._finish_stream(task, stream, f, handle)
        )

    def _finish_stream(
        self, task: Task, stream: RayStream, future: Future[Any], handle: Handle | None
    ) -> None:
        if handle is not None:
            handle.cancel()
        self._done(task)
        exc = future.exception()
        stream.ended(None if exc is None else _engine_error(exc))

    def stream_channel(self, buffer: int) -> RayStream:
        """``pool.stream``'s hook (anypool._core._stream): the caller's end of a stream whose
        ``end`` is the stream task's first argument; this backend runs such a task as a Ray
        streaming generator."""
        return RayStream(buffer)

    def _finish_group(self, group: list[Task], future: Future[Any], index: int) -> None:
        exc = future.exception()
        if isinstance(exc, ray.exceptions.RayActorError):
            self._suspect(index)  # before the tasks fail: work sent after that avoids it
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

    # -- actors that died --------------------------------------------------------------------
    # A task that kills its actor's process (os._exit, a segfault) fails with WorkerCrashed,
    # with the other tasks of its actor's running calls, and Ray restarts the actor
    # (max_restarts=-1). Until this driver learns of the death from Ray's control store, a
    # call sent to the actor still goes to the dead process and fails too, with
    # ActorUnavailableError ("may or may not have run"): seen under load, where the news came
    # after the crashed call's own failure. So the first failure takes the actor out of turn,
    # and a thread pings it until its new incarnation answers; meanwhile its share of the work
    # goes to the other actors, or to plain Ray tasks if none is up.
    #
    #   _finish_group: RayActorError ─► _suspect(i): _down.add(i) ─► thread _revive(i)
    #   _revive: actor.ping() until it answers ─► _down.discard(i)
    def _suspect(self, index: int) -> None:
        with self._lock:
            if index in self._down or self._released or index >= len(self._actors):
                return
            self._down.add(index)
            actor = self._actors[index]
        start_thread(
            threading.Thread(
                target=self._revive, args=(index, actor), name="anypool-ray-revive", daemon=True
            )
        )

    def _revive(self, index: int, actor: Any) -> None:
        while not self._released:
            try:
                ray.get(actor.ping.remote(), timeout=_PING_S)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(_PING_PAUSE_S)  # dead, or restarting: Ray queues the ping
                continue
            except Exception:  # Ray itself is shutting down
                return
            with self._lock:
                self._down.discard(index)
            return

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
        task.fail(TaskTimeout(f"{overran(task)} and was stopped"))
        ray.cancel(ref, force=True)

    def kill(self, task: Task) -> bool:
        with self._lock:
            ref = self._running.get(task)
            threaded = task in self._on_actor
        if ref is None or threaded:
            return False
        # a no-op if the task has failed already: a stream's item_timeout fails it with its
        # TaskTimeout first, then asks for the kill (only that stops a stuck generator)
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


# -- streams ------------------------------------------------------------------------------------
# Items per batch (one Ray object) at most, as a process stream's socket messages; a batch the
# producer left unfinished is yielded after _TICK_S.
_BATCH_MAX = 256
_TICK_S = 0.002
_POLL_S = 0.05
# The worker's ends of the streams running in this process, by token: run_stream makes one,
# and the stream task's first argument, unpickled by run_payload, finds the same one.
_worker_ends: dict[bytes, _WorkerEnd] = {}


def _stream_layout(buffer: int) -> tuple[int, int]:
    """(items per batch, batches Ray lets the worker run ahead). Undelivered items are at
    most ``objects`` unconsumed batches, one batch being made (drive_stream waits for its
    yield), and what is left of the batch the caller's iterator hands out: <= buffer."""
    batch = max(1, min(_BATCH_MAX, buffer // 4))
    return batch, max(1, (buffer - batch + 1) // batch)


def _is_stream(task: Task) -> bool:
    return bool(task.args) and isinstance(task.args[0], _StreamEnd)


class _StreamEnd:
    """The stream task's first argument. In the caller it names its RayStream; pickled to
    the worker it becomes that worker's _WorkerEnd, which drive_stream feeds."""

    def __init__(self, token: bytes, batch: int, stream: RayStream) -> None:
        self.token = token
        self.batch = batch
        self.stream = stream

    def __reduce__(self) -> tuple[Any, ...]:
        return (_worker_end, (self.token, self.batch))


def _worker_end(token: bytes, batch: int) -> _WorkerEnd:
    end = _worker_ends.get(token)
    if end is None:  # unpickled outside run_stream: nobody reads it, so it starts stopped
        end = _WorkerEnd(batch)
        end.stop()
    return end


class _Outcome:
    """A stream's last object: run_payload's bytes for the task's outcome."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob


class _WorkerEnd:
    """drive_stream's end in a Ray worker (the producer protocol of anypool._core._stream):
    its thread appends to ``pending``; run_stream's generator yields them in batches. The
    producer runs at most one batch ahead of the yields Ray has let through."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.pending: list[Any] = []
        self.stopping = False
        self.attention = False  # == stopping: run_stream looks at pending by itself
        self.error: BaseException | None = None  # an item that does not pickle (_dumps)
        self._cond = threading.Condition(threading.Lock())
        self._produced = self._handed = 0
        self._finished = False

    # the producer: drive_stream, on a thread of its own
    def open(self) -> bool:
        return not self.stopping

    def flush(self, used: int) -> int:
        with self._cond:
            self._produced += used
            self._cond.notify_all()
            while not self.stopping and self._produced - self._handed >= self.batch:
                self._cond.wait(_POLL_S)
            return 0 if self.stopping else self.batch - (self._produced - self._handed)

    def wake(self) -> None:
        pass

    def finish(self) -> None:
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    # the Ray task's generator
    def stop(self) -> None:
        with self._cond:
            self.stopping = self.attention = True
            self._cond.notify_all()

    def batches(self) -> Iterator[bytes]:
        while self.error is None and (batch := self._next_batch()) is not None:
            yield self._dumps(batch)
            with self._cond:  # Ray let it through: the producer may go on
                self._handed += len(batch)
                self._cond.notify_all()

    def _next_batch(self) -> list[Any] | None:
        """Up to ``batch`` items: a full batch at once, a partial one after _TICK_S (the
        producer is in a slow next()); None once the producer finished and all went."""
        pending = self.pending
        with self._cond:
            while not pending and not self._finished:
                self._cond.wait(_TICK_S)
            if len(pending) < self.batch and not self._finished:
                self._cond.wait(_TICK_S)
        n = min(len(pending), self.batch)
        if n == 0:
            return None
        batch = pending[:n]  # slice then delete: the producer appends past index n meanwhile
        del pending[:n]
        return batch

    def outcome(self, blob: bytes) -> bytes:
        """The task's outcome: drive_stream's, unless an item did not pickle (drive_stream
        may have ended before that was found)."""
        if self.error is None:
            return blob
        return cloudpickle_dumps((False, wrap_exception(self.error)))

    def _dumps(self, batch: list[Any]) -> bytes:
        """The batch pickled here, not by Ray, so that an item that does not pickle ends
        the stream as on processes: the items before it, then a SerializationError (Ray's
        own error would replace one item and leave the stream going)."""
        try:
            return pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
        except Exception:
            pass
        split = split_at_unpicklable(batch, cloudpickle_dumps)  # lambdas: as Ray would
        if split is None:
            return cloudpickle_dumps(batch)
        good, self.error = split
        self.stop()  # drive_stream closes the generator and raises self.error
        return cloudpickle_dumps(good)


def _produce(payload: bytes, end: _WorkerEnd, outcome: list[bytes]) -> None:
    try:
        outcome.append(run_payload(payload))
    finally:
        end.finish()  # also when the call never reached drive_stream (it did not unpickle)


def run_stream(payload: bytes, token: bytes, batch: int) -> Iterator[Any]:
    """A stream's Ray task: runs its call (drive_stream) on a thread and yields ``[]`` (it
    started), the items in batches, then ``_Outcome``. A GeneratorExit here (ray.cancel)
    stops that thread, which closes gen_fn's generator, before the task ends."""
    end = _worker_ends[token] = _WorkerEnd(batch)
    outcome: list[bytes] = []
    thread = threading.Thread(
        target=_produce, args=(payload, end, outcome), name="anypool-ray-stream", daemon=True
    )
    try:
        start_thread(thread)
        yield []
        yield from end.batches()
    finally:
        end.stop()  # a no-op once it finished
        thread.join()
        _worker_ends.pop(token, None)
    yield _Outcome(end.outcome(outcome[0]))


class RayStream:
    """The caller's end of a stream on Ray, read by anypool._core._stream: ``take`` gives a
    batch, ``[]`` when none came within the wait, None at the end (the task's future then
    says how it ended). Ray counts what was consumed itself: no acks."""

    def __init__(self, buffer: int) -> None:
        self.batch, self.objects = _stream_layout(buffer)
        self.end = _StreamEnd(os.urandom(16), self.batch, self)
        self.started_at: float | None = None
        self._lock = threading.Lock()
        self._attached = threading.Event()
        self._task: Task | None = None
        self._gen: Any = None
        self._stopped = self._ended = self._over = False
        self._error: BaseException | None = None  # Ray's error in place of an item
        self._received = 0

    # the backend's side
    def attach(self, task: Task, gen: Any) -> None:
        with self._lock:
            self._task, self._gen = task, gen
            stopped = self._stopped
        self._attached.set()
        if stopped:  # closed while Ray started it
            _cancel(gen)

    def ended(self, error: BaseException | None) -> None:
        """The Ray task ended. A stream the caller stopped ends well (as on the local
        backends); one that failed fails its task; else the caller reads the outcome."""
        with self._lock:
            self._ended = True
            stopped, task, lost = self._stopped, self._task, self._error
        assert task is not None
        failure = error if error is not None else lost
        if stopped:
            task.settle(self._received)
        elif failure is not None:
            task.fail(failure)

    # the consumer's side
    def take(self, wait: float) -> list[Any] | None:
        if self._over:
            return None
        if not self._attached.wait(wait):
            return []
        gen = self._gen
        if not ray.wait([gen], timeout=wait, fetch_local=True)[0]:
            return []
        try:
            got = ray.get(next(gen))
        except StopIteration:
            self._over = True
            return None
        except Exception as exc:  # the task failed: crashed, cancelled, timed out
            self._lost(exc)
            return None
        if isinstance(got, _Outcome):
            self._over = True
            self._settle(got.blob)
            return None
        if not got:  # run_stream started: item_timeout counts from now
            self.started_at = time.monotonic()
            return []
        items = _loads(got)
        self._received += len(items)
        return items

    def _lost(self, exc: Exception) -> None:
        """The stream ended with Ray's error instead of its outcome. Its task fails with the
        error Ray gives for the task (ended()); if that says nothing, with this one."""
        with self._lock:
            self._over = True
            self._error = _engine_error(exc)
            ended, task = self._ended, self._task
        if ended and task is not None:
            task.fail(self._error)

    def _settle(self, blob: bytes) -> None:
        assert self._task is not None
        ok, value = loads_outcome(blob)
        (self._task.settle if ok else self._task.fail)(value)

    def stop(self) -> None:
        """Stop the generator in the worker (any thread): ray.cancel, or, if its task has
        ended already, settle the task with the items received."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            gen, ended, task = self._gen, self._ended, self._task
        if gen is None:
            return  # not started: attach() cancels it
        if ended:
            assert task is not None
            task.settle(self._received)
        else:
            _cancel(gen)

    def close(self) -> None:
        pass


def _loads(data: bytes) -> list[Any]:
    try:
        items: list[Any] = pickle.loads(data)
    except Exception as exc:
        raise SerializationError(
            f"items the Ray worker streamed cannot be unpickled in this process: {exc!r}"
        ) from exc
    return items


def _cancel(gen: Any) -> None:
    try:
        ray.cancel(gen)  # KeyboardInterrupt-free for a generator: GeneratorExit at its yield
    except Exception:  # Ray is shutting down: the task goes with it
        pass


backend_class = RayBackend
