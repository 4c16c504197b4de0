"""Ctrl-C: the program stops within a second, prints no worker tracebacks, leaves nothing.

Lesson: a Ctrl-C while ``concurrent.futures`` (or loky, or pebble) waits for results
hangs, or floods the terminal with a traceback from every worker. With anypool a
KeyboardInterrupt in ``map``, ``result()``, ``join()`` or ``shutdown()`` cancels pending
work and stops the running workers, and the exception goes on to end the program:
workers ignore SIGINT (the parent decides) and die with their parent.

To run unattended, this example runs itself as a child program, presses "Ctrl-C" (sends
SIGINT to the child's process group, as a terminal does) once the child's workers are
busy, and checks what happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

import anypool


def work(x: int) -> int:
    time.sleep(60)  # far longer than anyone would wait
    return x


def child() -> None:
    with anypool.Pool("process", 2) as pool:
        results = pool.map(work, range(100))
        print("busy", flush=True)
        for result in results:  # Ctrl-C lands while we wait here
            print(result)


def main() -> None:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline().strip() == "busy"
    time.sleep(0.5)  # let the workers start their tasks
    family = psutil.Process(proc.pid).children(recursive=True)
    print(f"child {proc.pid} runs {len(family)} helper and worker processes; pressing Ctrl-C")
    pressed = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=30)
    elapsed = time.monotonic() - pressed
    stderr = proc.stderr.read()
    left = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    time.sleep(0.5)  # the forkserver leaves once it sees its parent gone
    left = [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    print(f"the child exited {elapsed:.2f} s after Ctrl-C")
    print(f"tracebacks on its stderr: {stderr.count('Traceback')} (the main program's own)")
    print(f"its processes still alive: {len(left)}")
    assert elapsed < 1.0, elapsed
    assert stderr.count("Traceback") == 1
    assert stderr.rstrip().endswith("KeyboardInterrupt")
    assert not left, left


if __name__ == "__main__":
    child() if "--child" in sys.argv else main()
