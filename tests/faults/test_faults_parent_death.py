"""Parent death, for real: SIGKILL the program while its workers run long tasks; every
worker must exit within 2 s, on every start method, through PR_SET_PDEATHSIG and, with it
turned off, through the worker's own watch on its parent alone.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest
from test_faults_ctrl_c import HELPERS_BOUND_S, Program, program  # noqa: F401

WORKER_EXIT_BOUND_S = 2.0


def running_workers(prog: Program) -> list[psutil.Process]:
    """The processes that run the program's tasks (each task names its pid in a file)."""
    pids = {int(name.split("-")[0]) for name in os.listdir(prog.tmp.name)}
    return [psutil.Process(pid) for pid in pids if pid != prog.proc.pid]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running: an exited worker whose new parent has not reaped it yet (a
    zombie) has exited."""
    out = []
    for proc in processes:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def time_to_exit(workers: list[psutil.Process], bound: float) -> float:
    start = time.monotonic()
    while alive(workers) and time.monotonic() - start < bound:
        time.sleep(0.01)
    assert not alive(workers), f"workers still alive {bound} s after the parent died"
    elapsed = time.monotonic() - start
    print(f"workers exited {elapsed:.3f} s after the parent died")
    return elapsed


@pytest.mark.timeout(60)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
@pytest.mark.parametrize("mode", ["result", "no_pdeathsig"])
@pytest.mark.parametrize("api", ["pool", "ppe"])
@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_workers_exit_when_the_parent_is_killed(program, start_method, api, mode):  # noqa: F811
    prog = program(api, mode, start_method)
    prog.wait_ready()
    workers = running_workers(prog)
    assert len(workers) == 2
    os.kill(prog.proc.pid, signal.SIGKILL)  # the program only, not its process group
    prog.proc.wait()
    time_to_exit(workers, WORKER_EXIT_BOUND_S)
    assert prog.leftovers(HELPERS_BOUND_S) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_exit_while_the_dead_parent_is_not_reaped(program, start_method):  # noqa: F811
    """A killed parent stays a zombie until its own parent waits for it: workers must not
    wait for that (kill(pid, 0) still succeeds on a zombie)."""
    prog = program("pool", "no_pdeathsig", start_method)
    prog.wait_ready()
    workers = running_workers(prog)
    os.kill(prog.proc.pid, signal.SIGKILL)
    time_to_exit(workers, WORKER_EXIT_BOUND_S)
    prog.proc.wait()
