"""Starting processes (and threads) one by one, the way ``multiprocessing.Process`` does.

Lesson: a process is started with a target and its arguments, or by subclassing and
overriding ``run()``; ``join()`` waits for it and reaps it (no zombie is left), ``exitcode``
says how it ended (0, 1 for an exception, the ``sys.exit`` code, ``-N`` for signal N) and a
daemon is stopped when the program ends. ``anypool.Process`` keeps that interface and adds
what ``multiprocessing`` leaves out: the return value, the exception itself (with the
child's traceback), a timeout that stops the process, and ``backend="thread"`` for the
``threading.Thread`` version of the same lesson.

Run it: ``python examples/basics_processes.py``
"""

from __future__ import annotations

import os
import signal
import time

import anypool


def worker(number: int) -> str:
    return f"worker {number} ran in process {os.getpid()}"


class Countdown(anypool.Process):
    """The subclass form: the state set in __init__ travels with the object to the child."""

    def __init__(self, start: int) -> None:
        super().__init__(name=f"countdown-{start}")
        self.start_at = start

    def run(self) -> list[int]:
        return list(range(self.start_at, 0, -1))


def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does


def main() -> None:
    started = time.perf_counter()
    jobs = [anypool.Process(target=worker, args=(i,)) for i in range(5)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
        print(f"{job.name}: exitcode {job.exitcode}, returned {job.result()!r}")
        assert job.exitcode == 0
    assert len({job.pid for job in jobs}) == 5  # five separate processes
    print(f"5 processes started, run and reaped in {time.perf_counter() - started:.2f} s")

    countdown = Countdown(3)
    countdown.start()
    countdown.join()
    print(f"{countdown.name} returned {countdown.result()}")
    assert countdown.result() == [3, 2, 1]

    crashed = anypool.Process(target=crash)
    crashed.start()
    crashed.join()
    print(f"a crashed process: exitcode {crashed.exitcode}; {crashed.exception()}")
    assert crashed.exitcode == -signal.SIGKILL

    stuck = anypool.Process(target=time.sleep, args=(60,), timeout=0.5)
    stuck.start()
    stuck.join()
    print(f"a stuck process stopped by its timeout: exitcode {stuck.exitcode}")
    assert isinstance(stuck.exception(), anypool.TaskTimeout)

    in_a_thread = anypool.Process(target=worker, args=(99,), backend="thread")
    in_a_thread.start()
    in_a_thread.join()
    print(f"backend='thread': {in_a_thread.result()} (this program is {os.getpid()})")
    assert in_a_thread.pid == os.getpid()

    background = anypool.Process(target=time.sleep, args=(60,), daemon=True)
    background.start()
    print(f"daemon {background.name} (pid {background.pid}) is stopped when the program ends")


if __name__ == "__main__":
    main()
