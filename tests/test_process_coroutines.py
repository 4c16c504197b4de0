"""Coroutine functions on process workers: each worker runs many at once on its event loop
(anypool._backends._process._loop), up to ``concurrency=`` or as many as it measured it keeps
busy with; answers come back in the order the coroutines end.

Faults are injected for real: a coroutine that never yields past its timeout, ``os._exit``
while others run, ``Pool.kill`` and the awaiting task's cancellation. Pools come from
``make_pool``, so the autouse leak checks (tests/conftest.py) hold after every test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import time
from pathlib import Path

import pytest

import anypool

# -- tasks (module level: process workers import them by name) --------------------------------
_in_flight = 0
_peak = 0


async def counted_sleep(seconds: float) -> tuple[int, int]:
    """Sleeps; returns (this worker's pid, the most coroutines it had in flight so far)."""
    global _in_flight, _peak
    _in_flight += 1
    _peak = max(_peak, _in_flight)
    try:
        await asyncio.sleep(seconds)
    finally:
        _in_flight -= 1
    return os.getpid(), _peak


async def echo_after(value: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return value


async def sleep_then_exit(seconds: float) -> None:
    await asyncio.sleep(seconds)
    os._exit(7)


async def never_yields(seconds: float) -> None:
    time.sleep(seconds)  # blocks the loop: cancellation cannot reach it


async def note_in_finally(path: str, seconds: float) -> str:
    Path(path + ".started").write_text("started")
    try:
        await asyncio.sleep(seconds)
    finally:
        Path(path).write_text("finally ran")
    return "finished"


async def busy(n: int) -> int:
    return sum(i * i for i in range(n))


def plain_square(x: int) -> int:
    return x * x


def _wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.exists(), f"{path} was not written within {timeout} s"


def _peaks(results: list[tuple[int, int]]) -> dict[int, int]:
    peaks: dict[int, int] = {}
    for pid, peak in results:
        peaks[pid] = max(peaks.get(pid, 0), peak)
    return peaks


# -- running at once ---------------------------------------------------------------------------
def test_submitted_coroutines_run_at_once_in_one_worker_up_to_concurrency(make_pool):
    pool = make_pool("process", 1, concurrency=10)
    futures = [pool.submit(counted_sleep, 0.3) for _ in range(40)]
    results = [f.result(timeout=30) for f in futures]
    assert _peaks(results) == {results[0][0]: 10}  # never more than asked, and that many


def test_concurrency_one_runs_one_coroutine_at_a_time(make_pool):
    pool = make_pool("process", 1, concurrency=1)
    results = [f.result(timeout=30) for f in [pool.submit(counted_sleep, 0.02) for _ in range(6)]]
    assert max(peak for _, peak in results) == 1


def test_the_measured_concurrency_grows_for_waiting_coroutines(make_pool):
    pool = make_pool("process", 2)
    started = time.monotonic()
    results = [f.result(timeout=60) for f in [pool.submit(counted_sleep, 0.5) for _ in range(400)]]
    elapsed = time.monotonic() - started
    assert max(_peaks(results).values()) >= 32, _peaks(results)
    assert elapsed < 30  # one at a time per worker would take 100 s
    reasons = " ".join(pool.explain().reasons)
    assert "coroutine functions: each worker runs up to" in reasons
    assert "measured" in reasons


def test_the_measured_concurrency_stays_low_for_computing_coroutines(make_pool):
    pool = make_pool("process", 1)
    futures = [pool.submit(busy, 300_000) for _ in range(60)]
    assert [f.result(timeout=60) for f in futures] == [busy_value(300_000)] * 60
    reasons = " ".join(pool.explain().reasons)
    limit = int(reasons.split("each worker runs up to ")[1].split()[0])
    assert limit <= 4, reasons  # a saturated loop gains nothing from more coroutines


def busy_value(n: int) -> int:
    return sum(i * i for i in range(n))


def test_answers_come_back_in_the_order_coroutines_end(make_pool):
    pool = make_pool("process", 1, concurrency=8)
    slow = pool.submit(echo_after, 1, 1.0)
    fast = [pool.submit(echo_after, i, 0.05) for i in range(2, 8)]
    assert [f.result(timeout=10) for f in fast] == list(range(2, 8))
    assert not slow.done()  # the quick ones did not wait behind it
    assert slow.result(timeout=10) == 1


def test_plain_and_coroutine_tasks_share_a_pool(make_pool):
    pool = make_pool("process", 2, concurrency=4)
    mixed = []
    for i in range(30):
        mixed.append(pool.submit(plain_square, i))
        mixed.append(pool.submit(echo_after, i, 0.01))
    values = [f.result(timeout=30) for f in mixed]
    assert values[0::2] == [i * i for i in range(30)]
    assert values[1::2] == list(range(30))


def test_map_of_a_coroutine_function_with_concurrency(make_pool):
    pool = make_pool("process", 2, concurrency=50)
    assert list(pool.map(echo_after, range(300), [0.01] * 300)) == list(range(300))


def test_workers_recycled_after_max_tasks_lose_no_coroutine(make_pool):
    pool = make_pool("process", 2, concurrency=5, max_tasks_per_worker=7)
    futures = [pool.submit(echo_after, i, 0.01) for i in range(60)]
    assert [f.result(timeout=60) for f in futures] == list(range(60))
    assert pool.statistics().worker_restarts >= 6


# -- faults --------------------------------------------------------------------------------------
def test_a_timeout_cancels_only_its_coroutine_and_keeps_the_worker(make_pool):
    pool = make_pool("process", 1, concurrency=8)
    others = [pool.submit(echo_after, i, 0.6) for i in range(5)]
    late = pool.submit(echo_after, 99, 30, timeout=0.2)
    with pytest.raises(anypool.TaskTimeout, match="cancelled"):
        late.result(timeout=10)
    assert [f.result(timeout=10) for f in others] == list(range(5))
    assert pool.statistics().worker_restarts == 0


def test_a_coroutine_that_never_yields_stops_its_worker_and_says_why_to_the_others(make_pool):
    pool = make_pool("process", 1, concurrency=8)
    others = [pool.submit(echo_after, i, 5) for i in range(3)]
    time.sleep(0.3)  # they are running on the worker's loop
    stuck = pool.submit(never_yields, 30, timeout=0.2)
    with pytest.raises(anypool.TaskTimeout):
        stuck.result(timeout=20)
    for future in others:
        with pytest.raises(anypool.WorkerCrashed, match="never_yields did not give way"):
            future.result(timeout=20)
    assert pool.submit(echo_after, 5, 0).result(timeout=20) == 5  # a new worker took over


def test_a_worker_crash_fails_every_coroutine_it_ran_and_retries_retry(make_pool):
    pool = make_pool("process", 1, concurrency=8)
    victims = [pool.submit(echo_after, i, 5) for i in range(3)]
    survivor = pool.submit(echo_after, 42, 2, retries=1)
    time.sleep(0.3)
    crash = pool.submit(sleep_then_exit, 0.1)
    for future in [*victims, crash]:
        with pytest.raises(anypool.WorkerCrashed, match="code 7"):
            future.result(timeout=20)
    assert survivor.result(timeout=20) == 42  # run again on the replacement worker


def test_kill_cancels_a_running_coroutine_in_its_worker(make_pool, tmp_path):
    pool = make_pool("process", 1, concurrency=4)
    neighbour = pool.submit(echo_after, 3, 1.0)
    marker = tmp_path / "finally"
    victim = pool.submit(note_in_finally, str(marker), 30)
    _wait_for_file(Path(str(marker) + ".started"))  # running in the worker
    assert pool.kill(victim)
    with pytest.raises(cf.CancelledError):
        victim.result(timeout=5)
    _wait_for_file(marker)
    assert marker.read_text() == "finally ran"  # cancelled at its await, not killed
    assert neighbour.result(timeout=10) == 3
    assert pool.statistics().worker_restarts == 0


def test_a_cancel_that_arrives_with_its_task_still_answers(make_pool, tmp_path):
    """The kill reaches the worker in the same read as the task (the worker was still
    starting): the asyncio task is cancelled before its first step, and must answer anyway
    (it did not: the parent waited 1 s, then killed the worker)."""
    for _ in range(3):
        pool = make_pool("process", 1, concurrency=4)
        marker = tmp_path / "never"
        victim = pool.submit(note_in_finally, str(marker), 30)
        deadline = time.monotonic() + 10
        while not victim.running() and time.monotonic() < deadline:
            time.sleep(0.001)  # sent to the worker, which is still starting up
        assert pool.kill(victim)
        with pytest.raises(cf.CancelledError):
            victim.result(timeout=5)
        assert pool.submit(echo_after, 1, 0).result(timeout=20) == 1
        assert pool.statistics().worker_restarts == 0
        pool.shutdown()


def test_kill_of_a_coroutine_that_never_yields_stops_the_worker(make_pool):
    pool = make_pool("process", 1, concurrency=4)
    stuck = pool.submit(never_yields, 30)
    time.sleep(0.5)
    started = time.monotonic()
    assert pool.kill(stuck)
    with pytest.raises(cf.CancelledError):
        stuck.result(timeout=5)
    assert pool.submit(echo_after, 1, 0).result(timeout=20) == 1
    assert time.monotonic() - started < 10
    assert pool.statistics().worker_restarts == 1


def test_cancelling_the_awaiting_task_cancels_the_coroutine_in_the_worker(make_pool, tmp_path):
    pool = make_pool("process", 1, concurrency=4)
    marker = tmp_path / "finally"

    async def body() -> None:
        waiter = asyncio.ensure_future(pool.submit(note_in_finally, str(marker), 30))
        started = Path(str(marker) + ".started")
        for _ in range(500):
            if started.exists():
                break
            await asyncio.sleep(0.02)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        for _ in range(250):
            if marker.exists():
                break
            await asyncio.sleep(0.02)

    asyncio.run(body())
    assert marker.read_text() == "finally ran"
    assert pool.statistics().worker_restarts == 0


def test_shutdown_waits_for_running_coroutines(make_pool):
    pool = make_pool("process", 1, concurrency=4)
    futures = [pool.submit(echo_after, i, 0.3) for i in range(4)]
    pool.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == list(range(4))


def test_shutdown_kill_running_stops_every_running_coroutine(make_pool):
    pool = make_pool("process", 1, concurrency=4)
    futures = [pool.submit(echo_after, i, 30) for i in range(4)]
    time.sleep(0.5)
    started = time.monotonic()
    pool.shutdown(wait=True, kill_running=True)
    assert time.monotonic() - started < 5
    for future in futures:
        with pytest.raises(cf.CancelledError):
            future.result(timeout=0)


# -- the option -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "concurrency must be at least 1"),
        (-3, ValueError, "concurrency must be at least 1"),
        ("8", TypeError, "concurrency must be a positive int"),
        (True, TypeError, "concurrency must be a positive int"),
        (2.5, TypeError, "concurrency must be a positive int"),
    ],
)
def test_a_bad_concurrency_is_refused_by_name(value, error, match):
    with pytest.raises(error, match=match):
        anypool.Pool("process", 1, concurrency=value)


def test_concurrency_is_a_process_option(make_pool):
    with pytest.raises(TypeError, match="concurrency"):
        make_pool("thread", 2, concurrency=4)


def test_explain_names_a_fixed_concurrency(make_pool):
    pool = make_pool("process", 1, concurrency=12)
    assert "up to 12 at once" in " ".join(pool.explain().reasons)
    assert "set by the caller" in " ".join(pool.explain().reasons)


def test_no_new_coroutine_joins_one_past_its_timeout_and_the_error_names_its_timeout(make_pool):
    pool = make_pool("process", 1, concurrency=8)
    stuck = pool.submit(never_yields, 3, timeout=0.3)
    time.sleep(0.6)  # past its own timeout: cancelled, but it does not yield
    later = [pool.submit(echo_after, i, 0.01) for i in range(4)]
    with pytest.raises(anypool.TaskTimeout) as caught:
        stuck.result(timeout=20)
    message = str(caught.value)
    assert "its timeout of 0.3 s" in message, message
    assert "did not yield within 1 s" in message, message
    # they waited for the worker's replacement instead of joining the blocked loop and
    # failing with it
    assert [f.result(timeout=20) for f in later] == list(range(4))


def test_auto_passes_concurrency_on_and_explains_it(make_pool):
    pool = make_pool("auto", concurrency=6, require="isolates_crashes")  # processes, then
    results = [f.result(timeout=60) for f in [pool.submit(counted_sleep, 0.3) for _ in range(30)]]
    decision = pool.explain()
    assert decision.backend == "process"
    assert max(_peaks(results).values()) <= 6
    assert "up to 6 at once" in " ".join(decision.reasons)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        anypool.Pool("auto", concurrency=0)


# -- the measured concurrency, with a fake clock -------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def monotonic(self) -> float:
        return self.wall

    def process_time(self) -> float:
        return self.cpu


def _window(concurrency, clock: _Clock, *, load: int, busy: float, seconds: float = 0.05) -> bool:
    concurrency.load_changed(load)
    clock.wall += seconds
    clock.cpu += busy * seconds
    return concurrency.measure()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    from anypool._backends._process import _loop

    fake = _Clock()
    monkeypatch.setattr(_loop, "time", fake)
    return fake


def test_the_concurrency_grows_by_how_idle_a_full_loop_was(clock):
    from anypool._backends._process._loop import MAX_CONCURRENCY, Concurrency

    concurrency = Concurrency(None)
    assert _window(concurrency, clock, load=1, busy=0.05)  # 5 % busy: x8 (the most per window)
    assert concurrency.limit == 8
    assert _window(concurrency, clock, load=8, busy=0.45)  # 0.9 / 0.45: x2
    assert concurrency.limit == 16
    assert not _window(concurrency, clock, load=16, busy=0.9)  # in the band: unchanged
    for _ in range(10):
        _window(concurrency, clock, load=concurrency.limit, busy=0.01)
    assert concurrency.limit == MAX_CONCURRENCY


def test_a_half_fed_loop_says_nothing_about_its_limit(clock):
    from anypool._backends._process._loop import Concurrency

    concurrency = Concurrency(None)
    _window(concurrency, clock, load=1, busy=0.05)
    assert not _window(concurrency, clock, load=2, busy=0.05)  # 2 of 8 slots used
    assert concurrency.limit == 8


def test_a_saturated_loop_gives_back_a_fifth(clock):
    from anypool._backends._process._loop import Concurrency

    concurrency = Concurrency(None)
    _window(concurrency, clock, load=1, busy=0.05)
    assert _window(concurrency, clock, load=8, busy=1.0)
    assert concurrency.limit == 6
    while concurrency.limit > 1:
        _window(concurrency, clock, load=concurrency.limit, busy=1.0)
    assert not _window(concurrency, clock, load=1, busy=1.0)  # never below 1
    assert concurrency.limit == 1


def test_a_fixed_concurrency_is_measured_but_never_changed(clock):
    from anypool._backends._process._loop import Concurrency

    concurrency = Concurrency(5)
    assert _window(concurrency, clock, load=5, busy=0.01)  # the first measure is reported
    assert concurrency.limit == 5
    assert concurrency.busy == pytest.approx(0.01)
    assert not _window(concurrency, clock, load=5, busy=0.01)
    assert concurrency.limit == 5
