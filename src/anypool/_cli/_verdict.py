"""Turning measured wall times into advice: ``anypool bench``'s conclusion. Pure logic.

:func:`conclude` reads only the numbers it is given (and the GIL state and CPU
count), so the advice changes when the measurements do, and it is unit-tested on
synthetic measurements: the GIL case, the free-threaded case, one CPU, and ties.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "CHEAPER_WITHIN",
    "HELPS",
    "SEQUENTIAL",
    "Conclusion",
    "Measurement",
    "Verdict",
    "conclude",
    "speedups_of",
    "words",
]

SEQUENTIAL = "sequential"

# A mode "helps" when it beats the plain loop by this factor. Below it the gain is
# within what a shared 2-core machine's noise and pool overhead can produce.
HELPS = 1.25
# Processes at under half a plain loop's speed lost to their own start and hand-offs,
# which a busy machine does not explain: the tasks were too short for them.
TOO_SHORT = 0.5
# A cheaper backend within this fraction of the fastest one is recommended instead:
# threads start in microseconds and share memory, so a few percent is not worth a process.
CHEAPER_WITHIN = 0.9
# Cheapest first; modes not listed (such as "auto") are measured but never recommended,
# since the advice is about which fixed backend to pick.
_COST_ORDER = ("inline", "thread", "asyncio", "process", "dask", "ray")


@dataclass(frozen=True)
class Measurement:
    """Wall times of one workload in one mode (``"sequential"`` or a backend name)."""

    workload: str
    mode: str
    workers: int
    runs: tuple[float, ...]
    startup_s: float | None = None
    """Pool start plus warm-up, paid once and kept out of ``runs``; None for sequential."""
    note: str | None = None
    """For ``"auto"``: what it chose (``"process, 2 workers"``)."""

    @property
    def best_s(self) -> float:
        return min(self.runs)


@dataclass(frozen=True)
class Verdict:
    """The advice for one workload and the measured reasons behind it."""

    workload: str
    choice: str | None
    """The mode to use; None when nothing beat the plain loop by ``HELPS``."""
    speedups: Mapping[str, float]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Conclusion:
    summary: str
    verdicts: tuple[Verdict, ...]


def speedups_of(measurements: Sequence[Measurement], workload: str) -> dict[str, float]:
    """Each mode's speedup over the sequential loop (best round against best round)."""
    rows = [m for m in measurements if m.workload == workload]
    base = next((m.best_s for m in rows if m.mode == SEQUENTIAL), None)
    if base is None:
        raise ValueError(f"no sequential measurement for workload {workload!r}")
    return {m.mode: base / m.best_s if m.best_s > 0 else float("inf") for m in rows}


def _choose(speedups: Mapping[str, float]) -> str | None:
    """The fastest mode that helps, or a cheaper one within CHEAPER_WITHIN of it."""
    helping = {m: s for m, s in speedups.items() if m in _COST_ORDER and s >= HELPS}
    if not helping:
        return None
    fastest = max(helping.values())
    return next(m for m in _COST_ORDER if helping.get(m, 0.0) >= CHEAPER_WITHIN * fastest)


def words(mode: str | None) -> str:
    """How the conclusion names a mode."""
    if mode is None:
        return "a plain loop"
    return {"thread": "threads", "process": "processes"}.get(mode, f"the {mode} backend")


def workers_phrase(count: int) -> str:
    """``1 worker``, ``2 workers``."""
    return f"{count} worker" + ("" if count == 1 else "s")


def speedup(value: float) -> str:
    """A speed-up as the verdict prints it: x1.93, x0.42; two significant digits below
    x0.1 (x0.0031, not x0.00, which reads as nothing at all)."""
    return f"x{value:.2f}" if value >= 0.1 else f"x{value:.2g}"


class _Machine(NamedTuple):
    gil_enabled: bool
    usable_cpus: int
    load_before: float | None

    def busy(self) -> bool:
        """Other work held at least half the CPUs just before the bench started."""
        return self.load_before is not None and self.load_before >= self.usable_cpus / 2


def _no_cpu_gain(process: float, machine: _Machine) -> str:
    """Why processes did not speed up the counter, from what is known about the machine."""
    if machine.usable_cpus < 2:
        return f"processes did not help ({speedup(process)}): only 1 CPU is usable here"
    if machine.busy() and process >= TOO_SHORT:
        return (
            f"processes did not help ({speedup(process)}): the machine was busy (load average "
            f"{machine.load_before:.1f} on {machine.usable_cpus} CPUs before the bench); "
            "rerun it when the machine is idle"
        )
    return (
        f"processes did not help ({speedup(process)}): the tasks may be too short to "
        "outweigh their overhead; try a larger --counter"
    )


def _cpu_reasons(sp: Mapping[str, float], machine: _Machine) -> list[str]:
    out = []
    gil_enabled = machine.gil_enabled
    thread, process = sp.get("thread"), sp.get("process")
    if thread is not None and thread < HELPS and gil_enabled:
        out.append(
            f"threads counted no faster than one loop ({speedup(thread)}): with the GIL enabled "
            "only one thread runs Python bytecode at a time"
        )
    if thread is not None and thread >= HELPS and not gil_enabled:
        out.append(
            f"threads counted in parallel ({speedup(thread)}): this free-threaded build "
            "runs with the GIL disabled"
        )
    if process is not None and process >= HELPS:
        out.append(f"processes counted in parallel ({speedup(process)}): each has its own GIL")
    elif process is not None:
        out.append(_no_cpu_gain(process, machine))
    return out


def _io_reasons(sp: Mapping[str, float], measurements: Sequence[Measurement]) -> list[str]:
    out = []
    thread, process = sp.get("thread"), sp.get("process")
    if thread is not None and thread >= HELPS:
        out.append(
            f"threads overlapped the waits ({speedup(thread)}): a waiting thread releases the GIL"
        )
    startups = {m.mode: m.startup_s for m in measurements if m.startup_s is not None}
    if (
        thread is not None
        and process is not None
        and process >= HELPS
        and "thread" in startups
        and "process" in startups
    ):
        out.append(
            f"processes overlapped them too ({speedup(process)}) but took "
            f"{startups['process']:.2f} s to start against {startups['thread']:.3f} s "
            "for threads"
        )
    return out


def _mixed_reasons(sp: Mapping[str, float], gil_enabled: bool) -> list[str]:
    out = []
    thread, process = sp.get("thread"), sp.get("process")
    if thread is not None and thread >= HELPS and gil_enabled:
        out.append(
            f"threads overlapped the waits ({speedup(thread)}) but, under the GIL, "
            "counted one at a time"
        )
    if process is not None and process >= HELPS and (thread is None or process > thread):
        out.append(f"processes overlapped the waits and counted in parallel ({speedup(process)})")
    return out


def _verdict(workload: str, measurements: Sequence[Measurement], machine: _Machine) -> Verdict:
    sp = speedups_of(measurements, workload)
    choice = _choose(sp)
    if choice is None:
        first = f"nothing beat the plain loop by x{HELPS:g} or more: keep it sequential"
    else:
        first = f"use {words(choice)}: {speedup(sp[choice])} against the plain loop"
    rows = [m for m in measurements if m.workload == workload]
    extra = {
        "cpu": lambda: _cpu_reasons(sp, machine),
        "io": lambda: _io_reasons(sp, rows),
        "mixed": lambda: _mixed_reasons(sp, machine.gil_enabled),
    }.get(workload, list)()
    return Verdict(workload, choice, sp, (first, *extra, *_auto_reasons(sp, rows)))


def _auto_reasons(sp: Mapping[str, float], rows: Sequence[Measurement]) -> list[str]:
    """How the ``auto`` column did against the best fixed backend."""
    auto = next((m for m in rows if m.mode == "auto"), None)
    fixed = {m: s for m, s in sp.items() if m in _COST_ORDER}
    if auto is None or not fixed:
        return []
    best = max(fixed, key=lambda m: fixed[m])
    chose = f" chose {auto.note}" if auto.note else ""
    return [
        f"auto{chose}: {speedup(sp['auto'])}, {sp['auto'] / fixed[best]:.0%} of the best fixed "
        f"backend ({words(best)}, {speedup(fixed[best])})"
    ]


def _summary(choices: Mapping[str, str | None], gil_enabled: bool) -> str:
    cpu, io = choices.get("cpu", "-"), choices.get("io", "-")
    if (io, cpu) == ("thread", "process"):
        text = "Threads for IO-bound work, processes for CPU-bound work"
        text += ": the GIL lets only one thread compute at a time." if gil_enabled else "."
    elif (io, cpu) == ("thread", "thread"):
        text = "Threads for both IO-bound and CPU-bound work"
        text += "." if gil_enabled else ": this build runs Python threads in parallel (no GIL)."
    else:
        parts = [
            f"{words(c)} for {kind}-bound work"
            for kind, c in (("IO", io), ("CPU", cpu))
            if c != "-"
        ]
        text = "; ".join(parts) + "."
        text = text[0].upper() + text[1:]
    if "mixed" in choices:
        text += f" Mixed work: {words(choices['mixed'])}."
    return text


def conclude(
    measurements: Sequence[Measurement],
    *,
    gil_enabled: bool,
    usable_cpus: int,
    load_before: float | None = None,
) -> Conclusion:
    """Turn measured wall times into advice, with the numbers as reasons. Pure.

    ``load_before`` (the 1-minute load average just before the bench) only changes
    the explanation offered when processes fail to speed up the counter.
    """
    machine = _Machine(gil_enabled, usable_cpus, load_before)
    names = list(dict.fromkeys(m.workload for m in measurements))
    verdicts = tuple(_verdict(w, measurements, machine) for w in names)
    summary = _summary({v.workload: v.choice for v in verdicts}, gil_enabled)
    return Conclusion(summary, verdicts)
