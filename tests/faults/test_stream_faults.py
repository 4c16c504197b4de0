"""pool.stream() under real faults: a worker that dies mid-stream (os._exit), and Ctrl-C
sent to a real program's process group while it iterates a stream.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultlib import processes_with_marker

import anypool

MakePool = Callable[..., anypool.Pool]
# Ctrl-C to exit: the consumer stops the stream, then the pool kills its workers
EXIT_BOUND_S = 2.0
LEFTOVER_BOUND_S = 5.0


def dies_after(n: int, code: int) -> Iterator[int]:
    yield from range(n)
    time.sleep(0.2)  # the worker flushes what it holds within a few ms
    os._exit(code)


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@pytest.mark.parametrize("buffer", [4, 1024])
def test_crash_mid_stream_delivers_the_items_then_worker_crashed(
    make_pool: MakePool, buffer: int
) -> None:
    pool = make_pool("process", workers=1)
    got: list[int] = []
    stream = pool.stream(dies_after, 10, 7, buffer=buffer)
    with pytest.raises(anypool.WorkerCrashed) as caught:
        got.extend(stream)  # keeps the items before the error
    assert got == list(range(10))
    assert caught.value.exitcode == 7
    assert isinstance(stream.future.exception(), anypool.WorkerCrashed)
    # the pool replaced the worker and streams on
    assert list(pool.stream(numbers, 100)) == list(range(100))


PROGRAM = textwrap.dedent(
    """
    import asyncio, sys, time
    import anypool

    def forever(gap):
        i = 0
        while True:
            yield i
            i += 1
            time.sleep(gap)

    def run_sync(backend):
        with anypool.Pool(backend, workers=1) as pool:
            for item in pool.stream(forever, 0.02):
                if item == 3:
                    print("READY", flush=True)

    async def run_async(backend):
        async with anypool.Pool(backend, workers=1) as pool:
            async for item in pool.stream(forever, 0.02):
                if item == 3:
                    print("READY", flush=True)

    if __name__ == "__main__":
        backend, how = sys.argv[1], sys.argv[2]
        if how == "sync":
            run_sync(backend)
        else:
            asyncio.run(run_async(backend))
    """
)


@pytest.mark.parametrize(
    ("backend", "how"), [("process", "sync"), ("thread", "sync"), ("process", "async")]
)
def test_ctrl_c_while_iterating_exits_promptly_without_orphans(
    tmp_path: Path, backend: str, how: str
) -> None:
    script = tmp_path / "stream_program.py"
    script.write_text(PROGRAM)
    marker = uuid.uuid4().hex
    env = dict(os.environ, ANYPOOL_FAULT_MARK=marker)
    env.pop("PYTHONFAULTHANDLER", None)
    proc = subprocess.Popen(
        [sys.executable, str(script), backend, how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        readable, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if readable else ""
        assert line.strip() == "READY", proc.stderr.read()
        since = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(10)
        elapsed = time.monotonic() - since
        err = proc.stderr.read()
        assert "KeyboardInterrupt" in err or "CancelledError" in err, err
        assert elapsed < EXIT_BOUND_S, f"exited {elapsed:.2f} s after Ctrl-C"
        deadline = time.monotonic() + LEFTOVER_BOUND_S
        while (left := processes_with_marker(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, f"left behind: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in processes_with_marker(marker):
            p.kill()
        proc.stdout.close()
        proc.stderr.close()
