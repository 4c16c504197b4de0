"""submit()'s own keywords against the function's: never silently taken as anypool options.

Issue 10: ``pool.submit(urlopen, url, timeout=10)`` made 10 s the task's limit and
``urlopen`` got no timeout. docs/design.md, "Per-task options and the function's own
keywords", records the decision: refuse the ambiguous call, name both meanings and the
spellings that disambiguate; the executors keep the stdlib's pass-through.
"""

from __future__ import annotations

import functools
import urllib.request
from typing import Any

import pytest

import anypool
from anypool._runtime import usable_cpus


def fetch(url: str, timeout: float = 0.0) -> tuple[str, float]:
    return url, timeout


def forward(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return kwargs


def notify(x: int, callback: str = "") -> str:
    return callback


def blocking(x: int, block: bool = False) -> bool:
    return block


def blocking_kwonly(x: int, *, block: bool) -> bool:
    return block


def plain(x: int) -> int:
    return x


def test_a_keyword_that_fn_also_takes_is_refused(make_pool):
    pool = make_pool("thread", 1)
    with pytest.raises(TypeError) as caught:
        pool.submit(fetch, "u", timeout=10)
    message = str(caught.value)
    assert "fetch() also takes timeout=" in message
    assert "anypool option" in message
    assert "functools.partial(fetch, timeout=10)" in message
    assert "pool.task(timeout=10)(fetch)" in message


def test_urlopen_with_timeout_is_refused_before_anything_runs(make_pool):
    pool = make_pool("thread", 1)
    with pytest.raises(TypeError, match="urlopen"):
        pool.submit(urllib.request.urlopen, "http://127.0.0.1:9/", timeout=10)
    assert pool.statistics().tasks_submitted == 0


@pytest.mark.parametrize("fn", [forward, notify])
def test_kwargs_functions_and_callback_are_ambiguous_too(make_pool, fn):
    pool = make_pool("thread", 1)
    with pytest.raises(TypeError, match="ambiguous"):
        pool.submit(fn, 1, callback=lambda value, error: None)


@pytest.mark.parametrize("fn", [blocking, blocking_kwonly])
@pytest.mark.parametrize("value", [True, False, 2.0])
def test_block_is_checked_even_at_its_default_value(make_pool, fn, value):
    # block=True is also submit()'s default: it must not slip through as "not given"
    pool = make_pool("thread", 1)
    with pytest.raises(TypeError, match=r"also takes block="):
        pool.submit(fn, 1, block=value)
    assert pool.submit(functools.partial(fn, block=value), 1).result() == value


def test_each_spelling_that_disambiguates(make_pool):
    pool = make_pool("thread", 1)
    # the function's argument
    assert pool.submit(functools.partial(fetch, timeout=3), "u").result() == ("u", 3)
    # the task option, with every keyword of the call going to the function
    assert pool.task(timeout=5)(fetch)("u", timeout=3).result() == ("u", 3)
    # no clash: the option is the task's
    assert pool.submit(plain, 4, timeout=5, retries=0).result() == 4


def test_executors_keep_the_stdlib_pass_through():
    with anypool.ThreadPoolExecutor(1) as executor:
        assert executor.submit(fetch, "u", timeout=10).result() == ("u", 10)


def test_thread_pool_default_workers_fit_io():
    # the stdlib's ThreadPoolExecutor default, not one thread per CPU
    with anypool.Pool("thread") as pool:
        assert pool.workers == min(32, usable_cpus() + 4)
