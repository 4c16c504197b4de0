"""Coroutine functions and awaitable futures on the cluster engines (Dask, Ray).

The engine's worker runs the coroutine on an event loop of its own (anypool._core._aio's
CoroutineCall, as on the local backends); the caller awaits the futures and async-
iterates the map as with any pool. Task functions live at module level: the workers
import this module to unpickle them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import anypool


async def async_square(x: int) -> int:
    await asyncio.sleep(0.001)
    return x * x


def _check(pool: anypool.Pool) -> None:
    assert pool.submit(async_square, 3).result(timeout=60) == 9
    assert list(pool.map(async_square, range(6))) == [x * x for x in range(6)]

    async def body() -> None:
        assert await pool.submit(async_square, 4) == 16
        assert [x async for x in pool.map(async_square, range(5))] == [0, 1, 4, 9, 16]

    asyncio.run(body())


@pytest.mark.dask
@pytest.mark.timeout(180)
def test_dask_runs_coroutine_functions_and_is_awaitable(
    make_pool: Any, dask_client: Any, dask_address: str
) -> None:
    _check(make_pool("dask", 2, address=dask_address))


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_ray_runs_coroutine_functions_and_is_awaitable(make_pool: Any, ray_session: None) -> None:
    _check(make_pool("ray", 2))
