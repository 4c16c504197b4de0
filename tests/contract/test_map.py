"""Contract: ``Pool.map`` on every backend — lazy, bounded, ordered or not, chunked."""

from __future__ import annotations

import inspect
import itertools
import operator
import time
import warnings
from collections import Counter

import pytest

import anypool
from anypool._scheduler._chunking import MIN_READ_AHEAD

from ._tasks import (
    Counted,
    add,
    exit_at,
    fail_at,
    identity,
    item_and_worker,
    record,
    record_or_fail,
    recorded,
    sleep_then,
    slow_whoami,
    square,
    timed_item,
)

CHUNKSIZES = [1, 3, 7, 100, "auto"]


# -- results -------------------------------------------------------------------------------
@pytest.mark.parametrize("chunksize", CHUNKSIZES)
def test_map_ordered_matches_builtin_map(backend, make_pool, chunksize):
    pool = make_pool(backend, 2)
    data = list(range(50))
    assert list(pool.map(square, data, chunksize=chunksize)) == [x * x for x in data]


@pytest.mark.parametrize("chunksize", CHUNKSIZES)
def test_map_input_without_len(backend, make_pool, chunksize):
    pool = make_pool(backend, 2)
    results = pool.map(square, (x for x in range(300)), chunksize=chunksize)
    assert list(results) == [x * x for x in range(300)]


@pytest.mark.parametrize("chunksize", CHUNKSIZES)
def test_map_unordered_yields_the_same_multiset(backend, make_pool, chunksize):
    pool = make_pool(backend, 2)
    data = [i % 17 for i in range(200)]  # duplicates on purpose: a multiset, not a set
    got = list(pool.map(square, data, ordered=False, chunksize=chunksize))
    assert Counter(got) == Counter(x * x for x in data)


def _warm_up(pool, workers):
    """Make sure `workers` distinct workers are up, so timing-based order checks are fair."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        futures = [pool.submit(slow_whoami, 0.2) for _ in range(workers)]
        seen = {f.result(timeout=20) for f in futures}
        if len(seen) == workers:
            return
    pytest.fail(f"{pool!r} never ran {workers} tasks at once")


def test_map_unordered_yields_in_completion_order(backend, make_pool):
    pool = make_pool(backend, 2)
    delays, labels = [0.4, 0.0], ["slow", "fast"]
    if pool.capabilities.runs_in_caller:
        # one item at a time in the caller: completion order *is* input order
        assert list(pool.map(sleep_then, [0.0, 0.0], labels, ordered=False)) == labels
        return
    _warm_up(pool, 2)
    unordered = list(pool.map(sleep_then, delays, labels, ordered=False, chunksize=1))
    assert unordered == ["fast", "slow"]
    ordered = list(pool.map(sleep_then, delays, labels, ordered=True, chunksize=1))
    assert ordered == ["slow", "fast"]


def test_map_several_iterables_zip_and_shortest_wins(backend, make_pool):
    pool = make_pool(backend, 2)
    assert list(pool.map(pow, [2, 3, 4], [5, 6])) == [32, 729]
    assert list(pool.map(add, [1, 2, 3], [10, 20, 30, 40, 50])) == [11, 22, 33]
    # an endless iterable zipped with a finite one stops with the finite one
    assert list(pool.map(operator.add, itertools.count(), [10, 20, 30])) == [10, 21, 32]
    assert list(pool.map(add, [1, 2], [3, 4], ordered=False, chunksize=1)) in ([4, 6], [6, 4])


@pytest.mark.parametrize("ordered", [True, False])
def test_map_empty_input(backend, make_pool, ordered):
    pool = make_pool(backend, 2)
    assert list(pool.map(square, [], ordered=ordered)) == []
    assert list(pool.map(square, iter(()), ordered=ordered)) == []
    assert list(pool.map(add, [], [1, 2], ordered=ordered)) == []


def test_map_result_iterator_protocol(backend, make_pool):
    pool = make_pool(backend, 2)
    results = pool.map(square, [1, 2, 3])
    assert iter(results) is results
    assert next(results) == 1
    assert list(results) == [4, 9]
    with pytest.raises(StopIteration):
        next(results)


def test_map_is_lazy_nothing_is_pulled_before_the_first_next(backend, make_pool):
    pool = make_pool(backend, 2)
    source = Counted(range(100))
    results = pool.map(square, source)
    assert source.pulled == 0
    assert next(results) == 0
    results.close()


# -- chunking ----------------------------------------------------------------------------
@pytest.mark.parametrize("chunksize", [2, 5])
def test_fixed_chunksize_runs_each_chunk_on_one_worker(backend, make_pool, chunksize):
    pool = make_pool(backend, 2)
    if pool.capabilities.remote:
        pytest.skip("worker identity (pid, thread) is only defined for the local backends")
    results = list(pool.map(item_and_worker, range(40), chunksize=chunksize))
    assert [item for item, _ in results] == list(range(40))
    for start in range(0, 40, chunksize):
        workers = {worker for _, worker in results[start : start + chunksize]}
        assert len(workers) == 1, f"chunk at {start} ran on {workers}"


@pytest.mark.parametrize("chunksize", [2, 5])
def test_fixed_chunksize_runs_a_chunks_items_one_after_another(backend, make_pool, chunksize):
    # a chunk is one unit of work: its items never overlap in time, and run in input order
    pool = make_pool(backend, 2)
    results = list(pool.map(timed_item, range(20), itertools.repeat(0.01), chunksize=chunksize))
    assert [item for item, _, _ in results] == list(range(20))
    for start in range(0, 20, chunksize):
        chunk = results[start : start + chunksize]
        for (_, _, end), (item, begin, _) in itertools.pairwise(chunk):
            assert end <= begin, f"item {item} started before the previous item of its chunk ended"


@pytest.mark.parametrize("bad", [0, -2, 1.5, "big", True, None])
def test_bad_chunksize_is_rejected_when_map_is_called(backend, make_pool, bad):
    pool = make_pool(backend, 1)
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(square, [1, 2], chunksize=bad)


# -- bounded consumption of endless input ------------------------------------------------
@pytest.mark.parametrize("window", [1, 4])
def test_endless_generator_is_read_only_a_window_ahead(backend, make_pool, window):
    pool = make_pool(backend, 2)
    source = Counted(itertools.count())
    results = pool.map(square, source, chunksize=1, window=window)
    taken = list(itertools.islice(results, 10))
    results.close()
    assert taken == [i * i for i in range(10)]
    assert 10 <= source.pulled <= 10 + window, f"pulled {source.pulled} items"
    pulled_at_close = source.pulled
    time.sleep(0.1)
    assert source.pulled == pulled_at_close, "the input was read after close()"


def test_endless_generator_with_auto_chunks_stays_bounded(backend, make_pool):
    pool = make_pool(backend, 2)
    source = Counted(itertools.count())
    window = 3
    results = pool.map(identity, source, window=window)  # chunksize="auto"
    taken = list(itertools.islice(results, 500))
    results.close()
    assert taken == list(range(500))
    # an unsized input is read at most window * (MIN_READ_AHEAD + items taken) ahead
    bound = 500 + window * (MIN_READ_AHEAD + 500)
    assert source.pulled <= bound, f"pulled {source.pulled} items, bound {bound}"


def test_endless_generator_unordered_taken_partially(backend, make_pool):
    pool = make_pool(backend, 2)
    source = Counted(itertools.count())
    with pool.map(square, source, ordered=False, chunksize=2, window=3) as results:
        taken = list(itertools.islice(results, 20))
    assert len(taken) == 20
    assert len(set(taken)) == 20
    assert all(x in {i * i for i in range(source.pulled)} for x in taken)
    assert source.pulled <= 20 + 3 * 2


# -- exceptions mid-stream -----------------------------------------------------------------
@pytest.mark.parametrize("chunksize", [1, 2, 5, "auto"])
def test_exception_surfaces_at_its_item(backend, make_pool, chunksize):
    pool = make_pool(backend, 2)
    results = pool.map(fail_at, range(8), itertools.repeat(3), chunksize=chunksize)
    delivered = [next(results) for _ in range(3)]
    assert delivered == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(results)
    with pytest.raises(StopIteration):  # the iterator is finished, like a generator that raised
        next(results)


@pytest.mark.parametrize("chunksize", [1, 3, "auto"])
def test_return_exceptions_yields_the_exception_in_place(backend, make_pool, chunksize):
    pool = make_pool(backend, 2)
    results = pool.map(
        fail_at, range(8), itertools.repeat(3), chunksize=chunksize, return_exceptions=True
    )
    got = list(results)
    assert got[:3] == [0, 1, 2]
    assert isinstance(got[3], ValueError)
    assert str(got[3]) == "bad item 3"
    assert got[4:] == [4, 5, 6, 7]


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("chunksize", [1, 4])
def test_a_tasks_base_exception_fails_only_its_item(backend, make_pool, ordered, chunksize):
    # SystemExit raised by a task is that item's outcome, as with the stdlib's futures: it
    # must not end the map (and lose the other items) in the parent
    pool = make_pool(backend, 2)
    got = list(
        pool.map(
            exit_at,
            range(8),
            itertools.repeat(2),
            chunksize=chunksize,
            ordered=ordered,
            return_exceptions=True,
        )
    )
    errors = [g for g in got if isinstance(g, BaseException)]
    assert [type(e) for e in errors] == [SystemExit]
    if backend != "dask":  # Dask rebuilds a task's exception without its arguments
        assert errors[0].code == "exit at item 2"
    assert sorted(g for g in got if not isinstance(g, BaseException)) == [0, 1, 3, 4, 5, 6, 7]


def test_return_exceptions_unordered(backend, make_pool):
    pool = make_pool(backend, 2)
    got = list(
        pool.map(fail_at, range(6), itertools.repeat(2), ordered=False, return_exceptions=True)
    )
    errors = [g for g in got if isinstance(g, BaseException)]
    assert len(errors) == 1
    assert str(errors[0]) == "bad item 2"
    assert sorted(g for g in got if not isinstance(g, BaseException)) == [0, 1, 3, 4, 5]


def test_exception_in_the_input_iterator_reaches_the_consumer(backend, make_pool):
    pool = make_pool(backend, 2)

    def source():
        yield 1
        yield 2
        raise LookupError("input broke")

    results = pool.map(square, source(), chunksize=1)
    with pytest.raises(LookupError, match="input broke"):
        list(results)


# -- early close ---------------------------------------------------------------------------
def _bound_after_close(pool, taken, workers, window):
    """How many items may have run once the consumer, having reached `taken` items, stops."""
    if pool.capabilities.runs_in_caller:
        # inline runs an item only when the consumer asks for it (docs/design.md)
        return taken
    # at most one item running and one handed to each worker when the stream stopped;
    # everything else still queued must have been cancelled
    return taken + 2 * workers


def _delay(pool):
    """Per-item run time: long enough that most of the window is still queued at close."""
    return 0.01 if pool.capabilities.runs_in_caller else 0.1


def test_early_close_cancels_work_that_has_not_started(backend, make_pool, tmp_path):
    log = str(tmp_path / "ran.txt")
    workers, window = 1, 8
    pool = make_pool(backend, workers)
    delay = itertools.repeat(_delay(pool))
    results = pool.map(
        record, itertools.repeat(log), range(1000), delay, chunksize=1, window=window
    )
    assert next(results) == 0
    results.close()
    pool.shutdown(wait=True)  # let whatever was running finish before counting
    ran = [int(x) for x in recorded(log)]
    bound = _bound_after_close(pool, 1, workers, window)
    assert sorted(ran) == list(range(len(ran)))
    assert 1 <= len(ran) <= bound, f"{len(ran)} items ran after close; at most {bound} expected"
    with pytest.raises(StopIteration):
        next(results)


def test_closing_via_context_manager_and_break(backend, make_pool, tmp_path):
    log = str(tmp_path / "ran.txt")
    pool = make_pool(backend, 1)
    source = Counted(range(1000))
    with pool.map(record, itertools.repeat(log), source, chunksize=1, window=4) as results:
        for value in results:
            if value == 2:
                break
    pool.shutdown(wait=True)
    assert source.pulled <= 3 + 4
    assert len(recorded(log)) <= source.pulled


def test_exception_cancels_the_rest_of_the_stream(backend, make_pool, tmp_path):
    log = str(tmp_path / "ran.txt")
    workers, window = 1, 8
    pool = make_pool(backend, workers)
    delay, bad = itertools.repeat(_delay(pool)), itertools.repeat(1)
    results = pool.map(
        record_or_fail, itertools.repeat(log), range(1000), bad, delay, chunksize=1, window=window
    )
    assert next(results) == 0
    with pytest.raises(ValueError, match="bad item 1"):
        next(results)
    pool.shutdown(wait=True)
    ran = sorted(int(x) for x in recorded(log))
    bound = _bound_after_close(pool, 2, workers, window)
    assert ran == list(range(len(ran)))
    assert 2 <= len(ran) <= bound, f"{len(ran)} items ran after the exception; at most {bound}"


def test_inline_map_runs_each_item_only_when_the_consumer_reaches_it(make_pool, tmp_path):
    # the inline backend is for debugging: map behaves like the builtin, one item at a time
    log = str(tmp_path / "ran.txt")
    pool = make_pool("inline")
    results = pool.map(record, itertools.repeat(log), range(100), chunksize=1)
    for expected in range(5):
        assert next(results) == expected
        assert recorded(log) == [str(i) for i in range(expected + 1)]
    results.close()


# -- a map that is never iterated (docs/design.md) ------------------------------------------
def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def _paths(tmp_path, name="saved"):
    return itertools.repeat(str(tmp_path / name))


def test_never_iterated_map_runs_before_the_with_block_exits(backend, tmp_path):
    # `with Pool() as pool: pool.map(save, paths)`: the stdlib runs every item; anypool
    # used to run none. The iterator is garbage-collected at once (a statement).
    with anypool.Pool(backend, 2) as pool:
        pool.map(record, _paths(tmp_path), range(5))
    assert sorted(recorded(tmp_path / "saved")) == [str(i) for i in range(5)]


def test_never_iterated_map_keeps_its_results_for_after_the_with_block(backend):
    with anypool.Pool(backend, 2) as pool:
        results = pool.map(square, range(5))
    assert list(results) == [0, 1, 4, 9, 16]  # as with Executor.map


def test_dropped_map_of_a_long_lived_pool_runs_in_the_background(backend, make_pool, tmp_path):
    pool = make_pool(backend, 2)
    pool.map(record, _paths(tmp_path), range(5))  # never iterated, dropped at once
    assert wait_for(lambda: len(recorded(tmp_path / "saved")) == 5), recorded(tmp_path / "saved")


def test_never_iterated_map_warns_about_failed_items(backend, tmp_path):
    warned = pytest.warns(RuntimeWarning, match=r"map\(record_or_fail\) was never iterated.*1 of")
    with warned as caught, anypool.Pool(backend, 2) as pool:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        pool.map(record_or_fail, _paths(tmp_path), range(5), itertools.repeat(2))
    assert sorted(recorded(tmp_path / "saved")) == [str(i) for i in range(5)]
    # reported at the map call, the line to fix, not inside anypool
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line)]


def test_closed_map_does_not_run_at_shutdown(backend, tmp_path):
    with anypool.Pool(backend, 2) as pool:
        pool.map(record, _paths(tmp_path), range(5)).close()
    assert recorded(tmp_path / "saved") == []


def test_cancel_pending_drops_a_never_iterated_map_with_a_warning(backend, tmp_path):
    pool = anypool.Pool(backend, 2)
    results = pool.map(record, _paths(tmp_path), range(5))
    with pytest.warns(RuntimeWarning, match="never iterated.*did not run"):
        pool.shutdown(cancel_pending=True)
    assert recorded(tmp_path / "saved") == []
    assert list(results) == []


def test_a_background_map_cut_short_by_a_kill_says_so_once(backend, make_pool):
    # Ctrl-C while shutdown() drains: the pool stops under a map that runs in the
    # background; one warning says its input did not all run (not a PoolClosed traceback)
    pool = make_pool(backend, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool.map(sleep_then, itertools.repeat(0.05), range(1000), chunksize=1)  # dropped
        time.sleep(0.2)
        pool._stop(wait=True, cancel_pending=True, kill_running=True)  # as the Ctrl-C path
        assert wait_for(lambda: any("never iterated" in str(w.message) for w in caught))
        time.sleep(0.1)
    messages = [str(w.message) for w in caught if "never iterated" in str(w.message)]
    assert len(messages) == 1, messages
    assert "shut down while it ran in the background" in messages[0]
    assert "PoolClosed" not in messages[0]


def test_endless_never_iterated_map_warns_while_shutdown_waits(backend, monkeypatch):
    import anypool._core._drain

    monkeypatch.setattr(anypool._core._drain, "ENDLESS_WARNING_S", 0.2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def endless():
            deadline = time.monotonic() + 30
            for i in itertools.count():  # ends only once shutdown() said it waits on it
                if time.monotonic() > deadline or any("endless" in str(w.message) for w in caught):
                    return
                yield i

        pool = anypool.Pool(backend, 2)
        results = pool.map(square, endless())
        pool.shutdown()
    assert any("an endless input never ends" in str(w.message) for w in caught)
    assert next(results) == 0
