"""A Ctrl-C whose signal wakes nobody: Python's C handler runs in another thread (or just
before the main thread falls asleep on a lock), sets the interpreter's flag, and the main
thread, asleep in ``result()``, ``join()`` or a ``map``, is not interrupted. anypool's waits in the
main thread wake every MAIN_WAIT_SLICE_S, so the KeyboardInterrupt still comes (CI saw a
program ignore Ctrl-C for good this way while the forkserver started, on 3.13).

The signal is aimed at a helper thread with ``pthread_kill``: deterministic, where a
process-directed SIGINT lands in that window only now and then. Each case runs in a
subprocess: a KeyboardInterrupt that escaped would end the test session.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from anypool._local._threads import MAIN_WAIT_SLICE_S

SCRIPT = """
import signal, sys, threading, time
import anypool

mode = sys.argv[1]
release = threading.Event()

def poke():
    time.sleep(0.3)  # the main thread is asleep in the wait by now
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # the handler runs here

pool = anypool.Pool("thread", 2)
future = pool.submit(release.wait, 30)
threading.Thread(target=poke, daemon=True).start()
start = time.monotonic()
try:
    if mode == "result":
        future.result()
    elif mode == "result-timeout":
        future.result(timeout=20)
    elif mode == "exception":
        future.exception()
    elif mode == "join":
        pool.join()
    else:
        next(iter(pool.map(release.wait, [30])))
except KeyboardInterrupt:
    print(f"INTERRUPTED {time.monotonic() - start:.2f}", flush=True)
finally:
    release.set()
    pool.shutdown()
"""


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", ["result", "result-timeout", "exception", "join", "map"])
def test_a_ctrl_c_handled_by_another_thread_still_interrupts_the_wait(mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("INTERRUPTED"), (out.stdout, out.stderr)
    waited = float(out.stdout.split()[1])
    # 0.3 s until the signal, then at most one slice (and a loaded machine's slack)
    assert waited < 0.3 + MAIN_WAIT_SLICE_S + 2.0, out.stdout


def test_other_threads_wait_without_slices() -> None:
    import threading

    from anypool._local._threads import wait_slice

    assert wait_slice() == MAIN_WAIT_SLICE_S  # pytest runs tests in the main thread
    seen: list[float | None] = []
    thread = threading.Thread(target=lambda: seen.append(wait_slice()))
    thread.start()
    thread.join()
    assert seen == [None]
