"""The ``anypool bench`` experiments: the GIL lesson, measured on this machine.

Each workload runs as a plain sequential loop and on every requested backend,
in interleaved rounds so that a busy machine slows all of them alike::

    run_bench(config)
      │ once per (backend, workers): Pool(...) + warm-up ──► startup_s (kept out of the runs)
      │ per workload, ``repeat`` rounds of:
      │     sequential: for args in items: fn(*args)           ──► wall seconds
      │     each backend: pool.map(fn, *columns, chunksize=1)  ──► worker threads/processes
      │                   └── results drained in the caller ◄──┘   ──► wall seconds
      └ conclude(measurements, gil_enabled=..., usable_cpus=..., load_before=...)
                                                              ──► Conclusion (pure)

The workloads: ``cpu`` is the tutorial's counter loop, one per worker (so on 2
workers the sequential loop counts twice, as in the tutorial); ``io`` is many
short sleeps; ``mixed`` counts and then sleeps in every task.

Everything returned is a frozen record; the conclusion (advice derived from the
numbers) is the pure function in :mod:`anypool._cli._verdict`.
``config.backends`` is the list of columns: ``"auto"`` is one more entry.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from .._core._pool import Pool
from ._info import RuntimeInfo, collect_info
from ._verdict import (
    SEQUENTIAL,
    Conclusion,
    Measurement,
    conclude,
    speedups_of,
    workers_phrase,
)

__all__ = [
    "DEFAULT_BACKENDS",
    "WORKLOADS",
    "BenchConfig",
    "BenchReport",
    "Workload",
    "count_then_nap",
    "count_up",
    "make_workloads",
    "nap",
    "run_bench",
]

WORKLOADS = ("cpu", "io", "mixed")
DEFAULT_BACKENDS = ("thread", "process", "auto")
AUTO = "auto"
# Warm-up tasks sleep this long so that each one lands on a different idle worker.
_WARM_NAP_S = 0.02
# Warm-up stops after this many rounds in a row that met no new worker (an inline
# backend has one worker whatever ``workers`` says).
_WARM_IDLE_ROUNDS = 3


# -- the tasks (module level, so process workers unpickle them by reference) --------------
def count_up(n: int) -> int:
    """The tutorial's CPU-bound task: a pure-Python loop that adds 1, ``n`` times."""
    i = 0
    for _ in range(n):
        i = i + 1
    return i


def nap(ms: float) -> float:
    """The IO-bound task: wait ``ms`` milliseconds without using the CPU."""
    time.sleep(ms / 1000)
    return ms


def count_then_nap(n: int, ms: float) -> int:
    """The mixed task: some counting, then some waiting."""
    total = count_up(n)
    nap(ms)
    return total


def _worker_identity(delay: float) -> str:
    time.sleep(delay)
    return f"{os.getpid()}/{threading.get_ident()}"


# -- configuration and records ------------------------------------------------------------
def _check_positive(name: str, value: object, kind: type | tuple[type, ...] = int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_names(name: str, values: tuple[str, ...], allowed: Sequence[str] | None) -> None:
    if not values:
        raise ValueError(f"{name} must name at least one entry")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} lists an entry twice: {', '.join(values)}")
    unknown = [v for v in values if allowed is not None and v not in allowed]
    if unknown:
        raise ValueError(
            f"unknown {name}: {', '.join(unknown)} (choose from {', '.join(allowed or ())})"
        )


@dataclass(frozen=True)
class BenchConfig:
    """How big each experiment is. The defaults finish in well under 30 s on 2 cores."""

    counter: int = 5_000_000
    """Steps of the counter loop in each CPU-bound task."""
    workers: int = 2
    """Workers (and counter tasks) for the CPU-bound experiment: the tutorial's 2 threads."""
    io_tasks: int = 50
    io_ms: float = 10.0
    io_workers: int = 10
    """Workers for the IO-bound and mixed experiments: waiting overlaps beyond the core count."""
    mixed_tasks: int = 20
    """Tasks of the mixed experiment; together they count ``counter`` steps."""
    repeat: int = 5
    """Rounds per mode; the table shows the fastest round."""
    workloads: tuple[str, ...] = WORKLOADS
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    """The columns besides ``sequential``: any backend names, ``"auto"`` included."""

    def __post_init__(self) -> None:
        for name in ("counter", "workers", "io_tasks", "io_workers", "mixed_tasks", "repeat"):
            _check_positive(name, getattr(self, name))
        _check_positive("io_ms", self.io_ms, (int, float))
        _check_names("workloads", self.workloads, WORKLOADS)
        _check_names("backends", self.backends, None)
        if SEQUENTIAL in self.backends:
            raise ValueError("backends: 'sequential' is always measured; list only backends")


@dataclass(frozen=True)
class Workload:
    """One experiment: ``fn(*args)`` for every ``args`` in ``items``, on ``workers`` workers."""

    name: str
    description: str
    fn: Callable[..., object]
    items: tuple[tuple[Any, ...], ...]
    workers: int


@dataclass(frozen=True)
class BenchReport:
    config: BenchConfig
    runtime: RuntimeInfo
    workloads: tuple[Workload, ...]
    measurements: tuple[Measurement, ...]
    conclusion: Conclusion
    total_s: float
    load_before: float | None = None
    """The 1-minute load average just before the bench started (None where unknown)."""

    def speedup(self, workload: str, mode: str) -> float:
        return speedups_of(self.measurements, workload)[mode]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` output)."""
        return {
            "config": asdict(self.config),
            "runtime": self.runtime.to_dict(),
            "workloads": [
                {
                    "name": w.name,
                    "description": w.description,
                    "tasks": len(w.items),
                    "workers": w.workers,
                }
                for w in self.workloads
            ],
            "results": [
                {
                    "workload": m.workload,
                    "mode": m.mode,
                    "workers": m.workers,
                    "runs_s": list(m.runs),
                    "best_s": m.best_s,
                    "speedup": self.speedup(m.workload, m.mode),
                    "startup_s": m.startup_s,
                }
                for m in self.measurements
            ],
            "conclusion": {
                "summary": self.conclusion.summary,
                "verdicts": [
                    {
                        "workload": v.workload,
                        "choice": v.choice,
                        "speedups": dict(v.speedups),
                        "reasons": list(v.reasons),
                    }
                    for v in self.conclusion.verdicts
                ],
            },
            "total_s": self.total_s,
            "load_before": self.load_before,
        }


def make_workloads(config: BenchConfig) -> tuple[Workload, ...]:
    """The experiments ``config`` asks for, in ``config.workloads`` order."""
    per_mixed = max(1, config.counter // config.mixed_tasks)
    every = {
        "cpu": Workload(
            "cpu",
            f"{config.workers} x counter loop of {config.counter:,} steps",
            count_up,
            ((config.counter,),) * config.workers,
            config.workers,
        ),
        "io": Workload(
            "io",
            f"{config.io_tasks} x sleep {config.io_ms:g} ms",
            nap,
            ((config.io_ms,),) * config.io_tasks,
            config.io_workers,
        ),
        "mixed": Workload(
            "mixed",
            f"{config.mixed_tasks} x (count {per_mixed:,} + sleep {config.io_ms:g} ms)",
            count_then_nap,
            ((per_mixed, config.io_ms),) * config.mixed_tasks,
            config.io_workers,
        ),
    }
    return tuple(every[name] for name in config.workloads)


# -- measuring ----------------------------------------------------------------------------
def _time_sequential(workload: Workload) -> float:
    start = time.perf_counter()
    for args in workload.items:
        workload.fn(*args)
    return time.perf_counter() - start


def _time_pool(pool: Pool, workload: Workload) -> float:
    columns = tuple(zip(*workload.items))
    start = time.perf_counter()
    for _ in pool.map(workload.fn, *columns, chunksize=1):
        pass
    return time.perf_counter() - start


def _warm_up(pool: Pool, workers: int) -> None:
    """Run tiny tasks until every worker has run one (or none new appear for a while)."""
    seen: set[str] = set()
    idle_rounds = 0
    while len(seen) < workers and idle_rounds < _WARM_IDLE_ROUNDS:
        new = set(pool.map(_worker_identity, [_WARM_NAP_S] * workers, chunksize=1)) - seen
        seen |= new
        idle_rounds = 0 if new else idle_rounds + 1


class _Pools:
    """Pools kept open for the whole bench, one per (backend, workers), started once."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, int | str], tuple[Pool, float]] = {}

    def get(self, backend: str, workload: Workload) -> tuple[Pool, float]:
        if backend == AUTO:
            return self._auto(workload)
        workers = workload.workers
        key = (backend, workers)
        if key not in self._pools:
            start = time.perf_counter()
            pool = Pool(backend, workers)
            try:
                _warm_up(pool, workers)
            except BaseException:
                pool.shutdown(wait=True, cancel_pending=True, kill_running=True)
                raise
            self._pools[key] = (pool, time.perf_counter() - start)
        return self._pools[key]

    def _auto(self, workload: Workload) -> tuple[Pool, float]:
        """An auto pool per workload, sized by auto itself. Its warm-up is one unmeasured run
        of the workload, so it chooses from the workload's own tasks (as a long-lived pool
        does on its first batch); the startup column shows that first run."""
        key = (AUTO, workload.name)
        if key not in self._pools:
            start = time.perf_counter()
            pool = Pool(AUTO)
            try:
                _time_pool(pool, workload)
            except BaseException:
                pool.shutdown(wait=True, cancel_pending=True, kill_running=True)
                raise
            self._pools[key] = (pool, time.perf_counter() - start)
        return self._pools[key]

    def close(self, *, interrupted: bool) -> None:
        for pool, _ in self._pools.values():
            pool.shutdown(wait=True, cancel_pending=interrupted, kill_running=interrupted)


@contextmanager
def _open_pools() -> Iterator[_Pools]:
    pools = _Pools()
    interrupted = True
    try:
        yield pools
        interrupted = False
    finally:
        pools.close(interrupted=interrupted)


def _measure(
    workload: Workload,
    backends: Sequence[str],
    repeat: int,
    pools: _Pools,
    note: Callable[[str], None],
) -> list[Measurement]:
    started = {}
    for backend in backends:
        sized = "sized by auto" if backend == AUTO else workers_phrase(workload.workers)
        note(f"starting {backend} pool ({sized})")
        started[backend] = pools.get(backend, workload)
    runs: dict[str, list[float]] = {mode: [] for mode in (SEQUENTIAL, *backends)}
    for round_no in range(1, repeat + 1):
        note(f"{workload.name}: round {round_no}/{repeat}")
        runs[SEQUENTIAL].append(_time_sequential(workload))
        for backend in backends:
            runs[backend].append(_time_pool(started[backend][0], workload))
    out = [Measurement(workload.name, SEQUENTIAL, 1, tuple(runs[SEQUENTIAL]))]
    for backend in backends:
        pool, startup = started[backend]
        chose = pool.explain() if backend == AUTO else None
        what = f"{chose.backend}, {workers_phrase(chose.workers)}" if chose is not None else None
        out.append(
            Measurement(workload.name, backend, pool.workers, tuple(runs[backend]), startup, what)
        )
    return out


def run_bench(config: BenchConfig, *, note: Callable[[str], None] | None = None) -> BenchReport:
    """Run every workload of ``config`` sequentially and on each backend; conclude."""
    say = note or (lambda _msg: None)
    runtime = collect_info()
    workloads = make_workloads(config)
    load_before = _load_average()
    start = time.perf_counter()
    measurements: list[Measurement] = []
    with _open_pools() as pools:
        for workload in workloads:
            measurements += _measure(workload, config.backends, config.repeat, pools, say)
    conclusion = conclude(
        measurements,
        gil_enabled=runtime.gil_enabled,
        usable_cpus=runtime.usable_cpus,
        load_before=load_before,
    )
    total = time.perf_counter() - start
    return BenchReport(
        config, runtime, workloads, tuple(measurements), conclusion, total, load_before
    )


def _load_average() -> float | None:
    """The 1-minute load average: other jobs competing for the CPUs skew every number."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has no load average
        return None
