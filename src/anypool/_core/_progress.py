"""The map iterator that owns a progress bar's lifetime (the bar itself: ``_observe._progress``).

::

    Pool.map ─► MapIterator ─► ProgressMapIterator ─► caller
                 on_item ──────► ProgressHook.on_item ─► bar.update(1)
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

from .._observe._progress import ProgressHook
from ._map import MapIterator

__all__ = ["ProgressMapIterator"]

R = TypeVar("R")


class ProgressMapIterator(MapIterator[R]):
    """Drives a MapIterator whose ``on_item`` feeds ``hook``, and owns the bar's lifetime."""

    def __init__(self, inner: MapIterator[R], hook: ProgressHook) -> None:
        self._inner = inner
        self._hook = hook
        self._gen = self._drive()

    def _drive(self) -> Generator[R, None, None]:
        self._hook.start()
        try:
            yield from self._inner
        finally:
            self._inner.close()
            self._hook.close()
