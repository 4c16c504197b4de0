"""``backend="auto"``: measure each task function, route it to the backend that suits it.

::

    Pool.submit / map ─► AutoBackend.submit ─► profile of task.fn (one per function)
        │ decided: ─────────────────────────────────────► its side (thread, process, inline)
        │ undecided, or a drift check due:
        │   TaskQueue ─► probe thread: a window of calls of one function, timed on its own
        │                clocks (tiny calls batched), pickling probed ─► the profile's Sampler
        │                        │ enough samples, or the   ┌── Deadlines thread; also, at
        │                        │ budget runs out mid-task ┘   PEEK_S into a first task that
        │                        │                              computes all along: a process
        │                        ▼                              side starts ahead (_warm)
        │          choose_backend(snapshot, measurements)  ─► Decision for that function
        │                        │ creates the side if new (or adopts _warm, or grows it),
        │                        ▼ moves the function's queued tasks to it; a side still
        │                          starting gets 2 per worker, and the probe thread runs
        │                          the others itself until the side runs one (hand-off)
        └ a decided function's task, now and then ─► probe thread again: measured
                   alone; a profile that drifted (kind, or 4x the task time) is decided anew

One pool holds up to one side per backend, so IO functions run on many threads while
CPU functions of the same pool run on one process per CPU. Sampling runs the user's
own tasks (their results are delivered, nothing runs twice) on a single probe thread.
A probe costs at most :data:`PROBE_BUDGET_S` of that thread, or :data:`MAX_SAMPLES`
windows, per function; a task longer than the budget is measured while it runs (Linux:
the probe thread's CPU clock), so a long first task does not hold its choice back.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass, replace
from typing import Any

from .._errors._exceptions import BrokenPool, CapabilityError, PoolClosed, TaskTimeout, fresh_copy
from .._local._atexit import register_for_exit
from .._local._deadlines import Deadlines, Handle
from .._local._queue import TaskQueue
from .._local._threads import start_task_thread
from .._runtime import free_threaded_build, gil_enabled, usable_cpus
from .._scheduler._select import (
    AUTO_CANDIDATES,
    CHEAPER_WITHIN,
    CPU_BOUND,
    REQUIREMENTS,
    Candidate,
    Decision,
    Measurements,
    RuntimeSnapshot,
    choose_backend,
    format_seconds,
    function_name,
    parse_prefer,
    parse_require,
    unmet,
)
from .._task import ChunkResult, Task, overran
from ..abc import Backend, BackendConfig, Capabilities, Order
from ._measure import (
    IDLE_SAMPLES,
    MAX_BATCH,
    MIN_WINDOW_S,
    NO_VALUE,
    PICKLE_PROBES,
    PROBE_BUDGET_S,
    PROBE_MAX_WALL_S,
    Clocks,
    Partial,
    RunQueueClock,
    Sampler,
    read_after,
    read_before,
    thread_cpu_clock,
    window,
    window_overhead,
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

# A decided function is measured again (one task at a time, on the probe thread) this long
# after its decision; each check that finds no drift doubles the wait, up to CHECK_MAX_S.
CHECK_AFTER_S = 1.0
CHECK_MAX_S = 30.0
# Between two single-task windows of one check: a check takes a task now and then, never
# a run of them, so the function's other tasks keep flowing to its side meanwhile.
CHECK_SPACING_S = 0.05
# A profile has drifted when its kind (CPU-bound, mixed, IO-bound) changed or its tasks
# got this many times longer or shorter: enough to change the backend or the worker count.
DRIFT_RATIO = 4.0
# Most functions remembered per pool; beyond it the oldest decided one is forgotten (and
# measured again if it comes back): a program that makes a new lambda per call stays flat.
MAX_PROFILES = 256
# A running first task whose run-queue share is above this is on a busy machine: its
# partial reading is not trusted (see _overdue).
_BUSY_SHARE = 0.1
# CPU-bound map items shorter than this run in the caller (inline), not on the one worker
# thread the model picks for them under the GIL: that thread computes no faster than the
# caller, and each chunk it finishes is a GIL hand-off to the consumer (map(ident, range(
# 200_000)): a thread took 1.3-1.8x inline on the 2-core VM). A thread wins only by
# overlapping the items' computing with a consumer's own waits, which saves at most the
# items' own time: little next to any per-item wait a consumer has at this size.
INLINE_ITEM_S = 10e-6
# A function's first task is looked at this long after it started: if it has computed all
# along, worker processes are started then (see _peek), not after the sample, because
# starting them takes several times the sample: a cold forkserver and first worker answer
# in ~80 ms in an idle interpreter on the 2-core VM, and the first worker ran a task
# 180-450 ms into a CPU-bound map (the dispatcher waits for the GIL, which the sampled task
# holds, at each step of the start). A task shorter than this ends before the look, and
# its window decides as usual. (Starting them at a pool's first task, whatever it is, had
# the first worker running ~100 ms sooner, but cost a tiny map after it 2-3x: the
# forkserver's imports then compete with the program. See benchmarks/RESULTS.md.)
PEEK_S = 0.005


@dataclass(frozen=True)
class AutoSettings:
    """What the user said about the choice: hints, constraints, a fixed worker count."""

    prefer: str | None = None
    require: frozenset[str] = frozenset()
    workers: int | None = None


def take_snapshot() -> RuntimeSnapshot:
    """The interpreter's GIL state, usable CPUs, and the candidates installed here."""
    from .._backends import is_available, load_backend

    candidates = []
    for name in AUTO_CANDIDATES:  # built-in names only: no entry points read (docs/design.md)
        if not is_available(name):
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
    if not backend_class.is_router:
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
def _coroutine_function(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """The user's coroutine function that ``fn`` runs, or None: Pool wraps a coroutine
    function in a callable that runs its coroutines on the worker's event loop, a map
    chunk's at once (the ``_anypool_run_chunk`` protocol of anypool._task), and keeps the
    function itself in ``.fn`` (anypool._core._aio.CoroutineCall)."""
    if getattr(type(fn), "_anypool_run_chunk", None) is None:
        return None
    inner = getattr(fn, "fn", None)
    return inner if callable(inner) else None


_PLAIN_FUNCTIONS = (types.FunctionType, types.BuiltinFunctionType)


def _profile_key(fn: Callable[..., Any]) -> Any:
    """What identifies a task function: bound methods share their function, partials the
    function they wrap, a coroutine function's wrapper the coroutine function; an
    unhashable callable counts by identity."""
    fn = _coroutine_function(fn) or fn
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)
    try:
        hash(fn)
    except TypeError:
        return id(fn)
    return fn


class _Profile:
    """What auto knows about one task function: its samples, decision and side, and when
    it is measured again."""

    def __init__(self, key: Any, fn: Callable[..., Any], required: set[str]) -> None:
        self.key = key
        self.fn = fn  # as tasks carry it: what a process would get
        inner = _coroutine_function(fn)
        self.name = function_name(inner or fn)
        self.required = set(required)
        self.coroutine = inner is not None
        self.sampler = self.new_sampler()
        self.decision: Decision | None = None
        self.side: Backend | None = None
        self.routed = False  # its queued tasks have moved: new ones go straight to the side
        self.check_at = math.inf  # when the next drift check may take a task
        self.check_gap = CHECK_AFTER_S
        self.checker: Sampler | None = None
        self.check_task: Task | None = None
        # Decided for a side that had not started yet: the tasks it got first. Until one of
        # them runs, the probe thread runs the function's other tasks itself (see _helps).
        self.handoff: list[Task] | None = None

    def new_sampler(self) -> Sampler:
        sampler = Sampler()
        sampler.coroutine = self.coroutine
        return sampler


class AutoBackend(Backend):
    """A backend-shaped front that decides per task function and forwards to the choice."""

    name = "auto"
    # Before the choice nothing beyond the defaults is promised; after it, the instance
    # reports the latest chosen backend's flags (see _publish). needs_pickling is False:
    # auto only picks a backend that pickles when the function and its data do pickle.
    capabilities = Capabilities(
        kills_running_tasks=False,
        shares_memory=False,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,
        # Per-worker options: the union of what its candidates honour, passed on to the
        # backend it picks, which applies those it honours (start_method= on a thread side
        # has no processes to apply to). Checked by tests/backends/test_registry.py.
        runs_initializer=True,
        has_start_methods=True,
        recycles_workers=True,
        limits_worker_memory=True,
        names_threads=True,
    )
    accepted_options = frozenset({"mp_context", "concurrency"})  # passed on to process workers
    is_router = True

    def __init__(self, config: BackendConfig) -> None:
        from .._backends._process._dispatcher import check_concurrency

        options = dict(config.options)
        check_concurrency(options.get("concurrency"))  # refused now, not at the first decision
        settings = options.pop(SETTINGS_KEY, None) or AutoSettings()
        super().__init__(replace(config, options=options))
        self._settings: AutoSettings = settings
        self._sampling = not unmet(PROBE_CAPABILITIES, settings.require, gil_enabled())
        self._gil = gil_enabled()
        self._lock = threading.Lock()
        self._routing = threading.RLock()  # held while queued tasks move to a side
        self._queue = TaskQueue(config.order)
        self._profiles: dict[Any, _Profile] = {}
        self._sides: dict[str, Backend] = {}
        self._latest: _Profile | None = None
        self._default_workers = config.workers  # for a function not decided yet
        # Read now, as a fixed backend's imports happen when it opens: importing the
        # candidates takes tens of ms, which would otherwise delay the first decision.
        self._snapshot: RuntimeSnapshot | None = take_snapshot()
        self._probe: threading.Thread | None = None
        # the running window: its first task and the clocks when it started
        self._current: tuple[Task, Clocks] | None = None
        self._runqueue = RunQueueClock(None)  # the probe thread opens its own
        self._overhead = (0.0, 0.0)  # an empty window's cost: calls, chunks (probe thread)
        self._deadlines: Deadlines | None = None
        self._abandoned = False  # the probe thread is stuck in a timed-out or killed task
        self._closed = False
        self._warm: Backend | None = None  # a side started ahead of its decision (_peek)
        self._prefix = config.thread_name_prefix or f"anypool-auto-{next(_ids)}"
        register_for_exit(self)

    # -- submission -------------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        fn = task.fn
        # a plain function is its own key: one dict lookup (20,000 submits: -30 ms)
        key = fn if type(fn) in _PLAIN_FUNCTIONS else _profile_key(fn)
        profile = self._profiles.get(key)
        # the hot path once decided: a dict lookup and a clock read
        if profile is not None and profile.routed and time.monotonic() < profile.check_at:
            self._forward(profile, task)
            return
        self._submit_slow(task)

    def _submit_slow(self, task: Task) -> None:
        with self._lock:
            if self.broken is not None:
                raise fresh_copy(self.broken)
            if self._closed:
                raise PoolClosed("cannot submit: the pool is shut down")
            profile = self._profile(task.fn)
            undecided = profile.side is None
            probing = self._sampling and not self._abandoned
            if undecided and probing:
                profile.required |= _task_needs(task)
                profile.sampler.chunked |= task.chunk
                self._enqueue(task)
                return
            if probing and profile.routed and self._take_for_check(profile, task):
                self._enqueue(task)
                return
            if probing and profile.handoff is not None:  # its side is starting: the probe
                self._enqueue(task)  # helps meanwhile
                return
        if undecided:  # a probe thread would break require=, or is stuck: decide unmeasured
            profile.required |= _task_needs(task)
            self._decide(profile)
        with self._routing:  # decided: wait until the queued tasks have moved over
            if self.broken is not None:
                raise fresh_copy(self.broken)
            self._forward(profile, task)

    def _profile(self, fn: Callable[..., Any]) -> _Profile:
        """The profile of ``fn``, made on first sight; lock held."""
        key = _profile_key(fn)
        profile = self._profiles.get(key)
        if profile is None:
            if len(self._profiles) >= MAX_PROFILES:
                self._forget_one()
            profile = _Profile(key, fn, set(self._settings.require))
            self._profiles[key] = profile
        return profile

    def _forget_one(self) -> None:
        for key, profile in self._profiles.items():
            if profile.routed and profile.check_task is None and profile is not self._latest:
                del self._profiles[key]
                return

    def _take_for_check(self, profile: _Profile, task: Task) -> bool:
        """Route this task to the probe for a drift check? Lock held. Only a task the probe
        thread can run with every promise kept: no timeout (it could not be stopped), no
        retries, and not when a probe thread would break require=."""
        if time.monotonic() < profile.check_at or profile.check_task is not None:
            return False
        if task.timeout is not None or task.retries or profile.decision is None:
            return False
        if profile.decision.measurements is None:
            profile.check_at = math.inf  # decided without sampling: nothing to compare to
            return False
        profile.check_task = task
        profile.check_at = math.inf  # the hot path again until this check's window ends
        if profile.checker is None:
            profile.checker = profile.new_sampler()
        return True

    def _enqueue(self, task: Task) -> None:
        self._queue.put(task)
        if self._probe is None:
            self._probe = threading.Thread(
                target=self._probe_loop, name=f"{self._prefix}-probe", daemon=True
            )
            start_task_thread(self._probe)  # it runs tasks (anypool._local._threads)

    def _forward(self, profile: _Profile, task: Task) -> None:
        side = profile.side
        assert side is not None
        if task.timeout is None and not task.retries and not task.priority:
            side.submit(task)  # nothing to check: the common case stays cheap
            return
        missing = unmet(side.capabilities, _task_needs(task), self._gil)
        if missing:
            raise CapabilityError(
                f"backend='auto' chose {side.name!r} for {profile.name}, which cannot "
                f"honour {', '.join(missing)} on a task; pass require={missing[0]!r} (or "
                "prefer=) when creating the pool. See pool.explain()"
            )
        side.submit(task)

    # -- the probe thread -------------------------------------------------------------------
    def _probe_loop(self) -> None:
        with self._lock:
            self._runqueue = RunQueueClock(threading.get_native_id())
        self._overhead = window_overhead(self._runqueue)
        try:
            if not self._initialize():
                return
            carry: Task | None = None
            while True:
                task = carry if carry is not None else self._queue.get()
                carry = None
                if task is None:
                    break
                with self._lock:
                    profile = self._profile(task.fn)
                    moved = profile.side is not None and task is not profile.check_task
                    helping = moved and self._helps(profile, task)
                if helping:
                    self._help(task)
                    continue
                if moved:  # decided while it waited here (the deadline thread decided)
                    self._move(profile, task)
                    continue
                batch = [task]
                if task.timeout is None and task is not profile.check_task:
                    carry = self._fill(profile, batch)
                self._sample(profile, batch)
        finally:
            self._stop_deadlines()
            with self._lock:  # the deadline thread reads it under the lock too
                self._runqueue.close()

    def _fill(self, profile: _Profile, batch: list[Task]) -> Task | None:
        """Add queued tasks of the same function (calls, or ``map`` chunks) until the window
        is long enough to measure (MIN_WINDOW_S); returns a task of another kind taken on
        the way, if any."""
        with self._lock:
            per_item = profile.sampler.per_item_s()
        if per_item <= 0 or per_item >= MIN_WINDOW_S or profile.coroutine:
            # the first window of a function is one task: its size is unknown; and a
            # coroutine's window is one task, whose items ran together or alone
            return None
        wanted = math.ceil(MIN_WINDOW_S / per_item)  # items
        items = batch[0].n_items
        while items < wanted and len(batch) < MAX_BATCH:
            task = self._queue.get_nowait()
            if task is None:
                return None
            if (
                task.chunk != batch[0].chunk
                or task.timeout is not None
                or _profile_key(task.fn) != profile.key
            ):
                return task
            batch.append(task)
            items += task.n_items
        return None

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

    def _sample(self, profile: _Profile, batch: list[Task]) -> None:
        name = threading.current_thread().name
        tasks = [task for task in batch if task.mark_started(name)]
        if not tasks:
            if batch[0] is profile.check_task:  # cancelled meanwhile: check another one
                with self._lock:
                    profile.check_task = None
                    profile.check_at = time.monotonic() + CHECK_SPACING_S
            return
        checking = tasks[0] is profile.check_task
        with self._lock:
            probing = profile.side is None
        watches = self._watch(profile, tasks[0]) if len(tasks) == 1 else []
        probes = self._probe_args(profile, tasks) if probing else []
        outcomes, measured = self._run_window(tasks)
        for handle in watches:
            handle.cancel()
        if probing:
            self._probe_results(profile, probes, outcomes)
        together = profile.coroutine and tasks[0].chunk  # see Sampler.add
        with self._lock:
            if checking:
                assert profile.checker is not None
                profile.checker.add(measured, together)
            elif profile.side is None:
                profile.sampler.add(measured, together)
            sampler = profile.sampler
            idle = not len(self._queue) and sampler.windows >= IDLE_SAMPLES
            ready = profile.side is None and (sampler.enough() or idle or sampler.decisive())
        if ready:  # before delivering: whoever gets this result can already explain()
            self._decide(profile)
        elif checking:
            self._after_check(profile)
        for task, (ok, value) in zip(tasks, outcomes):
            (task.settle if ok else task.fail)(value)

    def _run_window(self, tasks: list[Task]) -> tuple[list[tuple[bool, Any]], Any]:
        """Run the calls back to back between two clock readings; nothing in between
        releases the GIL but the calls themselves."""
        outcomes: list[tuple[bool, Any]] = []
        start = read_before(self._runqueue)
        self._current = (tasks[0], start)  # one reference: read by the deadline thread
        for task in tasks:
            try:
                outcomes.append((True, task.run()))
            except BaseException as exc:
                outcomes.append((False, exc))
        end = read_after(self._runqueue)
        self._current = None
        items = sum(task.n_items for task in tasks)
        clocks, chunk = self._overhead
        overhead = clocks + sum(chunk for task in tasks if task.chunk)
        return outcomes, window(items, start, end, self._gil, overhead)

    # Pickling probes run without the lock (big arguments take a while to pickle); only
    # the probe thread writes the sampler's pickling fields.
    def _probe_args(self, profile: _Profile, tasks: list[Task]) -> list[float | None]:
        calls: list[tuple[Any, Any]] = []
        for task in tasks:
            if task.chunk:
                items = task.args[:PICKLE_PROBES]
                calls += [(item if task.star else (item,), {}) for item in items]
            else:
                calls.append((task.args, task.kwargs))
            if len(calls) >= PICKLE_PROBES:
                break
        fn = tasks[0].fn
        return [profile.sampler.probe_call(fn, args, kwargs) for args, kwargs in calls]

    def _probe_results(
        self, profile: _Profile, probes: list[float | None], outcomes: list[tuple[bool, Any]]
    ) -> None:
        values: list[Any] = []
        for ok, value in outcomes:
            if isinstance(value, ChunkResult):
                values += [NO_VALUE if i in value.errors else v for i, v in enumerate(value.values)]
            else:
                values.append(value if ok else NO_VALUE)
        for args_s, value in zip(probes, values):
            profile.sampler.probe_result(value, args_s)

    # -- deadlines: long samples and timeouts -----------------------------------------------
    def _watch(self, profile: _Profile, task: Task) -> list[Handle]:
        with self._lock:
            budget_left = PROBE_BUDGET_S - profile.sampler.active_s()
            undecided = profile.side is None
        now = time.monotonic()
        handles = []
        if undecided:
            handles.append(
                self._at(now + max(0.0, budget_left), lambda: self._overdue(profile, task))
            )
            if self._warmable(profile) is not None:
                handles.append(self._at(now + PEEK_S, lambda: self._peek(profile, task)))
        if task.timeout is not None:
            handles.append(self._at(now + task.timeout, lambda: self._expire(profile, task)))
        return handles

    def _at(self, when: float, fn: Callable[[], object]) -> Handle:
        with self._lock:
            if self._deadlines is None:
                self._deadlines = Deadlines(f"{self._prefix}-deadlines")
            deadlines = self._deadlines
        return deadlines.schedule(when, fn)

    def _partial(self, task: Task) -> Partial | None:
        """What ``task`` has measured so far if it is the running window's only task, read
        from outside the probe thread; lock held."""
        current = self._current
        if current is None or current[0] is not task or self._probe is None:
            return None
        read_cpu = thread_cpu_clock(self._probe)
        if read_cpu is None:
            return None
        queued, slices = self._runqueue.read_both()
        now = Clocks(time.perf_counter(), read_cpu(), time.process_time(), queued, slices)
        return window(1, current[1], now, self._gil)

    def _warmable(self, profile: _Profile) -> str | None:
        """The backend to start ahead of ``profile``'s decision should its first task turn
        out to compute all along: one that computes in parallel where threads cannot
        (processes, under the GIL, with 2+ CPUs) and that the function may use."""
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or self._warm is not None or profile.sampler.windows:
                return None
            if not snapshot.gil_enabled or snapshot.usable_cpus < 2:
                return None
            if profile.sampler.problem is not None:
                return None
            prefer = self._settings.prefer
            for cand in snapshot.candidates:
                caps = cand.capabilities
                if not (caps.needs_pickling and caps.parallel_cpu) or cand.name in self._sides:
                    continue
                if unmet(caps, profile.required, snapshot.gil_enabled):
                    continue
                if prefer is not None and prefer != cand.name and not _keeps(prefer, caps):
                    continue
                return cand.name
        return None

    def _peek(self, profile: _Profile, task: Task) -> None:
        """The first task of ``profile`` has run PEEK_S: if it computed all along, start the
        backend _warmable names now, so that its workers start while the sample goes on.
        The choice itself still waits for the sample; an unused warm side is shut down
        with the pool."""
        name = self._warmable(profile)
        with self._lock:
            current = self._current
            running = current is not None and current[0] is task
            partial = self._partial(task) if running and profile.side is None else None
        if name is None or partial is None or self._closed:
            return
        wall, cpu = partial.wall, partial.cpu
        active = wall - partial.queued - partial.gil
        if active <= 0 or cpu < CPU_BOUND * active:
            # a loaded machine can hide a wait for a CPU still under way (schedstat counts
            # it when it ends): look again, at doubling times, while the budget lasts
            if wall < PROBE_BUDGET_S:
                self._at(time.monotonic() + wall, lambda: self._peek(profile, task))
            return
        with self._lock:  # a process would get the function: does it reach one?
            if not profile.sampler.check_function(profile.fn):
                return
        from .._backends import load_backend

        workers = self._settings.workers or (self._snapshot.usable_cpus if self._snapshot else 1)
        side: Backend | None = load_backend(name)(replace(self.config, workers=workers))
        with self._lock:
            if self._warm is None and not self._closed and name not in self._sides:
                self._warm, side = side, None
        if side is not None:  # raced with a decision or shutdown: not needed
            side.shutdown(wait=False, cancel_pending=True, kill_running=False)

    def _overdue(self, profile: _Profile, task: Task) -> None:
        """The sample ran past the budget: decide now, from the finished samples, or, if
        this is the first, from what it has done so far (a cut through a task that
        computes and then waits would skew the share, so finished samples come first)."""
        with self._lock:
            current = self._current
            if profile.side is not None or current is None or current[0] is not task:
                return  # decided, or the task ended: _sample goes on from its windows
            finished = profile.sampler.samples > 0
            partial = None if finished else self._partial(task)
        if partial is not None and partial.wall < PROBE_MAX_WALL_S:
            active = partial.wall - partial.queued - partial.gil
            # A busy machine held it back: let it run longer. And while other programs
            # take the CPUs, a reading in mid-task misses the wait in the run queue that
            # is under way (schedstat counts a wait when it ends), which makes computing
            # look like waiting: then the task is let finish, up to PROBE_MAX_WALL_S.
            if active < PROBE_BUDGET_S or partial.queued > _BUSY_SHARE * partial.wall:
                wait = max(PROBE_BUDGET_S - active, PROBE_BUDGET_S / 2)
                self._at(time.monotonic() + wait, lambda: self._overdue(profile, task))
                return
        if finished or partial is not None:
            self._decide(profile, partial)

    def _expire(self, profile: _Profile, task: Task) -> None:
        with self._lock:
            current = self._current
            running = current is not None and current[0] is task
            undecided = profile.side is None and profile.sampler.samples == 0
            partial = self._partial(task) if undecided else None
            self._abandoned |= running
        if not running:
            return
        # A thread cannot be stopped: the probe thread is abandoned to finish on its own,
        # and the choice is made now so the queued tasks do not wait for it.
        task.fail(
            TaskTimeout(
                f"{overran(task)} while backend='auto' sampled it on a thread, which cannot "
                "be stopped; it was abandoned and keeps running in the background"
            )
        )
        if profile.side is None:
            self._decide(profile, partial)
        self._rescue_queue()

    def _rescue_queue(self) -> None:
        """The probe thread is stuck: decide every waiting function now, unmeasured if need
        be, so that its queued tasks move to a side instead of waiting behind it (later
        tasks skip the probe: see _submit_slow)."""
        with self._lock:
            waiting = list(self._queue.drain())
            for task in waiting:
                self._queue.put(task)
            profiles = {id(p): p for p in (self._profile(t.fn) for t in waiting)}
        for profile in profiles.values():
            self._decide(profile, None)

    def _stop_deadlines(self) -> None:
        with self._lock:
            deadlines, self._deadlines = self._deadlines, None
        if deadlines is not None:
            deadlines.stop()

    # -- deciding ---------------------------------------------------------------------------
    def _decide(self, profile: _Profile, partial: Partial | None = None) -> None:
        """Decide ``profile`` (unless it is) and move its queued tasks to its side."""
        failure: BaseException | None = None
        new_side = False
        with self._routing:
            with self._lock:
                if self.broken is not None:
                    return
                if profile.side is None:
                    try:
                        decision = self._choose(profile, profile.sampler.measurements(partial))
                        new_side = decision.backend not in self._sides
                        self._publish(profile, decision)
                    except CapabilityError as exc:
                        failure = exc
                    except Exception as exc:
                        failure = BrokenPool(f"backend='auto' could not start its choice: {exc!r}")
                        failure.__cause__ = exc
                closed = self._closed
                moved = self._take_queued(profile) if failure is None else []
                if new_side and self._may_help(profile):
                    moved = self._start_handoff(profile, moved)
                elif self._abandoned:  # the probe thread is stuck: it helps no more
                    profile.handoff = None
            if failure is not None:
                self._break(failure)
                return
            for task in moved:
                self._move(profile, task)
            profile.routed = profile.handoff is None
            if profile.check_at == math.inf and profile.decision is not None:
                profile.check_at = time.monotonic() + profile.check_gap
        if closed and new_side and profile.side is not None:
            profile.side.shutdown(wait=False, cancel_pending=False, kill_running=False)

    def _may_help(self, profile: _Profile) -> bool:
        """Is ``profile``'s new side one that takes long to start (it pickles: processes),
        with a probe thread free to run tasks meanwhile? Lock held."""
        side = profile.side
        return (
            side is not None
            and side.capabilities.needs_pickling
            and self._sampling
            and not self._abandoned
            and not self._closed
        )

    def _start_handoff(self, profile: _Profile, queued: list[Task]) -> list[Task]:
        """Of ``queued``, the tasks a starting side gets at once (two per worker: it has
        work the moment it starts); the others go back to the probe, which runs them until
        the side runs one of its own (_helps). Lock held."""
        assert profile.decision is not None
        first = queued[: 2 * profile.decision.workers]
        for task in queued[len(first) :]:
            self._queue.put(task)
        profile.handoff = first
        return first

    def _helps(self, profile: _Profile, task: Task) -> bool:
        """Does the probe thread run ``task`` itself, because its function's side is still
        starting? Not a task with a timeout or retries (a thread cannot keep those
        promises). Ends the hand-off once the side runs a task. Lock held."""
        handoff = profile.handoff
        if handoff is None:
            return False
        if not handoff or any(t.future.running() or t.future.done() for t in handoff):
            profile.handoff = None
            profile.routed = True  # new tasks go straight to the side from now on
            return False
        return task.timeout is None and not task.retries

    def _help(self, task: Task) -> None:
        """Run a task of a decided function on the probe thread, unmeasured (but known as
        the running one, so that shutdown(kill_running=True) can abandon it)."""
        if not task.mark_started(threading.current_thread().name):
            return
        self._current = (task, read_before(self._runqueue))
        try:
            value = task.run()
        except BaseException as exc:
            task.fail(exc)
        else:
            task.settle(value)
        finally:
            self._current = None

    def _take_queued(self, profile: _Profile) -> list[Task]:
        """Take this function's tasks out of the probe queue, leaving the others in order;
        lock held."""
        mine: list[Task] = []
        others: list[Task] = []
        for task in self._queue.drain():
            (mine if _profile_key(task.fn) == profile.key else others).append(task)
        for task in others:
            self._queue.put(task)
        return mine

    def _choose(self, profile: _Profile, measurements: Measurements | None) -> Decision:
        if self._snapshot is None:
            self._snapshot = take_snapshot()
        decision = self._select(profile, measurements)
        # the function is pickled only once a process would get it (see
        # Sampler.check_function): the same choice as checking it first, for less
        copies = measurements is not None and measurements.picklable and self._copies(decision)
        if copies and measurements and not profile.sampler.check_function(profile.fn):
            problem = profile.sampler.problem
            measurements = replace(measurements, picklable=False, pickle_error=problem)
            decision = self._select(profile, measurements)
        decision = self._in_caller(decision)
        reasons = decision.reasons
        if not self._sampling:
            reasons += (
                "sampling skipped: a probe thread cannot honour require="
                + ", ".join(unmet(PROBE_CAPABILITIES, profile.required, self._gil)),
            )
        return replace(decision, reasons=reasons, function=profile.name)

    def _in_caller(self, decision: Decision) -> Decision:
        """Inline instead of the thread the model chose for ``map`` chunks of tiny CPU-bound
        items under the GIL, when the model has inline as fast (see INLINE_ITEM_S). Not
        with prefer= (the user steered), nor where inline is excluded (require=, a
        timeout)."""
        m = decision.measurements
        if (
            not self._gil
            or self._settings.prefer is not None
            or decision.backend != "thread"
            or m is None
            or not m.chunked
            or m.coroutine
            or m.kind != "CPU-bound"
            or m.per_task_s >= INLINE_ITEM_S
        ):
            return decision
        estimates = {e.backend: e for e in decision.estimates}
        inline, thread = estimates.get("inline"), estimates.get("thread")
        if inline is None or inline.excluded is not None or thread is None:
            return decision
        if inline.items_per_s < CHEAPER_WITHIN * thread.items_per_s:
            return decision
        assert decision.snapshot is not None
        head = f"{m.describe()}; {decision.snapshot.describe()} -> inline backend, 1 worker"
        why = (
            f"chose inline: CPU-bound map items of ~{format_seconds(m.per_task_s)} under "
            "the GIL; a worker thread computes no faster than the caller, and each chunk "
            "it finishes is a GIL hand-off to the consumer"
        )
        reasons = [head]
        for reason in decision.reasons[1:]:
            reasons.append(why if reason.startswith("chose thread:") else reason)
        return replace(decision, backend="inline", workers=1, reasons=tuple(reasons))

    def _select(self, profile: _Profile, measurements: Measurements | None) -> Decision:
        assert self._snapshot is not None
        return choose_backend(
            self._snapshot,
            measurements,
            prefer=self._settings.prefer,
            require=profile.required,
            workers=self._settings.workers,
        )

    def _copies(self, decision: Decision) -> bool:
        """Does the backend of ``decision`` pickle its tasks?"""
        assert self._snapshot is not None
        return any(
            c.name == decision.backend and c.capabilities.needs_pickling
            for c in self._snapshot.candidates
        )

    def _side(self, decision: Decision) -> Backend:
        """The backend that runs ``decision``'s tasks: made on first use, grown when a
        function needs more workers than it has (never shrunk: other functions use it)."""
        from .._backends import load_backend

        side = self._sides.get(decision.backend)
        warm = self._warm
        if side is None and warm is not None and warm.name == decision.backend:
            self._warm = None  # started by _peek: its workers are well on their way
            side = self._sides[decision.backend] = warm
        if side is None:
            backend_type = load_backend(decision.backend)
            side = backend_type(replace(self.config, workers=decision.workers))
            self._sides[decision.backend] = side
        elif decision.workers > side.config.workers and decision.backend != "inline":
            side.resize(decision.workers)
            side.config = replace(side.config, workers=decision.workers)
        return side

    def _publish(self, profile: _Profile, decision: Decision) -> None:
        """Record ``decision`` for ``profile`` and point it at its side; lock held."""
        side = self._side(decision)
        profile.decision = decision
        profile.side = side
        self._latest = profile
        self.config = replace(self.config, workers=side.config.workers)
        # Pool.capabilities reads the instance: it reports the latest chosen backend.
        setattr(self, "capabilities", side.capabilities)  # noqa: B010 - shadows the ClassVar

    def _after_check(self, profile: _Profile) -> None:
        """A drift check's window ended: compare once it has enough, else take another task
        a little later. A profile that drifted is decided anew from the fresh numbers."""
        with self._lock:
            checker, old = profile.checker, profile.decision
            profile.check_task = None
            assert checker is not None
            if not checker.enough():
                profile.check_at = time.monotonic() + CHECK_SPACING_S
                return
            profile.checker = None
            fresh = checker.measurements()
            drift = _drift(old.measurements if old else None, fresh)
            if drift is None:
                profile.check_gap = min(CHECK_MAX_S, profile.check_gap * 2)
                profile.check_at = time.monotonic() + profile.check_gap
                return
            try:
                decision = self._choose(profile, fresh)
            except CapabilityError:
                profile.check_at = math.inf  # nothing else fits: keep the side it has
                return
            assert old is not None
            note = f"revisited: {drift}; it was {old.backend} with {old.workers} workers"
            decision = replace(decision, reasons=(*decision.reasons, note))
            self._publish(profile, decision)
            profile.check_gap = CHECK_AFTER_S
            profile.check_at = time.monotonic() + profile.check_gap

    def _move(self, profile: _Profile, task: Task) -> None:
        try:
            self._forward(profile, task)
        except Exception as exc:
            task.fail(exc)

    def _break(self, error: BaseException) -> None:
        with self._lock:
            if self.broken is None:
                self.broken = error
        self._queue.close()
        for task in self._queue.drain():
            task.fail(fresh_copy(error))

    # -- introspection and control ----------------------------------------------------------
    def explain(self) -> Decision:
        with self._lock:
            latest = self._latest
            decided = tuple(p.decision for p in self._profiles.values() if p.decision)
            side = self._sides.get("process")
        if latest is not None and latest.decision is not None:
            decision = replace(latest.decision, functions=decided)
            # how many coroutines each process worker runs at once is measured there
            note = getattr(side, "coroutine_note", lambda: None)()
            if note and decision.backend == "process":
                decision = replace(decision, reasons=(*decision.reasons, note))
            return decision
        reason = (
            "not decided yet: backend='auto' samples the first tasks of each function "
            "submitted or mapped, then chooses a backend for it"
        )
        if self.broken is not None:
            reason = f"auto could not choose: {self.broken}"
        return Decision("auto", self.config.workers, None, (reason,), chosen_by="pending")

    def primitives(self) -> Any:
        """``pool.Lock()`` and friends (see :mod:`anypool._sync._base`): cross-process ones, which
        work between threads as well, unless every function so far runs in this process."""
        from .._sync import primitives_for
        from .._sync._process import ProcessPrimitives

        with self._lock:
            sides = list(self._sides.values())
        if sides and all(s.capabilities.shares_memory for s in sides):
            return primitives_for(sides[-1])
        return ProcessPrimitives(self.config.start_method)

    def workers_for(self, fn: Callable[..., Any]) -> int:
        """Workers that run ``fn``'s tasks: its decision's, or the pool's default before it
        (``Pool.map`` sizes its chunks and window from this, per function)."""
        profile = self._profiles.get(_profile_key(fn))
        decision = None if profile is None else profile.decision
        return self._default_workers if decision is None else decision.workers

    @property
    def chosen(self) -> Backend | None:
        """The backend the latest decided function runs on."""
        latest = self._latest
        return None if latest is None else latest.side

    def current_backend(self) -> Backend:
        return self.chosen or self

    def decision(self) -> Decision:
        return self.explain()

    def sides(self) -> dict[str, Backend]:
        """Every backend this pool runs functions on, by name."""
        with self._lock:
            return dict(self._sides)

    def worker_pids(self) -> list[int]:
        return [pid for side in self.sides().values() for pid in side.worker_pids()]

    def worker_restarts(self) -> int:
        return sum(side.worker_restarts() for side in self.sides().values())

    def workers_alive(self) -> int:
        probe = self._probe
        alive = 1 if probe is not None and probe.is_alive() else 0
        return alive + sum(side.workers_alive() for side in self.sides().values())

    def pending(self) -> int:
        return len(self._queue) + sum(side.pending() for side in self.sides().values())

    def kill(self, task: Task) -> bool:
        return any(side.kill(task) for side in self.sides().values())

    def resize(self, workers: int) -> None:
        with self._lock:
            self._settings = replace(self._settings, workers=workers)
            self.config = replace(self.config, workers=workers)
            self._default_workers = workers
            for profile in self._profiles.values():
                if profile.decision is not None:
                    profile.decision = replace(profile.decision, workers=workers)
            sides = [s for s in self._sides.values() if s.name != "inline"]
        for side in sides:
            side.resize(workers)
            side.config = replace(side.config, workers=workers)

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
                CancelledError(
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
            sides = list(self.sides().values())
            with self._lock:
                warm, self._warm = self._warm, None
        for side in sides if warm is None else [*sides, warm]:
            side.shutdown(wait=wait, cancel_pending=cancel_pending, kill_running=kill_running)
        if wait or kill_running:
            self._stop_deadlines()


def _drift(old: Measurements | None, new: Measurements | None) -> str | None:
    """How a function's fresh measurements differ from those it was decided on, if enough
    to matter (None: no drift)."""
    if old is None or new is None:
        return None
    if old.kind != new.kind:
        return f"now {new.kind} (CPU {new.cpu_fraction:.0%}; was {old.cpu_fraction:.0%})"
    ratio = new.per_task_s / old.per_task_s
    if ratio >= DRIFT_RATIO or ratio <= 1 / DRIFT_RATIO:
        return (
            f"tasks now take ~{format_seconds(new.per_task_s)} "
            f"(were ~{format_seconds(old.per_task_s)})"
        )
    return None


def _keeps(prefer: str, caps: Capabilities) -> bool:
    """Does a backend with ``caps`` stay in the running under ``prefer=`` (a trait it has;
    a backend name is another backend's)?"""
    return prefer not in AUTO_CANDIDATES and not unmet(caps, [prefer], gil_enabled())


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
