"""Contract: ``Pool.submit`` on every backend."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import functools
import traceback

import pytest

import anypool

from ._tasks import MarkerError, add, echo, raise_marker, raise_unpicklable, square


def test_submit_returns_a_stdlib_future_with_the_result(backend, make_pool):
    pool = make_pool(backend, 2)
    future = pool.submit(square, 12)
    assert isinstance(future, cf.Future)
    assert future.result(timeout=10) == 144
    assert future.done()
    assert not future.cancelled()
    assert future.exception() is None


def test_submit_passes_args_and_kwargs(backend, make_pool):
    pool = make_pool(backend, 2)
    args, kwargs = pool.submit(echo, 1, "two", [3], key="value", other=None).result(timeout=10)
    assert args == (1, "two", [3])
    assert kwargs == {"key": "value", "other": None}


def test_submit_positional_only_fn_allows_fn_as_a_keyword_for_the_task(backend, make_pool):
    # `fn` is positional-only in submit, so the task itself may take `fn=` and `self=`
    pool = make_pool(backend, 1)
    assert pool.submit(echo, fn=1, self=2).result(timeout=10) == ((), {"fn": 1, "self": 2})


def test_submit_builtins_partials_lambdas_and_closures(backend, make_pool):
    pool = make_pool(backend, 2)
    offset = 7

    def closure(x):
        return x + offset

    assert pool.submit(pow, 2, 10).result(timeout=10) == 1024
    assert pool.submit(functools.partial(add, 1), 2).result(timeout=10) == 3
    assert pool.submit(lambda x: x * 3, 5).result(timeout=10) == 15
    assert pool.submit(closure, 1).result(timeout=10) == 8


def test_futures_work_with_wait_and_as_completed(backend, make_pool):
    pool = make_pool(backend, 2)
    futures = [pool.submit(square, i) for i in range(10)]
    done, not_done = cf.wait(futures, timeout=10)
    assert done == set(futures)
    assert not not_done
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=10)) == [
        i * i for i in range(10)
    ]


def test_futures_work_with_asyncio_wrap_future(backend, make_pool):
    pool = make_pool(backend, 2)

    async def main():
        return await asyncio.gather(
            *(asyncio.wrap_future(pool.submit(square, i)) for i in range(5))
        )

    assert asyncio.run(main()) == [0, 1, 4, 9, 16]


def test_task_exception_is_reraised_with_its_type_and_worker_traceback(backend, make_pool):
    pool = make_pool(backend, 2)
    future = pool.submit(raise_marker, "boom 42")
    with pytest.raises(MarkerError, match="boom 42") as info:
        future.result(timeout=10)
    assert type(info.value) is MarkerError
    assert info.value.args == ("boom 42",)
    assert isinstance(future.exception(), MarkerError)
    # wherever it ran, the text the user sees names the frame that raised
    text = "".join(traceback.format_exception(type(info.value), info.value, info.tb))
    assert "raise MarkerError(message)  # the worker's frame" in text


def test_builtin_exceptions_keep_type_and_args(backend, make_pool):
    pool = make_pool(backend, 1)
    with pytest.raises(ZeroDivisionError):
        pool.submit(divmod, 1, 0).result(timeout=10)
    with pytest.raises(KeyError) as info:
        pool.submit({}.__getitem__, "missing").result(timeout=10)
    assert info.value.args == ("missing",)


def test_process_exception_carries_the_remote_traceback_as_cause(make_pool):
    pool = make_pool("process", 1)
    with pytest.raises(MarkerError) as info:
        pool.submit(raise_marker, "from the worker").result(timeout=30)
    cause = info.value.__cause__
    assert cause is not None, "the worker's traceback should be attached as __cause__"
    text = str(cause)
    assert "raise_marker" in text
    assert "raise MarkerError(message)  # the worker's frame" in text
    assert "_tasks.py" in text


def test_process_unpicklable_exception_still_fails_the_future_clearly(make_pool):
    pool = make_pool("process", 1)
    with pytest.raises(anypool.AnyPoolError) as info:
        pool.submit(raise_unpicklable, "held a lock").result(timeout=30)
    assert "held a lock" in str(info.value)
    assert "Unpicklable" in str(info.value)
    # the pool survives it
    assert pool.submit(square, 3).result(timeout=30) == 9


def test_many_submits_all_complete(backend, make_pool):
    pool = make_pool(backend, 2)
    futures = [pool.submit(add, i, 1) for i in range(200)]
    assert [f.result(timeout=30) for f in futures] == list(range(1, 201))
