"""pool.stream(): generator tasks whose items reach the caller as the worker yields them.

Every local backend runs the same checks: order, backpressure (the worker really pauses:
the items it produced beyond the buffer are counted), close and break (the generator's
``finally`` runs in the worker), the generator's own error, timeouts, async for,
statistics and the timeline. Crashes and Ctrl-C are in tests/faults/test_stream_faults.py.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import anypool
from anypool._core._stream import _channel_for
from polling import wait_until

BACKENDS = ["thread", "process", "inline", "asyncio", "auto"]
WORKER_BACKENDS = ["thread", "process", "asyncio", "auto"]  # the generator runs elsewhere

MakePool = Callable[..., anypool.Pool]


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def counted(n: int, produced: Any) -> Iterator[int]:
    """Counts each item in a shared Value before yielding it."""
    for i in range(n):
        with produced.get_lock():
            produced.value += 1
        yield i


def guarded(n: int, finished: Any) -> Iterator[int]:
    """Sets ``finished`` in its finally, and records how it left (GeneratorExit or not)."""
    try:
        for i in range(n):
            yield i
            time.sleep(0.001)
    except GeneratorExit:
        finished.value = 2
        raise
    finally:
        if finished.value == 0:
            finished.value = 1


def fails_after(n: int) -> Iterator[int]:
    yield from range(n)
    raise KeyError(f"broke after {n}")


def stalls_after(n: int, pause: float) -> Iterator[int]:
    yield from range(n)
    time.sleep(pause)
    yield n


def steady(n: int, gap: float) -> Iterator[int]:
    for i in range(n):
        time.sleep(gap)
        yield i


def yields_a_lock(n: int) -> Iterator[Any]:
    import threading

    yield from range(n)
    yield threading.Lock()
    yield n


def blobs(n: int, size: int) -> Iterator[bytes]:
    for i in range(n):
        yield bytes([i % 256]) * size


def not_a_generator(x: int) -> int:
    return x


async def agen() -> Any:
    yield 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_items_arrive_in_order(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=2)
    stream = pool.stream(numbers, 5000, buffer=16)
    assert list(stream) == list(range(5000))
    assert stream.future.result(5) == 5000  # inline too: the items the consumer ran it for
    assert list(pool.stream(numbers, 0)) == []


@pytest.mark.parametrize("backend", WORKER_BACKENDS)
@pytest.mark.parametrize("buffer", [1, 50])
def test_worker_pauses_at_the_buffer(make_pool: MakePool, backend: str, buffer: int) -> None:
    pool = make_pool(backend, workers=1)
    produced = pool.Value("i", 0)
    stream = pool.stream(counted, 2000, produced, buffer=buffer)
    taken = [next(stream) for _ in range(3)]
    assert taken == [0, 1, 2]
    assert wait_until(lambda: produced.value >= buffer, 5.0)  # it ran ahead up to the buffer...
    time.sleep(0.3)
    overshoot = produced.value - len(taken)
    assert overshoot <= buffer, f"{overshoot} items undelivered with buffer={buffer}"
    rest = list(stream)  # ...and no further until the consumer takes items
    assert taken + rest == list(range(2000))


def test_inline_runs_the_generator_one_item_per_next(make_pool: MakePool) -> None:
    pool = make_pool("inline")
    produced = pool.Value("i", 0)
    stream = pool.stream(counted, 100, produced)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    assert produced.value == 3
    stream.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_stops_the_generator_with_generator_exit(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)
    finished = pool.Value("i", 0)
    stream = pool.stream(guarded, 1_000_000, finished, buffer=8)
    assert [next(stream) for _ in range(5)] == list(range(5))
    stream.close()
    assert wait_until(lambda: finished.value != 0, 5.0), "the generator's finally did not run"
    assert finished.value == 2  # GeneratorExit, not the end of the loop
    assert stream.future.result(5) < 1_000_000
    if backend == "inline":  # the consumer ran the generator: exactly the items it took
        assert stream.future.result() == 5
    with pytest.raises(StopIteration):
        next(stream)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_break_stops_the_generator(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)
    finished = pool.Value("i", 0)
    for item in pool.stream(guarded, 1_000_000, finished, buffer=8):
        if item == 3:
            break  # the iterator is dropped here: garbage collection closes it
    assert wait_until(lambda: finished.value == 2, 5.0), "break did not stop the generator"


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_with_block_closes(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)
    finished = pool.Value("i", 0)
    with pool.stream(guarded, 1_000_000, finished) as stream:
        next(stream)
    assert wait_until(lambda: finished.value == 2, 5.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_generator_error_comes_after_its_items(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)
    got: list[int] = []
    with pytest.raises(KeyError, match="broke after 300"):
        got.extend(pool.stream(fails_after, 300, buffer=64))  # keeps the items before it
    assert got == list(range(300))


@pytest.mark.parametrize("backend", ["thread", "process", "inline"])
def test_future_and_statistics_say_how_the_stream_ended(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)
    ok = pool.stream(numbers, 5)
    assert list(ok) == list(range(5))
    failing = pool.stream(fails_after, 3)
    with pytest.raises(KeyError):
        list(failing)
    assert ok.future.result(5) == 5  # inline gave the generator object
    assert isinstance(failing.future.exception(5), KeyError)  # inline gave None
    assert wait_until(lambda: pool.statistics().tasks_finished == 2, 5.0)
    stats = pool.statistics()
    assert (stats.tasks_done, stats.tasks_failed) == (1, 1)  # inline counted 2 done


@pytest.mark.parametrize("backend", ["thread", "process", "inline"])
def test_not_a_generator_function(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)
    with pytest.raises(TypeError, match=r"generator function.*returned int"):
        list(pool.stream(not_a_generator, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="async generator function"):
        pool.stream(agen)
    with pytest.raises(TypeError, match="must be callable"):
        pool.stream(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_item_timeout_names_itself(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)
    got: list[int] = []
    # the stall outlasts item_timeout: had nobody timed out, item 3 would end it normally
    with pytest.raises(anypool.TaskTimeout, match=r"item_timeout=0\.3"):
        got.extend(pool.stream(stalls_after, 3, 1.2, item_timeout=0.3))
    assert got == [0, 1, 2]
    # a steady generator whose gaps stay under item_timeout runs to its end
    assert list(pool.stream(steady, 5, 0.02, item_timeout=1.0)) == list(range(5))


@pytest.mark.parametrize("backend", ["thread", "process", "asyncio", "auto"])
def test_item_timeout_fails_the_task_with_the_same_task_timeout(
    make_pool: MakePool, backend: str
) -> None:
    pool = make_pool(backend, workers=1, timeline=True)
    stall = 60.0 if backend == "process" else 1.2  # a process is killed: no waiting for it
    stream = pool.stream(stalls_after, 3, stall, item_timeout=0.3)
    with pytest.raises(anypool.TaskTimeout) as raised:
        list(stream)
    # not the CancelledError of Pool.kill, which the stream used to stop the task
    assert stream.future.exception(5) is raised.value
    assert wait_until(lambda: pool.statistics().tasks_finished == 1, 5.0)
    stats = pool.statistics()
    assert (stats.tasks_failed, stats.tasks_cancelled) == (1, 0)
    (event,) = pool.timeline().events
    assert event.outcome == "timeout"
    assert list(pool.stream(numbers, 3)) == [0, 1, 2]  # a worker took the stopped one's place


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_timeout_bounds_the_whole_stream(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)
    got: list[int] = []
    # a thread cannot be stopped inside sleep(): its stall is kept short
    stall = 1.2 if backend == "thread" else 60.0
    assert list(pool.stream(numbers, 1)) == [0]  # the worker has imported this module
    with pytest.raises(anypool.TaskTimeout):
        got.extend(pool.stream(stalls_after, 3, stall, timeout=0.4))
    assert got == [0, 1, 2]  # what came before the timeout, then the timeout


def test_retries_refused(make_pool: MakePool) -> None:
    pool = make_pool("thread", workers=1)
    with pytest.raises(ValueError, match="twice"):
        pool.stream(numbers, 3, retries=2)
    # the pool's own retries do not apply to streams: they run once
    retrying = make_pool("thread", workers=1, retries=3)
    assert list(retrying.stream(numbers, 3)) == [0, 1, 2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"buffer": 0}, "buffer must be a positive int"),
        ({"buffer": 2.5}, "buffer must be a positive int"),
        ({"item_timeout": -1}, "item_timeout must be a positive number"),
        ({"timeout": 0}, "timeout must be a positive number"),
    ],
)
def test_bad_options(make_pool: MakePool, options: dict[str, Any], message: str) -> None:
    pool = make_pool("thread", workers=1)
    with pytest.raises(ValueError, match=message):
        pool.stream(numbers, 3, **options)


def test_option_the_generator_also_takes_is_ambiguous(make_pool: MakePool) -> None:
    def takes_buffer(buffer: int) -> Iterator[int]:
        yield buffer

    pool = make_pool("thread", workers=1)
    with pytest.raises(TypeError, match="ambiguous"):
        pool.stream(takes_buffer, buffer=4)


def test_inline_refuses_timeouts(make_pool: MakePool) -> None:
    pool = make_pool("inline")
    with pytest.raises(anypool.CapabilityError, match="timeout"):
        pool.stream(numbers, 3, item_timeout=1)


def test_remote_engines_have_no_streams() -> None:
    class Remote:
        name = "dask"
        capabilities = anypool.Pool("inline").capabilities.__class__(
            kills_running_tasks=False,
            shares_memory=False,
            needs_pickling=True,
            isolates_crashes=True,
            parallel_cpu=True,
            remote=True,
        )

    class FakePool:
        _backend = Remote()

    with pytest.raises(anypool.CapabilityError, match="'dask' backend has no streaming"):
        _channel_for(FakePool(), 8)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["thread", "process", "asyncio"])
def test_async_for(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1)

    async def main() -> list[int]:
        return [item async for item in pool.stream(numbers, 2000, buffer=32)]

    assert asyncio.run(main()) == list(range(2000))


def test_async_for_break_closes(make_pool: MakePool) -> None:
    pool = make_pool("process", workers=1)
    finished = pool.Value("i", 0)

    async def main() -> None:
        async for item in pool.stream(guarded, 1_000_000, finished):
            if item == 2:
                break

    asyncio.run(main())
    assert wait_until(lambda: finished.value == 2, 5.0)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_statistics_and_timeline_count_the_stream(make_pool: MakePool, backend: str) -> None:
    pool = make_pool(backend, workers=1, timeline=True)
    stream = pool.stream(numbers, 100)
    assert sum(stream) == sum(range(100))
    stream.future.result(5)
    assert wait_until(lambda: pool.statistics().tasks_done == 1, 5.0)
    stats = pool.statistics()
    assert (stats.tasks_submitted, stats.tasks_failed) == (1, 0)
    (event,) = pool.timeline().events
    assert event.name == "stream(numbers)"
    assert event.outcome == "ok"
    assert stream.items_received == 100


def test_progress_counts_items(make_pool: MakePool) -> None:
    pytest.importorskip("tqdm")
    pool = make_pool("thread", workers=1)
    out = io.StringIO()
    assert len(list(pool.stream(numbers, 1234, progress={"file": out}))) == 1234
    assert "1234" in out.getvalue()


def test_auto_measures_each_generator_function_apart(make_pool: MakePool) -> None:
    pool = make_pool("auto", workers=2)
    assert list(pool.stream(numbers, 300)) == list(range(300))
    assert list(pool.stream(steady, 3, 0.01)) == [0, 1, 2]


@pytest.mark.parametrize("backend", ["thread", "process", "asyncio", "auto", "inline"])
def test_shutdown_stops_a_stream_nobody_reads(backend: str) -> None:
    pool = anypool.Pool(backend, workers=1)
    finished = pool.Value("i", 0)
    stream = pool.stream(guarded, 1_000_000, finished, buffer=8)
    next(stream)  # the worker runs, then pauses at the buffer: nobody reads on
    start = time.monotonic()
    pool.shutdown(wait=True)  # would wait for the paused worker forever
    assert time.monotonic() - start < 5
    assert finished.value == 2  # GeneratorExit in the worker
    with pytest.raises(anypool.PoolClosed, match="shut down"):
        list(stream)
    assert stream.future.result(5) >= 1  # the task ended with the generator


def test_inline_shutdown_while_another_thread_runs_the_generator(make_pool: MakePool) -> None:
    inside, go = threading.Event(), threading.Event()
    how: list[str] = []

    def waits() -> Iterator[int]:
        try:
            yield 0
            inside.set()
            go.wait(5)
            yield 1
            yield 2
        except GeneratorExit:
            how.append("GeneratorExit")
            raise

    pool = make_pool("inline")
    stream = pool.stream(waits)
    assert next(stream) == 0
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(next(stream)))
    reader.start()
    assert inside.wait(5)
    pool.shutdown()  # the generator is running in the reader: closed after its item
    go.set()
    reader.join(5)
    assert (got, how) == ([1], ["GeneratorExit"])
    assert stream.future.result(0) == 2
    with pytest.raises(anypool.PoolClosed):
        next(stream)


def test_shutdown_stops_a_worker_blocked_on_a_full_socket() -> None:
    # A slow generator sends nearly every item as its own message; with nobody reading,
    # the socket fills long before the buffer does and the worker blocks in send(),
    # where it cannot read a stop message: stopping shuts the socket down instead.
    pool = anypool.Pool("process", workers=1)
    stream = pool.stream(steady, 100_000, 0.0025, buffer=100_000)
    next(stream)
    time.sleep(2.0)  # ~800 messages: the socket filled after 200-400 on Linux
    start = time.monotonic()
    pool.shutdown(wait=True)
    assert time.monotonic() - start < 5
    with pytest.raises(anypool.PoolClosed):
        list(stream)


def test_process_streams_without_unix_sockets(
    make_pool: MakePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anypool._core import _stream

    monkeypatch.setattr(_stream, "_UNIX_SOCKETS", False)  # as on Windows: loopback TCP
    pool = make_pool("process", workers=1)
    assert list(pool.stream(numbers, 3000, buffer=64)) == list(range(3000))
    finished = pool.Value("i", 0)
    with pool.stream(guarded, 1_000_000, finished) as stream:
        next(stream)
    assert wait_until(lambda: finished.value == 2, 5.0)


def test_a_shut_pool_refuses_streams(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pool = anypool.Pool("process", workers=1)
    pool.shutdown()
    with pytest.raises(anypool.PoolClosed):
        pool.stream(numbers, 3)
    assert list(tmp_path.iterdir()) == []  # its socket's directory is gone


def test_an_item_that_does_not_pickle_fails_the_stream_after_the_items_before(
    make_pool: MakePool,
) -> None:
    pool = make_pool("process", workers=1)
    got: list[Any] = []
    with pytest.raises(anypool.SerializationError, match="a lock, cannot be pickled"):
        got.extend(pool.stream(yields_a_lock, 5))
    assert got == [0, 1, 2, 3, 4]
    assert list(pool.stream(numbers, 3)) == [0, 1, 2]  # the worker is fine


def test_big_items_travel_a_few_at_a_time(make_pool: MakePool) -> None:
    pool = make_pool("process", workers=1)
    got = list(pool.stream(blobs, 40, 300_000))
    assert [len(b) for b in got] == [300_000] * 40
    assert [b[0] for b in got] == list(range(40))


# -- a stream left open when the program ends ---------------------------------------------------
_LEFT_OPEN = """
import sys
import anypool

def lines(n):
    for i in range(n):
        yield f"line {i}"

if __name__ == "__main__":
    pool = anypool.Pool(sys.argv[1], 2)  # never shut down
    header = next(pool.stream(lines, 100_000, buffer=16))
    kept = pool.stream(lines, 100_000, buffer=16)  # still referenced at exit
    print(header, next(kept), flush=True)
"""


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_stream_left_open_does_not_hold_the_exit(tmp_path: Any, backend: str) -> None:
    # the "read the header line and stop" habit: the producer, paused by backpressure, must
    # not keep the interpreter's exit waiting, and nothing is printed on the way out
    import subprocess
    import sys

    script = tmp_path / "left_open.py"
    script.write_text(_LEFT_OPEN)
    out = subprocess.run(
        [sys.executable, str(script), backend], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["line", "0", "line", "0"]
    assert "Exception ignored" not in out.stderr, out.stderr
