"""Measuring sampled tasks for ``backend="auto"``: CPU against wall time, pickling, CPU waits.

::

    probe thread: clocks before an item ──► fn(item) ──► clocks after ──► Sampler.add
                  pickle fn, args (before) and the result (after) ──► Sampler.probe_*
    timer thread: a long item still running ──► its thread's CPU and run-queue clocks

Everything here reads clocks or pickles; the decision itself is the pure
:func:`anypool._scheduler._select.choose_backend`.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

from .._scheduler._select import Measurements

__all__ = [
    "IDLE_SAMPLES",
    "MAX_SAMPLES",
    "NO_VALUE",
    "PICKLE_PROBES",
    "PROBE_BUDGET_S",
    "PROBE_MAX_WALL_S",
    "Partial",
    "RunQueueClock",
    "Sampler",
    "thread_cpu_clock",
]

# Sampling stops after this many items...
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
# With nothing queued behind the samples, this many are enough: deciding costs no one a
# wait then, and a small batch that fits in the budget still leaves a decision behind.
IDLE_SAMPLES = 2
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


class Sampler:
    """Accumulates per-item CPU and wall times and what pickling showed. Not thread-safe:
    the front calls it under its lock."""

    def __init__(self) -> None:
        self.samples = 0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.preempted_s = 0.0
        self.chunked = False
        self.problem: str | None = None
        self._fn_checked = False
        self._transfers: list[float] = []

    def enough(self) -> bool:
        if self.samples >= MAX_SAMPLES or self.wall_s >= PROBE_MAX_WALL_S:
            return True
        return self.samples > 0 and self.active_s() >= PROBE_BUDGET_S

    def active_s(self) -> float:
        """Wall time the samples were not kept off a CPU by other programs."""
        return self.wall_s - self.preempted_s

    def add(self, wall: float, cpu: float, queued: float = 0.0) -> None:
        self.samples += 1
        self.wall_s += max(0.0, wall)
        self.cpu_s += min(max(0.0, cpu), max(0.0, wall))
        self.preempted_s += max(0.0, queued)

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
        return Measurements(
            samples,
            wall,
            cpu,
            picklable=self.problem is None,
            pickle_error=self.problem,
            transfer_s=transfer,
            chunked=self.chunked,
            partial=partial is not None,
            preempted_s=min(preempted, max(0.0, wall - cpu)),
        )


# A running sample measured from outside: wall, CPU and run-queue seconds so far.
Partial = tuple[float, float, float]


class RunQueueClock:
    """Seconds a thread has spent ready to run while other programs held the CPUs.

    Linux's ``/proc/self/task/<tid>/schedstat`` (second field, ns). Without it (other
    systems, or a kernel without schedstats) it reads 0 and nothing is corrected. The
    file stays open and is re-read with ``pread``: about a microsecond per reading.
    """

    def __init__(self, native_id: int | None) -> None:
        self._fd: int | None = None
        if native_id is not None and hasattr(os, "pread"):
            try:
                self._fd = os.open(f"/proc/self/task/{native_id}/schedstat", os.O_RDONLY)
            except OSError:
                pass

    def read(self) -> float:
        if self._fd is None:
            return 0.0
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

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
