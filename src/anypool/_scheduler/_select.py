"""``backend="auto"``'s choice: a pure function of a runtime snapshot and measurements.

::

    RuntimeSnapshot (GIL, usable CPUs, candidate backends and their Capabilities)
    Measurements    (CPU vs wall time of sampled tasks, pickling cost)   ──► choose_backend
    prefer= (soft), require= (hard)                                             │
                                                                                ▼
                     Decision(backend, workers, chunksize, reasons, estimates)

The choice reads :class:`~anypool.abc.Capabilities` flags only; backend names
appear just to enumerate the candidates (:data:`AUTO_CANDIDATES`). Each allowed
candidate gets a throughput estimate from a small model:

* a task spends ``c`` seconds on the CPU and ``t`` seconds of wall time; a
  candidate that pickles adds its transfer cost to both, every task pays a
  dispatch cost that chunking (in ``map``) spreads over the chunk;
* CPU work runs on ``P`` usable CPUs when ``parallel_cpu`` holds (processes, or
  threads with the GIL disabled), else on one, whatever the number of threads;
* ``W`` workers overlap waits: items/s = min(W / t, cpus / c), with ``W`` sized
  just large enough to keep the CPUs busy (capped);
* a candidate that runs tasks in the caller (inline) has no overhead and no overlap.

The highest estimate wins, except that a cheaper candidate (no pickling first,
then one that does not run in the caller) within :data:`CHEAPER_WITHIN` of it is
taken instead: near-equal speed is not worth copies and process start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .._errors._exceptions import CapabilityError
from ..abc import Capabilities
from ._chunking import MAX_CHUNK, MAX_READ_AHEAD_BYTES, TARGET_CHUNK_S

__all__ = [
    "AUTO_CANDIDATES",
    "COROUTINES_PER_WORKER",
    "REQUIREMENTS",
    "Candidate",
    "Decision",
    "Estimate",
    "Measurements",
    "RuntimeSnapshot",
    "choose_backend",
    "effective_parallel_cpu",
    "fixed_decision",
    "format_seconds",
    "function_name",
    "parse_prefer",
    "parse_require",
]

#: The backends auto may choose. Asyncio needs coroutine functions and Dask/Ray need a
#: cluster, so they are chosen by name only.
AUTO_CANDIDATES = ("thread", "process", "inline")

# Work is *called* CPU-bound / IO-bound in the reasons at these CPU shares of wall
# time; the choice itself comes from the estimates, these thresholds only name it.
CPU_BOUND = 0.8
IO_BOUND = 0.2
# Work that computes less than this share of its time stays on threads (docs/gil.md's
# table): the estimates may still favour processes a little (8% of computing under the
# GIL caps threads at one core's worth), but that gain only repays starting up to 16
# processes on a long workload, and a short one paid their start for nothing (2 sleeps
# of 0.5 ms took 0.15 s on processes, 1 ms in a loop).
PROCESSES_FROM_SHARE = 0.10
# Most threads auto sizes a pool to for waiting work. More overlap more waits, but each
# thread costs a stack and a remote service may not welcome 1000 connections; pass
# workers= to go higher. Threads start on demand, so a small workload never makes them all.
# 256, not 128: 2000 sleeps of 50 ms took 0.93 s on 128 threads against 0.59 s on a
# fixed 200 (benchmarks/RESULTS.md, issue 10).
MAX_THREADS = 256
# Most process workers, for work that waits part of the time: each one is a whole
# interpreter (tens of MB), so oversubscription stops at 8 per CPU and 64 in all.
MAX_PROCESSES_PER_CPU = 8
MAX_PROCESSES = 64
# Per-task dispatch cost, in CPU seconds, that chunking spreads over a chunk: queue,
# future and wake-up for a thread; a pipe round trip and framing for a process.
# Rough figures from the 2-core dev VM; only their order of magnitude matters here.
THREAD_DISPATCH_S = 20e-6
PROCESS_DISPATCH_S = 150e-6
# Transfer cost assumed per item when it was not measured (no pickling probe ran).
DEFAULT_TRANSFER_S = 20e-6
# A cheaper candidate within this fraction of the best estimate is chosen instead.
CHEAPER_WITHIN = 0.9
# Workers for work that waits. cpus * (1 + w/c) workers would keep the CPUs busy if waits
# and computing interleaved perfectly, but tasks started together compute together and
# then wait together: W workers then finish W tasks every W*c/cpus + w seconds, within
# 10% of the CPUs' limit only when W >= 10 * cpus * w / c. Waiting workers are cheap, so
# the pool is sized for that, up to the caps. (Bench, mixed workload, 2 CPUs, ~45% CPU:
# 4 processes reached 75%, 5 reached 75-89% and 8 reached 85% of 10 processes' speed.)
WAIT_HEADROOM = 10.0
# This much waiting per second of computing is measurement noise, not waiting: timer
# granularity, and on a loaded machine what the run-queue correction misses (a busy loop
# sampled beside 4 CPU hogs on 2 CPUs still showed 0.27). Sizing counts only the excess.
_NOISE_WAITS = 0.3
# Waiting shorter than this per task is not IO a thread could overlap: it is a GIL
# hand-off to the thread that submits the tasks, a context switch, timer granularity
# (seen here: abs() sampled at 72 us with "47% waiting" on a loaded 2-CPU machine).
# Such tasks are modelled as pure computation.
_NOISE_WAIT_S = 200e-6
# Wall times are clamped to this floor so that instant tasks do not divide by zero.
_TINY_S = 1e-7
# Coroutines of a coroutine function that one worker (a thread or a process, each with its
# event loop) has in flight: a map chunk's run together, up to this many (as
# anypool._core._aio.COROUTINES_PER_CHUNK); a submitted coroutine runs alone.
COROUTINES_PER_WORKER = 100


@dataclass(frozen=True)
class Candidate:
    """A backend auto may choose, with the flags it decides from."""

    name: str
    capabilities: Capabilities


@dataclass(frozen=True)
class RuntimeSnapshot:
    """The facts about this interpreter and machine that the choice depends on."""

    gil_enabled: bool
    usable_cpus: int
    candidates: tuple[Candidate, ...]
    free_threaded_build: bool = False

    def __post_init__(self) -> None:
        if self.usable_cpus < 1:
            raise ValueError(f"usable_cpus must be >= 1, got {self.usable_cpus!r}")

    def describe(self) -> str:
        if self.gil_enabled:
            gil = "GIL enabled"
        else:
            gil = "GIL disabled" + (" (free-threaded build)" if self.free_threaded_build else "")
        cpus = f"{self.usable_cpus} usable CPU" + ("s" if self.usable_cpus != 1 else "")
        return f"{gil}; {cpus}"


@dataclass(frozen=True)
class Measurements:
    """What sampling the first tasks of a function showed (totals over ``samples`` items)."""

    samples: int
    wall_s: float
    cpu_s: float
    picklable: bool = True
    pickle_error: str | None = None
    transfer_s: float | None = None
    """Seconds per item to pickle and unpickle its arguments and result; None: not measured."""
    chunked: bool = False
    """The tasks came from ``map``, so chunks can spread per-task overhead."""
    partial: bool = False
    """The last sample was still running when measured (a long task)."""
    preempted_s: float = 0.0
    """Of ``wall_s``, the time the tasks were ready to run but other programs had the
    CPUs (Linux schedstat). Left out of the shares: a busy machine is not IO."""
    gil_wait_s: float = 0.0
    """Of ``wall_s``, the time the sampling thread likely waited for the GIL while other
    threads of this process computed (a busy caller). Left out of the shares too."""
    item_bytes: int = 0
    """Estimated bytes of one item's arguments (0: not measured). ``map`` holds at most
    MAX_READ_AHEAD_BYTES of items in flight, so large items come in small chunks."""
    coroutine: bool = False
    """The function is a coroutine function: each worker runs its coroutines on an event
    loop, a map chunk's together (COROUTINES_PER_WORKER), so waits overlap within a worker
    and only the computing needs more CPUs. The figures are per coroutine: wall time from
    its start to its end, CPU time of the thread that awaited it."""

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples!r}")
        if self.wall_s < 0 or self.cpu_s < 0:
            raise ValueError("wall_s and cpu_s must be >= 0")
        if self.transfer_s is not None and self.transfer_s < 0:
            raise ValueError("transfer_s must be >= 0 or None")
        if self.preempted_s < 0 or self.gil_wait_s < 0:
            raise ValueError("preempted_s and gil_wait_s must be >= 0")
        if self.item_bytes < 0:
            raise ValueError("item_bytes must be >= 0")

    @property
    def active_s(self) -> float:
        """Wall time minus the time spent waiting for a CPU held by other programs, or for
        the GIL held by other threads."""
        return max(self.cpu_s, self.wall_s - self.preempted_s - self.gil_wait_s)

    @property
    def per_task_s(self) -> float:
        """Mean wall time of one item, as on an idle machine."""
        return max(self.active_s / self.samples, _TINY_S)

    @property
    def cpu_fraction(self) -> float:
        """CPU time over (active) wall time, 0..1 (1: pure computation, 0: pure waiting)."""
        if self.active_s <= 0:
            return 1.0
        return min(1.0, self.cpu_s / self.active_s)

    @property
    def kind(self) -> str:
        if self.cpu_fraction >= CPU_BOUND:
            return "CPU-bound"
        if self.cpu_fraction <= IO_BOUND:
            return "IO-bound"
        return "mixed"

    def describe(self) -> str:
        tasks = "task" if self.samples == 1 else "tasks"
        text = (
            f"CPU {self.cpu_fraction:.0%} of wall time over {self.samples} sampled {tasks} "
            f"of ~{format_seconds(self.per_task_s)}"
        )
        if self.partial:
            text += " (the last one still running)"
        if self.wall_s > 0 and self.preempted_s >= 0.1 * self.wall_s:
            text += f" (busy machine: {self.preempted_s / self.wall_s:.0%} of it waiting for a CPU)"
        if self.wall_s > 0 and self.gil_wait_s >= 0.1 * self.wall_s:
            text += f" (busy caller: {self.gil_wait_s / self.wall_s:.0%} of it waiting for the GIL)"
        return text


@dataclass(frozen=True)
class Estimate:
    """The model's throughput for one candidate, or why it was excluded."""

    backend: str
    workers: int
    items_per_s: float
    excluded: str | None = None

    def describe(self) -> str:
        if self.excluded is not None:
            return f"{self.backend}: excluded, {self.excluded}"
        noun = "worker" if self.workers == 1 else "workers"
        return f"{self.backend} ~{_rate(self.items_per_s)} items/s with {self.workers} {noun}"


@dataclass(frozen=True)
class Decision:
    """Which backend runs the work, how many workers, and the reasons, with numbers."""

    backend: str
    workers: int
    chunksize: int | None
    """Items per ``map`` chunk that keep dispatch overhead small; None: not applicable."""
    reasons: tuple[str, ...]
    measurements: Measurements | None = None
    snapshot: RuntimeSnapshot | None = None
    estimates: tuple[Estimate, ...] = field(default=())
    chosen_by: str = "auto"
    """``"auto"`` (measured), ``"user"`` (a fixed backend), ``"pending"`` (not decided yet)."""
    function: str | None = None
    """The task function this decision is for (``backend="auto"`` decides per function)."""
    functions: tuple[Decision, ...] = field(default=())
    """On the decision ``pool.explain()`` returns: every function's own decision, oldest
    first. The fields above are then those of the latest one."""

    @property
    def summary(self) -> str:
        return self.reasons[0] if self.reasons else ""

    def for_function(self, fn: object) -> Decision:
        """The decision for one task function (the function, or its qualified name)."""
        name = fn if isinstance(fn, str) else function_name(fn)
        for decision in self.functions or (self,):
            if decision.function == name:
                return decision
        known = ", ".join(repr(d.function) for d in self.functions) or "none yet"
        raise KeyError(f"no decision for function {name!r}; decided: {known}")

    def __str__(self) -> str:
        if len(self.functions) > 1:
            lines = [f"{len(self.functions)} task functions, each decided on its own:"]
            for decision in self.functions:
                lines.append(f"{decision.function}: {decision.summary}")
                lines += [f"  - {r}" for r in decision.reasons[1:]]
            return "\n".join(lines)
        return "\n".join([self.reasons[0], *(f"  - {r}" for r in self.reasons[1:])])


def function_name(fn: object) -> str:
    """How a decision names a task function: module-qualified, as in a traceback."""
    inner = getattr(fn, "func", None)  # functools.partial
    if inner is not None and callable(inner):
        fn = inner
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{name}"


# -- requirements and preferences --------------------------------------------------------
def effective_parallel_cpu(caps: Capabilities, gil_enabled: bool) -> bool:
    """``parallel_cpu``, corrected for this interpreter: without a GIL, threads in this
    process (shared memory, not in the caller) compute in parallel too."""
    if caps.parallel_cpu:
        return True
    return not gil_enabled and caps.shares_memory and not caps.runs_in_caller


@dataclass(frozen=True)
class Requirement:
    meaning: str
    holds: Callable[[Capabilities, bool], bool]  # (capabilities, gil_enabled)


REQUIREMENTS: Mapping[str, Requirement] = {
    "shared_memory": Requirement(
        "tasks see the caller's objects, without copies", lambda c, g: c.shares_memory
    ),
    "no_pickling": Requirement(
        "functions, arguments and results are not pickled", lambda c, g: not c.needs_pickling
    ),
    "kill_on_timeout": Requirement(
        "a running task can be stopped (timeouts and kill stop it)",
        lambda c, g: c.kills_running_tasks,
    ),
    "crash_isolation": Requirement(
        "a task that crashes its worker fails only itself", lambda c, g: c.isolates_crashes
    ),
    "parallel_cpu": Requirement(
        "pure-Python CPU-bound tasks run in parallel", effective_parallel_cpu
    ),
    "background": Requirement(
        "tasks run outside the caller's thread, so submit() returns at once",
        lambda c, g: not c.runs_in_caller,
    ),
    "timeouts": Requirement("timeout= is honoured", lambda c, g: c.supports_timeouts),
    "retries": Requirement("retries= is honoured", lambda c, g: c.supports_retries),
    "priority": Requirement("order= and priority= are honoured", lambda c, g: c.supports_priority),
}
_REQUIRE_ALIASES = {
    "sharedmem": "shared_memory",  # joblib's spelling
    "shares_memory": "shared_memory",  # the Capabilities field names
    "kills_running_tasks": "kill_on_timeout",
    "isolates_crashes": "crash_isolation",
}
_PREFER_ALIASES = {"threads": "thread", "processes": "process"}  # joblib's spelling


def _requirement_name(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"require= takes requirement names (str), got {value!r}")
    name = _REQUIRE_ALIASES.get(value, value)
    if name not in REQUIREMENTS:
        known = ", ".join(repr(n) for n in REQUIREMENTS)
        raise ValueError(f"unknown requirement {value!r}; known requirements: {known}")
    return name


def parse_require(require: str | Iterable[str] | None) -> frozenset[str]:
    """Validate ``require=``: one name or several; aliases map to canonical names."""
    if require is None:
        return frozenset()
    if isinstance(require, str):
        return frozenset({_requirement_name(require)})
    return frozenset(_requirement_name(r) for r in require)


def parse_prefer(prefer: str | None) -> str | None:
    """Validate ``prefer=``: a candidate backend name or a requirement name (held softly)."""
    if prefer is None:
        return None
    if not isinstance(prefer, str):
        raise TypeError(f"prefer= takes a backend or requirement name, got {prefer!r}")
    name = _PREFER_ALIASES.get(prefer, prefer)
    if name in AUTO_CANDIDATES:
        return name
    name = _REQUIRE_ALIASES.get(prefer, prefer)
    if name in REQUIREMENTS:
        return name
    backends = ", ".join(repr(b) for b in AUTO_CANDIDATES)
    traits = ", ".join(repr(r) for r in REQUIREMENTS)
    raise ValueError(
        f"unknown prefer={prefer!r}; prefer a backend ({backends}) or a trait ({traits}). "
        "Other backends (asyncio, dask, ray) are chosen by name: backend='dask'"
    )


def unmet(caps: Capabilities, require: Iterable[str], gil_enabled: bool) -> list[str]:
    """The requirements (canonical names) that ``caps`` does not meet."""
    return sorted(r for r in require if not REQUIREMENTS[r].holds(caps, gil_enabled))


# -- the model ----------------------------------------------------------------------------
def _cost_rank(caps: Capabilities) -> tuple[bool, bool]:
    """Lower is cheaper: no copies or process start-up first, then not blocking the caller."""
    return (caps.needs_pickling, caps.runs_in_caller)


def _at_once(m: Measurements) -> int:
    """Tasks one worker has in flight: coroutines of a map chunk share its event loop."""
    return COROUTINES_PER_WORKER if m.coroutine and m.chunked else 1


def _chunk_items(m: Measurements) -> int:
    if not m.chunked:
        return 1
    if m.coroutine:  # a chunk is the coroutines a worker runs at once (map sizes it so)
        return COROUTINES_PER_WORKER
    items = max(1, min(MAX_CHUNK, int(TARGET_CHUNK_S / m.per_task_s)))
    if m.item_bytes:
        # map keeps at most MAX_READ_AHEAD_BYTES of items in flight, in 2+ chunks: 50 items
        # of 8 MiB go one or two at a time, each chunk a hand-off however cheap the work
        items = min(items, max(1, MAX_READ_AHEAD_BYTES // (2 * m.item_bytes)))
    return items


def _estimate(
    cand: Candidate, snap: RuntimeSnapshot, m: Measurements, workers: int | None
) -> Estimate:
    caps = cand.capabilities
    wall = m.per_task_s
    cpu = wall * m.cpu_fraction
    if wall - cpu < _NOISE_WAIT_S:
        cpu = wall
    if caps.runs_in_caller:
        return Estimate(cand.name, 1, 1.0 / wall)
    dispatch = PROCESS_DISPATCH_S if caps.needs_pickling else THREAD_DISPATCH_S
    overhead = dispatch / _chunk_items(m)
    if caps.needs_pickling:
        overhead += DEFAULT_TRANSFER_S if m.transfer_s is None else m.transfer_s
    busy, cpu_busy = wall + overhead, cpu + overhead
    cpus = snap.usable_cpus if effective_parallel_cpu(caps, snap.gil_enabled) else 1
    at_once = _at_once(m)
    if workers is None:
        cap = MAX_THREADS
        if caps.needs_pickling:
            cap = min(MAX_PROCESSES, snap.usable_cpus * MAX_PROCESSES_PER_CPU)
        # seconds waiting per second computing, less what measurement noise can produce
        waits = max(0.0, (busy - cpu_busy) / cpu_busy - _NOISE_WAITS)
        # tasks in flight: coroutines as many as threads would be (MAX_THREADS: a remote
        # service may not welcome more), a loop's worth per worker
        most = MAX_THREADS if m.coroutine else cap
        in_flight = min(most, math.ceil(cpus * (1 + WAIT_HEADROOM * waits)))
        workers = max(cpus, min(cap, math.ceil(in_flight / at_once)))
        if m.kind == "CPU-bound":
            workers = cpus  # more would only take turns on the same CPUs
    rate = min(workers * at_once / busy, cpus / cpu_busy)
    if caps.needs_pickling:
        rate = min(rate, 2.0 / overhead)  # the parent pickles and unpickles half of it, serially
    return Estimate(cand.name, workers, rate)


def _pick(allowed: list[Candidate], estimates: dict[str, Estimate]) -> tuple[Candidate, str]:
    best = max(allowed, key=lambda c: estimates[c.name].items_per_s)
    top = estimates[best.name].items_per_s
    for cand in sorted(allowed, key=lambda c: _cost_rank(c.capabilities)):
        if _cost_rank(cand.capabilities) >= _cost_rank(best.capabilities):
            break
        if estimates[cand.name].items_per_s >= CHEAPER_WITHIN * top:
            why = (
                f"{cand.name} is within {1 - CHEAPER_WITHIN:.0%} of {best.name}'s estimate "
                f"and cheaper ({_cheaper_because(cand.capabilities, best.capabilities)})"
            )
            return cand, why
    return best, f"{best.name} has the highest estimate"


def _cheaper_because(cheap: Capabilities, dear: Capabilities) -> str:
    if dear.needs_pickling and not cheap.needs_pickling:
        return "no pickling, no process start-up"
    return "submit() does not run the task in the caller"


# -- reasons ------------------------------------------------------------------------------
def _rate(items_per_s: float) -> str:
    if items_per_s >= 1e6:
        return f"{items_per_s / 1e6:.1f}M"
    if items_per_s >= 1e4:
        return f"{items_per_s / 1e3:.0f}k"
    if items_per_s >= 1e3:
        return f"{items_per_s / 1e3:.1f}k"
    return f"{items_per_s:.3g}"


def format_seconds(seconds: float) -> str:
    """A short human duration: 2.5 us, 590 us, 40 ms, 1.2 s, 95 s (two significant
    digits, never in exponent notation: ``:.2g`` wrote 590 us as 5.9e+02 us)."""
    for scale, unit in ((1e-3, "us"), (1.0, "ms")):
        if seconds < scale:
            return f"{_two_digits(seconds / scale * 1e3)} {unit}"
    return f"{_two_digits(seconds)} s"


def _two_digits(value: float) -> str:
    return f"{value:.2g}" if value < 99.5 else f"{value:.0f}"  # 99.7: "1e+02" otherwise


def _why_kind(
    m: Measurements, chosen: Candidate, shortlist: list[Candidate], snap: RuntimeSnapshot
) -> str:
    caps = chosen.capabilities
    parallel = effective_parallel_cpu(caps, snap.gil_enabled)
    could = any(effective_parallel_cpu(c.capabilities, snap.gil_enabled) for c in shortlist)
    if m.kind == "IO-bound" and not (parallel and caps.needs_pickling and snap.gil_enabled):
        return "IO-bound: a waiting thread releases the GIL, so waits overlap on threads"
    if m.kind == "IO-bound":
        return (
            f"IO-bound, but its {m.cpu_fraction:.0%} of computing would run one thread at a "
            "time under the GIL: processes overlap the waits and compute in parallel"
        )
    if snap.usable_cpus == 1:
        return f"{m.kind}: with 1 usable CPU no backend computes in parallel"
    if parallel and caps.needs_pickling and snap.gil_enabled:
        return (
            f"{m.kind} under the GIL: only one thread computes at a time, while each "
            "process has its own GIL"
        )
    if parallel and not snap.gil_enabled:
        return f"{m.kind} without a GIL: threads compute in parallel, no pickling needed"
    if not could:
        return f"{m.kind}, but no remaining backend computes in parallel (see below)"
    return f"{m.kind}: running in parallel would not repay its overhead at this task size"


def _mostly_waiting(m: Measurements, shortlist: list[Candidate]) -> list[Candidate]:
    """Below PROCESSES_FROM_SHARE of computing, the backends that pickle are left out when
    one that does not is allowed."""
    if m.cpu_fraction >= PROCESSES_FROM_SHARE:
        return shortlist
    return [c for c in shortlist if not c.capabilities.needs_pickling] or shortlist


def _waiting_coroutines(m: Measurements, shortlist: list[Candidate]) -> list[Candidate]:
    """IO-bound coroutines stay on event loops in this process when one is allowed. The
    estimates would send them to processes as soon as enough of them in flight could
    keep one loop's CPU busy (300 sleeps of 5 ms at ~70 us of loop work each do), which
    turns on the loop's own overhead, a few dozen microseconds, and on an unknown demand.
    Below IO_BOUND of computing, a loop is rarely the limit; above it, the estimates
    decide (a coroutine that parses what it fetched)."""
    if not m.coroutine or m.kind != "IO-bound":
        return shortlist
    return [c for c in shortlist if not c.capabilities.needs_pickling] or shortlist


def _why_loops(m: Measurements, chosen: Candidate, workers: int, snap: RuntimeSnapshot) -> str:
    """The coroutine line of explain(): the CPU share, and where the event loops run."""
    share = f"coroutine function: CPU {m.cpu_fraction:.0%} of each coroutine's time"
    at_once = (
        f"a map chunk's coroutines together, up to {COROUTINES_PER_WORKER} at once per loop"
        if m.chunked
        else "one submitted coroutine at a time per loop"
    )
    if effective_parallel_cpu(chosen.capabilities, snap.gil_enabled) and snap.usable_cpus > 1:
        return (
            f"{share} -> an event loop in each of {_workers(workers)} ({chosen.name}; "
            f"{at_once}): their computing spreads over {snap.usable_cpus} CPUs, where "
            "loops in this process would share one"
        )
    why = "the computing fits one CPU"
    if m.kind == "IO-bound":
        why = f"at most {IO_BOUND:.0%} of computing, a loop is rarely the limit"
    return (
        f"{share} -> event loops in this process ({chosen.name}, {_workers(workers)}; "
        f"{at_once}): the waits overlap on a loop, and {why}"
    )


def _excluded_reasons(
    cands: tuple[Candidate, ...], require: frozenset[str], m: Measurements | None, gil: bool
) -> dict[str, str]:
    out: dict[str, str] = {}
    for cand in cands:
        missing = unmet(cand.capabilities, require, gil)
        if missing:
            out[cand.name] = "does not meet require=" + ", ".join(repr(r) for r in missing)
        elif m is not None and not m.picklable and cand.capabilities.needs_pickling:
            out[cand.name] = f"the function or its data does not pickle ({m.pickle_error})"
        elif m is not None and m.coroutine and cand.capabilities.runs_in_caller:
            out[cand.name] = "a coroutine's waits would block the caller"
    return out


def _apply_prefer(
    prefer: str | None, allowed: list[Candidate], gil: bool, notes: list[str]
) -> list[Candidate]:
    if prefer is None:
        return allowed
    if prefer in REQUIREMENTS:
        keep = [c for c in allowed if not unmet(c.capabilities, [prefer], gil)]
        if keep:
            notes.append(f"prefer={prefer!r}: kept {', '.join(c.name for c in keep)}")
            return keep
        notes.append(f"prefer={prefer!r} ignored: no allowed backend has it")
        return allowed
    chosen = [c for c in allowed if c.name == prefer]
    if chosen:
        notes.append(f"prefer={prefer!r} honoured")
        return chosen
    notes.append(f"prefer={prefer!r} ignored: that backend is unavailable or excluded")
    return allowed


def _no_candidate(cands: tuple[Candidate, ...], excluded: Mapping[str, str]) -> CapabilityError:
    if not cands:
        return CapabilityError("backend='auto' found no usable backend")
    detail = "; ".join(f"{name} {why}" for name, why in excluded.items())
    return CapabilityError(f"backend='auto' has no backend that fits: {detail}")


def choose_backend(
    snapshot: RuntimeSnapshot,
    measurements: Measurements | None = None,
    *,
    prefer: str | None = None,
    require: str | Iterable[str] | None = None,
    workers: int | None = None,
) -> Decision:
    """Choose a backend and worker count; raise CapabilityError when nothing fits ``require``.

    ``workers`` fixes the worker count (the user passed one); otherwise it is sized
    from the measurements. Without measurements the cheapest backend that runs tasks
    in the background is chosen, with one worker per usable CPU.
    """
    required = parse_require(require)
    prefer = parse_prefer(prefer)
    gil = snapshot.gil_enabled
    excluded = _excluded_reasons(snapshot.candidates, required, measurements, gil)
    allowed = [c for c in snapshot.candidates if c.name not in excluded]
    if not allowed:
        raise _no_candidate(snapshot.candidates, excluded)
    notes: list[str] = []
    if required:
        notes.append("required: " + ", ".join(sorted(required)))
    shortlist = _apply_prefer(prefer, allowed, gil, notes)
    notes += [f"{name} excluded: {why}" for name, why in excluded.items()]
    present = {c.name for c in snapshot.candidates}
    notes += [
        f"{name} backend not available here" for name in AUTO_CANDIDATES if name not in present
    ]
    if measurements is None:
        return _unmeasured(snapshot, shortlist, notes, workers)
    return _measured(snapshot, measurements, shortlist, excluded, notes, workers)


def _unmeasured(
    snap: RuntimeSnapshot, shortlist: list[Candidate], notes: list[str], workers: int | None
) -> Decision:
    background = [c for c in shortlist if not c.capabilities.runs_in_caller] or shortlist
    chosen = min(background, key=lambda c: _cost_rank(c.capabilities))
    count = 1 if chosen.capabilities.runs_in_caller else (workers or snap.usable_cpus)
    head = f"no task measured; {snap.describe()} -> {chosen.name} backend, {_workers(count)}"
    return Decision(
        chosen.name,
        count,
        None,
        (head, "the cheapest backend that meets the requirements", *notes),
        snapshot=snap,
    )


def _measured(
    snap: RuntimeSnapshot,
    m: Measurements,
    shortlist: list[Candidate],
    excluded: Mapping[str, str],
    notes: list[str],
    workers: int | None,
) -> Decision:
    estimates = {c.name: _estimate(c, snap, m, workers) for c in snap.candidates}
    chosen, why = _pick(_mostly_waiting(m, _waiting_coroutines(m, shortlist)), estimates)
    count = estimates[chosen.name].workers
    head = f"{m.describe()}; {snap.describe()} -> {chosen.name} backend, {_workers(count)}"
    shown = [
        Estimate(e.backend, e.workers, e.items_per_s, excluded.get(e.backend))
        for e in estimates.values()
    ]
    reasons = [head, _why_kind(m, chosen, shortlist, snap)]
    if m.coroutine:
        reasons.append(_why_loops(m, chosen, count, snap))
    reasons.append("estimates: " + "; ".join(e.describe() for e in shown if not e.excluded))
    reasons.append(f"chose {chosen.name}: {why}")
    chunk = _chunk_items(m) if m.chunked else None
    if chunk is not None and chunk > 1 and not m.coroutine:  # (the coroutine line says it)
        reasons.append(
            f"tasks of ~{format_seconds(m.per_task_s)}: map chunks of up to ~{chunk} items "
            "keep the per-task overhead small"
        )
    if m.transfer_s is not None:
        reasons.append(f"pickling one item's arguments and result: ~{format_seconds(m.transfer_s)}")
    if workers is not None:
        reasons.append(f"workers={workers} as given")
    return Decision(
        chosen.name, count, chunk, (*reasons, *notes), m, snap, tuple(shown), chosen_by="auto"
    )


def _workers(count: int) -> str:
    return f"{count} worker" + ("" if count == 1 else "s")


def fixed_decision(backend: str, workers: int) -> Decision:
    """What ``explain()`` says for a pool whose backend the user named."""
    return Decision(
        backend,
        workers,
        None,
        (
            f"backend={backend!r} chosen by the caller -> {backend} backend, {_workers(workers)}",
            "nothing was measured; Pool(backend='auto') measures the first tasks and chooses",
        ),
        chosen_by="user",
    )
