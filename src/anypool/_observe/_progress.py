"""``map(..., progress=True)``: a tqdm bar that counts items as the consumer receives them.

::

    MapIterator._deliver ──on_item──► ProgressHook.on_item ──► bar.update(1)
    ProgressMapIterator (_core._progress): creates the bar at the first next(), closes it when
                         the iteration ends, fails or is closed

The bar lives in the caller's thread and counts delivered items, so it is the
same for every backend (process workers included) and for any chunk size.
Without a length (a generator) it counts up with a rate and no total.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["ProgressHook", "both", "progress_hook"]

R = TypeVar("R")


def _import_tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise ImportError(
            "progress= needs tqdm, which is not installed; "
            "install it with: pip install 'anypool[progress]'"
        ) from exc
    return _bar_class(tqdm)


@functools.cache
def _bar_class(tqdm: Any) -> Any:
    class Bar(tqdm):  # type: ignore[misc]
        # tqdm's monitor thread lives until the interpreter exits (tqdm >= 4.66 no longer
        # stops it with the last bar); it only re-arms dynamic miniters, and these bars
        # use miniters=1, so none is started.
        monitor_interval = 0

    return Bar


def _total(iterables: tuple[Iterable[Any], ...]) -> int | None:
    try:
        return min(len(it) for it in iterables)  # type: ignore[arg-type]
    except TypeError:  # an input without a length: a generator, an iterator
        return None


ItemHook = Callable[[Any, BaseException | None], None]


def both(first: ItemHook | None, second: ItemHook | None) -> ItemHook | None:
    """One ``on_item`` hook that calls two (a user callback and the progress bar)."""
    if first is None or second is None:
        return first or second

    def call_both(value: Any, error: BaseException | None) -> None:
        first(value, error)
        second(value, error)

    return call_both


def progress_hook(
    progress: bool | Mapping[str, Any] | None, iterables: tuple[Iterable[Any], ...]
) -> ProgressHook | None:
    """None when off; otherwise a hook whose bar options come from ``progress``."""
    if progress is None or progress is False:
        return None
    if progress is True:
        options: dict[str, Any] = {}
    elif isinstance(progress, Mapping):
        options = dict(progress)
    else:
        raise TypeError(
            f"progress= must be True, False or a dict of tqdm options, got {progress!r}"
        )
    tqdm_class = _import_tqdm()
    _check_bar_options(tqdm_class, options)
    return ProgressHook(tqdm_class, options, _total(iterables))


def _check_bar_options(tqdm_class: Any, options: Mapping[str, Any]) -> None:
    """A misspelt option fails now: tqdm says so only when it draws, and it does not draw
    where the output is not a terminal, so a typo was silently dropped there."""
    import inspect

    parameters = inspect.signature(tqdm_class.__init__).parameters.values()
    known = {p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD}
    unknown = sorted(set(options) - known - {"self"})
    if unknown:
        raise TypeError(
            f"progress= got tqdm options it does not have: {', '.join(unknown)} "
            f"(tqdm's are: {', '.join(sorted(known - {'self', 'iterable'}))})"
        )


class ProgressHook:
    def __init__(self, tqdm_class: Any, options: dict[str, Any], total: int | None) -> None:
        self._tqdm = tqdm_class
        # tqdm's disable=None hides the bar when the stream is not a terminal; a stream
        # the caller passed is a request to see it, so it is shown there.
        defaults = {
            "total": total,
            "unit": "item",
            "disable": False if "file" in options else None,
            # redraw as soon as mininterval has passed, however bursty the chunks are
            "miniters": 1,
        }
        self._options = {**defaults, **options}
        self._bar: Any = None

    def start(self) -> None:
        if self._bar is None:
            self._bar = self._tqdm(**self._options)

    def on_item(self, value: object, error: BaseException | None) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def advance(self, n: int) -> None:
        """Count ``n`` items at once (``pool.stream`` receives them in batches)."""
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
