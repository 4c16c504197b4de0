"""Named pools and task decorators, in the spirit of ``vthread`` but returning futures.

::

    anypool.named_pool("net", workers=5) ──► registry {"net": Pool} ◄── anypool.join_named("net")
                                            ▲
    @anypool.task(pool="net")               │ looked up at call time
    def fetch(url): ...                     │
    fetch(u) ─► TaskFunction.__call__ ──────┴─► pool submit ─► Future
    fetch.map(urls) ─────────────────────────► pool.map ─► lazy iterator

Named pools live until they are shut down or the interpreter exits (each is
registered with the same exit hook as the backends, so pending work
completes first). A decorated function keeps its signature for type
checkers through ``ParamSpec``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .._core._decorators import TaskFunction, TaskOptions
from .._local._threads import deadline_in, time_left

if TYPE_CHECKING:
    from .._core._pool import Pool

__all__ = ["join_all_named", "join_named", "named_pool", "task"]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_POOL = "default"
_DEFAULT_BACKEND = "thread"  # named pools are vthread's use case: IO-bound work on threads

_registry: dict[str, tuple[Pool, dict[str, Any]]] = {}
_registry_lock = threading.Lock()


# -- the registry -----------------------------------------------------------------------------
def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a pool name must be a non-empty str, got {name!r}")


def _create(name: str, options: dict[str, Any]) -> Pool:
    from .._core._pool import Pool
    from .._local._atexit import register_for_exit

    pool = Pool(**options)
    register_for_exit(pool)
    pool._task_target = functools.partial(_get, name)  # @pool.task follows the name
    _registry[name] = (pool, options)
    return pool


def _conflicts(pool: Pool, created: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    current = {**created, "backend": pool.backend, "workers": pool.workers}
    return [
        f"{key}={value!r} (it has {current[key]!r})" if key in current else f"{key}={value!r}"
        for key, value in asked.items()
        if key not in current or (current[key] != value and not _resized_from(key, value, created))
    ]


def _resized_from(key: str, value: object, created: dict[str, Any]) -> bool:
    """The worker count it was created with, since resized (as the docs recommend): the
    code that created it, asking again with its own options, still gets it."""
    return key == "workers" and "workers" in created and created["workers"] == value


def named_pool(
    name: str = DEFAULT_POOL,
    /,
    backend: str | None = None,
    workers: int | None = None,
    **options: Any,
) -> Pool:
    """The pool called ``name``, created on first use with these options.

    Asking again with no options, or the same ones, returns the same pool
    (after a ``resize``, ``workers=`` may be the size it was created with or
    its size now); asking with different ones is an error (shut it down first,
    or use ``resize`` for the worker count). A named pool that was shut down is
    created afresh. Named pools default to the thread backend.
    """
    _check_name(name)
    asked = dict(options)
    if backend is not None:
        asked["backend"] = backend
    if workers is not None:
        asked["workers"] = workers
    with _registry_lock:
        entry = _registry.get(name)
        if entry is None or entry[0].closed:
            created = {"backend": _DEFAULT_BACKEND, **(entry[1] if entry else {}), **asked}
            return _create(name, created)
        existing, created = entry
        conflicts = _conflicts(existing, created, asked)
    if conflicts:
        raise ValueError(
            f"pool {name!r} already exists as {existing!r}; it cannot be re-created with "
            f"{', '.join(conflicts)} (shut it down first, or call .resize() to change workers)"
        )
    return existing


def _get(name: str) -> Pool:
    with _registry_lock:
        entry = _registry.get(name)
        if entry is not None and not entry[0].closed:
            return entry[0]
    return named_pool(name)


def _named(name: str) -> Pool:
    _check_name(name)
    with _registry_lock:
        entry = _registry.get(name)
    if entry is None:
        known = ", ".join(repr(n) for n in sorted(_registry)) or "none"
        raise ValueError(f"there is no pool named {name!r}; named pools: {known}")
    return entry[0]


def join_named(name: str = DEFAULT_POOL, /, timeout: float | None = None) -> bool:
    """Wait until every task submitted to the named pool has finished (``pool.join()``)."""
    return _named(name).join(timeout)


def join_all_named(timeout: float | None = None) -> bool:
    """``join_named`` on every named pool; False if ``timeout`` seconds passed first."""
    with _registry_lock:
        pools = [entry[0] for entry in _registry.values()]
    deadline = deadline_in(timeout)
    return all(each.join(time_left(deadline)) for each in pools)


def shutdown_all(wait: bool = True) -> None:
    """Shut every named pool down and forget them (tests, and programs that want to)."""
    with _registry_lock:
        pools = [entry[0] for entry in _registry.values()]
        _registry.clear()
    for each in pools:
        each.shutdown(wait=wait)


# -- the decorator ----------------------------------------------------------------------------
@overload
def task(
    fn: Callable[P, R],
    /,
    *,
    pool: Pool | str = DEFAULT_POOL,
    timeout: float | None = None,
    retries: int | None = None,
    priority: float | None = None,
    callback: Callable[[Any, BaseException | None], object] | None = None,
) -> TaskFunction[P, R]: ...
@overload
def task(
    fn: None = None,
    /,
    *,
    pool: Pool | str = DEFAULT_POOL,
    timeout: float | None = None,
    retries: int | None = None,
    priority: float | None = None,
    callback: Callable[[Any, BaseException | None], object] | None = None,
) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...
def task(
    fn: Callable[P, R] | None = None,
    /,
    *,
    pool: Pool | str = DEFAULT_POOL,
    timeout: float | None = None,
    retries: int | None = None,
    priority: float | None = None,
    callback: Callable[[Any, BaseException | None], object] | None = None,
) -> TaskFunction[P, R] | Callable[[Callable[P, R]], TaskFunction[P, R]]:
    """Make calling ``fn`` submit it to a pool (by name or object) and return a Future.

    ``@anypool.task``, ``@anypool.task(pool="net", timeout=5)`` and
    ``anypool.task(fn, pool="net")`` all work. A named pool is looked up when
    the function is called, and created with default options if missing.
    """
    options = TaskOptions(timeout, retries, priority, callback)
    options.check()

    resolve, label = _resolver(pool)

    def decorate(fn: Callable[P, R]) -> TaskFunction[P, R]:
        return TaskFunction(fn, resolve, label, options)

    return decorate if fn is None else decorate(fn)


def _resolver(target: Pool | str) -> tuple[Callable[[], Pool], str]:
    """How a decorated function finds its pool at call time, and how its repr names it."""
    from .._core._pool import Pool

    if isinstance(target, str):
        _check_name(target)
        return functools.partial(_get, target), target
    if not isinstance(target, Pool):
        raise TypeError(f"pool must be a pool name or an anypool.Pool, got {target!r}")
    return (lambda: target), repr(target)
