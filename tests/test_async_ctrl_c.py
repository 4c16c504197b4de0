"""Ctrl-C, for real, in async code: ``asyncio.run(main())`` with ``async with Pool(...)``
runs in its own process group, its tasks run for a minute, and the test sends SIGINT to
the whole group as a terminal does. The program must exit within 1 s, print no worker
tracebacks, and leave no process behind (the ``with`` contract, tests/faults/).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from polling import wait_until

EXIT_BOUND_S = 1.0
LEFTOVER_BOUND_S = 5.0

TARGET = textwrap.dedent(
    """
    import asyncio, sys, time
    import anypool

    async def nap(x):
        await asyncio.sleep(60)
        return x

    async def main(mode):
        async with anypool.Pool("process", 2) as pool:
            if mode == "await":
                futures = [pool.submit(time.sleep, 60) for _ in range(4)]
                print("READY", flush=True)
                await asyncio.gather(*futures)
            elif mode == "async_for":
                stream = pool.map(time.sleep, [60] * 8, chunksize=1)
                print("READY", flush=True)
                async for _ in stream:
                    pass
            elif mode == "body":  # Ctrl-C lands in the body while tasks run
                futures = [pool.submit(time.sleep, 60) for _ in range(4)]
                print("READY", flush=True)
                await asyncio.sleep(60)
            elif mode == "coroutines":
                results = pool.map(nap, range(8), chunksize=1)
                print("READY", flush=True)
                await results

    if __name__ == "__main__":
        asyncio.run(main(sys.argv[1]))
    """
)


def _marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.environ().get("ANYPOOL_ASYNC_MARK") == marker
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["await", "async_for", "body", "coroutines"])
def test_ctrl_c_under_asyncio_run_exits_fast_and_clean(mode: str, tmp_path: Path) -> None:
    script = tmp_path / "target.py"
    script.write_text(TARGET, encoding="utf-8")
    marker = uuid.uuid4().hex
    env = dict(os.environ, ANYPOOL_ASYNC_MARK=marker)
    env.pop("PYTHONFAULTHANDLER", None)
    proc = subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        # both workers started and took a task (the target's own process is the third)
        assert wait_until(lambda: len(_marked(marker)) >= 3, 30), "workers never started"
        time.sleep(0.3)
        since = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("still running 10 s after Ctrl-C")
        elapsed = time.monotonic() - since
        err = proc.stderr.read() if proc.stderr else ""
        assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s\n{err}"
        assert proc.returncode != 0
        assert "KeyboardInterrupt" in err, err
        assert "_process/_child" not in err, err  # no worker printed a traceback
        assert wait_until(lambda: not _marked(marker), LEFTOVER_BOUND_S), (
            f"processes left behind: {[p.cmdline() for p in _marked(marker)]}"
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for leftover in _marked(marker):
            leftover.kill()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
