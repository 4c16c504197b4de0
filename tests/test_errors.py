"""The exception hierarchy: the tree in ``anypool._errors._exceptions``' docstring is the truth.

Every anypool exception subclasses ``AnyPoolError`` and the stdlib exception that
existing ``except`` clauses already catch, and pickles unchanged (they cross
process boundaries).
"""

from __future__ import annotations

import builtins
import concurrent.futures as cf
import concurrent.futures.process
import concurrent.futures.thread
import importlib
import pickle
import queue
import re

import pytest

import anypool
from anypool._errors import _exceptions

# name -> (anypool parent, stdlib bases); written out so that a wrong edit of the
# docstring is caught as well as a wrong class
EXPECTED = {
    "AnyPoolError": (None, (Exception,)),
    "PoolClosed": ("AnyPoolError", (RuntimeError,)),
    "PoolFull": ("AnyPoolError", (queue.Full,)),
    "CapabilityError": ("AnyPoolError", (ValueError,)),
    "BackendUnavailable": ("AnyPoolError", (ImportError,)),
    "TaskTimeout": ("AnyPoolError", (TimeoutError,)),
    "SerializationError": ("AnyPoolError", (pickle.PicklingError, TypeError)),
    "BrokenPool": ("AnyPoolError", (cf.BrokenExecutor,)),
    "BrokenThreadPool": ("BrokenPool", (concurrent.futures.thread.BrokenThreadPool,)),
    "BrokenProcessPool": ("BrokenPool", (concurrent.futures.process.BrokenProcessPool,)),
    "WorkerCrashed": ("BrokenProcessPool", ()),
    "WorkersCannotStart": ("BrokenProcessPool", ()),
    "TaskUnpicklingError": ("BrokenProcessPool", (anypool.SerializationError,)),
}

_TREE_NODE = re.compile(r"[├└]── (?P<name>\w+)(?: \.+ (?P<note>.*))?$")


def _drawn_tree():
    """(name, parent, 'also X' base or None) for every node of the docstring's tree."""
    nodes = [
        (match.start(), match["name"], match["note"])
        for line in (_exceptions.__doc__ or "").splitlines()
        if (match := _TREE_NODE.search(line))
    ]
    assert nodes, "no tree found in anypool._errors._exceptions' docstring"
    first_column = nodes[0][0]
    stack = ["Exception"]  # stack[level - 1] is the parent of a node at that level
    out = []
    for column, name, note in nodes:
        level = (column - first_column) // 4 + 1
        del stack[level:]
        also = note.split()[1] if note and note.startswith("also ") else None
        out.append((name, stack[-1], also))
        stack.append(name)
    return out


def _resolve(dotted):
    if "." not in dotted:
        return getattr(builtins, dotted)
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def test_the_docstring_draws_every_exception():
    drawn = {name for name, _, _ in _drawn_tree()}
    assert drawn == set(EXPECTED)


@pytest.mark.parametrize(("name", "parent", "also"), _drawn_tree())
def test_classes_match_the_drawn_tree(name, parent, also):
    cls = getattr(anypool, name)
    assert issubclass(cls, getattr(anypool, parent) if parent != "Exception" else Exception)
    if also is not None:
        assert issubclass(cls, _resolve(also)), f"{name} should also be a {also}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hierarchy(name):
    cls = getattr(anypool, name)
    parent, stdlib_bases = EXPECTED[name]
    assert issubclass(cls, anypool.AnyPoolError)
    assert issubclass(cls, Exception)
    if parent is not None:
        assert issubclass(cls, getattr(anypool, parent))
    for base in stdlib_bases:
        assert issubclass(cls, base), f"{name} must also be a {base.__qualname__}"
    assert name in anypool.__all__


def test_existing_except_clauses_catch_them():
    with pytest.raises(RuntimeError):
        raise anypool.PoolClosed("closed")
    with pytest.raises(cf.BrokenExecutor):
        raise anypool.WorkerCrashed("died")
    with pytest.raises(concurrent.futures.process.BrokenProcessPool):
        raise anypool.WorkerCrashed("died")
    with pytest.raises(concurrent.futures.thread.BrokenThreadPool):
        raise anypool.BrokenThreadPool("init failed")
    with pytest.raises(TimeoutError):
        raise anypool.TaskTimeout("slow")
    with pytest.raises(ImportError):
        raise anypool.BackendUnavailable("pip install anypool[dask]")


def test_task_timeout_is_caught_by_futures_timeout_error():
    # code written for concurrent.futures catches cf.TimeoutError (a distinct class on 3.10)
    assert issubclass(anypool.TaskTimeout, cf.TimeoutError)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("protocol", [0, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_pickle_round_trip(name, protocol):
    cls = getattr(anypool, name)
    original = cls(f"{name}: something went wrong")
    copy = pickle.loads(pickle.dumps(original, protocol))
    assert type(copy) is cls
    assert copy.args == original.args
    assert str(copy) == str(original)


def _raise(name, message):
    import anypool

    raise getattr(anypool, name)(message)


def test_every_exception_crosses_a_process_boundary_as_itself(make_pool):
    pool = make_pool("process", 1)
    futures = {name: pool.submit(_raise, name, f"raised {name} in a worker") for name in EXPECTED}
    for name, future in futures.items():
        exc = future.exception(timeout=30)
        assert type(exc) is getattr(anypool, name)
        assert str(exc) == f"raised {name} in a worker"


def _initializer_fails() -> None:
    raise RuntimeError("no credentials")


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_a_broken_pool_gives_each_future_its_own_error(make_pool, backend):
    """One error object shared by every future of a broken pool collected each raise's
    frames on its one traceback: 2,000 futures awaited in gather printed 163 KB."""
    import traceback

    pool = make_pool(backend, 1, initializer=_initializer_fails)
    futures = []
    for i in range(40):
        try:
            futures.append(pool.submit(abs, i))
        except anypool.BrokenPool:
            break  # broken already: submit raises it (a copy each time, too)
    errors = []
    for future in futures:
        try:
            future.result(timeout=30)
        except anypool.BrokenPool as error:
            errors.append(error)
    for _ in range(5):
        try:
            pool.submit(abs, 1)
        except anypool.BrokenPool as error:
            errors.append(error)
    assert len(errors) >= 6
    assert len({id(error) for error in errors}) == len(errors)
    assert all("no credentials" in str(error) for error in errors)
    last = errors[-1]
    assert len(traceback.format_exception(last)) < 40, "".join(traceback.format_exception(last))
