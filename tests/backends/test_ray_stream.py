"""pool.stream() on Ray's own streaming generators (``num_returns="streaming"``).

The same promises as the local backends' (tests/test_stream.py): order, backpressure (the
worker really pauses: what it produced is counted in a file), close and break reaching the
generator's ``finally`` in the Ray worker, its own error, a real crash (``os._exit``),
timeouts, ``async for``, statistics, progress, the timeline and shutdown. Generator
functions live at module level: Ray's workers import this module to unpickle them.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import anypool
from polling import wait_until

ray = pytest.importorskip(
    "ray", reason="ray has no wheel for this Python/platform: pip install 'anypool[ray]'"
)

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(120)]


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def counted(n: int, path: str) -> Iterator[int]:
    """Writes one byte to ``path`` per item before yielding it: the file's size is what the
    worker produced."""
    with open(path, "ab", buffering=0) as f:
        for i in range(n):
            f.write(b"x")
            yield i


def guarded(n: int, path: str) -> Iterator[int]:
    """Writes how it left to ``path``: "exit" for GeneratorExit, then "finally"."""
    try:
        for i in range(n):
            yield i
            time.sleep(0.001)
    except GeneratorExit:
        Path(path).write_text("exit ")
        raise
    finally:
        with open(path, "a") as f:
            f.write("finally")


def fails_after(n: int) -> Iterator[int]:
    yield from range(n)
    raise KeyError(f"broke after {n}")


def crashes_after(n: int) -> Iterator[int]:
    yield from range(n)
    time.sleep(0.2)  # the items reach the caller first
    os._exit(3)


def stalls_after(n: int, pause: float) -> Iterator[int]:
    yield from range(n)
    time.sleep(pause)
    yield n


def yields_a_lock(n: int) -> Iterator[Any]:
    import threading

    yield from range(n)
    yield threading.Lock()
    yield n


def finished(path: Path) -> Callable[[], bool]:
    return lambda: path.exists() and "finally" in path.read_text()


@pytest.fixture
def pool(make_pool: Any, ray_session: None) -> anypool.Pool:
    return make_pool("ray", 2)


def test_items_arrive_in_order(pool: anypool.Pool) -> None:
    stream = pool.stream(numbers, 5000, buffer=16)
    assert list(stream) == list(range(5000))
    assert stream.future.result(30) == 5000
    assert list(pool.stream(numbers, 0)) == []


@pytest.mark.parametrize("buffer", [1, 50, 1024])
def test_worker_pauses_at_the_buffer(pool: anypool.Pool, tmp_path: Path, buffer: int) -> None:
    produced = tmp_path / "produced"
    produced.touch()
    stream = pool.stream(counted, 5000, str(produced), buffer=buffer)
    taken = [next(stream) for _ in range(3)]
    assert taken == [0, 1, 2]
    # it ran ahead: Ray's unit is a batch (up to buffer/4 items), so it stops a few items
    # short of the buffer (1, 45 and 1,021 undelivered here)...
    assert wait_until(lambda: produced.stat().st_size - len(taken) >= buffer * 3 // 4, 20.0)
    time.sleep(1.0)
    overshoot = produced.stat().st_size - len(taken)
    assert overshoot <= buffer, f"{overshoot} items undelivered with buffer={buffer}"
    rest = list(stream)  # ...and no further until the consumer took items
    assert taken + rest == list(range(5000))


def test_close_stops_the_generator_with_generator_exit(pool: anypool.Pool, tmp_path: Path) -> None:
    marker = tmp_path / "how"
    stream = pool.stream(guarded, 1_000_000, str(marker), buffer=8)
    assert [next(stream) for _ in range(5)] == list(range(5))
    stream.close()
    assert wait_until(finished(marker), 20.0), "the generator's finally did not run"
    assert marker.read_text() == "exit finally"  # GeneratorExit, not the end of the loop
    assert 5 <= stream.future.result(30) < 1_000_000  # the items that reached the caller
    with pytest.raises(StopIteration):
        next(stream)


def test_break_stops_the_generator(pool: anypool.Pool, tmp_path: Path) -> None:
    marker = tmp_path / "how"
    for item in pool.stream(guarded, 1_000_000, str(marker), buffer=8):
        if item == 3:
            break  # the iterator is dropped here: garbage collection closes it
    assert wait_until(finished(marker), 20.0), "break did not stop the generator"
    assert marker.read_text() == "exit finally"


def test_generator_error_comes_after_its_items(pool: anypool.Pool) -> None:
    got: list[int] = []
    with pytest.raises(KeyError, match="broke after 300") as info:
        got.extend(pool.stream(fails_after, 300, buffer=64))
    assert got == list(range(300))
    assert "raise KeyError" in str(info.value.__cause__)  # the worker's traceback


def test_a_crash_mid_stream_gives_the_items_then_worker_crashed(pool: anypool.Pool) -> None:
    got: list[int] = []
    with pytest.raises(anypool.WorkerCrashed):
        got.extend(pool.stream(crashes_after, 100, buffer=1024))
    assert got == list(range(100))
    assert list(pool.stream(numbers, 10)) == list(range(10))  # Ray replaced the worker


def test_an_item_that_does_not_pickle_fails_the_stream_after_the_items_before(
    pool: anypool.Pool,
) -> None:
    got: list[Any] = []
    stream = pool.stream(yields_a_lock, 5, buffer=16)
    with pytest.raises(anypool.SerializationError, match="a lock, cannot be pickled"):
        got.extend(stream)
    assert got == list(range(5))
    assert isinstance(stream.future.exception(30), anypool.SerializationError)


def test_item_timeout_names_itself(pool: anypool.Pool) -> None:
    got: list[int] = []
    start = time.monotonic()
    stream = pool.stream(stalls_after, 3, 30, item_timeout=0.5)
    with pytest.raises(anypool.TaskTimeout, match=r"item_timeout=0\.5"):
        got.extend(stream)
    assert got == [0, 1, 2]
    assert time.monotonic() - start < 10
    # the stream's task fails with that same timeout (a timeout, not Pool.kill's cancel)
    assert isinstance(stream.future.exception(10), anypool.TaskTimeout)


def test_timeout_bounds_the_whole_stream(pool: anypool.Pool) -> None:
    assert list(pool.stream(numbers, 1)) == [0]  # a Ray worker started: the timeout
    got: list[int] = []  # counts from when the task is handed to Ray, its start included
    stream = pool.stream(stalls_after, 3, 60, timeout=3)
    with pytest.raises(anypool.TaskTimeout):
        got.extend(stream)
    assert got == [0, 1, 2]
    with pytest.raises(anypool.TaskTimeout):
        stream.future.result(0)


def test_retries_refused(pool: anypool.Pool) -> None:
    with pytest.raises(ValueError, match="cannot retry"):
        pool.stream(numbers, 3, retries=2)


def test_async_for(pool: anypool.Pool) -> None:
    async def main() -> list[int]:
        return [item async for item in pool.stream(numbers, 2000, buffer=32)]

    assert asyncio.run(main()) == list(range(2000))


def test_statistics_timeline_and_progress(make_pool: Any, ray_session: None) -> None:
    pytest.importorskip("tqdm")
    pool = make_pool("ray", 2, timeline=True)
    out = io.StringIO()
    stream = pool.stream(numbers, 1234, progress={"file": out})
    assert sum(stream) == sum(range(1234))
    assert stream.future.result(30) == 1234
    assert "1234" in out.getvalue()
    assert wait_until(lambda: pool.statistics().tasks_done == 1, 20.0)
    stats = pool.statistics()
    assert (stats.tasks_submitted, stats.tasks_failed) == (1, 0)
    (event,) = pool.timeline().events
    assert (event.name, event.outcome) == ("stream(numbers)", "ok")
    assert stream.items_received == 1234


def test_shutdown_stops_a_stream_nobody_reads(ray_session: None, tmp_path: Path) -> None:
    pool = anypool.Pool("ray", workers=1)
    marker = tmp_path / "how"
    stream = pool.stream(guarded, 1_000_000, str(marker), buffer=8)
    next(stream)  # the worker runs, then pauses at the buffer: nobody reads on
    start = time.monotonic()
    pool.shutdown(wait=True)  # would wait for the paused worker forever
    assert time.monotonic() - start < 20
    assert marker.read_text() == "exit finally"
    with pytest.raises(anypool.PoolClosed, match="shut down"):
        list(stream)


def test_dask_still_refuses_streams() -> None:
    from anypool._backends import load_backend

    assert not hasattr(load_backend("dask"), "stream_channel")


_LEFT_OPEN = """
import sys
import anypool

sys.path.insert(0, sys.argv[1])
from test_ray_stream import numbers

if __name__ == "__main__":
    pool = anypool.Pool("ray", workers=1)  # never shut down
    kept = pool.stream(numbers, 1_000_000, buffer=16)  # paused by backpressure at exit
    print(next(kept), next(kept), flush=True)
"""


@pytest.mark.timeout(180)
def test_a_stream_left_open_does_not_hold_the_exit(tmp_path: Path) -> None:
    script = tmp_path / "left_open.py"
    script.write_text(_LEFT_OPEN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, str(script), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1"]
