"""Process backend: every start method is honoured and can run lambdas and closures.

Functions defined in a test (closures, lambdas) are not importable by a worker,
so they must travel by value (cloudpickle); module-level functions travel by
reference. Both must work under "fork", "forkserver" and "spawn".
"""

from __future__ import annotations

import functools
import multiprocessing
import os

import pytest

from . import _tasks
from ._tasks import MarkerError, add, raise_marker, read_marker, square

START_METHODS = [
    m for m in ("fork", "forkserver", "spawn") if m in multiprocessing.get_all_start_methods()
]


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    return request.param


def _make_adder(n):
    def adder(x):
        return x + n

    return adder


def test_lambdas_and_closures_run_under_every_start_method(start_method, make_pool):
    pool = make_pool("process", 2, start_method=start_method)
    captured = {"scale": 3}

    def nested(x):
        return x * captured["scale"]

    assert pool.submit(lambda x, y=1: x + y, 41).result(timeout=30) == 42
    assert pool.submit(_make_adder(10), 5).result(timeout=30) == 15
    assert pool.submit(nested, 4).result(timeout=30) == 12
    assert list(pool.map(lambda x: -x, range(5))) == [0, -1, -2, -3, -4]
    assert list(pool.map(_make_adder(100), range(3), chunksize=2)) == [100, 101, 102]
    assert list(pool.map(lambda a, b: a * b, [1, 2, 3], [4, 5, 6])) == [4, 10, 18]
    assert pool.submit(functools.partial(add, 1), 2).result(timeout=30) == 3


def test_module_level_functions_and_exceptions_under_every_start_method(start_method, make_pool):
    pool = make_pool("process", 1, start_method=start_method)
    assert list(pool.map(square, range(10))) == [x * x for x in range(10)]
    with pytest.raises(MarkerError, match="from a child"):
        pool.submit(raise_marker, "from a child").result(timeout=30)


def test_closure_raising_keeps_its_type(start_method, make_pool):
    pool = make_pool("process", 1, start_method=start_method)

    def failing(x):
        raise KeyError(x)

    with pytest.raises(KeyError) as info:
        pool.submit(failing, "k").result(timeout=30)
    assert info.value.args == ("k",)


def test_workers_are_child_processes(start_method, make_pool):
    pool = make_pool("process", 2, start_method=start_method)
    pids = {pool.submit(os.getpid).result(timeout=30) for _ in range(4)}
    assert os.getpid() not in pids


def test_start_method_is_honoured(start_method, make_pool, monkeypatch):
    # A forked child inherits the parent's memory, so it sees a global the parent
    # rebound at run time; spawn and forkserver children import the module afresh.
    monkeypatch.setattr(_tasks, "MARKER", "rebound-in-parent")
    pool = make_pool("process", 1, start_method=start_method)
    seen = pool.submit(read_marker).result(timeout=30)
    expected = "rebound-in-parent" if start_method == "fork" else "as-imported"
    assert seen == expected


def test_default_start_method_is_not_fork(make_pool, monkeypatch):
    # forking a parent that has threads can deadlock the child, so the default must
    # start workers from a clean interpreter (forkserver or spawn)
    monkeypatch.setattr(_tasks, "MARKER", "rebound-in-parent")
    pool = make_pool("process", 1)
    assert pool.submit(read_marker).result(timeout=30) == "as-imported"


@pytest.mark.parametrize("bad", ["threads", "FORK", ""])
def test_bad_start_method(bad):
    import anypool

    with pytest.raises(ValueError, match="start_method"):
        anypool.Pool("process", 1, start_method=bad)
