"""``anypool.ThreadPoolExecutor`` / ``ProcessPoolExecutor`` are drop-ins for the stdlib's.

Many cases are ported from CPython's ``Lib/test/test_concurrent_futures`` (named
after the test they come from) and sized down to keep the suite fast: code
written for the stdlib must run unchanged, so the stdlib's own tests are the spec.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import inspect
import itertools
import multiprocessing
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from pathlib import Path

import psutil
import pytest

import anypool
from anypool._frontends._executors import PoolExecutor

SHUTDOWN_BOUND_S = 10.0
KINDS = ["thread", "process"]
START_METHODS = [
    m for m in ("fork", "forkserver", "spawn") if m in multiprocessing.get_all_start_methods()
]

INITIALIZER_STATUS = "uninitialized"
MARKER = "as-imported"


# -- task functions (module level: importable by worker processes) --------------------------
def mul(x, y):
    return x * y


def capture(*args, **kwargs):
    return args, kwargs


def init(x):
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = x


def get_init_status():
    return INITIALIZER_STATUS


def init_fail():
    time.sleep(0.1)  # let some futures be scheduled
    raise ValueError("error in initializer")


def read_marker():
    return MARKER


def record(path, x, delay=0.0):
    time.sleep(delay)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{x}\n".encode())
    finally:
        os.close(fd)
    return x


def recorded(path):
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []


class MyObject:
    def my_method(self):
        pass


def make_dummy_object(_):
    return MyObject()


# -- fixtures -------------------------------------------------------------------------------
def executor_class(kind):
    return anypool.ThreadPoolExecutor if kind == "thread" else anypool.ProcessPoolExecutor


def stdlib_class(kind):
    return cf.ThreadPoolExecutor if kind == "thread" else cf.ProcessPoolExecutor


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def make_executor():
    """Build executors that are shut down at teardown, within SHUTDOWN_BOUND_S."""
    made = []

    def factory(kind, *args, **kwargs):
        executor = executor_class(kind)(*args, **kwargs)
        made.append(executor)
        return executor

    yield factory
    for executor in made:
        start = time.monotonic()
        executor.shutdown(wait=True)
        elapsed = time.monotonic() - start
        assert elapsed < SHUTDOWN_BOUND_S, f"{executor!r} took {elapsed:.1f}s to shut down"


@pytest.fixture
def executor(kind, make_executor):
    return make_executor(kind, 2)


@pytest.fixture(autouse=True)
def _reset_initializer_status():
    global INITIALIZER_STATUS
    INITIALIZER_STATUS = "uninitialized"
    yield
    INITIALIZER_STATUS = "uninitialized"


# -- the drop-in surface --------------------------------------------------------------------
def test_executors_subclass_the_stdlib_executor(kind):
    cls = executor_class(kind)
    assert issubclass(cls, cf.Executor)
    assert cls.__name__ == stdlib_class(kind).__name__


def _params(fn):
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.name != "self"
    ]


def test_constructor_signatures_match_the_stdlib(kind):
    ours = _params(executor_class(kind).__init__)
    theirs = _params(stdlib_class(kind).__init__)
    if kind == "process" and sys.version_info < (3, 11):
        # 3.10's stdlib has no max_tasks_per_child; ours adds it, keyword-only as in 3.11+
        assert ours[: len(theirs)] == theirs
        assert ours[len(theirs) :] == [
            ("max_tasks_per_child", inspect.Parameter.KEYWORD_ONLY, None)
        ]
    else:
        assert ours == theirs


def test_constructor_signatures_match_the_issue_contract():
    assert [(n, d) for n, _, d in _params(anypool.ThreadPoolExecutor.__init__)] == [
        ("max_workers", None),
        ("thread_name_prefix", ""),
        ("initializer", None),
        ("initargs", ()),
    ]
    assert [(n, d) for n, _, d in _params(anypool.ProcessPoolExecutor.__init__)] == [
        ("max_workers", None),
        ("mp_context", None),
        ("initializer", None),
        ("initargs", ()),
        ("max_tasks_per_child", None),
    ]


@pytest.mark.parametrize("method", ["submit", "shutdown"])
def test_method_signatures_match_the_stdlib(kind, method):
    ours = _params(getattr(executor_class(kind), method))
    theirs = _params(getattr(stdlib_class(kind), method))
    assert ours == theirs


def test_map_signature_is_a_superset_of_the_stdlib(kind):
    ours = {n: (k, d) for n, k, d in _params(executor_class(kind).map)}
    theirs = _params(stdlib_class(kind).map)
    for name, param_kind, default in theirs:
        assert ours[name] == (param_kind, default), name
    extra = set(ours) - {n for n, _, _ in theirs}
    for name in extra:  # later-Python additions only, with defaults that change nothing
        assert ours[name][0] == inspect.Parameter.KEYWORD_ONLY
        assert ours[name][1] is None


def test_executors_sit_on_the_anypool_engine(kind, make_executor):
    # the issue: nothing wraps concurrent.futures.ProcessPoolExecutor or multiprocessing.Pool
    executor = make_executor(kind, 1)
    assert isinstance(executor, PoolExecutor)
    # the thread executor is a concurrent.futures.ThreadPoolExecutor by type only (asyncio's
    # set_default_executor checks that): every method is anypool's, the stdlib's state is absent
    for name in ("submit", "map", "shutdown", "__exit__"):
        assert getattr(type(executor), name) is getattr(PoolExecutor, name), name
    assert not hasattr(executor, "_work_queue")
    assert not hasattr(executor, "_threads")
    assert not hasattr(executor, "_processes")


@pytest.mark.parametrize("number", [0, -1])
def test_max_workers_negative(kind, number):  # CPython: test_max_workers_negative
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        executor_class(kind)(max_workers=number)


def test_non_callable_initializer(kind):
    with pytest.raises(TypeError, match="initializer"):
        executor_class(kind)(1, initializer=5)


def test_thread_default_workers_match_the_stdlib(make_executor):  # test_default_workers
    stdlib = cf.ThreadPoolExecutor()
    try:
        assert make_executor("thread")._max_workers == stdlib._max_workers
    finally:
        stdlib.shutdown()


# -- submit ---------------------------------------------------------------------------------
def test_submit(executor):  # CPython: test_submit
    future = executor.submit(pow, 2, 8)
    assert isinstance(future, cf.Future)
    assert future.result(timeout=30) == 256


def test_submit_keyword(executor):  # CPython: test_submit_keyword
    assert executor.submit(mul, 2, y=8).result(timeout=30) == 16
    assert executor.submit(capture, 1, self=2, fn=3).result(timeout=30) == (
        (1,),
        {"self": 2, "fn": 3},
    )
    with pytest.raises(TypeError):
        executor.submit(fn=capture, arg=1)
    with pytest.raises(TypeError):
        executor.submit(arg=1)


def test_submit_keywords_reach_fn_even_if_pool_options_share_their_name(executor):
    # Pool.submit reserves timeout/retries/priority; the stdlib contract passes every keyword on
    assert executor.submit(capture, timeout=1, retries=2, priority=3).result(timeout=30) == (
        (),
        {"timeout": 1, "retries": 2, "priority": 3},
    )


def test_submit_exception_keeps_type(executor):
    with pytest.raises(ZeroDivisionError):
        executor.submit(divmod, 1, 0).result(timeout=30)


@pytest.mark.parametrize("argument", ["lock", "event", "list with a lock"])
def test_an_argument_that_cannot_pickle_fails_its_future_not_submit(make_executor, argument):
    # the stdlib's submit returns and the future holds a TypeError: code that submits a
    # list of calls and checks each future must not stop at the bad one
    bad = {
        "lock": threading.Lock(),
        "event": threading.Event(),
        "list with a lock": [1, threading.Lock()],
    }[argument]
    executor = make_executor("process", 1)
    futures = [
        executor.submit(mul, 2, 3),
        executor.submit(capture, bad),
        executor.submit(mul, 4, 5),
    ]
    assert futures[0].result(timeout=30) == 6
    with pytest.raises(TypeError):  # what the stdlib raises there
        futures[1].result(timeout=30)
    assert isinstance(futures[1].exception(), anypool.SerializationError)
    assert futures[2].result(timeout=30) == 20


def test_wait_and_as_completed(executor):
    futures = [executor.submit(mul, i, i) for i in range(10)]
    done, _ = cf.wait(futures, timeout=30, return_when=cf.ALL_COMPLETED)
    assert done == set(futures)
    assert sorted(f.result() for f in cf.as_completed(futures)) == [i * i for i in range(10)]


# -- map ------------------------------------------------------------------------------------
def test_map(executor):  # CPython: test_map
    expected = list(map(pow, range(10), range(10)))
    assert list(executor.map(pow, range(10), range(10))) == expected
    assert list(executor.map(pow, range(10), range(10), chunksize=3)) == expected


def test_map_chunksize(executor):  # CPython: test_map_chunksize
    ref = list(map(pow, range(40), range(40)))
    for chunksize in (6, 50, 40):
        assert list(executor.map(pow, range(40), range(40), chunksize=chunksize)) == ref
    with pytest.raises(ValueError):
        list(executor.map(pow, range(40), range(40), chunksize=-1))


def test_map_exception(executor):  # CPython: test_map_exception
    results = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(results) == (0, 1)
    assert next(results) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(results)


@pytest.mark.parametrize("chunksize", [1, 3])
def test_map_exception_surfaces_at_its_item_inside_a_chunk(executor, chunksize):
    results = executor.map(divmod, [1] * 6, [1, 1, 1, 1, 0, 1], chunksize=chunksize)
    assert [next(results) for _ in range(4)] == [(1, 0)] * 4
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout(executor):  # CPython: test_map_timeout, sized down
    results = executor.map(time.sleep, [0, 0, 1.0], timeout=0.3)
    assert [next(results), next(results)] == [None, None]
    with pytest.raises(cf.TimeoutError):
        next(results)


def test_map_timeout_counts_from_the_call(executor):
    results = executor.map(time.sleep, [0.6], timeout=0.3)
    time.sleep(0.4)  # the deadline passes before the first next()
    with pytest.raises(cf.TimeoutError):
        next(results)


def test_map_timeout_none_waits(executor):
    assert list(executor.map(time.sleep, [0.2, 0.1], timeout=None)) == [None, None]


def test_map_submits_without_iteration(kind, make_executor, tmp_path):
    # CPython: test_map_submits_without_iteration (issue 11777): map() is eager
    log = str(tmp_path / "ran.txt")
    executor = make_executor(kind, 2)
    executor.map(record, itertools.repeat(log), range(10))
    executor.shutdown(wait=True)
    assert sorted(int(x) for x in recorded(log)) == list(range(10))


def test_map_submits_without_iteration_with_chunks(kind, make_executor, tmp_path):
    log = str(tmp_path / "ran.txt")
    executor = make_executor(kind, 2)
    executor.map(record, itertools.repeat(log), range(10), chunksize=4)
    executor.shutdown(wait=True)
    assert sorted(int(x) for x in recorded(log)) == list(range(10))


def test_map_empty(executor):
    assert list(executor.map(mul, [], [])) == []


def test_map_shortest_iterable_wins(executor):
    assert list(executor.map(mul, [1, 2, 3], [4, 5])) == [4, 10]


def test_executor_map_current_future_cancel(make_executor):
    # CPython: test_executor_map_current_future_cancel
    stop_event = threading.Event()
    log = []

    def log_n_wait(ident):
        log.append(f"{ident=} started")
        try:
            stop_event.wait()
        finally:
            log.append(f"{ident=} stopped")

    pool = make_executor("thread", max_workers=1)
    fut = pool.submit(log_n_wait, ident="first")
    try:
        gen = pool.map(log_n_wait, ["second", "third"], timeout=0)
        with pytest.raises(cf.TimeoutError):
            next(gen)
        gen.close()
    finally:
        stop_event.set()
    fut.result(timeout=30)
    pool.shutdown(wait=True)
    # 'second' is cancelled by the TimeoutError, 'third' because it was still queued
    assert log == ["ident='first' started", "ident='first' stopped"]


def test_no_stale_references(executor):  # CPython: test_no_stale_references (#16284)
    my_object = MyObject()
    collected = threading.Event()
    ref = weakref.ref(my_object, lambda _: collected.set())
    executor.submit(my_object.my_method)  # deliberately discarding the future
    del my_object
    deadline = time.monotonic() + 10
    while not collected.is_set() and time.monotonic() < deadline:
        gc.collect()
        collected.wait(0.1)
    assert collected.is_set(), f"stale reference to the task's argument kept: {ref()!r}"


def test_free_reference(executor):  # CPython: test_free_reference (#14406)
    for obj in executor.map(make_dummy_object, range(10)):
        wr = weakref.ref(obj)
        del obj
        gc.collect()
        assert wr() is None, "the result iterator keeps a reference to the last result"


# -- shutdown -------------------------------------------------------------------------------
def test_run_after_shutdown(executor):  # CPython: test_run_after_shutdown
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(pow, 2, 5)


def test_map_after_shutdown(executor):
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.map(pow, [2], [5])


def test_hang_issue12364(executor):  # CPython: test_hang_issue12364, sized down
    futures = [executor.submit(time.sleep, 0.02) for _ in range(20)]
    executor.shutdown()
    for future in futures:
        future.result()


def test_cancel_futures(kind, make_executor):  # CPython: test_cancel_futures, sized down
    executor = make_executor(kind, 2)
    futures = [executor.submit(time.sleep, 0.05) for _ in range(30)]
    # the stdlib's workers are up at once; ours start on demand, so let one task start
    # before shutting down, or every future could legitimately be cancelled
    deadline = time.monotonic() + 30
    while not futures[0].running() and not futures[0].done():
        assert time.monotonic() < deadline, "the first task never started"
        time.sleep(0.005)
    executor.shutdown(cancel_futures=True)
    cancelled = [f for f in futures if f.cancelled()]
    assert len(cancelled) > 15
    others = [f for f in futures if not f.cancelled()]
    for future in others:
        assert future.done()
        assert future.exception() is None
    assert others


def test_shutdown_wait_false_returns_at_once(kind, make_executor):
    executor = make_executor(kind, 1)
    executor.submit(int).result(timeout=30)  # workers are up
    futures = [executor.submit(time.sleep, 0.3) for _ in range(2)]
    start = time.monotonic()
    executor.shutdown(wait=False)
    assert time.monotonic() - start < 0.25
    for future in futures:
        assert future.result(timeout=30) is None


@pytest.mark.timeout(30)
def test_hang_gh94440(kind, make_executor):  # CPython: test_hang_gh94440
    executor = make_executor(kind, max_workers=1)
    executor.submit(int).result()
    executor.submit(int).cancel()
    start = time.monotonic()
    executor.shutdown(wait=True)
    assert time.monotonic() - start < 5


def test_context_manager_shutdown(kind):  # CPython: test_context_manager_shutdown
    with executor_class(kind)(max_workers=2) as e:
        assert list(e.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
        future = e.submit(time.sleep, 0.1)
    assert future.done()
    with pytest.raises(RuntimeError):
        e.submit(pow, 2, 2)


def test_shutdown_twice(executor):
    executor.shutdown(wait=False)
    executor.shutdown(wait=True)
    executor.shutdown(cancel_futures=True)


def _pool_threads(prefix):
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def test_del_shutdown(make_executor):  # CPython: test_del_shutdown
    executor = anypool.ThreadPoolExecutor(max_workers=2, thread_name_prefix="DelShutdown")
    results = executor.map(abs, range(-5, 5))
    assert _pool_threads("DelShutdown")
    del executor
    assert list(results) == [abs(v) for v in range(-5, 5)]
    del results
    gc.collect()
    deadline = time.monotonic() + 5
    while _pool_threads("DelShutdown") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pool_threads("DelShutdown"), "an executor dropped without shutdown kept its threads"


# -- threads --------------------------------------------------------------------------------
def test_thread_names_assigned(make_executor):  # CPython: test_thread_names_assigned
    executor = make_executor("thread", max_workers=5, thread_name_prefix="SpecialPool")
    names = {f.result() for f in [executor.submit(lambda: threading.current_thread().name)]}
    names |= set(executor.map(lambda _: threading.current_thread().name, range(10)))
    for name in names:
        assert re.match(r"^SpecialPool_[0-4]$", name), name


def test_thread_names_default(make_executor):  # CPython: test_thread_names_default
    executor = make_executor("thread", max_workers=5)
    names = set(executor.map(lambda _: threading.current_thread().name, range(10)))
    for name in names:
        assert re.match(r"^ThreadPoolExecutor-\d+_[0-4]$", name), name


def test_thread_saturation(make_executor):  # CPython: test_saturation (threads)
    executor = make_executor("thread", 4, thread_name_prefix="Saturation")
    sem = threading.Semaphore(0)
    for _ in range(15 * 4):
        executor.submit(sem.acquire)
    assert len(_pool_threads("Saturation")) == 4
    for _ in range(15 * 4):
        sem.release()


def test_idle_thread_reuse(make_executor):  # CPython: test_idle_thread_reuse
    executor = make_executor("thread", thread_name_prefix="Reuse")
    assert executor.submit(mul, 21, 2).result() == 42
    assert executor.submit(mul, 6, 7).result() == 42
    assert executor.submit(mul, 3, 14).result() == 42
    assert len(_pool_threads("Reuse")) == 1


def test_sequential_submits_reuse_one_thread(make_pool):
    # each result wakes the caller, whose next submit must find the finishing thread idle:
    # a worker that counted itself idle only after publishing the result lost that race
    # most of the time, and the pool grew a thread per race
    pool = make_pool("thread", 4, thread_name_prefix="Serial")
    for i in range(50):
        assert pool.submit(mul, i, 2).result(timeout=10) == 2 * i
    assert len(_pool_threads("Serial")) == 1


# -- initializers ---------------------------------------------------------------------------
def test_initializer(kind, make_executor):  # CPython: test_init.InitializerMixin
    executor = make_executor(kind, 2, initializer=init, initargs=("initialized",))
    futures = [executor.submit(get_init_status) for _ in range(2)]
    assert [f.result(timeout=30) for f in futures] == ["initialized", "initialized"]


def test_failing_initializer_breaks_the_executor(kind, make_executor):
    # CPython: test_init.FailingInitializerMixin
    executor = make_executor(kind, 2, initializer=init_fail)
    try:
        future = executor.submit(get_init_status)
    except cf.BrokenExecutor:
        pass  # perhaps already broken
    else:
        with pytest.raises(cf.BrokenExecutor):
            future.result(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        try:
            executor.submit(get_init_status).result(timeout=30)
        except cf.BrokenExecutor as exc:
            error = exc
            break
        assert time.monotonic() < deadline, "the executor never broke"
    # from now on submit() is guaranteed to fail
    with pytest.raises(cf.BrokenExecutor) as info:
        executor.submit(get_init_status)
    for exc in (error, info.value):
        assert isinstance(exc, anypool.BrokenPool)
        assert isinstance(exc, anypool.AnyPoolError)
        if kind == "thread":
            assert isinstance(exc, anypool.BrokenThreadPool)
            assert isinstance(exc, cf.thread.BrokenThreadPool)
        else:
            import concurrent.futures.process

            assert isinstance(exc, anypool.BrokenProcessPool)
            assert isinstance(exc, concurrent.futures.process.BrokenProcessPool)
        text = f"{exc} {exc.__cause__}"
        assert "error in initializer" in text, text


# -- processes ------------------------------------------------------------------------------
def test_max_tasks_per_child(make_executor):  # CPython: test_max_tasks_per_child
    executor = make_executor("process", 1, max_tasks_per_child=3)
    original_pid = executor.submit(os.getpid).result(timeout=30)
    assert executor.submit(os.getpid).result(timeout=30) == original_pid
    assert executor.submit(os.getpid).result(timeout=30) == original_pid
    new_pid = executor.submit(os.getpid).result(timeout=30)
    assert new_pid != original_pid
    deadline = time.monotonic() + 5
    while _alive(original_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(original_pid), "the retired worker is still running"


@pytest.mark.parametrize(("max_workers", "max_tasks", "num_tasks"), [(1, 2, 6), (2, 2, 8)])
def test_max_tasks_per_child_pending_tasks(make_executor, max_workers, max_tasks, num_tasks):
    # CPython: test_max_tasks_per_child_pending_tasks_gh115634 (must not deadlock)
    executor = make_executor("process", max_workers, max_tasks_per_child=max_tasks)
    futures = [executor.submit(mul, i, 2) for i in range(num_tasks)]
    assert [f.result(timeout=30) for f in futures] == [i * 2 for i in range(num_tasks)]
    pids = {executor.submit(os.getpid).result(timeout=30) for _ in range(3)}
    assert pids


def test_max_tasks_early_shutdown(make_executor):  # CPython: test_max_tasks_early_shutdown
    executor = make_executor("process", 2, max_tasks_per_child=1)
    futures = [executor.submit(mul, i, i) for i in range(4)]
    executor.shutdown()
    assert [f.result() for f in futures] == [i * i for i in range(4)]


@pytest.mark.parametrize("bad", [0, -1])
def test_max_tasks_per_child_invalid(bad):
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        anypool.ProcessPoolExecutor(1, max_tasks_per_child=bad)


@pytest.mark.parametrize("method", START_METHODS)
def test_mp_context_is_honoured(make_executor, monkeypatch, method):
    monkeypatch.setattr(sys.modules[__name__], "MARKER", "rebound-in-parent")
    context = multiprocessing.get_context(method)
    executor = make_executor("process", 1, mp_context=context)
    seen = executor.submit(read_marker).result(timeout=30)
    assert seen == ("rebound-in-parent" if method == "fork" else "as-imported")
    assert list(executor.map(mul, range(4), range(4), chunksize=2)) == [0, 1, 4, 9]


def test_process_executor_runs_lambdas_and_closures(make_executor):
    executor = make_executor("process", 1)
    k = 5
    assert executor.submit(lambda x: x + k, 1).result(timeout=30) == 6
    assert list(executor.map(lambda a, b: a - b, [5, 6], [1, 1])) == [4, 5]


def test_process_traceback(make_executor):  # CPython: test_traceback
    executor = make_executor("process", 1)
    with pytest.raises(RuntimeError) as info:
        executor.submit(_raise_runtime_error).result(timeout=30)
    assert type(info.value) is RuntimeError
    assert info.value.args == (123,)
    assert "raise RuntimeError(123)  # some comment" in str(info.value.__cause__)


def _raise_runtime_error():
    raise RuntimeError(123)  # some comment


# -- interpreter exit (real scripts in subprocesses) ----------------------------------------
def _run_script(tmp_path, body, *args, timeout=60):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    repo_root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=repo_root,
    )


def _context_arg(kind, method):
    if kind == "thread":
        return ""
    return "" if method is None else f", mp_context=multiprocessing.get_context({method!r})"


EXIT_SCRIPT = """
    import multiprocessing
    import os
    import sys
    import time

    import anypool


    def slow_write(path, i):
        time.sleep(0.1)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{{i}} {{os.getpid()}}\\n".encode())
        os.close(fd)


    if __name__ == "__main__":
        executor = anypool.{cls}(2{context})
        for i in range(6):
            executor.submit(slow_write, sys.argv[1], i)
        {after}
        print("submitted", os.getpid(), flush=True)
        # no shutdown: pending work must still complete at interpreter exit
"""


EXIT_CASES = [
    (kind, None, after)
    for kind in KINDS
    for after in ("pass", "executor.shutdown(wait=False)")  # shutdown(wait=False): gh-83386
] + [("process", method, "pass") for method in START_METHODS]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("kind", "method", "after"), EXIT_CASES)
def test_pending_work_completes_at_interpreter_exit(kind, method, after, tmp_path):
    # CPython: test_interpreter_shutdown and test_hang_gh83386
    out = tmp_path / "out.txt"
    cls = executor_class(kind).__name__
    body = EXIT_SCRIPT.format(cls=cls, context=_context_arg(kind, method), after=after)
    proc = _run_script(tmp_path, body, str(out))
    assert proc.returncode == 0, proc.stderr
    word, pid = proc.stdout.split()
    assert word == "submitted"
    assert proc.stderr == ""
    lines = out.read_text().splitlines()
    assert sorted(int(line.split()[0]) for line in lines) == list(range(6))
    worker_pids = {int(line.split()[1]) for line in lines}
    if kind == "process":
        assert int(pid) not in worker_pids
        for worker in worker_pids:
            assert not _alive(worker), f"worker {worker} outlived its parent"
    else:
        assert worker_pids == {int(pid)}


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_submit_after_interpreter_shutdown(kind, tmp_path):
    # CPython: test_submit_after_interpreter_shutdown
    body = f"""
        import atexit

        import anypool


        @atexit.register
        def run_last():
            try:
                t.submit(id, None)
            except RuntimeError:
                print("runtime-error")


        if __name__ == "__main__":
            t = anypool.{executor_class(kind).__name__}(2)
            t.submit(id, 42).result()
    """
    proc = _run_script(tmp_path, body)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "runtime-error"


def test_cancel_futures_wait_false(tmp_path):  # CPython: test_cancel_futures_wait_false
    body = """
        import time

        import anypool


        def sleep_and_print(t, msg):
            time.sleep(t)
            print(msg, flush=True)


        if __name__ == "__main__":
            t = anypool.ThreadPoolExecutor()
            t.submit(sleep_and_print, 0.1, "apple")
            t.shutdown(wait=False, cancel_futures=True)
    """
    proc = _run_script(tmp_path, body)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.strip() in ("apple", "")
