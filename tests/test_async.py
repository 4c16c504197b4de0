"""anypool from async code: the contract through ``await`` and ``async for`` on every local
backend, run under ``asyncio.run`` and under anyio's asyncio backend.

Each test is a coroutine handed to the ``run`` fixture; pools come from ``make_pool`` (or
``async with``), so the autouse leak checks (tests/conftest.py) hold after every test.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import anypool
from polling import wait_until

LOCAL_BACKENDS = ["thread", "process", "inline"]
Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


def _run_anyio(body: Callable[[], Awaitable[Any]]) -> Any:
    anyio = pytest.importorskip("anyio")
    return anyio.run(body, backend="asyncio")


@pytest.fixture(params=["asyncio", "anyio"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a test's coroutine: ``asyncio.run``, or anyio's asyncio backend."""
    if request.param == "anyio":
        return _run_anyio
    return lambda body: asyncio.run(body())  # type: ignore[arg-type]


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- tasks (module level: process workers import them by name) --------------------------------
class Boom(Exception):
    pass


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise Boom(f"item {x}")
    return x


async def async_square(x: int) -> int:
    await asyncio.sleep(0.001)
    return x * x


async def async_fail(x: int) -> int:
    await asyncio.sleep(0)
    raise Boom(f"async {x}")


async def async_sleep_forever(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "finished"


async def async_never_yields(seconds: float) -> str:
    time.sleep(seconds)  # blocks its loop: only the backend's deadline can stop it
    return "finished"


async def async_loop_id(_: int) -> int:
    await asyncio.sleep(0)
    return id(asyncio.get_running_loop())


# -- the contract through await ----------------------------------------------------------------
def test_await_submit_returns_the_value_and_the_future_stays_a_stdlib_future(
    backend, run, make_pool
):
    pool = make_pool(backend, 2)

    async def body() -> None:
        future = pool.submit(square, 7)
        assert isinstance(future, cf.Future)
        assert await future == 49
        assert future.result() == 49  # still usable from sync code
        done, _ = cf.wait([pool.submit(square, 3)])
        assert [f.result() for f in done] == [9]
        assert await asyncio.gather(*(pool.submit(square, i) for i in range(5))) == [
            0,
            1,
            4,
            9,
            16,
        ]

    run(body)


def test_await_submit_raises_the_tasks_exception(backend, run, make_pool):
    pool = make_pool(backend, 2)

    async def body() -> None:
        with pytest.raises(Boom, match="item 3"):
            await pool.submit(fail_on, 3, 3)

    run(body)


def test_async_for_over_map_yields_in_order_and_raises_at_the_failing_item(backend, run, make_pool):
    pool = make_pool(backend, 2)

    async def body() -> None:
        assert [x async for x in pool.map(square, range(50))] == [x * x for x in range(50)]
        got: list[int] = []

        async def consume() -> None:
            async for x in pool.map(fail_on, range(10), itertools.repeat(5), chunksize=2):
                got.append(x)

        with pytest.raises(Boom, match="item 5"):
            await consume()
        assert got == [0, 1, 2, 3, 4]
        unordered = [x async for x in pool.map(square, range(20), ordered=False)]
        assert sorted(unordered) == [x * x for x in range(20)]

    run(body)


def test_await_map_returns_the_whole_list(backend, run, make_pool):
    pool = make_pool(backend, 2)

    async def body() -> None:
        assert await pool.map(square, range(30)) == [x * x for x in range(30)]
        mixed = await pool.map(fail_on, range(4), [2] * 4, return_exceptions=True)
        assert mixed[:2] == [0, 1]
        assert isinstance(mixed[2], Boom)
        assert mixed[3] == 3
        assert await pool.map(square, []) == []

    run(body)


def test_coroutine_functions_run_on_every_local_backend(backend, run, make_pool):
    pool = make_pool(backend, 2)

    async def body() -> None:
        assert await pool.submit(async_square, 6) == 36
        assert await pool.map(async_square, range(10)) == [x * x for x in range(10)]
        with pytest.raises(Boom, match="async 1"):
            await pool.submit(async_fail, 1)
        # the sync API runs them too
        assert pool.submit(async_square, 3).result() == 9

    run(body)
    assert list(pool.map(async_square, range(4))) == [0, 1, 4, 9]


def test_coroutine_functions_run_through_every_way_in(backend, make_pool, tmp_path):
    # the decorators, submit_after and every ran the function and returned its coroutine,
    # un-awaited (thread, inline) or unpicklable (process), where submit and map ran it
    pool = make_pool(backend, 2)
    decorated = pool.task(async_square)
    assert decorated(3).result(timeout=30) == 9
    if backend != "inline":  # which cannot enforce timeout=
        assert pool.task(timeout=20)(async_square)(4).result(timeout=30) == 16
    assert list(decorated.map([1, 2])) == [1, 4]
    assert pool.submit_after(0.01, async_square, 5).result(timeout=30) == 25
    ticks = tmp_path / "ticks"
    every = pool.every(0.02, async_append, str(ticks))
    assert wait_until(lambda: ticks.exists() and len(ticks.read_text()) >= 3, 30)
    every.cancel()
    assert every.exception is None


async def async_append(path: str) -> None:
    await asyncio.sleep(0)
    with open(path, "a") as file:
        file.write("x")


def test_async_with_shuts_the_pool_down(backend, run):
    async def body() -> None:
        async with anypool.Pool(backend, 2) as pool:
            assert await pool.submit(square, 4) == 16
            never_iterated = pool.map(square, range(5))  # runs to its end at shutdown
        with pytest.raises(anypool.PoolClosed):
            pool.submit(square, 1)
        assert list(never_iterated) == [0, 1, 4, 9, 16]

    run(body)  # the autouse leak check: no worker outlives the ``async with``


def test_plain_sync_use_is_unchanged_by_the_awaitable_future(make_pool):
    pool = make_pool("thread", 2)
    futures = [pool.submit(square, i) for i in range(10)]
    assert sorted(f.result() for f in cf.as_completed(futures)) == sorted(x * x for x in range(10))
    assert list(pool.map(square, range(5))) == [0, 1, 4, 9, 16]


# -- the loop is never blocked ------------------------------------------------------------------
def _wait_for_gate(gate: threading.Event, value: int) -> int:
    assert gate.wait(10), "the event loop never opened the gate: it was blocked"
    return value


def test_awaiting_a_future_or_a_map_chunk_does_not_block_the_loop(run, make_pool):
    # the tasks wait for a gate that only a coroutine on the same loop opens: a loop
    # blocked in a wait() would never open it
    pool = make_pool("thread", 2)

    async def body() -> None:
        gate = threading.Event()

        async def open_gate() -> None:
            await asyncio.sleep(0.05)
            gate.set()

        opener = asyncio.ensure_future(open_gate())
        assert await pool.submit(_wait_for_gate, gate, 1) == 1
        await opener
        gate.clear()
        opener = asyncio.ensure_future(open_gate())
        assert [x async for x in pool.map(_wait_for_gate, [gate] * 4, range(4))] == [0, 1, 2, 3]
        await opener

    run(body)


def test_async_map_stays_lazy_and_bounded_on_an_endless_input(run, make_pool):
    pool = make_pool("thread", 2)
    read = []

    def endless() -> Any:
        for i in itertools.count():
            read.append(i)
            yield i

    async def body() -> None:
        got = []
        async for x in pool.map(square, endless(), window=3, chunksize=1):
            got.append(x)
            if len(got) == 10:
                break
        assert got == [x * x for x in range(10)]

    run(body)
    assert len(read) <= 10 + 3 + 1  # the consumed items, the window, one being read


# -- cancellation -------------------------------------------------------------------------------
def _block(gate: threading.Event, value: Any = None) -> Any:
    gate.wait(10)
    return value


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_cancelling_the_awaiting_task_cancels_a_queued_task(run, make_pool):
    pool = make_pool("thread", 1)
    gate = threading.Event()

    async def body() -> None:
        blocker = pool.submit(_block, gate)
        queued = pool.submit(square, 3)
        waiting = asyncio.ensure_future(_await(queued))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert queued.cancelled()
        gate.set()
        await blocker

    run(body)


async def _await(future: Any) -> Any:
    return await future


def test_cancelling_the_awaiting_task_kills_a_running_process_task(run, make_pool):
    pool = make_pool("process", 1)
    assert pool.capabilities.kills_running_tasks

    async def body() -> None:
        running = pool.submit(time.sleep, 30)
        await _until(running.running)
        waiting = asyncio.ensure_future(_await(running))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await _until(running.done)
        assert time.monotonic() - started < 5
        with pytest.raises((cf.CancelledError, anypool.BrokenPool, Exception)):
            running.result()
        assert await pool.submit(square, 5) == 25  # the pool goes on with a fresh worker

    run(body)


def test_cancelling_the_awaiting_task_abandons_a_running_thread_task(run, make_pool):
    # a thread cannot be stopped: the call is abandoned (it runs on, its result is
    # dropped), its future fails at once and a new thread takes its place, so neither the
    # pool's next task nor the shutdown at the end of an `async with` waits for it
    pool = make_pool("thread", 1)
    gate = threading.Event()
    ended = threading.Event()

    async def body() -> None:
        running = pool.submit(_block_then_mark, gate, ended)
        await _until(running.running)
        waiting = asyncio.ensure_future(_await(running))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert running.done()
        with pytest.raises(cf.CancelledError):
            running.result()
        assert await pool.submit(square, 5) == 25  # one worker, and it is not the stuck one
        started = time.monotonic()
        await pool.__aexit__(None, None, None)  # what `async with` ends with
        assert time.monotonic() - started < 2
        assert not ended.is_set()  # the abandoned call was still running all along

    try:
        run(body)
    finally:
        gate.set()  # let the abandoned call end before the leak check
        assert ended.wait(10)


def _block_then_mark(gate: threading.Event, ended: threading.Event) -> str:
    gate.wait(30)
    ended.set()
    return "done"


def _record(ran: list[int], gate: threading.Event, x: int) -> int:
    ran.append(x)
    if x > 0:
        gate.wait(10)
    else:
        # still running when submit returns: a chunk already done there reads as the
        # inline backend's, and the map then reads no further ahead until asked
        time.sleep(0.2)
    return x


@pytest.mark.parametrize("leave", ["break", "exception", "cancel"])
def test_leaving_an_async_map_early_cancels_the_chunks_not_started(leave, run, make_pool):
    pool = make_pool("thread", 1)
    gate = threading.Event()
    ran: list[int] = []

    async def consume() -> None:
        async for _ in pool.map(_record, [ran] * 10, [gate] * 10, range(10), window=4, chunksize=1):
            # item 0 returned; now item 1 runs (blocked on the gate), the next ones queue
            await _until(lambda: len(ran) >= 2)
            if leave == "break":
                break
            if leave == "exception":
                raise Boom("consumer")
            await asyncio.sleep(30)  # "cancel": cancelled here, item 1 running

    async def body() -> None:
        consumer = asyncio.ensure_future(consume())
        await _until(lambda: len(ran) >= 2)
        await asyncio.sleep(0.02)  # the consumer is past its own _until
        if leave == "cancel":
            consumer.cancel()
        with pytest.raises((Boom, asyncio.CancelledError)) if leave != "break" else _nothing():
            await consumer
        await asyncio.sleep(0.1)  # a ``break``: asyncio closes the stream in a task of its own
        gate.set()

    run(body)
    pool.shutdown(wait=True)
    assert ran == [0, 1], f"items started after the map was left: {ran}"


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_an_async_map_can_be_iterated_only_once(run, make_pool):
    pool = make_pool("thread", 2)

    async def body() -> None:
        results = pool.map(square, range(3))
        assert [x async for x in results] == [0, 1, 4]
        with pytest.raises(TypeError, match="already iterated"):
            results.__aiter__()

    run(body)


# -- coroutines: timeouts -----------------------------------------------------------------------
_cancelled_seen = threading.Event()


async def _async_note_cancel(seconds: float) -> str:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _cancelled_seen.set()
        raise
    return "finished"


def test_a_coroutine_past_its_timeout_is_cancelled_at_its_next_await(run, make_pool):
    pool = make_pool("thread", 1)
    _cancelled_seen.clear()

    async def body() -> None:
        started = time.monotonic()
        with pytest.raises(anypool.TaskTimeout, match="cancelled"):
            await pool.submit(_async_note_cancel, 30, timeout=0.2)
        assert time.monotonic() - started < 5
        assert _cancelled_seen.wait(5)  # cancelled, not abandoned: the thread is free again
        assert await pool.submit(square, 2) == 4

    run(body)


def test_a_coroutine_that_never_yields_is_killed_after_the_grace_period(make_pool):
    pool = make_pool("process", 1)
    started = time.monotonic()
    with pytest.raises(anypool.TaskTimeout):
        pool.submit(async_never_yields, 30, timeout=0.2).result(timeout=20)
    assert time.monotonic() - started < 10
    assert pool.submit(square, 3).result(timeout=20) == 9


_left_behind_cancelled = threading.Event()


async def async_leave_a_task_behind(_: int) -> int:
    async def background() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            _left_behind_cancelled.set()
            raise

    asyncio.ensure_future(background())  # noqa: RUF006  (left behind on purpose)
    await asyncio.sleep(0)
    return id(asyncio.get_running_loop())


def test_a_worker_thread_reuses_its_loop_and_each_call_ends_as_asyncio_run_does(make_pool):
    pool = make_pool("thread", 1)
    _left_behind_cancelled.clear()
    loops = [pool.submit(async_leave_a_task_behind, i).result() for i in range(3)]
    assert len(set(loops)) == 1  # one thread, one loop, reused
    assert _left_behind_cancelled.is_set()  # what a call left behind was cancelled at its end


_LOOP_IN_A_CYCLE = textwrap.dedent(
    """
    import asyncio, gc
    import anypool

    async def fails(x):
        await asyncio.sleep(0.01)
        raise KeyError(x)

    async def main():
        async with anypool.Pool("thread", 2) as pool:
            try:
                await pool.submit(fails, 1)
            except KeyError:
                pass
        gc.collect()  # the worker's loop, kept by the traceback's cycle, goes here
        await asyncio.sleep(0.05)
        print("done")

    asyncio.run(main())
    """
)


@pytest.mark.timeout(60)
def test_a_worker_threads_loop_collected_inside_a_running_loop_goes_quietly(tmp_path):
    # a coroutine that raised keeps its thread's loop in a reference cycle; the collector
    # then finalizes that loop in the user's thread, where asyncio.run's loop is running
    script = tmp_path / "cycle.py"
    script.write_text(_LOOP_IN_A_CYCLE)
    out = subprocess.run(
        [sys.executable, "-W", "default", str(script)],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["done"]
    assert out.stderr == ""  # was: "Exception ignored in ... __del__" and a RuntimeWarning


def test_a_forked_worker_does_not_reuse_its_parents_thread_loop(make_pool):
    # this thread gets a loop (inline runs the coroutine here); a fork start method copies
    # it into the worker, whose epoll instance and self-pipe would be the parent's
    inline = make_pool("inline")
    assert inline.submit(async_square, 2).result() == 4
    forked = make_pool("process", 1, start_method="fork")
    assert forked.submit(async_square, 3).result(timeout=30) == 9
    assert list(forked.map(async_square, range(4))) == [0, 1, 4, 9]
    assert inline.submit(async_square, 5).result() == 25  # the parent's loop still works


def test_inline_runs_a_coroutine_function_from_inside_a_running_loop(run, make_pool):
    pool = make_pool("inline")

    async def body() -> None:
        future = pool.submit(async_square, 5)
        assert future.done()  # inline: it ran in the call
        assert await future == 25

    run(body)


# -- coroutines: many at once per worker ----------------------------------------------------------
async def async_span(x: int) -> tuple[int, float, float]:
    start = time.monotonic()
    await asyncio.sleep(0.2)
    return os.getpid(), start, time.monotonic()


def _most_at_once(spans: list[tuple[int, float, float]]) -> int:
    """The most items of one worker process that were awaiting at the same moment."""
    most = 0
    for pid, start, _ in spans:
        same = [(s, e) for p, s, e in spans if p == pid]
        most = max(most, sum(1 for s, e in same if s <= start < e))
    return most


@pytest.mark.parametrize("chunksize", [10, "auto"])
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_maps_chunk_of_coroutines_runs_its_items_at_once_on_one_loop(
    backend, chunksize, make_pool
):
    pool = make_pool(backend, 2)
    spans = list(pool.map(async_span, range(40), chunksize=chunksize))
    assert len(spans) == 40
    # one worker runs a chunk's 10 coroutines together (auto: 40 items / (2 x 2 workers));
    # one at a time, the most at once would be 1
    assert _most_at_once(spans) >= 5


def test_a_chunk_of_coroutines_times_out_per_item(make_pool):
    pool = make_pool("thread", 1)
    results = list(
        pool.map(
            async_sleep_forever,
            [0.01, 30, 0.01],
            timeout=0.3,
            chunksize=3,
            return_exceptions=True,
        )
    )
    assert results[0] == "finished"
    assert isinstance(results[1], anypool.TaskTimeout)
    assert results[2] == "finished"


def test_a_failing_coroutine_in_a_chunk_fails_only_its_item(make_pool):
    pool = make_pool("process", 2)
    out = list(pool.map(fail_on_async, range(6), chunksize=6, return_exceptions=True))
    assert out[:3] == [0, 1, 2]
    assert isinstance(out[3], Boom)
    assert out[4:] == [4, 5]


async def fail_on_async(x: int) -> int:
    await asyncio.sleep(0.01)
    if x == 3:
        raise Boom("three")
    return x


# -- the rest of the map's contract through async for ----------------------------------------------
def test_async_for_over_a_one_shot_map_shuts_its_pool_down(run, workers_gone):
    async def body() -> None:
        results = [x async for x in anypool.map(square, range(20), backend="thread", workers=2)]
        assert results == [x * x for x in range(20)]

    run(body)
    assert workers_gone()


def test_async_for_with_progress_counts_every_item_and_closes_the_bar(run, make_pool):
    pytest.importorskip("tqdm")
    import io

    pool = make_pool("thread", 2)
    out = io.StringIO()

    async def body() -> None:
        assert await pool.map(square, range(25), progress={"file": out}) == [
            x * x for x in range(25)
        ]

    run(body)
    assert "25/25" in out.getvalue()


def test_coroutine_tasks_count_in_statistics_and_timeline_under_their_name(run, make_pool):
    pool = make_pool("thread", 2, timeline=True)

    async def body() -> None:
        assert await pool.map(async_square, range(12), chunksize=4) == [x * x for x in range(12)]
        assert await pool.submit(async_square, 2) == 4

    run(body)
    stats = pool.statistics()
    assert stats.tasks_done == 13  # items, as for a sync map
    assert stats.tasks_failed == 0
    events = pool.timeline().events
    assert {event.name for event in events} == {"async_square"}
    assert sorted(event.items for event in events) == [1, 4, 4, 4]


def test_breaking_out_of_a_one_shot_async_map_shuts_its_pool_down(run, workers_gone):
    async def body() -> None:
        async for x in anypool.map(square, range(10_000), backend="thread", workers=2):
            assert x == 0
            break
        await asyncio.sleep(0)  # asyncio closes the abandoned stream in a task of its own

    run(body)
    assert workers_gone()


def test_await_works_with_max_pending_and_on_the_asyncio_backend(run):
    async def body() -> None:
        async with anypool.Pool("thread", 2, max_pending=4) as pool:
            assert await asyncio.gather(*(pool.submit(square, i) for i in range(4))) == [
                0,
                1,
                4,
                9,
            ]
        async with anypool.Pool("asyncio", 4) as pool:
            assert await pool.submit(async_square, 5) == 25
            assert [x async for x in pool.map(async_square, range(5))] == [0, 1, 4, 9, 16]

    run(body)


async def async_crash_on(x: int, bad: int) -> int:
    await asyncio.sleep(0.01)
    if x == bad:
        os._exit(3)  # the worker process dies mid-chunk
    return x


async def async_crash_once(marker: str) -> str:
    """Kills its worker the first time (no marker file yet), returns the second time."""
    await asyncio.sleep(0)
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(3)
    return "second try"


def test_a_crashing_coroutine_fails_only_its_chunk_and_retries_rerun_it(run, make_pool, tmp_path):
    procs = make_pool("process", 2)
    retrying = make_pool("process", 1, retries=1)

    async def body() -> None:
        # as with sync functions, a crash fails the items of its chunk (4 and 5), no other
        out = await procs.map(
            async_crash_on, range(6), [4] * 6, chunksize=2, return_exceptions=True
        )
        assert out[:4] == [0, 1, 2, 3]
        assert all(isinstance(x, anypool.WorkerCrashed) for x in out[4:])
        assert await procs.submit(async_crash_on, 1, 4) == 1  # a fresh worker took over
        marker = str(tmp_path / f"crashed-{uuid.uuid4().hex}")
        assert await retrying.submit(async_crash_once, marker) == "second try"

    run(body)
