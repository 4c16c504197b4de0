"""Contract: ``anypool.map``, the one-shot lazy map that owns (and shuts down) its pool."""

from __future__ import annotations

import itertools
import time

import pytest

import anypool
from anypool._core._map import BUFFERED_WINDOWS

from ._tasks import Counted, fail_at, record, recorded, square


def test_oneshot_map_results(backend):
    assert list(anypool.map(square, range(20), backend=backend, workers=2)) == [
        x * x for x in range(20)
    ]


def test_oneshot_map_is_lazy(backend):
    source = Counted(range(10))
    results = anypool.map(square, source, backend=backend, workers=2)
    assert source.pulled == 0, "anypool.map read its input before the first next()"
    assert next(results) == 0
    results.close()


def test_oneshot_map_shuts_its_pool_down_when_exhausted(backend, workers_gone):
    results = anypool.map(square, range(10), backend=backend, workers=2)
    assert list(results) == [x * x for x in range(10)]
    assert workers_gone(), "the pool's workers are still alive after the iterator ended"


def test_oneshot_map_shuts_its_pool_down_when_closed_early(backend, workers_gone):
    source = Counted(itertools.count())
    results = anypool.map(square, source, backend=backend, workers=2, chunksize=1)
    assert list(itertools.islice(results, 5)) == [0, 1, 4, 9, 16]
    results.close()
    pulled = source.pulled
    assert workers_gone(), "the pool's workers are still alive after close()"
    assert source.pulled == pulled, "the input was read after close()"
    # finished chunks may run ahead of the consumer by BUFFERED_WINDOWS windows (of 2 x
    # workers + 1 chunks of 1 item here), so a slow head does not idle the workers
    assert pulled <= 5 + BUFFERED_WINDOWS * (2 * 2 + 1)


def test_oneshot_map_with_statement_and_break(backend, workers_gone):
    with anypool.map(square, itertools.count(), backend=backend, workers=2) as results:
        for value in results:
            if value >= 25:
                break
    assert workers_gone()


def test_oneshot_map_shuts_down_when_an_item_raises(backend, workers_gone):
    results = anypool.map(fail_at, range(10), itertools.repeat(4), backend=backend, workers=2)
    with pytest.raises(ValueError, match="bad item 4"):
        list(results)
    assert workers_gone()


def test_oneshot_map_options(backend):
    got = list(
        anypool.map(
            fail_at,
            range(6),
            itertools.repeat(1),
            backend=backend,
            workers=2,
            ordered=False,
            chunksize=2,
            return_exceptions=True,
        )
    )
    assert sorted(g for g in got if not isinstance(g, Exception)) == [0, 2, 3, 4, 5]
    assert [str(g) for g in got if isinstance(g, Exception)] == ["bad item 1"]


def test_oneshot_map_bad_input_fails_at_once_and_leaks_nothing(backend, workers_gone):
    with pytest.raises(ValueError, match="chunksize"):
        anypool.map(square, [1], backend=backend, chunksize=0)
    with pytest.raises(TypeError, match="callable"):
        anypool.map(42, [1], backend=backend)
    with pytest.raises(ValueError, match="workers"):
        anypool.map(square, [1], backend=backend, workers=0)
    assert workers_gone()


def test_oneshot_map_never_iterated_still_runs_and_shuts_down(backend, tmp_path, workers_gone):
    # dropped at once, never iterated: it runs to the end in the background, then its
    # pool shuts down (issue 10: it used to run nothing, silently)
    path = str(tmp_path / "saved")
    anypool.map(record, itertools.repeat(path), range(5), backend=backend, workers=2)
    deadline = time.monotonic() + 10
    while len(recorded(path)) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(recorded(path)) == [str(i) for i in range(5)]
    assert workers_gone(), "the one-shot pool's workers are still alive"
