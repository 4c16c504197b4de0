"""What a stdlib caller checks, and the no-hang rules of docs/failure-model.md.

CPython's own ``test.test_concurrent_futures`` runs against the executors on 3.13
(tests/cpython_suite/run.py, from ``.ci/run``); these are the same guarantees
checked on every Python, each as a regression test for one failure that suite
found: stale references, ``shutdown(cancel_futures=True)``, the exceptions code
catches, submit after interpreter exit, workers that cannot start, fork children
at exit, resource-tracker registrations, asyncio's default executor and the
``ParamSpec`` typing of ``submit``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool._errors._process import TaskUnpicklingError, WorkersCannotStart

LOCAL_BACKENDS = ["thread", "process", "inline"]
START_METHODS = [
    m for m in ("fork", "forkserver", "spawn") if m in multiprocessing.get_all_start_methods()
]
RESULT_TIMEOUT_S = 30  # every wait below is bounded: a hang fails the test instead


# -- task functions and objects (module level: importable by worker processes) ---------------
class Payload:
    """A plain object whose life a weakref can watch."""


class Holder:
    def method(self, arg: Payload) -> Payload:
        return Payload()


def make_closure(captured: Payload) -> Callable[[], int]:
    def closure() -> int:  # travels by value; its cell holds ``captured`` here, in the parent
        return id(captured) and 1

    return closure


def _exit() -> None:
    sys.exit(3)


class ExitAtPickle:
    def __reduce__(self) -> Any:
        _exit()


class ExitAtUnpickle:
    def __reduce__(self) -> Any:
        return _exit, ()


class ErrorAtUnpickle:
    def __reduce__(self) -> Any:
        return _raise_value_error, ()


def _raise_value_error() -> None:
    raise ValueError("cannot rebuild this object")


def return_instance(cls: type) -> Any:
    return cls()


def identity(x: Any) -> Any:
    return x


def die_at_start() -> None:
    os._exit(7)


def run_the_exit_hook() -> str:
    """Run, in a worker, the interpreter-exit hook it inherited: a fork child has copies of
    the parent's pools but none of their threads, and must not wait for them."""
    from anypool._local import _atexit as _registry

    _registry._at_exit()
    return "returned"


def fail_init(queue: Any) -> None:
    raise ValueError("initializer fails")


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Turn the cyclic GC off: an object must die by reference counting alone, as in
    CPython's test_no_stale_references, or the test fails instead of passing by luck."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def wait_for_value(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(predicate())


def _all_dead(refs: list[weakref.ref[Any]], timeout: float = 5.0) -> bool:
    """Every referent gone, within ``timeout`` (a worker thread may still be returning)."""
    deadline = time.monotonic() + timeout
    while any(ref() is not None for ref in refs) and time.monotonic() < deadline:
        time.sleep(0.02)
    return all(ref() is None for ref in refs)


# -- stale references ------------------------------------------------------------------------
@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_resolved_task_holds_no_function_argument_or_result(backend, make_pool):
    pool = make_pool(backend, 2)
    holder, arg = Holder(), Payload()
    future = pool.submit(holder.method, arg)  # a bound method keeps its whole object alive
    result = future.result(timeout=RESULT_TIMEOUT_S)
    refs = [weakref.ref(holder), weakref.ref(arg), weakref.ref(result)]
    del holder, arg, result, future
    assert _all_dead(refs), [ref() for ref in refs]


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_a_dropped_future_leaves_nothing_behind(backend, make_pool):
    # CPython's test_no_stale_references: the future is dropped at once, never waited for
    pool = make_pool(backend, 2)
    holder = Holder()
    ref = weakref.ref(holder)
    pool.submit(holder.method, Payload())
    del holder
    assert _all_dead([ref])


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("backend", LOCAL_BACKENDS)
def test_the_function_cache_lets_functions_go(backend, make_pool):
    # a closure travels by value through the process backend's function cache; once its
    # task is resolved, neither the cache nor anything else may keep it (or its cells)
    pool = make_pool(backend, 2)
    captured = Payload()
    closure = make_closure(captured)
    assert pool.submit(closure).result(timeout=RESULT_TIMEOUT_S) == 1
    refs = [weakref.ref(closure), weakref.ref(captured)]
    del closure, captured
    assert _all_dead(refs)


# -- shutdown(cancel_futures=True) -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["thread", "process"])
def test_cancel_futures_lets_the_started_tasks_finish(kind):
    # CPython's test_cancel_futures: right after submitting, no worker may have taken a task
    # yet; the tasks that workers take first still count as started and must finish
    executor_class = anypool.ThreadPoolExecutor if kind == "thread" else anypool.ProcessPoolExecutor
    executor = executor_class(2)
    futures = [executor.submit(time.sleep, 0.05) for _ in range(30)]
    executor.shutdown(wait=True, cancel_futures=True)
    cancelled = [f for f in futures if f.cancelled()]
    finished = [f for f in futures if not f.cancelled()]
    assert len(cancelled) > 20
    assert finished
    for future in finished:
        assert future.done()
        assert future.exception() is None


# -- the exceptions a stdlib caller catches --------------------------------------------------
@pytest.mark.parametrize("start_method", START_METHODS)
def test_exit_while_pickling_the_result_fails_the_task_with_that_exit(start_method, make_pool):
    # it once left the parent waiting: the worker left through sys.exit() in __reduce__
    pool = make_pool("process", 1, start_method=start_method)
    future = pool.submit(return_instance, ExitAtPickle)
    with pytest.raises(SystemExit):
        future.result(timeout=RESULT_TIMEOUT_S)
    assert pool.submit(identity, 5).result(timeout=RESULT_TIMEOUT_S) == 5  # same worker on


def exit_at_pickle_for_one(x: int) -> Any:
    return ExitAtPickle() if x == 1 else x


def test_exit_while_pickling_one_items_result_fails_only_that_item(make_pool):
    # the other items of the chunk ran: their values must not be lost with it
    pool = make_pool("process", 1)
    got = list(pool.map(exit_at_pickle_for_one, range(3), chunksize=3, return_exceptions=True))
    assert got[0] == 0
    assert got[2] == 2
    assert isinstance(got[1], SystemExit)


@pytest.mark.parametrize(
    ("where", "fn", "arg"),
    [
        ("call, error", identity, ErrorAtUnpickle()),
        ("call, exit", identity, ExitAtUnpickle()),
        ("result, error", return_instance, ErrorAtUnpickle),
        ("result, exit", return_instance, ExitAtUnpickle),
    ],
)
def test_unpickling_failures_are_broken_process_pool_yet_fail_only_their_task(where, fn, arg):
    with anypool.ProcessPoolExecutor(1) as executor:
        future = executor.submit(fn, arg)
        with pytest.raises(BrokenProcessPool) as caught:  # what code for the stdlib catches
            future.result(timeout=RESULT_TIMEOUT_S)
        assert isinstance(caught.value, TaskUnpicklingError)
        assert isinstance(caught.value, anypool.SerializationError)
        assert "unpickled" in str(caught.value)
        assert executor.submit(identity, 1).result(timeout=RESULT_TIMEOUT_S) == 1  # pool lives


@pytest.mark.usefixtures("no_gc")
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
@pytest.mark.parametrize("obj", [ErrorAtUnpickle, ExitAtUnpickle])
def test_an_unpicklable_result_does_not_keep_the_pool_alive(obj):
    # the error's traceback led to the dispatcher's frames (backend, worker pipe, process
    # sentinel): a pool shut down long ago kept its file descriptors until gc.collect()
    method = "fork" if "fork" in START_METHODS else START_METHODS[0]
    fds_before = set(os.listdir("/proc/self/fd"))
    pool = anypool.Pool("process", 1, start_method=method)
    future = pool.submit(return_instance, obj)
    with pytest.raises(TaskUnpicklingError) as caught:
        future.result(timeout=RESULT_TIMEOUT_S)
    assert isinstance(caught.value.__cause__, (ValueError, SystemExit))
    pool.shutdown(wait=True)
    del pool, future, caught
    left = lambda: set(os.listdir("/proc/self/fd")) - fds_before  # noqa: E731
    assert wait_for_value(lambda: not left()), f"descriptors left open: {sorted(left())}"


def test_workers_that_die_at_start_break_the_pool_naming_the_exit_code(make_pool):
    pool = make_pool("process", 2, initializer=die_at_start)
    future = pool.submit(identity, 1)
    with pytest.raises(WorkersCannotStart, match="exited with code 7") as caught:
        future.result(timeout=RESULT_TIMEOUT_S)
    assert isinstance(caught.value, BrokenProcessPool)
    assert caught.value.exitcode == 7
    with pytest.raises(WorkersCannotStart):
        pool.submit(identity, 2)


def test_submit_after_interpreter_shutdown_raises_the_stdlib_error(run_python, tmp_path):
    script = tmp_path / "late_submit.py"
    script.write_text(
        textwrap.dedent(
            """
            import atexit
            import anypool

            def late(executor):
                try:
                    executor.submit(id, None)
                except RuntimeError as exc:
                    print(type(exc).__name__, exc)

            if __name__ == "__main__":
                for executor in (anypool.ThreadPoolExecutor(2), anypool.ProcessPoolExecutor(1)):
                    executor.submit(id, 42).result()
                    atexit.register(late, executor)
            """
        )
    )
    proc = run_python(str(script))
    assert proc.returncode == 0, proc.stderr
    expected = "RuntimeError cannot schedule new futures after interpreter shutdown"
    assert proc.stdout.splitlines() == [expected, expected], proc.stderr


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_submit_after_shutdown_says_what_the_stdlib_says(kind):
    executor_class = anypool.ThreadPoolExecutor if kind == "thread" else anypool.ProcessPoolExecutor
    executor = executor_class(1)
    executor.shutdown()
    with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown$"):
        executor.submit(pow, 2, 5)


# -- no hang by construction -----------------------------------------------------------------
@pytest.mark.skipif("fork" not in START_METHODS, reason="needs the fork start method")
def test_a_fork_worker_does_not_wait_for_the_parents_pools_at_exit(make_pool):
    other = make_pool("process", 1)  # another live pool: the child inherits a copy of it
    assert other.submit(identity, 1).result(timeout=RESULT_TIMEOUT_S) == 1
    pool = make_pool("process", 1, start_method="fork")
    # the hook once waited forever in the child for the other pool's dispatcher thread,
    # which the child does not have (CPython's test_exit_during_result_pickle_on_worker hung)
    future = pool.submit(run_the_exit_hook)
    assert future.result(timeout=RESULT_TIMEOUT_S) == "returned"


def test_shutdown_returns_even_when_the_dispatchers_clean_up_fails(make_pool, monkeypatch):
    # e.g. at interpreter shutdown no thread can start: the clean-up raises, and shutdown()
    # must still return with every future resolved (it once waited forever)
    from anypool._local._deadlines import Deadlines

    def failing_stop(self: Deadlines) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    reported: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_value))
    pool = make_pool("process", 1)
    assert pool.submit(identity, 1).result(timeout=RESULT_TIMEOUT_S) == 1
    monkeypatch.setattr(Deadlines, "stop", failing_stop)
    future = pool.submit(time.sleep, 0.2)
    done = threading.Event()
    threading.Thread(target=lambda: (pool.shutdown(wait=True), done.set()), daemon=True).start()
    assert done.wait(RESULT_TIMEOUT_S), "shutdown() hung"
    assert future.done()
    # the failure is not swallowed: it ends the dispatcher thread, which reports it
    assert wait_for_value(lambda: reported), "the clean-up's error was not reported"
    assert "interpreter shutdown" in str(reported[0])


def test_a_failing_initializer_lets_go_of_its_initargs(no_gc):
    # CPython's FailingInitializerResourcesTest: a multiprocessing.Queue in initargs must not
    # outlive the pool, or its semaphores stay registered with the resource tracker
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    ref = weakref.ref(queue)
    executor = anypool.ProcessPoolExecutor(
        1, mp_context=context, initializer=fail_init, initargs=(queue,)
    )
    with pytest.raises(BrokenProcessPool):
        executor.submit(identity, 1).result(timeout=RESULT_TIMEOUT_S)
    assert executor._broken
    executor.shutdown(wait=True)
    del executor, queue
    assert _all_dead([ref])


# -- asyncio and typing ----------------------------------------------------------------------
def test_asyncio_takes_it_as_its_default_executor():
    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(executor)  # 3.11+: must be a cf.ThreadPoolExecutor
        return await loop.run_in_executor(None, pow, 2, 10)

    executor = anypool.ThreadPoolExecutor(4)
    assert isinstance(executor, cf.ThreadPoolExecutor)
    assert asyncio.run(main()) == 1024  # asyncio.run shuts the default executor down too
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(pow, 2, 2)


MYPY_SNIPPET = """\
import anypool

def square(x: int) -> int:
    return x * x

ok = anypool.ThreadPoolExecutor(2).submit(square, 3)
reveal_type(ok)
anypool.ThreadPoolExecutor(2).submit(square, "x")  # E1
anypool.ProcessPoolExecutor(2).submit(square, "x")  # E2
anypool.ThreadPoolExecutor(2).submit(square, 3, extra=1)  # E3
chars = anypool.Pool("thread").Array("c", b"hi")
text: bytes = chars.value + chars.raw  # a 'c' array has multiprocessing's value and raw
anypool.Pool("thread").Array("i", 3).value  # E4: only a 'c' array has it
"""


def test_submit_is_typed_with_paramspec(tmp_path):
    pytest.importorskip("mypy")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(MYPY_SNIPPET)
    src = Path(anypool.__file__).resolve().parent.parent
    command = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary"]
    command += ["--hide-error-context", "--cache-dir", str(tmp_path / ".mypy_cache")]
    command += ["--config-file", os.devnull, str(snippet)]
    env = {**os.environ, "MYPYPATH": str(src)}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    out = proc.stdout
    assert 'Revealed type is "concurrent.futures._base.Future[int]"' in out, out
    errors = {int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line}
    lines = MYPY_SNIPPET.splitlines()
    expected = {number for number, line in enumerate(lines, 1) if "# E" in line}
    assert errors == expected, out
