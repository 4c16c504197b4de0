"""Measuring sampled tasks for ``backend="auto"``: CPU against wall time, pickling, CPU waits.

::

    probe thread: pickle fn, args ─► [clean window: clocks ─► fn(item) x n ─► clocks] ─►
                  pickle the results ─► Sampler.add / probe_*
    timer thread: a long item still running ──► its thread's CPU and run-queue clocks

A *window* is a batch of calls of one function timed together. Nothing inside it but
the calls themselves can release the GIL: the run-queue clock (a ``pread``), locks and
pickling are read before and after, so a thread that submits in a loop cannot slip in
between two clock readings and make computing look like waiting. Tiny calls are
batched until a window costs :data:`MIN_WINDOW_S`, so it is long enough to measure.
What the GIL still takes inside a window (a forced switch to a busy caller) is
estimated from the other threads' CPU time and left out of the shares, as is the
time other programs held the CPUs (Linux schedstat).

Everything here reads clocks or pickles; the decision itself is the pure
:func:`anypool._scheduler._select.choose_backend`.
"""

from __future__ import annotations

import math
import os
import pickle
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._scheduler._chunking import item_bytes
from .._scheduler._select import Measurements

__all__ = [
    "IDLE_SAMPLES",
    "MAX_BATCH",
    "MAX_SAMPLES",
    "MIN_WINDOW_S",
    "NO_VALUE",
    "PICKLE_PROBES",
    "PROBE_BUDGET_S",
    "PROBE_MAX_WALL_S",
    "Clocks",
    "Partial",
    "RunQueueClock",
    "Sampler",
    "thread_cpu_clock",
    "window_overhead",
]

# Sampling stops after this many windows...
MAX_SAMPLES = 8
# ...or once the samples took this long on the probe thread. Until then the work runs on
# one thread, so on P CPUs the probe can cost up to (1 - 1/P) of this; 50 ms is below a
# 5% loss on a workload of a second or more, and 2+ tasks of 20 ms are enough to tell.
PROBE_BUDGET_S = 0.05
# The budget counts time the samples had a CPU: on a loaded machine they are stretched
# until they have run that long, or until this much wall time, whichever comes first.
PROBE_MAX_WALL_S = 0.5
# Items whose arguments and result are pickled to time the cost of crossing a process.
PICKLE_PROBES = 3
# With nothing queued behind the samples, this many windows are enough: deciding costs no
# one a wait then, and a small batch that fits in the budget still leaves a decision.
IDLE_SAMPLES = 2
# A window of tiny calls is filled from the queue until it runs this long: a 1 us call
# alone is as short as the clock readings around it. 1 ms is far below a GIL switch
# interval (5 ms), so a caller that wants the GIL is rarely let in during a window.
MIN_WINDOW_S = 1e-3
# Below this much measured time in all, the windows are so short that one hiccup (a page
# fault, an interrupt, a first call) can make the sum say 20x the typical item: the
# typical window's per-item time (the median) is taken instead of the mean.
MIN_SAMPLE_S = 2e-3
# Most calls in one window (a window of calls delivers their results at its end).
MAX_BATCH = 512
NO_VALUE = object()  # the item raised: there is no result to pickle
# An argument or result that is one buffer this large (bytes, bytearray, memoryview, an
# array with ``nbytes``) is not pickled to time it: its size tells the cost, at
# BUFFER_BYTES_PER_S for a round trip, and such buffers pickle. Pickling 8 MiB three
# times took longer than a whole map of 50 of them on threads.
LARGE_BUFFER = 1 << 20
BUFFER_BYTES_PER_S = 1e9
# A function whose items are this much cheaper to compute than to copy is decided from
# its first window when its items are large (LARGE_BUFFER): no backend that copies can
# pay, map holds only a couple of such items in flight, so each further window waits a
# round trip for the next item and costs more than the work it measures (50 x len() of
# 8 MiB: ~2 ms in all, where 2 windows more cost ~1 ms).
TRIVIAL_SHARE = 0.01


def _dumps(obj: object) -> bytes:
    try:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    except Exception:  # lambdas, closures, local classes: what the process backend uses next
        import cloudpickle

        data: bytes = cloudpickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        return data


def _buffer_bytes(obj: object) -> int:
    """Bytes of ``obj`` if it is a plain buffer (or an array) that pickles as its bytes."""
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    if isinstance(obj, memoryview):
        return obj.nbytes
    nbytes = getattr(obj, "nbytes", None)  # NumPy arrays and the like
    if isinstance(nbytes, int) and type(obj).__module__.split(".")[0] == "numpy":
        return nbytes
    return 0


def _parts(obj: object) -> list[object]:
    """The arguments of an ``(args, kwargs)`` pair, or ``[obj]``."""
    if (
        isinstance(obj, tuple)
        and len(obj) == 2
        and isinstance(obj[0], tuple)
        and isinstance(obj[1], dict)
    ):
        return [*obj[0], *obj[1].values()]
    return [obj]


def _function_problem(fn: Callable[..., Any]) -> str | None:
    """Why ``fn`` cannot reach a worker process, or None. It is pickled as the process
    backend pickles it: a function of the main script by reference *and* by value (a
    spawned worker may not have it), so a plain pickle by name that works here proves
    nothing (a closure defined under the main guard over a lock did)."""
    from .._errors._exceptions import SerializationError
    from .._wire._pickle import dumps_function_strictly

    try:
        dumps_function_strictly(fn)
    except SerializationError as exc:
        return f"{exc} (in the function)"
    return None


def _round_trip(obj: object, where: str) -> tuple[float, str | None]:
    """Seconds to pickle and unpickle ``obj``, and what went wrong (None: it pickles)."""
    parts = _parts(obj)
    large = [size for size in map(_buffer_bytes, parts) if size >= LARGE_BUFFER]
    if large:
        rest = [part for part in parts if _buffer_bytes(part) < LARGE_BUFFER]
        seconds, problem = _round_trip(rest, where) if rest else (0.0, None)
        return seconds + sum(large) / BUFFER_BYTES_PER_S, problem
    start = time.perf_counter()
    try:
        pickle.loads(_dumps(obj))
    except Exception as exc:
        return 0.0, f"{type(exc).__name__}: {exc} (in the {where})"
    return time.perf_counter() - start, None


@dataclass(frozen=True)
class Clocks:
    """The probe thread's clocks at one instant: wall, thread CPU, process CPU (all
    threads), run-queue seconds and times scheduled in (schedstat)."""

    wall: float
    cpu: float
    process_cpu: float
    queued: float
    slices: int


@dataclass(frozen=True)
class Window:
    """One timed batch of calls, as the Sampler takes it."""

    items: int
    wall: float
    cpu: float
    queued: float = 0.0
    gil: float = 0.0


def read_before(runqueue: RunQueueClock) -> Clocks:
    """Clocks at the start of a window: the run-queue read (a syscall that releases the
    GIL) comes first, the wall and thread-CPU clocks (which do not) last."""
    queued, slices = runqueue.read_both()
    process_cpu = time.process_time()
    return Clocks(time.perf_counter(), time.thread_time(), process_cpu, queued, slices)


def read_after(runqueue: RunQueueClock) -> Clocks:
    """Clocks at the end of a window, in the reverse order of :func:`read_before`."""
    cpu, wall = time.thread_time(), time.perf_counter()
    process_cpu = time.process_time()
    queued, slices = runqueue.read_both()
    return Clocks(wall, cpu, process_cpu, queued, slices)


def _nothing() -> None:
    return None


def window_overhead(runqueue: RunQueueClock) -> tuple[float, float]:
    """Wall seconds an empty window costs: the clock readings alone, and with one empty
    ``map`` chunk (run_chunk's call, loop set-up and result). Subtracted from every window,
    so that a chunk of one 0.1 us item is not measured as a 5 us item (the per-chunk cost
    is the dispatch model's business, see _select). The least of a few tries: noise only
    ever adds."""
    from .._task import run_chunk

    clocks = chunk = math.inf
    for _ in range(_CALIBRATION_TRIES):
        start = read_before(runqueue)
        _nothing()
        end = read_after(runqueue)
        clocks = min(clocks, end.wall - start.wall)
        start = read_before(runqueue)
        run_chunk(_nothing, (), False)
        end = read_after(runqueue)
        chunk = min(chunk, end.wall - start.wall)
    return max(0.0, clocks), max(0.0, chunk)


_CALIBRATION_TRIES = 20


def window(
    items: int, start: Clocks, end: Clocks, gil_enabled: bool, overhead: float = 0.0
) -> Window:
    """What a window measured. Under the GIL, time off the CPU while other threads of this
    process computed may have been a wait for the GIL, not IO: up to one switch interval
    per time the probe was scheduled back in is counted as such (a 50 ms sleep is one
    stretch off the CPU, so it stays a wait; a computation that a busy caller keeps
    taking the GIL from is many short ones)."""
    wall = max(0.0, end.wall - start.wall - overhead)
    cpu = min(max(0.0, end.cpu - start.cpu - overhead), wall)
    queued = max(0.0, end.queued - start.queued)
    gil = 0.0
    if gil_enabled:
        others = max(0.0, (end.process_cpu - start.process_cpu) - cpu)
        stretches = max(1, end.slices - start.slices)
        off = max(0.0, wall - cpu - queued)
        gil = min(off, others, stretches * sys.getswitchinterval())
    return Window(items, wall, cpu, queued, gil)


class Sampler:
    """Accumulates windows of calls of one function and what pickling showed. Not
    thread-safe: the front calls it under its lock (pickling probes: the probe thread)."""

    def __init__(self) -> None:
        self.samples = 0  # items
        self.windows = 0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.preempted_s = 0.0
        self.gil_s = 0.0
        self.chunked = False
        self.coroutine = False  # a coroutine function: see add(together=)
        self.problem: str | None = None
        self._fn_checked = False
        self._transfers: list[float] = []
        self._bytes: list[int] = []  # each probed item's argument bytes
        self._per_item: list[float] = []  # each window's active seconds per item

    def enough(self) -> bool:
        if self.windows >= MAX_SAMPLES or self.wall_s >= PROBE_MAX_WALL_S:
            return True
        return self.windows > 0 and self.active_s() >= PROBE_BUDGET_S

    def decisive(self) -> bool:
        """One window is enough: the items are large and trivially cheap to compute next to
        copying them (see TRIVIAL_SHARE), so only a backend that does not copy can win."""
        if self.windows < 1 or not self._transfers or not self._bytes:
            return False
        transfer = sum(self._transfers) / len(self._transfers)
        large = min(self._bytes) >= LARGE_BUFFER
        return large and self.per_item_s() < TRIVIAL_SHARE * transfer

    def active_s(self) -> float:
        """Wall time the samples were not kept off a CPU by other programs or threads."""
        return self.wall_s - self.preempted_s - self.gil_s

    def per_item_s(self) -> float:
        return self.active_s() / self.samples if self.samples else 0.0

    def add(self, w: Window, together: bool = False) -> None:
        """Count a window. ``together``: its items ran at once (a map chunk of coroutines on
        one event loop), so its wall time is about one coroutine's, not their sum."""
        if together and w.items > 1:
            w = _one_at_a_time(w)
        self.samples += w.items
        self.windows += 1
        self.wall_s += w.wall
        self.cpu_s += w.cpu
        self.preempted_s += w.queued
        self.gil_s += w.gil
        if w.items:
            self._per_item.append(max(0.0, w.wall - w.queued - w.gil) / w.items)

    def probe_call(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> float | None:
        """Before an item runs: do its arguments pickle, and how large are they? Returns
        the arguments' round-trip seconds, or None when not probed (enough probes, or a
        problem). Checked before running, so that a choice made while a long first task
        still runs already knows whether the call can reach a process (the function
        itself: :meth:`check_function`)."""
        if self.problem is not None or len(self._transfers) >= PICKLE_PROBES:
            return None
        self._bytes.append(sum(map(item_bytes, _parts((args, kwargs)))))
        seconds, self.problem = _round_trip((args, kwargs), "arguments")
        return seconds if self.problem is None else None

    def check_function(self, fn: Callable[..., Any]) -> bool:
        """Does ``fn`` reach a worker process? Checked once, and only when a choice would
        send it to one (pickling a script's function by value takes ~0.5 ms, a quarter
        of a whole map of 50 cheap calls on large items); False records the problem."""
        if not self._fn_checked:
            self._fn_checked = True
            problem = _function_problem(fn)
            if problem is not None and self.problem is None:
                self.problem = problem
        return self.problem is None

    def probe_result(self, value: Any, args_s: float | None) -> None:
        """After an item ran: does its result pickle? Record the item's transfer cost."""
        if args_s is None or self.problem is not None:
            return
        result_s = 0.0
        if value is not NO_VALUE:
            result_s, self.problem = _round_trip(value, "result")
        if self.problem is None:
            self._transfers.append(args_s + result_s)

    def measurements(self, partial: Partial | None = None) -> Measurements | None:
        """What the samples showed; None before any item finished (and no partial one)."""
        samples, wall, cpu, preempted = self.samples, self.wall_s, self.cpu_s, self.preempted_s
        gil = self.gil_s
        if partial is not None:
            samples, wall = samples + 1, wall + partial.wall
            cpu, preempted, gil = cpu + partial.cpu, preempted + partial.queued, gil + partial.gil
        if samples == 0:
            return None
        transfers = list(self._transfers)  # the probe thread may append meanwhile
        transfer = sum(transfers) / len(transfers) if transfers else None
        scale = self._typical_scale(samples, wall - preempted - gil)
        wall, cpu, preempted, gil = wall * scale, cpu * scale, preempted * scale, gil * scale
        off = max(0.0, wall - cpu)
        preempted = min(preempted, off)
        return Measurements(
            samples,
            wall,
            cpu,
            picklable=self.problem is None,
            pickle_error=self.problem,
            transfer_s=transfer,
            chunked=self.chunked,
            partial=partial is not None,
            preempted_s=preempted,
            gil_wait_s=min(gil, off - preempted),
            item_bytes=sum(self._bytes) // len(self._bytes) if self._bytes else 0,
            coroutine=self.coroutine,
        )

    def _typical_scale(self, samples: int, active: float) -> float:
        """1, or less when a short sample's mean is above its median window (see
        MIN_SAMPLE_S): the shares stay, the per-item time becomes the typical one."""
        if len(self._per_item) < 3 or active >= MIN_SAMPLE_S or active <= 0:
            return 1.0
        typical = statistics.median(self._per_item)
        return min(1.0, typical * samples / active)


def _one_at_a_time(w: Window) -> Window:
    """A window of ``n`` coroutines that ran at once, as ``n`` coroutines one after another.

    Each computed ``c = cpu / n``; the loop ran one computation at a time, so the last
    coroutine started waiting after about ``(n - 1) c`` and one coroutine's own wall time
    is ``t = active - (n - 1) c`` (at least ``c``). The window becomes ``n t`` of wall
    time, with the waits for a CPU or the GIL scaled alike: a chunk of 100 sleeps of
    50 ms is then 100 tasks of 50 ms that compute ~0.1 ms each, as submitted ones would be.
    """
    n = w.items
    per_cpu = w.cpu / n
    active = w.wall - w.queued - w.gil
    if active <= 0:
        return w
    one = max(per_cpu, active - (n - 1) * per_cpu)
    scale = n * one / active
    return Window(n, w.wall * scale, w.cpu, w.queued * scale, w.gil * scale)


# A running sample measured from outside (by the timer thread): a window of its one item
# so far, with the same GIL estimate as a finished window's (a busy caller that keeps
# taking the GIL from a long first task must not make it look half waiting).
Partial = Window


class RunQueueClock:
    """Seconds a thread has spent ready to run while other programs held the CPUs, and how
    many times it was scheduled in.

    Linux's ``/proc/self/task/<tid>/schedstat`` (second and third fields). Without it
    (other systems, or a kernel without schedstats) it reads 0 and nothing is corrected.
    The file stays open and is re-read with ``pread``: about a microsecond per reading.
    """

    def __init__(self, native_id: int | None) -> None:
        self._fd: int | None = None
        if native_id is not None and hasattr(os, "pread"):
            try:
                self._fd = os.open(f"/proc/self/task/{native_id}/schedstat", os.O_RDONLY)
            except OSError:
                pass

    def read_both(self) -> tuple[float, int]:
        if self._fd is None:
            return 0.0, 0
        try:
            fields = os.pread(self._fd, 128, 0).split()
            return int(fields[1]) / 1e9, int(fields[2])
        except (OSError, ValueError, IndexError):
            return 0.0, 0

    def read(self) -> float:
        return self.read_both()[0]

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def thread_cpu_clock(thread: threading.Thread) -> Callable[[], float] | None:
    """A reader of another thread's CPU clock, where the platform has one (Linux, BSDs)."""
    getter = getattr(time, "pthread_getcpuclockid", None)
    if getter is None or thread.ident is None:
        return None
    try:
        clock = getter(thread.ident)
        time.clock_gettime(clock)
    except OSError:
        return None
    return lambda: time.clock_gettime(clock)
