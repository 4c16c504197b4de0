"""The crash table: every point where a call can break, on every way of calling, on every
start method. Each case runs between healthy tasks in one pool: only the faulty call (or
map item) fails, with the right exception and a message that says what happened; every
other task completes; the pool stays usable; nothing leaks (the autouse leak check).
"""

from __future__ import annotations

import os
import re

import pytest
from faultlib import fault, make_spec

import anypool
from anypool._wire._pickle import RemoteTraceback

START_METHODS = ["fork", "forkserver", "spawn"]
# 3.12+ warns that fork() in a multi-threaded process may deadlock; the pool's dispatcher
# is a thread, so asking for fork means accepting that, as the warning says.
FORK_WARNING = "ignore:This process .* is multi-threaded:DeprecationWarning"

CRASH = r"worker process \d+ "
# kind -> (exception type, message pattern)
TABLE: dict[str, tuple[type[BaseException], str]] = {
    "call_pickle": (anypool.SerializationError, r"of type lock.* cannot be pickled"),
    "call_unpickle_raises": (anypool.SerializationError, r"cannot be unpickled in the worker"),
    "call_unpickle_exits": (anypool.WorkerCrashed, CRASH + r"exited with code 3"),
    "task_raises": (ValueError, r"^boom \d+$"),
    "task_exit": (anypool.WorkerCrashed, CRASH + r"exited with code 7"),
    "task_sigkill": (anypool.WorkerCrashed, CRASH + r"was killed by signal 9 \(SIGKILL\)"),
    "task_segfault": (anypool.WorkerCrashed, CRASH + r"was killed by signal 11 \(SIGSEGV\)"),
    "result_pickle": (
        anypool.SerializationError,
        r"result of fault .*type lock.* from the worker process: TypeError: cannot pickle",
    ),
    "result_pickle_exits": (anypool.WorkerCrashed, CRASH + r"exited with code 5"),
    "result_unpickle_parent": (anypool.SerializationError, r"cannot be unpickled in the parent"),
    "exception_unpicklable": (anypool.SerializationError, r"raised UnpicklableError.* cannot be"),
}
HEALTHY = 6  # healthy calls around each fault


def check_error(kind: str, error: BaseException | None) -> None:
    expected_type, pattern = TABLE[kind]
    assert isinstance(error, expected_type), f"{kind}: got {error!r}"
    assert re.search(pattern, str(error)), f"{kind}: message {str(error)!r} !~ {pattern!r}"
    if kind == "task_raises":  # the worker's traceback travels as the cause
        assert isinstance(error.__cause__, RemoteTraceback)
        assert "in fault" in str(error.__cause__)


def specs_around(kind: str) -> list[tuple[str, int, object]]:
    """HEALTHY ok items with the faulty one in the middle (index HEALTHY // 2)."""
    parent = os.getpid()
    middle = HEALTHY // 2
    return [make_spec(kind if i == middle else "ok", i, parent) for i in range(HEALTHY + 1)]


def run_submit(pool: anypool.Pool, kind: str) -> None:
    futures = [pool.submit(fault, spec) for spec in specs_around(kind)]
    for index, future in enumerate(futures):
        if index == HEALTHY // 2:
            check_error(kind, future.exception(timeout=30))
        else:
            assert future.result(timeout=30) == ("ok", index)


def run_map(pool: anypool.Pool, kind: str, ordered: bool, chunksize: int = 1) -> None:
    specs = specs_around(kind)
    outcomes = list(
        pool.map(fault, specs, ordered=ordered, chunksize=chunksize, return_exceptions=True)
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1, f"{kind}: {outcomes}"
    check_error(kind, errors[0])
    healthy = [o for o in outcomes if not isinstance(o, BaseException)]
    expected = [("ok", i) for i in range(len(specs)) if i != HEALTHY // 2]
    assert healthy == expected if ordered else sorted(healthy) == expected
    if ordered:
        assert outcomes[HEALTHY // 2] is errors[0]


def run_case(pool: anypool.Pool, mode: str, kind: str) -> None:
    if mode == "submit":
        run_submit(pool, kind)
    else:
        run_map(pool, kind, ordered=mode == "ordered_map")


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings(FORK_WARNING)
@pytest.mark.parametrize("mode", ["submit", "ordered_map", "unordered_map"])
@pytest.mark.parametrize("start_method", START_METHODS)
def test_crash_table(make_pool, start_method, mode):
    pool = make_pool("process", 2, start_method=start_method)
    failures = []
    for kind in TABLE:
        try:
            run_case(pool, mode, kind)
        except AssertionError as exc:
            failures.append(f"{kind}: {exc}")
    assert not failures, "\n".join(failures)
    # still healthy, and still at full strength
    assert sorted(pool.map(fault, [("ok", i, None) for i in range(20)])) == [
        ("ok", i) for i in range(20)
    ]


# In a chunk of several items, a fault the parent or the worker can pin on one item fails
# only that item (a chunk whose items do not unpickle in the worker has not run, and is run
# again item by item); a crash, or a result that cannot be unpickled in the parent, fails
# the chunk: its other items may have run, and are not run twice.
PER_ITEM = [
    "call_pickle",
    "call_unpickle_raises",
    "task_raises",
    "result_pickle",
    "exception_unpicklable",
]
PER_CHUNK = sorted(set(TABLE) - set(PER_ITEM))


@pytest.mark.parametrize("kind", PER_ITEM)
def test_chunked_map_fails_only_the_faulty_item(make_pool, kind):
    pool = make_pool("process", 2)
    run_map(pool, kind, ordered=True, chunksize=HEALTHY + 1)


@pytest.mark.parametrize("kind", PER_CHUNK)
def test_chunked_map_fails_the_chunk_of_an_item_that_crashes(make_pool, kind):
    pool = make_pool("process", 2)
    size = HEALTHY + 1
    specs = specs_around(kind) + [("ok", i, None) for i in range(size, 2 * size)]
    outcomes = list(pool.map(fault, specs, chunksize=size, return_exceptions=True))
    for outcome in outcomes[:size]:
        check_error(kind, outcome)
    assert outcomes[size:] == [("ok", i) for i in range(size, 2 * size)]


def test_map_without_return_exceptions_raises_at_the_faulty_item(make_pool):
    pool = make_pool("process", 2)
    iterator = pool.map(fault, specs_around("task_segfault"), chunksize=1)
    got = [next(iterator) for _ in range(HEALTHY // 2)]
    assert got == [("ok", i) for i in range(HEALTHY // 2)]
    with pytest.raises(anypool.WorkerCrashed, match="SIGSEGV"):
        next(iterator)
    iterator.close()
    assert pool.submit(fault, ("ok", 1, None)).result(timeout=30) == ("ok", 1)


@pytest.mark.parametrize("kind", sorted(TABLE))
def test_process_pool_executor(kind):
    with anypool.ProcessPoolExecutor(2) as executor:
        specs = specs_around(kind)
        futures = [executor.submit(fault, spec) for spec in specs]
        check_error(kind, futures[HEALTHY // 2].exception(timeout=30))
        others = futures[: HEALTHY // 2] + futures[HEALTHY // 2 + 1 :]
        assert [f.result(timeout=30)[0] for f in others] == ["ok"] * HEALTHY
        # Executor.map raises the item's exception when it is reached (stdlib contract)
        results = executor.map(fault, specs)
        assert [next(results) for _ in range(HEALTHY // 2)] == [
            ("ok", i) for i in range(HEALTHY // 2)
        ]
        with pytest.raises(TABLE[kind][0]):
            next(results)
        assert executor.submit(fault, ("ok", 9, None)).result(timeout=30) == ("ok", 9)


def test_unpicklable_argument_message_names_the_argument(make_pool):
    import threading

    pool = make_pool("process", 1)
    future = pool.submit(fault, ("ok", 0, None), extra=[1, {"key": threading.Lock()}])
    error = future.exception(timeout=5)
    assert isinstance(error, anypool.SerializationError)
    assert "keyword argument 'extra' of type list (its element [1]['key'] of type lock)" in str(
        error
    )


def test_a_function_that_cannot_be_unpickled_fails_every_call_and_only_those(make_pool):
    from faultlib import FunctionThatFailsToUnpickle

    pool = make_pool("process", 1)
    bad = FunctionThatFailsToUnpickle()
    pattern = "function cannot be unpickled in the worker process: ValueError"
    for _ in range(2):  # the second call finds the failure in the worker's function cache
        with pytest.raises(anypool.SerializationError, match=pattern):
            pool.submit(bad, 1).result(timeout=30)
    outcomes = list(pool.map(bad, range(5), chunksize=5, return_exceptions=True))
    assert all(isinstance(o, anypool.SerializationError) for o in outcomes)
    assert pool.submit(fault, ("ok", 1, None)).result(timeout=30) == ("ok", 1)
