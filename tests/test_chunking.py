"""Chunk sizing for map (pure logic): local backends aim at ~20 ms chunks, several per
worker; remote engines (Dask, Ray), where a task costs milliseconds of scheduler time,
aim at ~0.5 s chunks and about one per worker slot of a sized input."""

from __future__ import annotations

from anypool._scheduler._chunking import (
    MAX_CHUNK,
    REMOTE_START,
    REMOTE_TARGET_CHUNK_S,
    TARGET_CHUNK_S,
    make_chunker,
)


def test_local_chunks_start_at_one_and_aim_at_the_local_target():
    chunker = make_chunker("auto", workers=2, total=10_000)
    assert chunker.next_size() == 1
    chunker.observe(1, 0.001)  # 1 ms per item
    assert chunker.next_size() == 8  # grows at most 8x per observation
    for _ in range(3):
        chunker.observe(10, 0.01)
    assert chunker.next_size() == int(TARGET_CHUNK_S / 0.001)


def test_remote_chunks_amortise_the_engines_cost_per_task():
    # 2000 x 50 ms on workers=200: chunks of 2000 / 200 = 10 items of 0.5 s, not single
    # items (about a thousand engine tasks took 2.8-3.5 s on Dask; in chunks, ~1 s)
    chunker = make_chunker("auto", workers=200, total=2000, remote=True)
    assert chunker.next_size() == REMOTE_START
    chunker.observe(REMOTE_START, REMOTE_START * 0.05)
    assert chunker.next_size() == 10  # capped: one chunk per worker slot
    chunker = make_chunker("auto", workers=2, total=100_000, remote=True)
    chunker.observe(8, 8 * 0.001)
    assert chunker.next_size() == 64  # 8x growth towards the target
    for _ in range(3):
        chunker.observe(10, 0.01)
    assert chunker.next_size() == int(REMOTE_TARGET_CHUNK_S / 0.001)


def test_a_fixed_chunksize_is_kept_on_every_backend():
    for remote in (False, True):
        chunker = make_chunker(3, workers=200, total=2000, remote=remote)
        chunker.observe(3, 30.0)
        assert chunker.next_size() == 3


def test_the_cap_follows_a_worker_count_that_changes():
    # auto reports 2 workers until it decides, then its choice's count: a cap read once
    # kept chunks of 200,000 / (4 x 2) after auto chose inline (1 worker), where a fixed
    # inline pool runs MAX_CHUNK
    workers = [2]
    chunker = make_chunker("auto", workers=lambda: workers[0], total=200_000)
    for _ in range(6):
        chunker.observe(1000, 1e-5)  # tiny items: the target allows more than any cap
    assert chunker.next_size() == 25_000
    workers[0] = 1
    assert chunker.next_size() == MAX_CHUNK
    workers[0] = 8
    assert chunker.next_size() == 200_000 // 32
    chunker.observe(1024, 0.01)  # ~10 us items: a 20 ms chunk is 2,048 items
    assert chunker.next_size() == 2048
    workers[0] = 1
    assert chunker.next_size() == 2048  # the cap bounds the size, never sets it
