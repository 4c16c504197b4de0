"""backend="auto" on real functions: it measures, chooses, explains, and routes everything."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import anypool
from anypool._runtime import gil_enabled, usable_cpus

needs_two_cpus = pytest.mark.skipif(usable_cpus() < 2, reason="parallelism needs 2 usable CPUs")


def busy(n: int) -> int:
    """The tutorial's counter loop: pure-Python CPU work that holds the GIL."""
    i = 0
    for _ in range(n):
        i = i + 1
    return i


def nap(x: float) -> float:
    time.sleep(x)
    return x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x * 2


def tiny(x: int) -> int:
    return x + 1


def shifty(x: float) -> float:
    """Waits for a negative argument, counts for a positive one: a profile that drifts."""
    if x < 0:
        time.sleep(-x)
    else:
        busy(int(x))
    return x


# ~20-40 ms of counting on the 2-core dev VM: long enough to measure, short enough to run
BUSY_N = 400_000


def test_default_backend_is_auto(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    assert pool.backend == "auto"
    decision = pool.explain()
    assert decision.chosen_by == "pending"
    assert "not decided yet" in decision.summary


@needs_two_cpus
@pytest.mark.timeout(60)
def test_busy_loop_picks_processes(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    assert list(pool.map(busy, [BUSY_N] * 12)) == [BUSY_N] * 12
    decision = pool.explain()
    assert decision.backend == "process", str(decision)
    assert decision.workers >= 2
    assert decision.measurements is not None
    assert decision.measurements.cpu_fraction > 0.5
    assert pool.statistics().backend == "process"
    assert pool.capabilities.parallel_cpu  # the pool now reports the chosen backend's flags


@pytest.mark.timeout(60)
def test_sleeping_function_picks_threads(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    assert list(pool.map(nap, [0.03] * 20)) == [0.03] * 20
    decision = pool.explain()
    assert decision.backend == "thread", str(decision)
    assert decision.workers > usable_cpus()  # sized for overlapping waits, not for CPUs
    assert decision.measurements is not None
    assert decision.measurements.cpu_fraction < 0.2


@needs_two_cpus
@pytest.mark.skipif(not Path("/proc/thread-self/schedstat").exists(), reason="needs schedstat")
@pytest.mark.timeout(60)
def test_a_busy_machine_does_not_make_cpu_work_look_like_waiting(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    hog = "while True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(usable_cpus())]
    try:
        pool = make_pool()
        assert list(pool.map(busy, [BUSY_N] * 8)) == [BUSY_N] * 8
        decision = pool.explain()
    finally:
        for proc in hogs:
            proc.kill()
            proc.wait()
    assert decision.measurements is not None
    assert decision.measurements.preempted_s > 0  # the hogs took the CPUs for a while
    assert decision.measurements.cpu_fraction > 0.7, str(decision)
    assert decision.backend == "process", str(decision)
    assert decision.workers <= usable_cpus() + 1


def test_explain_carries_numbers(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    list(pool.map(nap, [0.02] * 6))
    text = str(pool.explain())
    assert re.search(r"CPU \d+% of wall time over \d+ sampled tasks? of ~\d", text), text
    assert re.search(r"GIL (enabled|disabled)", text)
    assert re.search(rf"{usable_cpus()} usable CPUs?", text)
    assert re.search(r"-> thread backend, \d+ workers", text)
    assert "items/s" in text


def test_explain_for_a_named_backend(make_pool: Callable[..., anypool.Pool]) -> None:
    decision = make_pool("thread", 3).explain()
    assert (decision.backend, decision.workers, decision.chosen_by) == ("thread", 3, "user")
    assert "chosen by the caller" in str(decision)


def test_unpicklable_function_stays_on_threads(make_pool: Callable[..., anypool.Pool]) -> None:
    lock = threading.Lock()

    def locked_busy(n: int) -> tuple[int, threading.Lock]:
        with lock:
            return busy(n), lock  # the result holds a lock: it cannot cross a process

    pool = make_pool()
    results = list(pool.map(locked_busy, [BUSY_N] * 4))
    assert [r[0] for r in results] == [BUSY_N] * 4
    decision = pool.explain()
    assert decision.backend == "thread", str(decision)
    assert "does not pickle" in str(decision)
    assert "lock" in str(decision)


_TINY_TASKS_SCRIPT = """
import anypool
with anypool.Pool() as pool:
    futures = [pool.submit(abs, -i) for i in range(20)]
    assert [f.result(timeout=10) for f in futures] == list(range(20))
    decision = pool.explain()
    assert decision.backend == "inline", str(decision)
    # inline cannot enforce timeouts: a later task asking for one gets a clear error
    try:
        pool.submit(abs, -1, timeout=5)
    except anypool.CapabilityError as exc:
        assert "chose 'inline'" in str(exc), exc
    else:
        raise AssertionError("a timeout on an inline choice was accepted")
print("ok")
"""


@pytest.mark.timeout(60)
def test_tiny_submitted_tasks_run_inline() -> None:
    # In a fresh interpreter: in this test process, threads of a session-wide Ray or Dask
    # client compete for the GIL and make a 1 us task look like one that waits.
    proc = subprocess.run(
        [sys.executable, "-c", _TINY_TASKS_SCRIPT], capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok", proc.stdout


_GUARDED_CLOSURE_SCRIPT = """
import threading

import anypool


def burn():
    total = 0
    for i in range(150_000):
        total += i


if __name__ == "__main__":
    lock = threading.Lock()

    def closure(x):  # a global of __main__ here, but not in a spawned worker: by value
        with lock:
            pass
        burn()
        return x

    with anypool.Pool() as pool:
        assert list(pool.map(closure, range(30))) == list(range(30))
        decision = pool.explain()
        assert decision.backend == "thread", str(decision)
    print("ok")
"""


@pytest.mark.timeout(60)
def test_a_function_that_reaches_processes_only_by_name_keeps_auto_on_threads(
    tmp_path: Path,
) -> None:
    # plain pickle sends `closure` by name and succeeds here; the process backend sends a
    # main-script function by value too, and that copy cannot hold the lock: auto must
    # judge the function the way the process backend would send it
    script = tmp_path / "guarded_closure.py"
    script.write_text(_GUARDED_CLOSURE_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok", proc.stdout


def test_pool_timeout_keeps_auto_off_inline(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool(timeout=5)
    futures = [pool.submit(abs, -i) for i in range(20)]
    assert [f.result(timeout=10) for f in futures] == list(range(20))
    decision = pool.explain()
    assert decision.backend != "inline"
    assert any("timeouts" in r for r in decision.reasons)


def test_prefer_and_require_steer(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool(prefer="thread")
    list(pool.map(busy, [BUSY_N] * 4))
    assert pool.explain().backend == "thread"
    pool = make_pool(require="shared_memory")
    list(pool.map(busy, [BUSY_N] * 4))
    assert pool.explain().backend == "thread"


@pytest.mark.timeout(60)
def test_require_kill_on_timeout_picks_processes_for_io(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool(require="kill_on_timeout")
    assert list(pool.map(nap, [0.01] * 4)) == [0.01] * 4
    assert pool.explain().backend == "process"


def test_bad_steering_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown requirement 'fast'"):
        anypool.Pool(require="fast")
    with pytest.raises(ValueError, match="unknown prefer="):
        anypool.Pool(prefer="gpu")
    with pytest.raises(ValueError, match="prefer= steers backend='auto' only"):
        anypool.Pool("thread", prefer="process")
    with pytest.raises(anypool.CapabilityError, match="'thread' backend does not meet"):
        anypool.Pool("thread", require="kill_on_timeout")


def test_named_backend_meeting_require_is_fine(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", 2, require="shared_memory")
    assert pool.submit(pow, 2, 5).result(timeout=5) == 32


def test_exceptions_surface_in_place(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    out: list[object] = list(pool.map(fail_on_three, range(8), return_exceptions=True))
    assert isinstance(out[3], ValueError)
    assert [v for i, v in enumerate(out) if i != 3] == [0, 2, 4, 8, 10, 12, 14]
    with pytest.raises(ValueError, match="three"):
        list(pool.map(fail_on_three, range(8)))


def test_submit_path_decides_and_routes(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    futures = [pool.submit(nap, 0.02) for _ in range(12)]
    assert [f.result(timeout=10) for f in futures] == [0.02] * 12
    assert pool.explain().backend == "thread"
    assert pool.submit(nap, 0).result(timeout=5) == 0  # after the choice, straight through


class _Concurrency:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __call__(self, x: int) -> int:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.02)
        with self.lock:
            self.now -= 1
        return x


def test_map_window_grows_with_the_choice(make_pool: Callable[..., anypool.Pool]) -> None:
    # before the choice the pool has usable_cpus() workers (window 2*cpus+1 chunks); an
    # IO-bound choice must widen the window, or waits would not overlap beyond it
    probe = _Concurrency()  # holds a lock: stays on threads, and counts overlap
    pool = make_pool()
    assert list(pool.map(probe, range(200), chunksize=1)) == list(range(200))
    assert pool.explain().backend == "thread"
    assert probe.peak > 2 * usable_cpus() + 1, probe.peak


def test_workers_reflect_the_choice(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    before = pool.workers
    assert before == usable_cpus()
    list(pool.map(nap, [0.02] * 6))
    assert pool.workers == pool.explain().workers


def test_given_workers_are_respected(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool(workers=3)
    list(pool.map(nap, [0.02] * 6))
    assert pool.explain().workers == 3
    assert pool.workers == 3


@pytest.mark.skipif(not hasattr(time, "pthread_getcpuclockid"), reason="needs thread CPU clocks")
@pytest.mark.timeout(60)
def test_long_first_task_does_not_hold_the_choice(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    first = pool.submit(nap, 1.0)
    rest = [pool.submit(nap, 0.01) for _ in range(4)]
    # the choice is made ~50 ms into the first task, from what it did so far
    assert [f.result(timeout=0.8) for f in rest] == [0.01] * 4
    assert not first.done()
    decision = pool.explain()
    assert decision.measurements is not None
    assert decision.measurements.partial
    assert "still running" in decision.summary
    assert first.result(timeout=5) == 1.0


def test_timeout_while_sampling(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    slow = pool.submit(nap, 1.5, timeout=0.1)
    with pytest.raises(anypool.TaskTimeout, match="abandoned"):
        slow.result(timeout=5)
    assert pool.submit(nap, 0.0).result(timeout=5) == 0.0
    start = time.monotonic()
    pool.shutdown(wait=True)
    assert time.monotonic() - start < 0.75  # does not wait for the abandoned task
    time.sleep(1.5)  # let the abandoned probe thread finish before the leak check


def test_shutdown_before_any_task(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool()
    pool.shutdown(wait=True)
    with pytest.raises(anypool.PoolClosed):
        pool.submit(abs, 1)


def test_shutdown_while_sampling_completes_queued_work() -> None:
    pool = anypool.Pool()
    futures = [pool.submit(nap, 0.01) for _ in range(6)]
    pool.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == [0.01] * 6


def test_shutdown_cancel_pending_while_sampling() -> None:
    pool = anypool.Pool()
    futures = [pool.submit(nap, 0.03) for _ in range(10)]
    pool.shutdown(wait=True, cancel_pending=True)  # at most the first one has started
    assert all(f.done() for f in futures)
    assert sum(f.cancelled() for f in futures) >= 9
    assert all(f.result(timeout=0) == 0.03 for f in futures if not f.cancelled())


def test_initializer_failure_breaks_the_pool() -> None:
    def bad_init() -> None:
        raise RuntimeError("no config")

    pool = anypool.Pool(initializer=bad_init)
    try:
        future = pool.submit(abs, -1)
        with pytest.raises(anypool.BrokenPool, match="initializer failed") as info:
            future.result(timeout=5)
        assert isinstance(info.value.__cause__, RuntimeError)
        with pytest.raises(anypool.BrokenPool):
            pool.submit(abs, -1)
    finally:
        pool.shutdown(wait=True)


def test_one_shot_map_defaults_to_auto() -> None:
    assert list(anypool.map(abs, [-1, -2, -3])) == [1, 2, 3]
    assert list(anypool.map(nap, [0.01] * 5, workers=2)) == [0.01] * 5


def test_threads_only_when_process_backend_is_missing(
    make_pool: Callable[..., anypool.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    from anypool import _backends

    real = _backends.is_available

    def without_process(name: str) -> bool:
        return name != "process" and real(name)

    monkeypatch.setattr(_backends, "is_available", without_process)
    pool = make_pool()
    list(pool.map(busy, [BUSY_N] * 4))
    decision = pool.explain()
    assert decision.backend == "thread"
    assert any("process backend not available" in r for r in decision.reasons)


def test_import_stays_light() -> None:
    import subprocess

    code = (
        "import sys, anypool; anypool.Pool; "
        "print(sorted(m for m in ('multiprocessing', 'tqdm', 'matplotlib', 'cloudpickle') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- per-function decisions (issue 10, items 10 and 11) ------------------------------------
def test_tiny_submitted_function_decides_the_same_way_20_times() -> None:
    # A ~1 us function submitted in a loop: the submitting thread holds the GIL most of
    # the time, which used to look like waiting (thread x 128) and varied between runs.
    seen = []
    for _ in range(20):
        with anypool.Pool() as pool:
            futures = [pool.submit(tiny, i) for i in range(300)]
            assert [f.result(timeout=10) for f in futures] == list(range(1, 301))
            decision = pool.explain()
        assert decision.measurements is not None
        seen.append((decision.backend, decision.workers, decision.measurements.kind))
    assert set(seen) == {("inline", 1, "CPU-bound")}, seen


def test_tiny_calls_are_batched_into_measurable_windows(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool()
    # keeps the probe busy until every tiny call is queued (a fixed nap(0.2) was shorter
    # than 2000 submits once, on a loaded machine: the probe sampled them one at a time)
    gate = threading.Event()
    first = pool.submit(gate.wait, 10)
    futures = [pool.submit(tiny, i) for i in range(2000)]
    gate.set()
    assert [f.result(timeout=10) for f in futures] == list(range(1, 2001))
    assert first.result(timeout=10) is True
    m = pool.explain().for_function(tiny).measurements
    assert m is not None
    # at most MAX_SAMPLES windows, and once the first call's size is known the next
    # windows take many calls each (a window of one 1 us call is too short to time)
    assert m.samples > 8, str(pool.explain())


@needs_two_cpus
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("n", "tasks"), [(BUSY_N, 12), (5 * BUSY_N, 6)], ids=["short", "long"])
def test_busy_caller_gets_no_more_processes_than_cpus(
    make_pool: Callable[..., anypool.Pool], n: int, tasks: int
) -> None:
    # "long": the first task outlasts the probe's budget, so auto decides from a reading
    # taken while it runs; the GIL the caller takes from it must not count as waiting
    # (that reading alone once said "CPU 45%" and sized 16 processes for 2 CPUs)
    pool = make_pool()
    futures = [pool.submit(busy, n) for _ in range(tasks)]
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # the caller computes too, holding the GIL
        busy(2000)
    assert [f.result(timeout=30) for f in futures] == [n] * tasks
    decision = pool.explain()
    assert decision.backend == "process", str(decision)
    assert decision.workers <= usable_cpus(), str(decision)


@needs_two_cpus
@pytest.mark.timeout(60)
def test_each_function_gets_its_own_backend(make_pool: Callable[..., anypool.Pool]) -> None:
    # issue 11: a warm-up with sleeps used to pin the pool to thread x 128 for everything
    pool = make_pool()
    assert [pool.submit(nap, 0.02).result(timeout=5) for _ in range(2)] == [0.02, 0.02]
    assert list(pool.map(busy, [BUSY_N] * 12)) == [BUSY_N] * 12
    assert list(pool.map(nap, [0.02] * 20)) == [0.02] * 20  # still on its own side
    decision = pool.explain()
    assert decision.for_function(nap).backend == "thread"
    assert decision.for_function(nap).workers > usable_cpus()
    assert decision.for_function(busy).backend == "process", str(decision)
    assert decision.for_function(busy).workers == usable_cpus()
    assert [d.function for d in decision.functions] == [
        f"{__name__}.nap",
        f"{__name__}.busy",
    ]
    text = str(decision)
    assert "2 task functions" in text
    assert f"{__name__}.busy: CPU" in text
    assert f"{__name__}.nap: CPU" in text
    with pytest.raises(KeyError, match="no decision for function"):
        decision.for_function(tiny)


@needs_two_cpus
@pytest.mark.timeout(60)
def test_a_drifting_function_is_decided_again(
    make_pool: Callable[..., anypool.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    from anypool._auto import _router as _auto

    monkeypatch.setattr(_auto, "CHECK_AFTER_S", 0.05)  # check soon, not after a second
    pool = make_pool()
    assert list(pool.map(shifty, [-0.02] * 10)) == [-0.02] * 10
    assert pool.explain().for_function(shifty).backend == "thread"
    deadline = time.monotonic() + 30
    while pool.explain().for_function(shifty).backend != "process":
        assert time.monotonic() < deadline, str(pool.explain())
        assert list(pool.map(shifty, [BUSY_N] * 4)) == [BUSY_N] * 4
    decision = pool.explain().for_function(shifty)
    # a check runs one task at a time beside the busy side, so its share can read "mixed"
    # on a loaded machine; either way the function now computes on processes
    assert any(r.startswith("revisited: now ") for r in decision.reasons), str(decision)
    assert pool.submit(shifty, 1000).result(timeout=10) == 1000


def test_a_steady_function_is_not_decided_again(
    make_pool: Callable[..., anypool.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    from anypool._auto import _router as _auto

    monkeypatch.setattr(_auto, "CHECK_AFTER_S", 0.02)
    monkeypatch.setattr(_auto, "CHECK_SPACING_S", 0.0)
    pool = make_pool()
    first = None
    for _ in range(15):
        assert list(pool.map(nap, [0.01] * 8)) == [0.01] * 8
        first = first or pool.explain().for_function(nap)
    decision = pool.explain().for_function(nap)
    assert decision == first  # checked (see the next assert), found steady, kept
    profile = pool._backend._profiles[nap]  # type: ignore[attr-defined]
    assert profile.check_gap > 0.02, "no drift check ran"


def test_large_cheap_items_are_decided_from_one_window(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    # 8 MiB items through len(): copying one costs ~8 ms, computing it ~1 us, and map
    # holds only a few such items in flight: a second window would only wait for the next
    pool = make_pool()
    assert list(pool.map(len, [bytes(8 << 20)] * 4)) == [8 << 20] * 4
    decision = pool.explain()
    assert decision.backend == "inline", str(decision)
    assert decision.measurements is not None
    assert decision.measurements.item_bytes >= 8 << 20
    assert pool._backend._profiles[len].sampler.windows == 1  # type: ignore[attr-defined]


_START_AHEAD_SCRIPT = """
import os

import anypool
from anypool._auto import _router


def busy_pid(n):
    i = 0
    for _ in range(n):
        i += 1
    return os.getpid()


if __name__ == "__main__":
    warm_at_decision = []
    decide = _router.AutoBackend._decide

    def spy(self, profile, partial=None):
        warm_at_decision.append(self._warm is not None or "process" in self._sides)
        decide(self, profile, partial)

    _router.AutoBackend._decide = spy
    with anypool.Pool() as pool:
        pids = list(pool.map(busy_pid, [{n}] * 16))
        decision = pool.explain()
        assert decision.backend == "process", str(decision)
        sampled = pool._backend._profiles[busy_pid].sampler.samples
    assert warm_at_decision and warm_at_decision[0], warm_at_decision
    assert set(pids) - {{os.getpid()}}, "no task ran in a worker process"
    print(pids.count(os.getpid()), sampled)
"""


@needs_two_cpus
@pytest.mark.timeout(120)
def test_processes_start_while_a_cpu_bound_function_is_sampled(tmp_path: Path) -> None:
    # A fresh interpreter: its forkserver starts cold (~250 ms here), as in a program's
    # first process pool. The first task computes all along, so the workers start while it
    # is sampled, and the probe thread runs the function's tasks until they run theirs.
    # Whether the first look (5 ms in) sees the task compute depends on the scheduler's
    # accounting at that instant (a waiting turn is counted when it ends), so one run in a
    # few misses it and decides after the sample, as before: three fresh interpreters get
    # the chance; a start-ahead that never happens fails every one.
    script = tmp_path / "start_ahead.py"
    script.write_text(_START_AHEAD_SCRIPT.format(n=16 * BUSY_N))  # ~0.2 s tasks
    failures = []
    for _ in range(3):
        run = [sys.executable, str(script)]
        proc = subprocess.run(run, capture_output=True, text=True, timeout=50)
        if proc.returncode == 0:
            here, sampled = map(int, proc.stdout.split())
            if here > sampled:
                return
            failures.append(f"the probe ran {here} tasks, only its {sampled} samples")
        else:
            failures.append(proc.stderr + proc.stdout)
    pytest.fail("\n".join(failures))


async def snooze(x: float) -> float:
    """An IO-bound coroutine: it waits, and computes next to nothing."""
    await asyncio.sleep(x)
    return x


async def busy_coroutine(n: int) -> int:
    """A CPU-bound coroutine: it never awaits, its loop can run nothing else meanwhile."""
    return busy(n)


def _coroutine_line(decision: anypool.Decision) -> str:
    lines = [r for r in decision.reasons if r.startswith("coroutine function: ")]
    assert len(lines) == 1, str(decision)
    return lines[0]


@pytest.mark.timeout(60)
def test_waiting_coroutines_stay_on_loops_in_this_process(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool()
    assert list(pool.map(snooze, [0.02] * 300)) == [0.02] * 300
    decision = pool.explain().for_function(snooze)
    assert decision.backend == "thread", str(decision)
    assert decision.measurements is not None
    assert decision.measurements.coroutine
    # the chunk's 100 coroutines ran at once, yet each is measured as one of ~20 ms
    assert decision.measurements.per_task_s >= 0.015, str(decision)
    assert decision.measurements.cpu_fraction < 0.2, str(decision)
    line = _coroutine_line(decision)
    assert re.match(
        r"coroutine function: CPU \d+% of each coroutine's time -> event loops in this process",
        line,
    ), line
    assert "inline excluded: a coroutine's waits would block the caller" in str(decision)
    # loops hold a chunk of coroutines each: a few threads, not one per coroutine
    assert decision.workers <= 4, str(decision)


@needs_two_cpus
@pytest.mark.timeout(60)
def test_computing_coroutines_get_a_loop_in_each_process(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool()
    assert list(pool.map(busy_coroutine, [BUSY_N] * 8)) == [BUSY_N] * 8
    futures = [pool.submit(snooze, 0.01) for _ in range(4)]
    assert [f.result(timeout=30) for f in futures] == [0.01] * 4
    decision = pool.explain().for_function(busy_coroutine)
    assert decision.backend == "process", str(decision)
    assert decision.workers == usable_cpus(), str(decision)
    line = _coroutine_line(decision)
    assert re.match(
        rf"coroutine function: CPU \d+% of each coroutine's time -> an event loop in each of "
        rf"{usable_cpus()} workers \(process",
        line,
    ), line
    # each function of the pool is decided on its own: the waiting one stays here
    waiting = pool.explain().for_function(snooze)
    assert waiting.backend == "thread", str(waiting)
    assert "one submitted coroutine at a time per loop" in _coroutine_line(waiting)


def test_a_coroutine_function_decides_the_same_way_20_times() -> None:
    seen = []
    for _ in range(20):
        with anypool.Pool() as pool:
            assert list(pool.map(snooze, [0.005] * 50)) == [0.005] * 50
            decision = pool.explain()
        assert decision.measurements is not None
        seen.append((decision.backend, decision.workers, decision.measurements.kind))
    assert len(set(seen)) == 1, seen
    assert seen[0][0] == "thread", seen


def test_a_chunk_of_coroutines_is_counted_one_coroutine_at_a_time() -> None:
    from anypool._auto._measure import Sampler, Window

    sampler = Sampler()
    # 100 coroutines ran at once: 50 ms of wall in all, 1 ms of CPU each
    sampler.add(Window(100, wall=0.05 + 0.099, cpu=0.1), together=True)
    m = sampler.measurements()
    assert m is not None
    assert m.samples == 100
    assert m.per_task_s == pytest.approx(0.05, rel=0.01)  # one coroutine's own time
    assert m.cpu_fraction == pytest.approx(0.02, rel=0.01)
    alone = Sampler()
    alone.add(Window(100, wall=0.149, cpu=0.1))  # as if one after another
    assert alone.measurements().per_task_s == pytest.approx(0.00149)  # type: ignore[union-attr]


def busy_lock(n: int) -> threading.Lock:
    """Computes, then returns what cannot cross a process: known only from its result."""
    busy(n)
    return threading.Lock()


@needs_two_cpus
@pytest.mark.timeout(60)
def test_processes_started_ahead_for_nothing_are_shut_down_with_the_pool(
    make_pool: Callable[..., anypool.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 5 ms into the first task it has computed all along, and the function and its
    # argument pickle: processes start ahead. Its result does not pickle, so the choice is
    # threads, and the warm process side goes unused. (A budget long enough for the first
    # task to end: one cut short is judged before its result, see docs/gil.md.)
    from anypool._auto import _measure, _router

    monkeypatch.setattr(_router, "PROBE_BUDGET_S", 2.0)
    monkeypatch.setattr(_measure, "PROBE_BUDGET_S", 2.0)
    monkeypatch.setattr(_measure, "PROBE_MAX_WALL_S", 4.0)
    pool = make_pool()
    assert len(list(pool.map(busy_lock, [3 * BUSY_N] * 3))) == 3  # long enough to look at
    decision = pool.explain()
    assert decision.backend == "thread", str(decision)
    assert "does not pickle" in str(decision)
    backend = pool._backend  # type: ignore[attr-defined]
    warm = backend._warm
    assert warm is not None, "nothing was started ahead"
    assert warm.name == "process"
    assert "process" not in backend.sides()
    pool.shutdown(wait=True)
    assert warm.workers_alive() == 0  # (the leak check after the test sees its threads)


@pytest.mark.timeout(60)
def test_prefer_threads_starts_no_processes_ahead(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool(prefer="thread")
    assert list(pool.map(busy, [BUSY_N] * 3)) == [BUSY_N] * 3
    assert pool.explain().backend == "thread"
    assert pool._backend._warm is None  # type: ignore[attr-defined]


@pytest.mark.skipif(not gil_enabled(), reason="without the GIL threads compute in parallel")
def test_tiny_cpu_bound_map_items_run_in_the_caller(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    # Under the GIL a worker thread computes no faster than the caller, and each chunk it
    # finishes is a GIL hand-off: 200,000 x ident took 1.8x inline on a thread here.
    pool = make_pool()
    assert sum(pool.map(tiny, range(50_000))) == sum(range(1, 50_001))
    decision = pool.explain()
    assert decision.backend == "inline", str(decision)
    assert "-> inline backend, 1 worker" in decision.summary
    assert "chose inline: CPU-bound map items" in str(decision)
    # the rule only steps in where the model has inline as fast as a thread
    assert "inline ~" in str(decision)
    assert "thread ~" in str(decision)


def test_tiny_map_items_stay_off_inline_when_steered(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool(prefer="thread")
    assert sum(pool.map(tiny, range(20_000))) == sum(range(1, 20_001))
    assert pool.explain().backend == "thread"
    pool = make_pool(timeout=30)  # inline cannot enforce timeouts
    assert sum(pool.map(tiny, range(20_000))) == sum(range(1, 20_001))
    assert pool.explain().backend != "inline"
