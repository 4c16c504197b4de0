"""Contract: bad input gets a clear error naming the problem, on every backend."""

from __future__ import annotations

import re

import pytest

import anypool

from ._tasks import square


@pytest.mark.parametrize("workers", [0, -1, True, False, 1.5, "2"])
def test_bad_workers(backend, workers):
    with pytest.raises(ValueError, match="workers") as info:
        anypool.Pool(backend, workers)
    assert repr(workers) in str(info.value)


def test_workers_keyword_and_default(backend, make_pool):
    assert make_pool(backend, workers=3).workers == 3
    assert make_pool(backend).workers >= 1


@pytest.mark.parametrize("fn", [42, None, "square", [square]])
def test_non_callable_fn(backend, make_pool, fn):
    pool = make_pool(backend, 1)
    with pytest.raises(TypeError, match="callable"):
        pool.submit(fn, 1)
    with pytest.raises(TypeError, match="callable"):
        pool.map(fn, [1, 2])


def test_map_needs_an_iterable(backend, make_pool):
    pool = make_pool(backend, 1)
    with pytest.raises(TypeError, match="iterable"):
        pool.map(square)


def test_non_callable_initializer(backend):
    with pytest.raises(TypeError, match="initializer"):
        anypool.Pool(backend, 1, initializer=5)


def test_unknown_backend_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown backend") as info:
        anypool.Pool("bogus", 1)
    message = str(info.value)
    assert "'bogus'" in message
    for name in ("'thread'", "'process'", "'inline'"):
        assert name in message, f"{name} missing from: {message}"


@pytest.mark.parametrize("timeout", [0, -1, -0.5, True, "1"])
def test_bad_timeout(backend, make_pool, timeout):
    with pytest.raises((ValueError, TypeError), match="timeout"):
        anypool.Pool(backend, 1, timeout=timeout)
    pool = make_pool(backend, 1)
    with pytest.raises((ValueError, TypeError), match="timeout"):
        pool.submit(square, 2, timeout=timeout)
    with pytest.raises((ValueError, TypeError), match="timeout"):
        pool.map(square, [1, 2], timeout=timeout)


@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_bad_window(backend, make_pool, window):
    pool = make_pool(backend, 1)
    with pytest.raises(ValueError, match="window"):
        pool.map(square, [1], window=window)


@pytest.mark.parametrize("order", ["random", "FIFO", None])
def test_bad_order(backend, order):
    with pytest.raises(ValueError, match="order"):
        anypool.Pool(backend, 1, order=order)


@pytest.mark.parametrize("retries", [-1, 1.5, True])
def test_bad_retries(backend, retries):
    with pytest.raises(ValueError, match="retries"):
        anypool.Pool(backend, 1, retries=retries)


def test_a_failed_constructor_leaves_nothing_running(backend, workers_gone):
    with pytest.raises(ValueError):
        anypool.Pool(backend, 0)
    assert workers_gone()


def test_every_backend_the_error_lists_can_be_used(make_pool):
    with pytest.raises(ValueError, match="unknown backend") as info:
        anypool.Pool("bogus", 1)
    listed = re.findall(r"'([a-z]+)'", str(info.value).split("available backends:", 1)[1])
    assert listed
    for name in listed:
        assert make_pool(name, 1).submit(square, 3).result(timeout=30) == 9
