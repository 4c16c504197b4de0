"""``backend="auto"``: sample the first tasks, choose a backend, then route everything to it.

::

    Pool.submit / map ─► AutoBackend.submit
                            │ undecided: TaskQueue ─► probe thread runs each task,
                            │            timing CPU vs wall per item and pickling
                            │            its data ─► Sampler
                            │                          │ enough samples, or the
                            │   Deadlines thread ──────┤ budget runs out mid-task
                            │                          ▼
                            │            choose_backend(snapshot, measurements)
                            │                          │ creates the real backend,
                            │                          ▼ moves the queued tasks to it
                            └ decided: ──────────► real backend (thread, process, inline)

Sampling runs the user's own tasks (their results are delivered, nothing runs
twice) one at a time on a single thread, so CPU time against wall time is not
blurred by other tasks competing for the GIL. The probe costs at most
:data:`PROBE_BUDGET_S` of one thread, or :data:`MAX_SAMPLES` items; a task
longer than the budget is measured while it runs (Linux: the probe thread's
CPU clock), so a long first task does not hold the choice back.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .._exceptions import BrokenPool, CapabilityError, PoolClosed, TaskTimeout
from .._runtime import free_threaded_build, gil_enabled, usable_cpus
from .._scheduler._select import (
    AUTO_CANDIDATES,
    REQUIREMENTS,
    Candidate,
    Decision,
    Measurements,
    RuntimeSnapshot,
    choose_backend,
    parse_prefer,
    parse_require,
    unmet,
)
from .._task import ChunkResult, Task
from .._workers._deadlines import Deadlines, Handle
from .._workers._queue import TaskQueue
from .._workers._registry import register_for_exit
from ..abc import Backend, BackendConfig, Capabilities, Order
from ._auto_measure import (
    IDLE_SAMPLES,
    NO_VALUE,
    PROBE_BUDGET_S,
    PROBE_MAX_WALL_S,
    Partial,
    RunQueueClock,
    Sampler,
    thread_cpu_clock,
)

__all__ = ["AutoBackend", "AutoSettings", "backend_class", "steer_options", "take_snapshot"]

# The key in BackendConfig.options that carries AutoSettings from Pool to the front.
SETTINGS_KEY = "_anypool_auto"

# What the probe thread can promise while it runs the user's tasks: it is a thread in
# this process. Requirements beyond these (kill_on_timeout, crash_isolation...) skip
# sampling: the choice is made at the first task, without measurements.
PROBE_CAPABILITIES = Capabilities(
    kills_running_tasks=False,
    shares_memory=True,
    needs_pickling=False,
    isolates_crashes=False,
    parallel_cpu=False,
)

_ids = itertools.count()


@dataclass(frozen=True)
class AutoSettings:
    """What the user said about the choice: hints, constraints, a fixed worker count."""

    prefer: str | None = None
    require: frozenset[str] = frozenset()
    workers: int | None = None


def take_snapshot() -> RuntimeSnapshot:
    """The interpreter's GIL state, usable CPUs, and the candidates installed here."""
    from . import available_backends, load_backend

    available = available_backends()
    candidates = []
    for name in AUTO_CANDIDATES:
        if not available.get(name):
            continue
        try:
            candidates.append(Candidate(name, load_backend(name).capabilities))
        except ImportError:  # a broken install: skip it, as if absent
            continue
    return RuntimeSnapshot(
        gil_enabled(), usable_cpus(), tuple(candidates), free_threaded_build=free_threaded_build()
    )


def steer_options(
    backend_class: type[Backend],
    options: Mapping[str, Any],
    *,
    prefer: str | None,
    require: str | Iterable[str] | None,
    workers: int | None,
    timeout: float | None,
    retries: int,
    order: Order,
) -> dict[str, Any]:
    """Validate ``prefer=``/``require=`` for any backend; for auto, pack them into the options.

    A named backend must meet ``require=`` itself (CapabilityError otherwise), and
    ``prefer=`` only makes sense for auto.
    """
    required = parse_require(require)
    preferred = parse_prefer(prefer)
    if backend_class is not AutoBackend:
        if preferred is not None:
            raise ValueError(
                f"prefer= steers backend='auto' only; this pool's backend is {backend_class.name!r}"
            )
        _check_fixed(backend_class, required)
        return dict(options)
    implied = {
        name
        for name, wanted in (
            ("timeouts", timeout),
            ("retries", retries),
            ("priority", order != "fifo"),
        )
        if wanted
    }
    if required:
        _check_feasible(required | implied)
    settings = AutoSettings(preferred, frozenset(required | implied), workers)
    return {**options, SETTINGS_KEY: settings}


def _check_fixed(backend_class: type[Backend], required: frozenset[str]) -> None:
    missing = unmet(backend_class.capabilities, required, gil_enabled())
    if missing:
        detail = "; ".join(f"{r!r} ({REQUIREMENTS[r].meaning})" for r in missing)
        raise CapabilityError(f"the {backend_class.name!r} backend does not meet require={detail}")


def _check_feasible(required: frozenset[str]) -> None:
    snapshot = take_snapshot()
    if not any(
        not unmet(c.capabilities, required, snapshot.gil_enabled) for c in snapshot.candidates
    ):
        names = ", ".join(c.name for c in snapshot.candidates)
        raise CapabilityError(
            f"backend='auto': no installed backend ({names}) meets "
            f"require={', '.join(sorted(required))}"
        )


# -- the front ----------------------------------------------------------------------------
class AutoBackend(Backend):
    """A backend-shaped front that decides on the first tasks and then forwards to the choice."""

    name = "auto"
    # Before the choice nothing beyond the defaults is promised; after it, the instance
    # reports the chosen backend's flags (see _publish). needs_pickling is False: auto
    # only picks a backend that pickles when the function and its data do pickle.
    capabilities = Capabilities(
        kills_running_tasks=False,
        shares_memory=False,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,
    )

    def __init__(self, config: BackendConfig) -> None:
        options = dict(config.options)
        settings = options.pop(SETTINGS_KEY, None) or AutoSettings()
        super().__init__(replace(config, options=options))
        self._settings: AutoSettings = settings
        self._required = set(settings.require)
        self._sampling = not unmet(PROBE_CAPABILITIES, self._required, gil_enabled())
        self._lock = threading.Lock()
        self._routing = threading.RLock()  # held while queued tasks move to the real backend
        self._queue = TaskQueue(config.order)
        self._sampler = Sampler()
        self._probe: threading.Thread | None = None
        # the running sample: task, and wall, CPU and run-queue clocks when it started
        self._current: tuple[Task, float, float, float] | None = None
        self._runqueue = RunQueueClock(None)  # the probe thread opens its own
        self._deadlines: Deadlines | None = None
        self._real: Backend | None = None
        self._routed = False
        self._abandoned = False  # the probe thread is stuck in a timed-out or killed task
        self._decision: Decision | None = None
        self._closed = False
        self._prefix = config.thread_name_prefix or f"anypool-auto-{next(_ids)}"
        register_for_exit(self)

    # -- submission -------------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        if self._routed:  # the hot path once decided: one attribute read
            self._forward(task)
            return
        if not self._sampling and not self._closed:  # a probe thread would break require=
            self._decide()
        with self._lock:
            if self._real is None:
                self._enqueue(task)
                return
        with self._routing:  # decided: wait until the queued tasks have moved over
            self._forward(task)

    def _enqueue(self, task: Task) -> None:
        if self.broken is not None:
            raise self.broken
        if self._closed:
            raise PoolClosed("cannot submit: the pool is shut down")
        self._required |= _task_needs(task)
        self._sampler.chunked |= task.chunk
        self._queue.put(task)
        if self._probe is None:
            self._probe = threading.Thread(
                target=self._probe_loop, name=f"{self._prefix}-probe", daemon=True
            )
            self._probe.start()

    def _forward(self, task: Task) -> None:
        real = self._real
        assert real is not None
        if task.timeout is None and not task.retries and not task.priority:
            real.submit(task)  # nothing to check: the common case stays cheap
            return
        missing = unmet(real.capabilities, _task_needs(task), gil_enabled())
        if missing:
            raise CapabilityError(
                f"backend='auto' chose {real.name!r} for this pool, which cannot honour "
                f"{', '.join(missing)} on a task; pass require={missing[0]!r} (or "
                "prefer=) when creating the pool. See pool.explain()"
            )
        real.submit(task)

    # -- the probe thread -------------------------------------------------------------------
    def _probe_loop(self) -> None:
        with self._lock:
            self._runqueue = RunQueueClock(threading.get_native_id())
        try:
            if not self._initialize():
                return
            name = threading.current_thread().name
            while (task := self._queue.get()) is not None:
                if task.mark_started(name):
                    self._sample(task)
        finally:
            self._stop_deadlines()
            with self._lock:  # the deadline thread reads it under the lock too
                self._runqueue.close()

    def _initialize(self) -> bool:
        if self.config.initializer is None:
            return True
        try:
            self.config.initializer(*self.config.initargs)
        except BaseException as exc:
            error = BrokenPool(
                f"the initializer failed while backend='auto' sampled tasks: {exc!r}"
            )
            error.__cause__ = exc
            self._break(error)
            return False
        return True

    def _sample(self, task: Task) -> None:
        watches = self._watch(task)
        error: BaseException | None = None
        try:
            value = self._run_chunk(task) if task.chunk else self._run_call(task)
        except BaseException as exc:
            error = exc
        for handle in watches:
            handle.cancel()
        with self._lock:
            self._current = None
            idle = not len(self._queue) and self._sampler.samples >= IDLE_SAMPLES
            ready = self._real is None and (self._sampler.enough() or idle)
        if ready:  # before delivering: whoever gets this result can already explain()
            self._decide()
        if error is not None:
            task.fail(error)
        else:
            task.settle(value)

    def _run_call(self, task: Task) -> Any:
        args_s = self._probe_call(task.fn, task.args, task.kwargs)
        start = self._item_starts(task)
        try:
            value = task.run()
        except Exception:
            self._record(start)
            self._probe_result(NO_VALUE, args_s)
            raise
        self._record(start)
        self._probe_result(value, args_s)
        return value

    def _run_chunk(self, task: Task) -> ChunkResult:
        values: list[Any] = []
        errors: dict[int, BaseException] = {}
        began = time.perf_counter()
        for index, item in enumerate(task.args):
            args_s = self._probe_call(task.fn, item if task.star else (item,), {})
            start = self._item_starts(task)
            try:
                value = task.fn(*item) if task.star else task.fn(item)
            except Exception as exc:
                values.append(None)
                errors[index] = exc
                value = NO_VALUE
            else:
                values.append(value)
            self._record(start)
            self._probe_result(value, args_s)
        return ChunkResult(values, errors, time.perf_counter() - began)

    def _item_starts(self, task: Task) -> tuple[float, float, float]:
        """Read the clocks just before an item runs (pickling probes stay outside them)."""
        clocks = (time.perf_counter(), time.thread_time(), self._runqueue.read())
        with self._lock:
            self._current = (task, *clocks)
        return clocks

    def _record(self, start: tuple[float, float, float]) -> None:
        wall = time.perf_counter() - start[0]
        cpu = time.thread_time() - start[1]
        queued = self._runqueue.read() - start[2]
        with self._lock:
            if self._real is None:
                self._sampler.add(wall, cpu, queued)

    # Pickling probes run without the lock (big arguments take a while to pickle); only
    # the probe thread writes the sampler's pickling fields.
    def _probe_call(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> float | None:
        return self._sampler.probe_call(fn, args, kwargs) if self._real is None else None

    def _probe_result(self, value: Any, args_s: float | None) -> None:
        if self._real is None:
            self._sampler.probe_result(value, args_s)

    # -- deadlines: long samples and timeouts -----------------------------------------------
    def _watch(self, task: Task) -> list[Handle]:
        with self._lock:
            budget_left = PROBE_BUDGET_S - self._sampler.active_s()
            undecided = self._real is None
        now = time.monotonic()
        handles = []
        if undecided:
            handles.append(self._at(now + max(0.0, budget_left), lambda: self._overdue(task)))
        if task.timeout is not None:
            handles.append(self._at(now + task.timeout, lambda: self._expire(task)))
        return handles

    def _at(self, when: float, fn: Callable[[], object]) -> Handle:
        with self._lock:
            if self._deadlines is None:
                self._deadlines = Deadlines(f"{self._prefix}-deadlines")
            deadlines = self._deadlines
        return deadlines.schedule(when, fn)

    def _partial(self, task: Task) -> Partial | None:
        """Wall and CPU seconds so far of ``task`` if it is the running sample; lock held."""
        if self._current is None or self._current[0] is not task or self._probe is None:
            return None
        read_cpu = thread_cpu_clock(self._probe)
        if read_cpu is None:
            return None
        _, wall0, cpu0, queued0 = self._current
        return time.perf_counter() - wall0, read_cpu() - cpu0, self._runqueue.read() - queued0

    def _overdue(self, task: Task) -> None:
        """The sample ran past the budget: decide now, from the finished samples, or, if
        this is the first, from what it has done so far (a cut through a task that
        computes and then waits would skew the share, so finished samples come first)."""
        with self._lock:
            if self._real is not None:
                return
            finished = self._sampler.samples > 0
            partial = None if finished else self._partial(task)
        if partial is not None and partial[0] < PROBE_MAX_WALL_S:
            active = partial[0] - partial[2]
            if active < PROBE_BUDGET_S:  # a busy machine held it back: let it run longer
                self._at(time.monotonic() + PROBE_BUDGET_S - active, lambda: self._overdue(task))
                return
        if finished or partial is not None:
            self._decide(partial)

    def _expire(self, task: Task) -> None:
        with self._lock:
            running = self._current is not None and self._current[0] is task
            undecided = self._real is None and self._sampler.samples == 0
            partial = self._partial(task) if undecided else None
            self._abandoned |= running
        if not running:
            return
        # A thread cannot be stopped: the probe thread is abandoned to finish on its own,
        # and the choice is made now so the queued tasks do not wait for it.
        task.fail(
            TaskTimeout(
                f"task {task.fn!r} ran longer than its timeout of {task.timeout} s while "
                "backend='auto' sampled it on a thread, which cannot be stopped; it was "
                "abandoned and keeps running in the background"
            )
        )
        self._decide(partial)

    def _stop_deadlines(self) -> None:
        with self._lock:
            deadlines, self._deadlines = self._deadlines, None
        if deadlines is not None:
            deadlines.stop()

    # -- deciding ---------------------------------------------------------------------------
    def _decide(self, partial: Partial | None = None) -> None:
        failure: BaseException | None = None
        with self._routing:
            with self._lock:
                if self._real is not None or self.broken is not None:
                    return
                try:
                    decision, real = self._choose(self._sampler.measurements(partial))
                except CapabilityError as exc:
                    failure = exc
                except Exception as exc:
                    failure = BrokenPool(f"backend='auto' could not start its choice: {exc!r}")
                    failure.__cause__ = exc
                else:
                    self._publish(decision, real)
                closed = self._closed
            if failure is not None:
                self._break(failure)
                return
            self._queue.close()  # the probe thread exits once its current task is done
            for task in self._queue.drain():
                self._move(real, task)
            self._routed = True
        if closed:
            real.shutdown(wait=False, cancel_pending=False, kill_running=False)

    def _choose(self, measurements: Measurements | None) -> tuple[Decision, Backend]:
        from . import load_backend

        decision = choose_backend(
            take_snapshot(),
            measurements,
            prefer=self._settings.prefer,
            require=self._required,
            workers=self._settings.workers,
        )
        if not self._sampling:
            skipped = "sampling skipped: a probe thread cannot honour require=" + ", ".join(
                unmet(PROBE_CAPABILITIES, self._required, gil_enabled())
            )
            decision = replace(decision, reasons=(*decision.reasons, skipped))
        backend_type = load_backend(decision.backend)
        return decision, backend_type(replace(self.config, workers=decision.workers))

    def _publish(self, decision: Decision, real: Backend) -> None:
        self._decision = decision
        self._real = real
        self.config = replace(self.config, workers=decision.workers)
        # Pool.capabilities reads the instance: from now on it reports the chosen backend.
        setattr(self, "capabilities", real.capabilities)  # noqa: B010 - shadows the ClassVar

    def _move(self, real: Backend, task: Task) -> None:
        try:
            real.submit(task)
        except Exception as exc:
            task.fail(exc)

    def _break(self, error: BaseException) -> None:
        with self._lock:
            if self.broken is None:
                self.broken = error
        self._queue.close()
        for task in self._queue.drain():
            task.fail(error)

    # -- introspection and control ----------------------------------------------------------
    def explain(self) -> Decision:
        decision = self._decision
        if decision is not None:
            return decision
        reason = (
            "not decided yet: backend='auto' samples the first tasks of the first function "
            "submitted or mapped, then chooses"
        )
        if self.broken is not None:
            reason = f"auto could not choose: {self.broken}"
        return Decision("auto", self.config.workers, None, (reason,), chosen_by="pending")

    def primitives(self) -> Any:
        """``pool.Lock()`` and friends (see :mod:`anypool._sync`): the chosen backend's, or,
        before the choice, cross-process ones, which work between threads as well."""
        from .._sync import primitives_for
        from .._sync_process import ProcessPrimitives

        if self._real is not None:
            return primitives_for(self._real)
        return ProcessPrimitives(self.config.start_method)

    @property
    def chosen(self) -> Backend | None:
        """The backend the work runs on, once decided."""
        return self._real

    def worker_pids(self) -> list[int]:
        return [] if self._real is None else self._real.worker_pids()

    def worker_restarts(self) -> int:
        return 0 if self._real is None else self._real.worker_restarts()

    def workers_alive(self) -> int:
        probe = self._probe
        alive = 1 if probe is not None and probe.is_alive() else 0
        return alive + (self._real.workers_alive() if self._real is not None else 0)

    def pending(self) -> int:
        return len(self._queue) + (self._real.pending() if self._real is not None else 0)

    def kill(self, task: Task) -> bool:
        return self._real is not None and self._real.kill(task)

    def resize(self, workers: int) -> None:
        with self._lock:
            real = self._real
            if real is None:
                self._settings = replace(self._settings, workers=workers)
            self.config = replace(self.config, workers=workers)
        if real is not None:
            real.resize(workers)

    def shutdown(self, *, wait: bool, cancel_pending: bool, kill_running: bool) -> None:
        with self._lock:
            self._closed = True
            current = self._current
        if cancel_pending or kill_running:
            for task in self._queue.drain():
                task.cancel_pending()
        if kill_running and current is not None:
            with self._lock:
                self._abandoned = True
            current[0].fail(
                PoolClosed(
                    "the pool was shut down with kill_running=True while backend='auto' "
                    "sampled this task on a thread, which cannot be stopped; it was abandoned"
                )
            )
        self._queue.close()
        probe = self._probe
        with self._lock:
            abandoned = self._abandoned
        # an abandoned probe thread finishes on its own, as the thread backend's do
        if wait and not abandoned and probe not in (None, threading.current_thread()):
            assert probe is not None
            probe.join()
        with self._routing:
            real = self._real
        if real is not None:
            real.shutdown(wait=wait, cancel_pending=cancel_pending, kill_running=kill_running)
        if wait or kill_running:
            self._stop_deadlines()


def _task_needs(task: Task) -> set[str]:
    """The requirements a task's own options imply."""
    needs = set()
    if task.timeout is not None:
        needs.add("timeouts")
    if task.retries:
        needs.add("retries")
    if task.priority:
        needs.add("priority")
    return needs


backend_class = AutoBackend
