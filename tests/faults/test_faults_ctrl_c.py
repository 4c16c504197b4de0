"""Ctrl-C, for real: a program runs in its own process group, two long tasks start, and the
test sends SIGINT to the whole group, as a terminal does. The program must exit within 1 s
of the first Ctrl-C, print no worker tracebacks, and leave no process behind; a second
Ctrl-C must never hang it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from faultlib import processes_with_marker

import anypool

TARGET = Path(__file__).with_name("ctrl_c_target.py")
EXIT_BOUND_S = 1.0
# forkserver and resource tracker exit when they see their parent's pipe close
HELPERS_BOUND_S = 5.0
MODES = ["map", "result", "shutdown", "exit_hook"] + (
    ["join"] if hasattr(anypool.Pool, "join") else []
)


def _thread_signal_state(pid: int) -> str:
    lines = []
    for task in sorted(os.listdir(f"/proc/{pid}/task")):
        with open(f"/proc/{pid}/task/{task}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        keep = ("Name", "SigPnd", "ShdPnd", "SigBlk", "SigCgt")
        lines.append(" ".join(f"{k}={fields[k].strip()}" for k in keep if k in fields))
    return "\n".join(lines)


class Program:
    """The target program, started in a new session (its own process group)."""

    def __init__(self, *args: str) -> None:
        self.marker = uuid.uuid4().hex
        self.tmp = tempfile.TemporaryDirectory()
        env = dict(os.environ, ANYPOOL_FAULT_MARK=self.marker, ANYPOOL_FAULT_DIR=self.tmp.name)
        env.pop("PYTHONFAULTHANDLER", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(TARGET), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
            text=True,
        )

    def wait_ready(self, timeout: float = 60.0, settle: float = 0.2) -> None:
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if readable else ""  # type: ignore[union-attr]
        if line.strip() != "READY":
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"the program did not get ready: {line!r}\n{err}")
        time.sleep(settle)  # let the main thread enter the call it is to be interrupted in

    def family(self) -> list[int]:
        return [p.pid for p in processes_with_marker(self.marker) if p.pid != self.proc.pid]

    def signal_group(self, sig: int) -> float:
        os.killpg(self.proc.pid, sig)
        return time.monotonic()

    def exit_time(self, since: float, timeout: float = 10.0) -> float:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # where it hangs: each thread's signal state, then the target dumps its threads'
            # stacks on SIGUSR1
            masks = _thread_signal_state(self.proc.pid)
            os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(1.0)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            where = f"{masks}\n{self.stderr()}"
            pytest.fail(f"the program still ran {timeout} s after the signal\n{where}")
        return time.monotonic() - since

    def stderr(self) -> str:
        return self.proc.stderr.read()  # type: ignore[union-attr]

    def leftovers(self, bound: float) -> list[int]:
        deadline = time.monotonic() + bound
        while (left := self.family()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return left

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in self.family():
            os.kill(pid, signal.SIGKILL)
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()  # type: ignore[union-attr]
        self.tmp.cleanup()


@pytest.fixture
def program():
    started: list[Program] = []

    def start(*args: str) -> Program:
        started.append(Program(*args))
        return started[-1]

    yield start
    for prog in started:
        prog.close()


def assert_clean_stderr(err: str, *, interrupts: int = 1) -> None:
    """The main program's KeyboardInterrupt and nothing from any worker. After a second
    Ctrl-C the main program may show two (chained) tracebacks, and one more if that
    Ctrl-C lands in the stdlib's own exit code ("Exception ignored in atexit callback"):
    only the main process can print those."""
    assert "KeyboardInterrupt" in err, err
    # what a worker's, the forkserver's or a spawned child's traceback would show
    for trace in ("_process/_child", "Process anypool", "forkserver.py", "spawn.py", '"<string>"'):
        assert trace not in err, err
    if interrupts == 1:
        assert "Exception ignored" not in err, err
        assert err.count("Traceback (most recent call last)") == 1, err


def interrupt(
    prog: Program, *, twice: bool = False, settle: float = 0.2
) -> tuple[float, str, list[int]]:
    prog.wait_ready(settle=settle)
    workers = prog.family()
    since = prog.signal_group(signal.SIGINT)
    if twice:
        time.sleep(0.05)
        if prog.proc.poll() is None:
            prog.signal_group(signal.SIGINT)
    elapsed = prog.exit_time(since)
    return elapsed, prog.stderr(), workers


CASES = [
    (api, mode)
    for api in ["pool", "ppe", "thread", "tpe"]
    for mode in MODES
    if not (mode == "join" and api in ("ppe", "tpe"))  # executors have no join()
] + [("oneshot", "map")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("api", "mode"), CASES)
def test_ctrl_c_exits_fast_and_clean(program, api, mode):
    prog = program(api, mode)
    elapsed, err, _ = interrupt(prog)
    assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s\n{err}"
    assert_clean_stderr(err)
    assert prog.leftovers(HELPERS_BOUND_S) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_ctrl_c_every_start_method(program, start_method):
    prog = program("pool", "map", start_method)
    elapsed, err, workers = interrupt(prog)
    assert len(workers) >= 2
    assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s\n{err}"
    assert_clean_stderr(err)
    assert prog.leftovers(HELPERS_BOUND_S) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("api", "mode"),
    [
        ("pool", "map"),
        ("pool", "exit_hook"),
        ("pool", "shutdown"),
        ("ppe", "result"),
        ("ppe", "shutdown"),
        ("tpe", "map"),
    ],
)
def test_second_ctrl_c_never_hangs(program, api, mode):
    prog = program(api, mode)
    elapsed, err, _ = interrupt(prog, twice=True)
    assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s\n{err}"
    assert_clean_stderr(err, interrupts=2)
    assert prog.leftovers(HELPERS_BOUND_S) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_ctrl_c_while_workers_start(program, start_method, delay):
    """Workers start with SIGINT blocked, so one still importing when Ctrl-C comes prints
    nothing. (forkserver: the same holds, but a Ctrl-C in the first half second of the
    first pool waits for the forkserver to finish starting; see docs/failure-model.md.)"""
    prog = program("pool", "starting", start_method)
    elapsed, err, _ = interrupt(prog, settle=delay)
    assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s\n{err}"
    assert_clean_stderr(err)
    assert prog.leftovers(HELPERS_BOUND_S) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("delay", [0.0, 0.1])
def test_ctrl_c_while_the_forkserver_starts(program, delay):
    prog = program("pool", "starting", "forkserver")
    _, err, _ = interrupt(prog, settle=delay)
    assert_clean_stderr(err)
    assert prog.leftovers(HELPERS_BOUND_S) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("twice", [False, True])
@pytest.mark.parametrize("api", ["pool", "thread"])
def test_ctrl_c_while_the_exit_hook_waits_for_pending_work(program, api, twice):
    """The program ended with tasks still running: the exit hook waits for them (as the
    stdlib does) until a Ctrl-C, which stops them at once; nothing is printed."""
    prog = program(api, "finish")
    elapsed, err, _ = interrupt(prog, twice=twice)
    assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.2f} s\n{err}"
    assert "Traceback" not in err, err
    assert prog.leftovers(HELPERS_BOUND_S) == []
