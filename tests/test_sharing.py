"""Sharing state with process workers: multiprocessing's synchronized objects through
``initargs`` (the stdlib's documented way), and the pool's own ``Value`` and ``Array``.

multiprocessing's Value, Array and Lock pickle only while a child process starts, by handing
it their file descriptors and semaphores; whether that works depends on the start method, so
the ``initargs`` tests run real scripts under each of them.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool import CapabilityError, PoolClosed, SerializationError
from anypool._sync._base import ThreadPrimitives

START_METHODS = ["fork", "forkserver", "spawn"]
SCRIPT_TIMEOUT_S = 60

INITARGS_SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, sys
    import anypool

    def share(counter, array, lock):
        global COUNTER, ARRAY, LOCK
        COUNTER, ARRAY, LOCK = counter, array, lock

    def bump(i):
        for _ in range(50):
            with COUNTER.get_lock():
                COUNTER.value += 1
        with LOCK:
            ARRAY[i] = i * 10

    def add(value, array, i):
        for _ in range(50):
            with value.get_lock():
                value.value += 1
        array[i] = i + 1

    if __name__ == "__main__":
        method = sys.argv[1]
        ctx = multiprocessing.get_context(method)
        counter, array, lock = ctx.Value("i", 0), ctx.Array("i", 4), ctx.Lock()
        out = {}
        kw = dict(workers=2, start_method=method, initializer=share)
        with anypool.Pool("process", initargs=(counter, array, lock), **kw) as pool:
            for future in [pool.submit(bump, i) for i in range(4)]:
                future.result()
            value, shared = pool.Value("q", 0), pool.Array("d", 4)
            for future in [pool.submit(add, value, shared, i) for i in range(4)]:
                future.result()
        out["initargs"] = [counter.value, list(array)]
        out["pool"] = [value.value, list(shared)]  # still readable once the pool is closed
        # multiprocessing.Value() from the default context (fork before 3.14)
        try:
            default = (multiprocessing.Value("i", 0),)
            anypool.Pool("process", initargs=default, **kw).shutdown()
            out["default_context"] = "accepted"
        except anypool.SerializationError as error:
            out["default_context"] = str(error)
        print(json.dumps(out))
    """
)


@pytest.mark.parametrize("method", START_METHODS)
def test_multiprocessing_objects_reach_workers_through_initargs(
    tmp_path: Path, method: str
) -> None:
    script = tmp_path / "share.py"
    script.write_text(INITARGS_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), method],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr  # no shared memory or semaphore left behind
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # they were refused before ("the initializer cannot be pickled")
    assert out["initargs"] == [200, [0, 10, 20, 30]]
    assert out["pool"] == [200, [1.0, 2.0, 3.0, 4.0]]
    default_method = multiprocessing.get_context().get_start_method()
    if method == "fork" or default_method == method:
        assert out["default_context"] == "accepted"
    else:  # a fork context's semaphore cannot be reopened: say so, and how to fix it
        assert out["default_context"].startswith("initargs[0] (of type Synchronized)")
        assert "'fork' start method's context" in out["default_context"]
        assert "multiprocessing.get_context(" in out["default_context"]


def init_nothing(*args: object) -> None:
    pass


def test_an_initarg_that_cannot_travel_is_named_not_the_initializer() -> None:
    with pytest.raises(SerializationError) as caught:
        anypool.Pool(
            "process",
            workers=1,
            start_method="spawn",
            initializer=init_nothing,
            initargs=(1, threading.Lock()),
        )
    message = str(caught.value)
    assert message.startswith("initargs[1] (of type lock) cannot be sent to the worker")
    assert "init_nothing" not in message


def test_an_open_file_in_initargs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    with open(path, "w") as handle, pytest.raises(SerializationError, match="pass its path"):
        anypool.Pool(
            "process",
            workers=1,
            start_method="forkserver",
            initializer=init_nothing,
            initargs=(handle,),
        )


# -- pool.Value and pool.Array ---------------------------------------------------------------
def add_many(value: Any, times: int) -> int:
    for _ in range(times):
        with value.get_lock():
            value.value += 1
    return int(value.value)


def fill(array: Any, index: int) -> list[float]:
    array[index] = index * 1.5
    return list(array)


@pytest.mark.parametrize("backend", ["thread", "inline", "process"])
def test_pool_value_and_array(make_pool: Callable[..., anypool.Pool], backend: str) -> None:
    pool = make_pool(backend, workers=3)
    value = pool.Value("i", 5)
    futures = [pool.submit(add_many, value, 200) for _ in range(3)]
    for future in futures:
        future.result()
    assert value.value == 605  # every increment kept: the lock is shared
    array = pool.Array("d", 3)
    for future in [pool.submit(fill, array, i) for i in range(3)]:
        future.result()
    assert list(array) == [0.0, 1.5, 3.0]
    assert array[1:] == [1.5, 3.0]
    assert len(array) == 3
    with array.get_lock():  # re-entrant, as multiprocessing's
        array[0] = array[0] + 1
    assert array[0] == 1.0


def char_view(array: Any) -> tuple[list[bytes], bytes, bytes, int]:
    return list(array), array.value, array.raw, len(array)


@pytest.mark.parametrize("backend", ["thread", "inline", "process"])
def test_a_char_array_is_multiprocessings(
    make_pool: Callable[..., anypool.Pool], backend: str
) -> None:
    pool = make_pool(backend, workers=1)
    ours, theirs = pool.Array("c", b"hello"), multiprocessing.Array("c", b"hello")
    for array in (ours, theirs):
        array[1:3] = b"EL"
        array.value = b"hi"  # NUL-terminated: the rest stays
    expected = ([b"h", b"i", b"\x00", b"l", b"o"], b"hi", b"hi\x00lo", 5)
    assert char_view(theirs) == expected
    assert pool.submit(char_view, ours).result(timeout=30) == expected
    ours.raw = theirs.raw = b"abcde"
    assert (ours[0], ours[1:3], ours.value) == (theirs[0], theirs[1:3], theirs.value)
    assert list(pool.Array("c", 2)) == list(multiprocessing.Array("c", 2)) == [b"\x00"] * 2


def test_pool_array_from_contents_and_ctypes(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", workers=1)
    assert list(pool.Array(ctypes.c_int, [3, 1, 2])) == [3, 1, 2]
    assert pool.Array("c", b"abc")[:] == b"abc"
    assert pool.Value(ctypes.c_double, 2.5).value == 2.5
    assert pool.Value("i").value == 0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p: p.Value("x"), ValueError, "typecode must be one of"),
        (lambda p: p.Value(int), ValueError, "ctypes type"),
        (lambda p: p.Array("i", -1), ValueError, "size must be >= 0"),
        (lambda p: p.Array("i", None), TypeError, "size"),
    ],
)
def test_value_and_array_refuse_bad_arguments(
    make_pool: Callable[..., anypool.Pool],
    call: Callable[[anypool.Pool], object],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        call(make_pool("thread", workers=1))


def test_process_value_after_shutdown(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("process", workers=1, start_method="fork")
    value = pool.Value("i", 7)
    pool.shutdown()
    assert value.value == 7  # this process keeps its mapping
    with pytest.raises(PoolClosed):
        pool.Value("i", 0)


def use_value(shared: Any) -> Any:
    return shared.value


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_task_given_a_value_of_a_shut_down_pool(
    make_pool: Callable[..., anypool.Pool], backend: str
) -> None:
    old = make_pool(backend, workers=1, start_method="fork" if backend == "process" else None)
    value, array = old.Value("i", 7), old.Array("c", b"ab")
    old.shutdown()
    pool = make_pool(backend, workers=1)
    if backend == "thread":  # memory of this process: it lives while anything holds it
        assert pool.submit(use_value, value).result(timeout=30) == 7
        return
    for shared in (value, array):  # fails where it is used, and the pool carries on
        error = pool.submit(use_value, shared).exception(timeout=30)
        assert type(error) is PoolClosed, repr(error)
        assert "belonged to a process pool that has been shut down" in str(error)
    assert "pool that has been shut down" in pool.submit(repr, value).result(timeout=30)


def test_backends_without_shared_memory_say_so(make_pool: Callable[..., anypool.Pool]) -> None:
    class NoSharedMemory(ThreadPrimitives):
        Value = None  # as the Dask backend's primitives: no such type in distributed
        Array = None

    pool = make_pool("thread", workers=1)
    pool._coordination._primitives = NoSharedMemory()
    with pytest.raises(CapabilityError, match="has no shared Value"):
        pool.Value("i", 0)
    with pytest.raises(CapabilityError, match="has no shared Array"):
        pool.Array("i", 2)


def test_a_thread_pools_value_is_refused_by_a_process_pool(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    local = make_pool("thread", workers=1).Value("i", 0)
    processes = make_pool("process", workers=1, start_method="fork")
    with pytest.raises(SerializationError, match=r"argument 0 is a Value made by a thread"):
        processes.submit(add_many, local, 1)


def test_backends_without_primitives_say_so(
    make_pool: Callable[..., anypool.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = make_pool("thread", workers=1)

    def no_primitives() -> None:  # as primitives_for() on the Ray backend
        raise CapabilityError("the 'ray' backend has no coordination primitives")

    monkeypatch.setattr(pool._coordination, "factory", no_primitives)
    with pytest.raises(CapabilityError, match="no shared Value: its workers share no memory"):
        pool.Value("i", 0)


EXECUTOR_SCRIPT = textwrap.dedent(
    """
    import multiprocessing
    import anypool

    counter = None

    def init(shared):
        global counter
        counter = shared

    def bump(_):
        with counter.get_lock():
            counter.value += 1

    if __name__ == "__main__":
        shared = multiprocessing.Value("i", 0)  # the stdlib-documented way, default context
        with anypool.ProcessPoolExecutor(2, initializer=init, initargs=(shared,)) as ex:
            list(ex.map(bump, range(100)))
        print(shared.value)
    """
)


@pytest.mark.skipif(
    multiprocessing.get_context().get_start_method() != "fork",
    reason="the default context does not fork here (3.14+, macOS, Windows): no fork-made objects",
)
def test_the_drop_in_executor_takes_a_default_context_value_in_initargs(tmp_path: Path) -> None:
    # concurrent.futures.ProcessPoolExecutor accepts it (it forks); so must the drop-in
    script = tmp_path / "executor_value.py"
    script.write_text(EXECUTOR_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["100"]
