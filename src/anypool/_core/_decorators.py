"""What ``@pool.task`` and ``@anypool.task`` return: a function whose calls are submitted.

::

    fn(*args) ─► TaskFunction.__call__ ─► resolve() ─► Pool._submit_call ─► Future
    fn.map(xs) ────────────────────────► resolve() ─► Pool.map ─► lazy iterator

The engine owns this class so that ``Pool.task`` needs nothing from the front ends;
``anypool.task`` (named pools) builds the same class with a resolver that looks its
pool up by name at each call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

if TYPE_CHECKING:
    from ._map import MapIterator
    from ._pool import Pool

__all__ = ["TaskFunction", "TaskOptions"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskOptions:
    """Per-call options a decorator applies to every call (None: the pool's default)."""

    timeout: float | None = None
    retries: int | None = None
    priority: float | None = None
    callback: Callable[[Any, BaseException | None], object] | None = None

    def check(self) -> None:
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable or None, got {self.callback!r}")


class TaskFunction(Generic[P, R]):
    """A function whose calls are submitted to a pool; what ``@anypool.task`` returns.

    Calling it returns a :class:`concurrent.futures.Future`; ``.map(iterable)``
    maps it lazily; ``__wrapped__`` is the plain function.
    """

    def __init__(
        self, fn: Callable[P, R], pool: Callable[[], Pool], label: str, options: TaskOptions
    ) -> None:
        # ``pool`` is called at each call: a named pool is looked up (or re-created) then,
        # which is what lets the front end's registry stay out of the engine.
        if not callable(fn):
            raise TypeError(f"task() needs a callable, got {type(fn).__name__} {fn!r}")
        functools.update_wrapper(self, fn)
        self.__wrapped__ = fn
        self._resolve = pool
        self._label = label
        self._options = options

    @property
    def pool(self) -> Pool:
        """The pool calls go to (a named pool is looked up, or created, now)."""
        return self._resolve()

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        return self.pool._submit_call(self.__wrapped__, args, kwargs, self._options)

    def map(self, *iterables: Iterable[Any], **options: Any) -> MapIterator[R]:
        """``pool.map(fn, *iterables, **options)``, with the decorator's options as defaults."""
        defaults = {
            "timeout": self._options.timeout,
            "retries": self._options.retries,
            "priority": self._options.priority,
            "callback": self._options.callback,
        }
        return self.pool.map(self.__wrapped__, *iterables, **{**defaults, **options})

    def __repr__(self) -> str:
        return f"<anypool task {self.__wrapped__.__qualname__} on {self._label}>"
