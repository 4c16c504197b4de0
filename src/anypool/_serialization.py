"""Pickling across process boundaries, with errors that say what failed and where.

Plain data takes pickle's C fast path; only what plain pickle refuses
(lambdas, closures, functions defined in ``__main__`` or interactively) goes
through cloudpickle. Functions are pickled once and cached, because ``map``
sends the same function with every chunk.

Exceptions raised in a worker travel as :class:`ExceptionWithTraceback`,
which rebuilds the original exception in the parent with the worker's
formatted traceback attached as ``__cause__`` (CPython's own approach in
``concurrent.futures.process``).
"""

from __future__ import annotations

import pickle
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from ._exceptions import SerializationError

__all__ = [
    "ExceptionWithTraceback",
    "FunctionCache",
    "RemoteTraceback",
    "dumps",
    "dumps_call",
    "wrap_exception",
]

PROTOCOL = pickle.HIGHEST_PROTOCOL


def _cloudpickle_dumps(obj: Any) -> bytes:
    import cloudpickle

    data: bytes = cloudpickle.dumps(obj, protocol=PROTOCOL)
    return data


def dumps(obj: Any, what: str) -> bytes:
    """Pickle ``obj``, falling back to cloudpickle; ``what`` names it in the error."""
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        pass  # retried below with cloudpickle, which handles lambdas and closures
    try:
        return _cloudpickle_dumps(obj)
    except Exception as exc:
        raise SerializationError(
            f"{what} cannot be pickled to send it to another process: {type(exc).__name__}: {exc}"
        ) from exc


def _locate(fn: Callable[..., Any], args: Any, kwargs: dict[str, Any], chunk: bool) -> str:
    """Name the first argument that fails to pickle, for the error message."""
    named = [(f"item {i}" if chunk else f"positional argument {i}", a) for i, a in enumerate(args)]
    named += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, value in named:
        try:
            dumps(value, label)
        except SerializationError:
            return f"{label} of type {type(value).__qualname__}"
    return "the arguments"


def dumps_call(fn: Callable[..., Any], args: Any, kwargs: dict[str, Any], chunk: bool) -> bytes:
    """Pickle a call's arguments (the function travels separately, see FunctionCache)."""
    try:
        return pickle.dumps((args, kwargs), PROTOCOL)
    except Exception:
        pass
    try:
        return _cloudpickle_dumps((args, kwargs))
    except Exception as exc:
        where = _locate(fn, args, kwargs, chunk)
        raise SerializationError(
            f"{where} in a call of {_name(fn)} cannot be pickled to send it to a "
            f"worker process: {type(exc).__name__}: {exc}"
        ) from exc


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _dumps_function(fn: Callable[..., Any]) -> bytes:
    """Functions always go through cloudpickle: plain pickle would send a function
    defined in ``__main__`` by reference, which a spawned worker cannot resolve when
    the program has no file (``python -c``, notebooks, the REPL). cloudpickle still
    sends importable functions by reference, and the cache makes the cost once per map."""
    try:
        return _cloudpickle_dumps(fn)
    except Exception as exc:
        raise SerializationError(
            f"the function {_name(fn)} cannot be pickled to send it to a worker process: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


class FunctionCache:
    """Pickled functions by identity, each with a stable id workers can cache by.

    Entries die with their function (weak keys); callables that refuse weak
    references are pickled every time.
    """

    def __init__(self) -> None:
        self._blobs: weakref.WeakKeyDictionary[Any, tuple[int, bytes]] = weakref.WeakKeyDictionary()
        self._next_id = 0

    def get(self, fn: Callable[..., Any]) -> tuple[int, bytes]:
        try:
            entry = self._blobs.get(fn)
        except TypeError:  # not weak-referenceable or not hashable
            entry = None
        if entry is None:
            entry = (self._new_id(), _dumps_function(fn))
            try:
                self._blobs[fn] = entry
            except TypeError:
                pass
        return entry

    def _new_id(self) -> int:
        # ids are never reused, so a worker's cache can never confuse two functions
        self._next_id += 1
        return self._next_id


class RemoteTraceback(Exception):
    """The worker's formatted traceback, attached as ``__cause__`` of a re-raised exception."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _rebuild(exc: BaseException, tb: str) -> BaseException:
    exc.__cause__ = RemoteTraceback(tb)
    return exc


class ExceptionWithTraceback:
    """Pickles as the original exception with the remote traceback text as its cause."""

    def __init__(self, exc: BaseException, tb: str) -> None:
        self.exc = exc
        self.tb = tb

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.exc, self.tb)


def wrap_exception(exc: BaseException) -> Any:
    """Prepare a worker-side exception for the trip home; never fails to pickle."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    tb = f'\n"""\n{tb}"""'
    try:
        pickle.loads(pickle.dumps(exc, PROTOCOL))
    except Exception as pickling_error:
        replacement = SerializationError(
            f"the task raised {type(exc).__qualname__}: {exc}, which cannot be pickled "
            f"to send it back ({type(pickling_error).__name__}: {pickling_error})"
        )
        return ExceptionWithTraceback(replacement, tb)
    exc.__traceback__ = None  # frames do not pickle; their text travels in tb
    return ExceptionWithTraceback(exc, tb)
