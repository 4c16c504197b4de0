"""map(progress=...): a tqdm bar that counts items, not chunks, on every backend."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable, Iterator

import pytest

import anypool


def double(x: int) -> int:
    return 2 * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def counts(text: str, total: int | None) -> list[int]:
    """Every count the bar printed, in order."""
    if total is None:
        return [int(n) for n in re.findall(r"(\d+)item ", text)]
    return [int(n) for n in re.findall(rf"(\d+)/{total}\b", text)]


def shown_every_update() -> dict[str, object]:
    # redraw at every update, so that the captured text shows each count the bar reached
    return {"file": io.StringIO(), "mininterval": 0, "miniters": 1}


@pytest.mark.parametrize("backend", ["thread", "process", "inline"])
def test_bar_counts_every_item_with_chunks(
    make_pool: Callable[..., anypool.Pool], backend: str
) -> None:
    options = shown_every_update()
    pool = make_pool(backend, 2)
    out = list(pool.map(double, range(100), chunksize=10, progress=options))
    assert out == [2 * x for x in range(100)]
    text = options["file"].getvalue()  # type: ignore[attr-defined]
    seen = counts(text, 100)
    assert seen[-1] == 100
    # item by item: chunks of 10 would only show multiples of 10
    assert set(seen) == set(range(101))


def test_bar_without_a_length(make_pool: Callable[..., anypool.Pool]) -> None:
    def numbers() -> Iterator[int]:
        yield from range(57)

    options = shown_every_update()
    pool = make_pool("thread", 2)
    assert len(list(pool.map(double, numbers(), progress=options))) == 57
    text = options["file"].getvalue()  # type: ignore[attr-defined]
    assert counts(text, None)[-1] == 57
    assert "/" not in text.split("\r")[-1].split("[")[0]  # no total was invented


def test_several_iterables_use_the_shortest_length(make_pool: Callable[..., anypool.Pool]) -> None:
    options = shown_every_update()
    pool = make_pool("thread", 2)
    assert list(pool.map(pow, [2] * 30, range(20), progress=options)) == [2**i for i in range(20)]
    assert counts(options["file"].getvalue(), 20)[-1] == 20  # type: ignore[attr-defined]


def test_failed_items_count_too(make_pool: Callable[..., anypool.Pool]) -> None:
    options = shown_every_update()
    pool = make_pool("thread", 2)
    out: list[object] = list(
        pool.map(fail_on_three, range(10), return_exceptions=True, progress=options)
    )
    assert isinstance(out[3], ValueError)
    assert counts(options["file"].getvalue(), 10)[-1] == 10  # type: ignore[attr-defined]


def test_silent_when_not_a_terminal(
    make_pool: Callable[..., anypool.Pool], capsys: pytest.CaptureFixture[str]
) -> None:
    pool = make_pool("thread", 2)
    assert list(pool.map(double, range(20), progress=True)) == [2 * x for x in range(20)]
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_shown_on_stderr_when_asked(
    make_pool: Callable[..., anypool.Pool], capsys: pytest.CaptureFixture[str]
) -> None:
    pool = make_pool("thread", 2)
    list(pool.map(double, range(20), progress={"disable": False, "desc": "doubling"}))
    err = capsys.readouterr().err
    assert "doubling" in err
    assert "20/20" in err


def test_one_shot_map_progress() -> None:
    options = shown_every_update()
    assert list(anypool.map(double, range(30), backend="thread", progress=options)) == [
        2 * x for x in range(30)
    ]
    assert counts(options["file"].getvalue(), 30)[-1] == 30  # type: ignore[attr-defined]


def test_bar_closes_on_early_close_and_on_error(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", 2)
    options = shown_every_update()
    iterator = pool.map(double, range(1000), progress=options)
    assert [next(iterator) for _ in range(5)] == [0, 2, 4, 6, 8]
    iterator.close()
    from tqdm import tqdm

    assert not tqdm._instances  # closed
    with pytest.raises(ValueError, match="three"):
        list(pool.map(fail_on_three, range(10), progress=shown_every_update()))
    assert not tqdm._instances


def test_unconsumed_map_makes_no_bar(make_pool: Callable[..., anypool.Pool]) -> None:
    options = shown_every_update()
    make_pool("thread", 2).map(double, range(10), progress=options)
    assert options["file"].getvalue() == ""  # type: ignore[attr-defined]


def test_a_misspelt_bar_option_is_refused_where_no_bar_is_drawn(
    make_pool: Callable[..., anypool.Pool],
) -> None:
    # the tests' output is not a terminal: tqdm draws nothing and never saw the typo
    pool = make_pool("thread", 2)
    with pytest.raises(TypeError, match="tqdm options it does not have: bogus"):
        pool.map(abs, [1], progress={"bogus": 1})
    assert list(pool.map(abs, [-1], progress={"desc": "ok", "leave": False})) == [1]


def test_bad_progress_value(make_pool: Callable[..., anypool.Pool]) -> None:
    with pytest.raises(TypeError, match="progress= must be True, False or a dict"):
        make_pool("thread", 1).map(double, range(3), progress="yes")  # type: ignore[arg-type]


def test_missing_tqdm_is_a_clear_error(
    make_pool: Callable[..., anypool.Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r"pip install 'anypool\[progress\]'"):
        make_pool("thread", 1).map(double, range(3), progress=True)


def test_decorated_function_map_has_progress(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", 2)
    doubled = pool.task(double)
    options = shown_every_update()
    assert list(doubled.map(range(25), chunksize=5, progress=options)) == [2 * x for x in range(25)]
    assert counts(options["file"].getvalue(), 25)[-1] == 25  # type: ignore[attr-defined]


def test_progress_and_callback_together(make_pool: Callable[..., anypool.Pool]) -> None:
    seen: list[int] = []
    options = shown_every_update()
    pool = make_pool("thread", 2)
    out = list(pool.map(double, range(12), callback=lambda v, e: seen.append(v), progress=options))
    assert out == seen == [2 * x for x in range(12)]
    assert counts(options["file"].getvalue(), 12)[-1] == 12  # type: ignore[attr-defined]
