"""anypool.pipeline: stages on their own pools, concurrent, bounded, and cleaned up."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator

import pytest

import anypool

pytestmark = pytest.mark.timeout(120)


def double(x: int) -> int:
    return 2 * x


def label(x: int) -> str:
    return f"<{x}>"


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x


def test_items_go_through_every_stage_in_order() -> None:
    out = anypool.pipeline(
        range(50),
        anypool.Stage(double, backend="thread", workers=3),
        anypool.Stage(double, backend="process", workers=2),
        anypool.Stage(label, backend="inline"),
    )
    assert list(out) == [f"<{4 * x}>" for x in range(50)]


def test_plain_callables_are_stages_and_unordered_keeps_every_item() -> None:
    out = anypool.pipeline(range(30), double, label, ordered=False)
    assert sorted(out) == sorted(f"<{2 * x}>" for x in range(30))


def test_stages_run_at_the_same_time() -> None:
    # stage 1's last item waits for stage 2 to have started on the first one: a pipeline
    # that ran its stages one after the other would never get there
    downstream_started = threading.Event()

    def first(x: int) -> int:
        if x == 5:
            assert downstream_started.wait(30), "stage 2 never started during stage 1"
        return x

    def second(x: int) -> int:
        downstream_started.set()
        return x

    out = anypool.pipeline(
        range(6),
        anypool.Stage(first, backend="thread", workers=2, chunksize=1),
        anypool.Stage(second, backend="thread", workers=2, chunksize=1),
    )
    assert list(out) == list(range(6))


def test_an_endless_source_is_read_only_as_far_as_needed(
    workers_gone: Callable[[], bool],
) -> None:
    produced = itertools.count()

    def source() -> Iterator[int]:
        for item in itertools.count():
            next(produced)
            yield item

    out = anypool.pipeline(
        source(),
        anypool.Stage(double, backend="thread", workers=2),
        anypool.Stage(label, backend="thread", workers=2),
    )
    first = list(itertools.islice(out, 20))
    out.close()
    assert first == [f"<{2 * x}>" for x in range(20)]
    assert next(produced) < 2_000  # each stage reads a bounded window ahead, not the source
    assert workers_gone()  # closing the output shut the pipeline's pools down


def test_an_error_reaches_the_consumer_and_stops_the_pipeline(
    workers_gone: Callable[[], bool],
) -> None:
    out = anypool.pipeline(
        range(10),
        anypool.Stage(fail_on_three, backend="process", workers=2),
        anypool.Stage(double, backend="thread", workers=2),
    )
    with pytest.raises(ValueError, match="three is bad"):
        list(out)
    assert workers_gone()


def test_return_exceptions_passes_a_failed_item_through_later_stages() -> None:
    seen: list[int] = []

    def record(x: int) -> int:
        seen.append(x)
        return x * 10

    out = anypool.pipeline(
        range(6),
        anypool.Stage(fail_on_three, backend="process", workers=2),
        anypool.Stage(record, backend="thread", workers=1),
        return_exceptions=True,
    )
    results = list(out)
    assert [r for r in results if not isinstance(r, Exception)] == [0, 10, 20, 40, 50]
    assert isinstance(results[3], ValueError)
    assert str(results[3]) == "three is bad"
    assert sorted(seen) == [0, 1, 2, 4, 5]  # the failed item never reached stage 2


def test_a_failed_item_keeps_its_worker_traceback_through_process_stages() -> None:
    from anypool._wire._pickle import RemoteTraceback

    out = anypool.pipeline(
        range(5),
        anypool.Stage(fail_on_three, backend="process", workers=2),
        anypool.Stage(double, backend="process", workers=2),
        return_exceptions=True,
    )
    results = list(out)
    assert results[:3] + results[4:] == [0, 2, 4, 8]
    assert isinstance(results[3], ValueError)
    assert isinstance(results[3].__cause__, RemoteTraceback)  # pickling would drop it
    assert "fail_on_three" in str(results[3].__cause__)


def test_closing_early_with_return_exceptions_stops_every_stage(
    workers_gone: Callable[[], bool],
) -> None:
    out = anypool.pipeline(
        itertools.count(),
        anypool.Stage(fail_on_three, backend="thread", workers=2),
        anypool.Stage(double, backend="thread", workers=2),
        return_exceptions=True,
    )
    first = list(itertools.islice(out, 5))
    out.close()
    assert [type(x) for x in first] == [int, int, int, ValueError, int]
    assert workers_gone()


def test_a_given_pool_is_used_and_left_running(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    pool = make_pool("thread", 2)
    out = anypool.pipeline(range(5), anypool.Stage(double, pool=pool), label)
    assert list(out) == ["<0>", "<2>", "<4>", "<6>", "<8>"]
    assert pool.submit(double, 21).result(timeout=10) == 42  # not shut down


def test_later_stages_take_items_one_by_one_unless_told_otherwise(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    # an item reaches a later stage as soon as the stage before finishes it, not once a
    # whole chunk of them is ready
    one_by_one = make_pool("thread", 1, timeline=True)
    batched = make_pool("thread", 1, timeline=True)
    out = anypool.pipeline(
        range(40),
        anypool.Stage(double, backend="thread", workers=2),
        anypool.Stage(double, pool=one_by_one),
        anypool.Stage(label, pool=batched, chunksize=10),
    )
    assert list(out) == [f"<{4 * x}>" for x in range(40)]
    assert len(one_by_one.timeline()) == 40  # tasks, not items
    assert len(batched.timeline()) == 4


def test_bad_use_is_a_clear_error(workers_gone: Callable[[], bool]) -> None:
    with pytest.raises(TypeError, match="at least one stage"):
        anypool.pipeline(range(3))
    with pytest.raises(TypeError, match="a stage needs a callable"):
        anypool.pipeline(range(3), 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="set on pipeline"):
        anypool.Stage(double, ordered=False)
    with pytest.raises(ValueError, match="not both"):
        anypool.Stage(double, pool=object(), workers=2)
    with pytest.raises(TypeError, match="chunk_size"):  # a typo in a map option
        anypool.pipeline(
            range(3),
            anypool.Stage(double, backend="thread", workers=2),
            anypool.Stage(double, backend="thread", chunk_size=4),
        )
    assert workers_gone()  # the first stage's pool was shut down again
    assert "double" in repr(anypool.Stage(double, backend="thread"))
