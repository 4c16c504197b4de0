"""The pure backend selector, on synthetic runtime snapshots and measurements."""

from __future__ import annotations

import dataclasses
import functools

import pytest

import anypool
from anypool._scheduler._select import (
    MAX_THREADS,
    Candidate,
    Measurements,
    RuntimeSnapshot,
    choose_backend,
    effective_parallel_cpu,
    fixed_decision,
    format_seconds,
    function_name,
    parse_prefer,
    parse_require,
)
from anypool.abc import Capabilities

# The flags of the three local backends, written out so that the selector is tested on
# flags, not on the real classes (whose flags may change independently).
THREAD = Candidate(
    "thread",
    Capabilities(
        kills_running_tasks=False,
        shares_memory=True,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,
    ),
)
PROCESS = Candidate(
    "process",
    Capabilities(
        kills_running_tasks=True,
        shares_memory=False,
        needs_pickling=True,
        isolates_crashes=True,
        parallel_cpu=True,
    ),
)
INLINE = Candidate(
    "inline",
    Capabilities(
        kills_running_tasks=False,
        shares_memory=True,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,
        supports_priority=False,
        supports_timeouts=False,
        runs_in_caller=True,
    ),
)
ALL = (THREAD, PROCESS, INLINE)


def snap(*, gil: bool = True, cpus: int = 2, cands: tuple[Candidate, ...] = ALL) -> RuntimeSnapshot:
    return RuntimeSnapshot(gil, cpus, cands, free_threaded_build=not gil)


def cpu_bound(per_task: float = 0.04, n: int = 8, **kw: object) -> Measurements:
    return Measurements(n, per_task * n, per_task * n * 0.97, transfer_s=5e-6, **kw)  # type: ignore[arg-type]


def io_bound(per_task: float = 0.05, n: int = 4, **kw: object) -> Measurements:
    return Measurements(n, per_task * n, per_task * n * 0.002, transfer_s=5e-6, **kw)  # type: ignore[arg-type]


# -- the central lesson -------------------------------------------------------------------
def test_cpu_bound_under_gil_goes_to_processes_one_per_cpu() -> None:
    decision = choose_backend(snap(cpus=2), cpu_bound(chunked=True))
    assert (decision.backend, decision.workers) == ("process", 2)
    assert decision.chosen_by == "auto"


@pytest.mark.parametrize("cpus", [2, 4, 16])
def test_cpu_bound_workers_follow_usable_cpus(cpus: int) -> None:
    assert choose_backend(snap(cpus=cpus), cpu_bound()).workers == cpus


def test_cpu_bound_without_gil_stays_on_threads() -> None:
    decision = choose_backend(snap(gil=False, cpus=4), cpu_bound())
    assert (decision.backend, decision.workers) == ("thread", 4)
    assert "GIL disabled" in decision.summary


def test_cpu_bound_with_one_cpu_gains_nothing_from_processes() -> None:
    decision = choose_backend(snap(cpus=1), cpu_bound())
    assert decision.backend == "thread"
    assert decision.workers == 1  # more threads would only take turns on the GIL
    assert "1 usable CPU" in decision.summary


def test_io_bound_goes_to_many_threads() -> None:
    decision = choose_backend(snap(cpus=2), io_bound())
    assert decision.backend == "thread"
    assert decision.workers == MAX_THREADS
    assert any("IO-bound" in r for r in decision.reasons)


def test_io_bound_threads_sized_by_cpu_share() -> None:
    # 2% CPU: fifty threads would keep the GIL-holding core busy if waits interleaved
    # perfectly; tasks in lockstep need 10x that headroom, capped
    m = Measurements(4, 0.04, 0.0008, transfer_s=5e-6)
    decision = choose_backend(snap(cpus=2), m)
    assert (decision.backend, decision.workers) == ("thread", MAX_THREADS)


def test_waiting_work_that_computes_enough_goes_to_processes() -> None:
    # 10% CPU on 2 CPUs: under the GIL threads top out at 1 / 1 ms = 1000 items/s, while
    # 16 processes reach 1600: the computing, not the waiting, limits threads
    m = Measurements(4, 0.04, 0.004, transfer_s=5e-6)
    decision = choose_backend(snap(cpus=2), m)
    assert (decision.backend, decision.workers) == ("process", 16)
    assert "IO-bound, but its 10% of computing" in decision.reasons[1]
    # with the GIL disabled the threads compute in parallel too, and stay
    assert choose_backend(snap(gil=False, cpus=2), m).backend == "thread"


def test_waiting_work_that_computes_little_stays_on_threads() -> None:
    # 8% CPU (the sleep call's own overhead at 0.5 ms): the estimates favoured 16
    # processes a little, which a short workload paid to start for nothing
    m = Measurements(4, 0.002, 0.00016, transfer_s=5e-6, chunked=True)  # a map
    decision = choose_backend(snap(cpus=2), m)
    assert decision.backend == "thread", str(decision)
    assert decision.workers > 2
    # the estimates alone would pick processes (~31k against ~25k items/s)
    rates = {e.backend: e.items_per_s for e in decision.estimates}
    assert rates["process"] > rates["thread"]


def test_mixed_work_oversubscribes_processes() -> None:
    # half computing, half waiting: two processes per CPU would keep both CPUs busy if
    # their waits interleaved perfectly; in lockstep it takes more: the cap, 8 per CPU
    m = Measurements(4, 0.1, 0.05, transfer_s=5e-6)
    decision = choose_backend(snap(cpus=2), m)
    assert (decision.backend, decision.workers) == ("process", 16)


def test_unpicklable_work_stays_on_threads() -> None:
    m = cpu_bound(picklable=False, pickle_error="TypeError: cannot pickle '_thread.lock' object")
    decision = choose_backend(snap(), m)
    assert decision.backend == "thread"
    text = str(decision)
    assert "does not pickle" in text
    assert "_thread.lock" in text
    assert [e.excluded for e in decision.estimates if e.backend == "process"] != [None]


def test_tiny_mapped_tasks_are_chunked_not_sent_to_processes() -> None:
    # 1 us of work costs less than pickling it (5 us): processes cannot win
    m = Measurements(8, 8e-6, 8e-6, transfer_s=5e-6, chunked=True)
    decision = choose_backend(snap(), m)
    assert decision.backend == "thread"
    assert decision.chunksize is not None
    assert decision.chunksize >= 1000


def test_tiny_submitted_tasks_run_inline() -> None:
    # submit() cannot be chunked: a 2 us task is dwarfed by a thread hand-off
    m = Measurements(8, 16e-6, 16e-6, transfer_s=5e-6, chunked=False)
    decision = choose_backend(snap(), m)
    assert decision.backend == "inline"
    assert decision.workers == 1


def test_large_cheap_items_in_a_map_stay_in_the_caller() -> None:
    # 8 MiB items through a 4 us function: map holds only ~2 such items in flight, so each
    # chunk is a hand-off however cheap the work; running them in the caller wins
    small = Measurements(1, 4e-6, 4e-6, transfer_s=8e-3, chunked=True)
    assert choose_backend(snap(), small).backend == "thread"  # the byte bound unknown
    large = dataclasses.replace(small, item_bytes=8 << 20)
    decision = choose_backend(snap(), large)
    assert decision.backend == "inline", str(decision)
    assert decision.chunksize == 1


def test_item_bytes_bound_chunks_only_when_large() -> None:
    # 10 KB records: 800 of them fit the read-ahead bound, which leaves 20 ms chunks be
    m = Measurements(8, 8 * 50e-6, 8 * 50e-6, transfer_s=5e-6, chunked=True)
    sized = dataclasses.replace(m, item_bytes=10_000)
    assert choose_backend(snap(), sized).chunksize == choose_backend(snap(), m).chunksize == 400


def test_processes_win_when_tasks_outweigh_pickling() -> None:
    # 200 us of computing per item against 5 us of pickling: chunked processes pay off
    m = Measurements(8, 8 * 200e-6, 8 * 200e-6, transfer_s=5e-6, chunked=True)
    decision = choose_backend(snap(), m)
    assert decision.backend == "process"
    assert decision.chunksize == 100  # 20 ms chunks of 200 us items


def test_processes_lose_when_pickling_outweighs_tasks() -> None:
    m = Measurements(8, 8 * 200e-6, 8 * 200e-6, transfer_s=1e-3, chunked=True)
    assert choose_backend(snap(), m).backend == "thread"


def test_no_measurements_gives_the_cheapest_background_backend() -> None:
    decision = choose_backend(snap(cpus=3), None)
    assert (decision.backend, decision.workers) == ("thread", 3)
    assert "no task measured" in decision.summary


def test_given_workers_are_kept() -> None:
    decision = choose_backend(snap(), io_bound(), workers=7)
    assert (decision.backend, decision.workers) == ("thread", 7)
    assert any("workers=7 as given" in r for r in decision.reasons)


def test_missing_candidate_is_noted() -> None:
    decision = choose_backend(snap(cands=(THREAD, INLINE)), cpu_bound())
    assert decision.backend == "thread"
    assert any("process backend not available" in r for r in decision.reasons)


# -- prefer / require ---------------------------------------------------------------------
def test_require_shared_memory_rules_out_processes() -> None:
    decision = choose_backend(snap(), cpu_bound(), require="shared_memory")
    assert decision.backend == "thread"
    assert any("process excluded" in r and "shared_memory" in r for r in decision.reasons)


def test_require_kill_on_timeout_forces_processes_even_for_io() -> None:
    decision = choose_backend(snap(), io_bound(), require=["kill_on_timeout"])
    assert decision.backend == "process"


def test_require_timeouts_excludes_inline() -> None:
    m = Measurements(8, 16e-6, 16e-6, transfer_s=5e-6)
    assert choose_backend(snap(), m, require="timeouts").backend == "thread"


def test_require_that_nothing_meets_is_a_clear_error() -> None:
    m = cpu_bound(picklable=False, pickle_error="TypeError: nope")
    with pytest.raises(anypool.CapabilityError, match="kill_on_timeout") as info:
        choose_backend(snap(), m, require="kill_on_timeout")
    assert "does not pickle" in str(info.value)


def test_prefer_backend_is_honoured_when_allowed() -> None:
    decision = choose_backend(snap(), cpu_bound(), prefer="thread")
    assert decision.backend == "thread"
    assert any("prefer='thread' honoured" in r for r in decision.reasons)


def test_prefer_joblib_spelling() -> None:
    assert choose_backend(snap(), io_bound(), prefer="processes").backend == "process"


def test_prefer_yields_to_require() -> None:
    decision = choose_backend(snap(), cpu_bound(), prefer="process", require="shared_memory")
    assert decision.backend == "thread"
    assert any("prefer='process' ignored" in r for r in decision.reasons)


def test_prefer_a_trait_softly() -> None:
    assert choose_backend(snap(), io_bound(), prefer="crash_isolation").backend == "process"
    # nobody has it: the hint is ignored, not an error
    only_threads = snap(cands=(THREAD, INLINE))
    decision = choose_backend(only_threads, io_bound(), prefer="crash_isolation")
    assert decision.backend == "thread"
    assert any("ignored" in r for r in decision.reasons)


@pytest.mark.parametrize("bad", ["sharedmemory", "fast", ""])
def test_unknown_requirement_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown requirement") as info:
        parse_require(bad)
    assert "shared_memory" in str(info.value)  # the message lists the known ones


def test_require_wrong_type() -> None:
    with pytest.raises(TypeError, match="requirement names"):
        parse_require([1])  # type: ignore[list-item]


def test_unknown_prefer_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown prefer='dask'") as info:
        parse_prefer("dask")
    assert "backend='dask'" in str(info.value)


def test_require_aliases() -> None:
    assert parse_require(["sharedmem", "kills_running_tasks"]) == {
        "shared_memory",
        "kill_on_timeout",
    }


# -- flags, not names ---------------------------------------------------------------------
def test_selector_reads_flags_not_names() -> None:
    # the same flags under other names lead to the same choice
    renamed = (
        Candidate("alpha", THREAD.capabilities),
        Candidate("beta", PROCESS.capabilities),
        Candidate("gamma", INLINE.capabilities),
    )
    assert choose_backend(snap(cands=renamed), cpu_bound()).backend == "beta"
    assert choose_backend(snap(cands=renamed), io_bound()).backend == "alpha"


def test_effective_parallel_cpu() -> None:
    assert effective_parallel_cpu(PROCESS.capabilities, gil_enabled=True)
    assert not effective_parallel_cpu(THREAD.capabilities, gil_enabled=True)
    assert effective_parallel_cpu(THREAD.capabilities, gil_enabled=False)
    assert not effective_parallel_cpu(INLINE.capabilities, gil_enabled=False)


# -- explanations -------------------------------------------------------------------------
def test_summary_carries_the_numbers() -> None:
    decision = choose_backend(snap(cpus=2), cpu_bound(per_task=0.04, n=8))
    assert decision.summary == (
        "CPU 97% of wall time over 8 sampled tasks of ~40 ms; GIL enabled; 2 usable CPUs "
        "-> process backend, 2 workers"
    )
    assert "items/s" in str(decision)


def test_fixed_decision_says_the_user_chose() -> None:
    decision = fixed_decision("thread", 4)
    assert decision.chosen_by == "user"
    assert "chosen by the caller" in decision.summary
    assert decision.measurements is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2.5e-6, "2.5 us"),
        (5.9e-4, "590 us"),
        (0.04, "40 ms"),
        (0.37, "370 ms"),
        (1.23, "1.2 s"),
        (95.0, "95 s"),
        (250.0, "250 s"),
    ],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_bad_measurements_rejected() -> None:
    with pytest.raises(ValueError, match="samples"):
        Measurements(0, 1.0, 1.0)
    with pytest.raises(ValueError, match="usable_cpus"):
        RuntimeSnapshot(True, 0, ALL)
    with pytest.raises(ValueError, match="item_bytes"):
        Measurements(1, 1.0, 1.0, item_bytes=-1)


def test_time_waiting_for_a_busy_cpu_is_not_io() -> None:
    # 40 ms tasks, 97% CPU, but on a loaded machine half the wall time went to other programs
    loaded = Measurements(8, 0.64, 0.31, transfer_s=5e-6, preempted_s=0.32)
    assert loaded.cpu_fraction == pytest.approx(0.97, abs=0.01)
    assert loaded.per_task_s == pytest.approx(0.04)
    decision = choose_backend(snap(), loaded)
    assert (decision.backend, decision.workers) == ("process", 2)
    assert "busy machine: 50% of it waiting for a CPU" in decision.summary
    # without the correction the same numbers look like half waiting: many processes
    naive = Measurements(8, 0.64, 0.31, transfer_s=5e-6)
    assert choose_backend(snap(), naive).workers > 2


# -- issue 10: GIL waits behind a busy caller, process counts, per-function decisions --------
def test_gil_wait_is_left_out_of_the_share() -> None:
    # 100 ms of wall time, 50 ms computing, 45 ms of it waiting for the GIL a busy caller held
    m = Measurements(4, 0.1, 0.05, transfer_s=5e-6, gil_wait_s=0.045)
    assert m.kind == "CPU-bound"
    assert "busy caller: 45% of it waiting for the GIL" in m.describe()
    decision = choose_backend(snap(cpus=2), m)
    assert (decision.backend, decision.workers) == ("process", 2)


@pytest.mark.parametrize("cpus", [1, 2, 8])
def test_cpu_bound_never_gets_more_processes_than_cpus(cpus: int) -> None:
    # 82% computing: CPU-bound, even though 18% of waiting would size a waiting pool up
    m = Measurements(8, 0.4, 0.4 * 0.82, transfer_s=5e-6)
    decision = choose_backend(snap(cpus=cpus, cands=(THREAD, PROCESS)), m)
    assert decision.workers <= cpus
    assert {e.backend: e.workers for e in decision.estimates}["process"] == cpus


def test_negative_gil_wait_is_refused() -> None:
    with pytest.raises(ValueError, match="gil_wait_s"):
        Measurements(1, 1.0, 0.5, gil_wait_s=-1)


def test_decision_lists_functions() -> None:
    a = anypool.Pool  # any callable with a qualified name
    one = choose_backend(snap(), io_bound())
    first = dataclasses.replace(one, function=function_name(a))
    second = dataclasses.replace(choose_backend(snap(), cpu_bound()), function="mod.count")
    pool_level = dataclasses.replace(second, functions=(first, second))
    assert pool_level.for_function(a) is first
    assert pool_level.for_function("mod.count") is second
    assert function_name(functools.partial(a, 1)) == "anypool._core._pool.Pool"
    with pytest.raises(KeyError, match=r"decided: 'anypool\._core\._pool\.Pool', 'mod\.count'"):
        pool_level.for_function("mod.other")
    text = str(pool_level)
    assert text.startswith("2 task functions, each decided on its own:")
    assert "\nanypool._core._pool.Pool: CPU" in text
    assert "\nmod.count: CPU" in text
    assert str(second) == "\n".join([second.reasons[0], *(f"  - {r}" for r in second.reasons[1:])])


# -- coroutine functions ------------------------------------------------------------------
def coroutines(cpu_share: float, *, chunked: bool = True, per_task: float = 0.02) -> Measurements:
    n = 100
    return Measurements(
        n,
        per_task * n,
        per_task * n * cpu_share,
        transfer_s=20e-6,
        chunked=chunked,
        coroutine=True,
    )


def test_waiting_coroutines_stay_on_loops_here_in_a_few_workers() -> None:
    decision = choose_backend(snap(), coroutines(0.01))
    assert decision.backend == "thread", str(decision)
    assert decision.workers <= 3  # 100 coroutines per loop: not a thread per coroutine
    assert "inline excluded: a coroutine's waits would block the caller" in decision.reasons
    line = next(r for r in decision.reasons if r.startswith("coroutine function: CPU 1% "))
    assert "event loops in this process" in line


def test_waiting_coroutines_stay_here_even_when_many_could_fill_a_loop() -> None:
    # 300 in flight at 5% CPU would keep one loop busy; still IO-bound: the loop stays
    decision = choose_backend(snap(), coroutines(0.05, per_task=0.005))
    assert decision.backend == "thread", str(decision)


def test_computing_coroutines_get_a_loop_per_process() -> None:
    decision = choose_backend(snap(cpus=4), coroutines(0.95))
    assert (decision.backend, decision.workers) == ("process", 4)
    line = next(r for r in decision.reasons if r.startswith("coroutine function: CPU 95% "))
    assert "an event loop in each of 4 workers (process" in line


def test_coroutines_that_compute_a_third_leave_the_parent_loop() -> None:
    # many in flight: one loop would compute for all of them on one CPU
    decision = choose_backend(snap(), coroutines(0.35))
    assert decision.backend == "process", str(decision)
    assert decision.workers >= 2


def test_submitted_coroutines_run_one_per_worker() -> None:
    decision = choose_backend(snap(), coroutines(0.01, chunked=False))
    assert decision.backend == "thread"
    assert decision.workers > 3  # one coroutine per loop at a time: waits need workers
    assert any("one submitted coroutine at a time per loop" in r for r in decision.reasons)
