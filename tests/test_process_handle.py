"""anypool.Process: the multiprocessing.Process interface on the pool engine.

Faults are real: the targets raise, call sys.exit and os._exit, SIGKILL themselves and
sleep past a timeout; the exit and Ctrl-C cases run a real program in a subprocess and
check with psutil that its worker is gone. The autouse leak check covers the rest.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import CancelledError
from pathlib import Path

import psutil
import pytest

import anypool
from anypool._wire._pickle import RemoteTraceback

pytestmark = pytest.mark.timeout(120)

STOP_BOUND_S = 5.0


def double(x: int) -> int:
    return x * 2


def where() -> int:
    return os.getpid()


def fail() -> None:
    raise ValueError("bad input 7")


def exit_with(code: object) -> None:
    sys.exit(code)


def hard_exit() -> None:
    os._exit(7)


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


class Named(anypool.Process):
    """The tutorial's second way: subclass and override run()."""

    def __init__(self, n: int) -> None:
        super().__init__(name=f"named-{n}")
        self.n = n

    def run(self) -> tuple[str, int, int]:
        return self.name, self.n * 10, os.getpid()


def started(target: object, *args: object, **options: object) -> anypool.Process:
    process = anypool.Process(target=target, args=args, **options)  # type: ignore[arg-type]
    process.start()
    return process


def joined(target: object, *args: object, **options: object) -> anypool.Process:
    process = started(target, *args, **options)
    process.join(timeout=60)
    assert not process.is_alive()
    return process


# -- the multiprocessing.Process interface -------------------------------------------------
def test_lifecycle_and_result() -> None:
    process = anypool.Process(target=double, args=(21,), name="doubler")
    assert (process.pid, process.exitcode, process.is_alive()) == (None, None, False)
    assert "initial" in repr(process)
    process.start()
    pid = process.pid
    assert pid is not None
    assert pid != os.getpid()
    process.join(timeout=60)
    assert (process.exitcode, process.result(), process.name) == (0, 42, "doubler")
    assert "stopped exitcode=0" in repr(process)
    assert gone(pid)


def test_the_target_runs_in_the_worker_whose_pid_is_reported() -> None:
    process = started(where)
    pid = process.pid
    assert process.result(timeout=60) == pid == process.ident


def test_kwargs_and_default_names() -> None:
    first = anypool.Process(target=double, kwargs={"x": 4}, backend="thread")
    second = anypool.Process(target=double, kwargs={"x": 5}, backend="thread")
    assert first.name != second.name
    assert first.name.startswith("Process-")
    first.start()
    assert first.result(timeout=10) == 8


def test_a_subclass_overriding_run_travels_to_the_worker() -> None:
    process = Named(3)
    process.start()
    name, value, pid = process.result(timeout=60)
    assert (name, value) == ("named-3", 30)
    assert pid != os.getpid()


def test_no_target_runs_nothing() -> None:
    process = started(None, backend="thread")
    process.join(timeout=10)
    assert (process.exitcode, process.result()) == (0, None)


# -- exit codes from real faults -------------------------------------------------------------
def test_an_exception_is_exitcode_1_and_result_reraises_it() -> None:
    process = joined(fail)
    assert process.exitcode == 1
    with pytest.raises(ValueError, match="bad input 7") as info:
        process.result()
    assert isinstance(info.value.__cause__, RemoteTraceback)  # the worker's traceback


@pytest.mark.parametrize(("code", "exitcode"), [(3, 3), (None, 0), ("message", 1)])
def test_sys_exit_sets_exitcode_as_multiprocessing_does(code: object, exitcode: int) -> None:
    assert joined(exit_with, code).exitcode == exitcode


def test_os_exit_and_a_signal_are_reported_like_multiprocessing() -> None:
    exited = joined(hard_exit)
    assert exited.exitcode == 7
    crash = exited.exception()
    assert isinstance(crash, anypool.WorkerCrashed)
    assert (crash.exitcode, crash.pid is not None) == (7, True)
    assert "while running hard_exit" in str(crash)  # the target, not anypool's wrapper
    killed = joined(kill_myself)
    assert killed.exitcode == -signal.SIGKILL
    with pytest.raises(anypool.WorkerCrashed, match=r"killed by signal 9 \(SIGKILL\)"):
        killed.result()


def test_retries_rerun_a_crashed_target(tmp_path: Path) -> None:
    process = joined(die_once, str(tmp_path / "marker"), retries=1)
    assert (process.exitcode, process.result()) == (0, "second try")


def die_once(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(9)
    return "second try"


# -- stopping --------------------------------------------------------------------------------
@pytest.mark.parametrize(("stop", "signum"), [("terminate", 15), ("kill", 9)])
def test_terminate_and_kill_stop_a_running_target(stop: str, signum: int) -> None:
    process = started(sleep, 60)
    pid = process.pid
    assert pid is not None
    assert process.is_alive()
    since = time.monotonic()
    getattr(process, stop)()
    process.join(timeout=STOP_BOUND_S)
    assert time.monotonic() - since < STOP_BOUND_S
    assert (process.is_alive(), process.exitcode) == (False, -signum)
    assert gone(pid)
    with pytest.raises(CancelledError, match=rf"was stopped by {stop}\(\)"):
        process.result()
    assert f"stopped by {stop}()" in str(process.exception())
    getattr(process, stop)()  # a no-op once it has ended, as in multiprocessing


def test_timeout_stops_the_target() -> None:
    process = joined(sleep, 60, timeout=0.3)
    assert process.exitcode == -signal.SIGTERM
    with pytest.raises(anypool.TaskTimeout, match="task sleep ran longer"):
        process.result()


def test_a_subclass_is_named_by_its_run_in_messages() -> None:
    process = Sleeper(timeout=0.3)
    process.start()
    process.join(timeout=60)
    with pytest.raises(anypool.TaskTimeout, match=r"task Sleeper\.run ran longer"):
        process.result()


class Sleeper(anypool.Process):
    def run(self) -> None:
        time.sleep(60)


@pytest.mark.parametrize("options", [{"timeout": -1}, {"timeout": 0}, {"retries": -1}])
def test_bad_options_are_refused_at_construction(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        anypool.Process(target=sleep, args=(0,), **options)  # type: ignore[arg-type]


def test_a_thread_cannot_be_terminated() -> None:
    process = started(sleep, 0.3, backend="thread")
    with pytest.raises(anypool.CapabilityError, match="cannot stop a running task"):
        process.terminate()
    process.join(timeout=10)
    assert process.exitcode == 0


def test_join_with_a_timeout_returns_while_it_runs() -> None:
    process = started(sleep, 60)
    process.join(timeout=0.05)
    assert process.is_alive()
    assert process.exitcode is None
    with pytest.raises(ValueError, match="still running"):
        process.close()
    process.kill()
    process.join(timeout=STOP_BOUND_S)
    process.close()


# -- other backends --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["thread", "inline", "asyncio"])
def test_in_process_backends_report_this_pid(backend: str) -> None:
    process = joined(double, 2, backend=backend)
    assert (process.result(), process.pid, process.exitcode) == (4, os.getpid(), 0)


def test_thread_backend_names_its_thread_after_the_process() -> None:
    import threading

    process = anypool.Process(target=lambda: threading.current_thread().name, backend="thread")
    process.name = "fetcher"
    process.start()
    assert process.result(timeout=10).startswith("fetcher")


# -- bad use ---------------------------------------------------------------------------------
def test_bad_use_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="target must be callable"):
        anypool.Process(target=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        anypool.Process(target=double, backend="nope")
    process = anypool.Process(target=double, args=(1,), backend="thread")
    for call in (process.join, process.result, process.terminate):
        with pytest.raises(RuntimeError, match="call start\\(\\) first"):
            call()
    process.start()
    with pytest.raises(RuntimeError, match="already been started"):
        process.start()
    with pytest.raises(RuntimeError, match="daemon cannot be changed"):
        process.daemon = True
    process.join(timeout=10)


def test_an_unpicklable_argument_fails_at_once() -> None:
    import threading

    process = started(double, threading.Lock())
    with pytest.raises(anypool.SerializationError, match="lock"):
        process.result(timeout=10)
    assert process.exitcode == 1


def test_a_process_object_pickles_without_its_runtime() -> None:
    process = started(double, 5)
    clone = pickle.loads(pickle.dumps(process))
    assert (clone.name, clone.pid, clone.exitcode) == (process.name, None, None)
    process.join(timeout=60)


# -- program exit and Ctrl-C, in a real program ---------------------------------------------
PROGRAM = """
import os, signal, sys, time
import anypool

def sleeper(seconds, path):
    time.sleep(seconds)
    open(path, "w").close()

if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    p = anypool.Process(target=sleeper, args=(float(sys.argv[3]), path), daemon=mode == "daemon")
    p.start()
    print(p.pid, flush=True)
    if mode == "join":
        p.join()
"""


def run_program(tmp_path: Path, mode: str, seconds: float) -> tuple[subprocess.Popen[str], int]:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(PROGRAM))
    proc = subprocess.Popen(
        [sys.executable, str(script), mode, str(tmp_path / "done"), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    worker = int(proc.stdout.readline())
    return proc, worker


def gone(pid: int, timeout: float = STOP_BOUND_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # one psutil call: pid_exists() then Process() races with the exit
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def test_a_daemon_is_stopped_when_the_program_ends(tmp_path: Path) -> None:
    proc, worker = run_program(tmp_path, "daemon", 60)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert gone(worker)
    assert not (tmp_path / "done").exists()


def test_a_non_daemon_is_waited_for_when_the_program_ends(tmp_path: Path) -> None:
    proc, worker = run_program(tmp_path, "plain", 1.0)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert (tmp_path / "done").exists()  # the program did not end before its process
    assert gone(worker)


def test_ctrl_c_in_join_stops_the_process(tmp_path: Path) -> None:
    proc, worker = run_program(tmp_path, "join", 60)
    time.sleep(0.3)  # let the main thread enter join()
    since = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - since < 2.0
    assert "KeyboardInterrupt" in err, err
    assert err.count("Traceback") == 1, err  # the program's own, nothing from the worker
    assert gone(worker)


def _noop_init(lock: object) -> None:
    del lock


def test_multiprocessing_lock_in_initargs_reaches_the_worker() -> None:
    # the pool hands initargs to its workers by inheritance; the Process must not try to
    # pickle them again with its target (multiprocessing refuses that for a Lock)
    import multiprocessing

    lock = multiprocessing.get_context("spawn").Lock()
    process = anypool.Process(
        target=double, args=(21,), start_method="spawn", initializer=_noop_init, initargs=(lock,)
    )
    process.start()
    process.join(timeout=30)
    assert process.exception() is None
    assert process.result() == 42


def test_a_process_whose_call_does_not_pickle_is_freed_without_gc() -> None:
    import gc
    import threading
    import weakref

    gc.disable()
    try:
        process = anypool.Process(target=double, args=(threading.Lock(),))
        process.start()
        process.join(timeout=30)
        assert isinstance(process.exception(), anypool.SerializationError)
        alive = weakref.ref(process)
        del process
        assert alive() is None, "a reference cycle kept the Process (and its pool options)"
    finally:
        gc.enable()
