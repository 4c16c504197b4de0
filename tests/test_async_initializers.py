"""Initializers for coroutine work: an ``async def`` initializer runs (it was called and never
awaited, silently), on the event loop the worker's coroutine tasks then run on, so that what
it makes for that loop (a client session) works in them; a plain initializer that asked
``asyncio.get_event_loop()`` gets the loop a process worker's tasks run on.

Pools come from ``make_pool``, so the autouse leak checks (tests/conftest.py) hold.
"""

from __future__ import annotations

import asyncio

import pytest

import anypool

# -- module level: process workers import these by name --------------------------------------
SESSION: Session | None = None
LOOP: asyncio.AbstractEventLoop | None = None
TICKS = 0


class Session:
    """Bound to the loop it was made on, as aiohttp's ClientSession is."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def get(self, i: int) -> int:
        if asyncio.get_running_loop() is not self.loop:
            raise RuntimeError("attached to a different loop")
        await asyncio.sleep(0.001)
        return i


async def open_session() -> None:
    global SESSION
    SESSION = Session()


async def fetch(i: int) -> int:
    if SESSION is None:
        raise RuntimeError("the async initializer did not run")
    return await SESSION.get(i)


def remember_loop() -> None:
    global LOOP
    LOOP = asyncio.get_event_loop()


async def on_that_loop(i: int) -> int:
    if asyncio.get_running_loop() is not LOOP:
        raise RuntimeError("not the loop the initializer got")
    return i


async def start_ticker() -> None:
    async def tick() -> None:
        global TICKS
        while True:
            TICKS += 1
            await asyncio.sleep(0.005)

    asyncio.get_running_loop().create_task(tick())


async def ticks_seen(_: int) -> int:
    before = TICKS
    await asyncio.sleep(0.1)
    return TICKS - before


async def failing_init() -> None:
    raise ValueError("no credentials")


def session_made(_: int) -> bool:
    return SESSION is not None


def plain_square(x: int) -> int:
    return x * x


# -- tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
def test_an_async_initializer_opens_a_session_the_process_tasks_use(make_pool, start_method):
    pool = make_pool("process", 2, initializer=open_session, start_method=start_method)
    futures = [pool.submit(fetch, i) for i in range(40)]
    assert [f.result(timeout=30) for f in futures] == list(range(40))
    assert list(pool.map(fetch, range(10))) == list(range(10))  # map chunks too


def test_an_async_initializer_on_threads(make_pool):
    # one thread: SESSION is a global, which threads share
    pool = make_pool("thread", 1, initializer=open_session)
    assert [pool.submit(fetch, i).result(timeout=10) for i in range(5)] == list(range(5))


def test_an_async_initializer_inline_from_sync_code(make_pool):
    pool = make_pool("inline", initializer=open_session)
    assert pool.submit(fetch, 7).result() == 7


def test_an_async_initializer_inline_from_async_code_says_why_it_cannot(make_pool):
    pool = make_pool("inline", initializer=open_session)

    async def body() -> None:
        with pytest.raises(RuntimeError, match="already running"):
            pool.submit(fetch, 1)

    asyncio.run(body())


def test_a_plain_initializer_that_got_the_event_loop_shares_it_with_the_tasks(make_pool):
    pool = make_pool("process", 1, initializer=remember_loop)
    futures = [pool.submit(on_that_loop, i) for i in range(10)]
    assert [f.result(timeout=30) for f in futures] == list(range(10))


def test_tasks_an_async_initializer_left_running_keep_running_on_threads(make_pool):
    pool = make_pool("thread", 1, initializer=start_ticker)
    pool.submit(ticks_seen, 0).result(timeout=10)  # a coroutine task ended: no cancel of it
    assert pool.submit(ticks_seen, 0).result(timeout=10) > 3


def test_an_async_initializer_that_raises_breaks_the_pool_as_a_plain_one(make_pool):
    pool = make_pool("process", 1, initializer=failing_init)
    with pytest.raises(anypool.BrokenProcessPool, match="no credentials"):
        pool.submit(plain_square, 2).result(timeout=30)


def test_an_async_initializer_in_the_drop_in_executor():
    with anypool.ProcessPoolExecutor(1, initializer=open_session) as executor:
        assert executor.submit(session_made, 3).result(timeout=30) is True
