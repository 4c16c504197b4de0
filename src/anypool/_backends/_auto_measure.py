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

import os
import pickle
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
# Most calls in one window (a window of calls delivers their results at its end).
MAX_BATCH = 512
NO_VALUE = object()  # the item raised: there is no result to pickle


def _dumps(obj: object) -> bytes:
    try:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    except Exception:  # lambdas, closures, local classes: what the process backend uses next
        import cloudpickle

        data: bytes = cloudpickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        return data


def _round_trip(obj: object, where: str) -> tuple[float, str | None]:
    """Seconds to pickle and unpickle ``obj``, and what went wrong (None: it pickles)."""
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


def window(items: int, start: Clocks, end: Clocks, gil_enabled: bool) -> Window:
    """What a window measured. Under the GIL, time off the CPU while other threads of this
    process computed may have been a wait for the GIL, not IO: up to one switch interval
    per time the probe was scheduled back in is counted as such (a 50 ms sleep is one
    stretch off the CPU, so it stays a wait; a computation that a busy caller keeps
    taking the GIL from is many short ones)."""
    wall = max(0.0, end.wall - start.wall)
    cpu = min(max(0.0, end.cpu - start.cpu), wall)
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
        self.problem: str | None = None
        self._fn_checked = False
        self._transfers: list[float] = []

    def enough(self) -> bool:
        if self.windows >= MAX_SAMPLES or self.wall_s >= PROBE_MAX_WALL_S:
            return True
        return self.windows > 0 and self.active_s() >= PROBE_BUDGET_S

    def active_s(self) -> float:
        """Wall time the samples were not kept off a CPU by other programs or threads."""
        return self.wall_s - self.preempted_s - self.gil_s

    def per_item_s(self) -> float:
        return self.active_s() / self.samples if self.samples else 0.0

    def add(self, w: Window) -> None:
        self.samples += w.items
        self.windows += 1
        self.wall_s += w.wall
        self.cpu_s += w.cpu
        self.preempted_s += w.queued
        self.gil_s += w.gil

    def probe_call(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> float | None:
        """Before an item runs: do the function and its arguments pickle? Returns the
        arguments' round-trip seconds, or None when not probed (enough probes, or a problem).

        Checked before running, so that a choice made while a long first task still
        runs already knows whether the call can reach a process.
        """
        if self.problem is not None or len(self._transfers) >= PICKLE_PROBES:
            return None
        if not self._fn_checked:
            self._fn_checked = True
            self.problem = _round_trip(fn, "function")[1]
        if self.problem is None:
            seconds, self.problem = _round_trip((args, kwargs), "arguments")
            return seconds
        return None

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
        if partial is not None:
            samples, wall = samples + 1, wall + partial[0]
            cpu, preempted = cpu + min(partial[:2]), preempted + partial[2]
        if samples == 0:
            return None
        transfers = list(self._transfers)  # the probe thread may append meanwhile
        transfer = sum(transfers) / len(transfers) if transfers else None
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
            gil_wait_s=min(self.gil_s, off - preempted),
        )


# A running sample measured from outside: wall, CPU and run-queue seconds so far.
Partial = tuple[float, float, float]


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
