"""Pickling across process boundaries, with errors that say what failed and where.

Plain data takes pickle's C fast path; only what plain pickle refuses
(lambdas, closures, functions defined in ``__main__`` or interactively) goes
through cloudpickle. Functions are pickled once and cached, because ``map``
sends the same function with every chunk.

Exceptions raised in a worker travel as :class:`ExceptionWithTraceback`,
which rebuilds the original exception in the parent with the worker's
formatted traceback attached as ``__cause__`` (CPython's own approach in
``concurrent.futures.process``); one that would not survive the trip is
replaced by a :class:`~anypool.SerializationError` carrying its text.

When pickling fails, the error says where: the argument, and the element inside
it (``its element [1]['key'] of type lock``). A ``map`` chunk whose items do not
pickle together is pickled without the bad items, which fail alone.
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
    "cloudpickle_dumps",
    "dumps",
    "dumps_call",
    "dumps_chunk",
    "wrap_exception",
]

PROTOCOL = pickle.HIGHEST_PROTOCOL


def cloudpickle_dumps(obj: Any) -> bytes:
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
        return cloudpickle_dumps(obj)
    except Exception as exc:
        raise SerializationError(
            f"{what} cannot be pickled to send it to another process: {type(exc).__name__}: {exc}"
        ) from exc


# How deep, and how many elements per container, an error message looks for the part of an
# argument that does not pickle; this runs only after pickling failed, but must stay cheap.
_SEARCH_DEPTH = 3
_SEARCH_WIDTH = 1000


def _pickles(value: Any) -> bool:
    return dumps_or_none(value)[1] is None


def _parts(value: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, (list, tuple)):
        return list(enumerate(value[:_SEARCH_WIDTH]))
    if isinstance(value, dict):
        return list(value.items())[:_SEARCH_WIDTH]
    return []


def _describe(label: str, value: Any) -> str:
    """``label`` and type of a value that does not pickle, naming the part inside it that
    fails: "positional argument 1 of type list (its element [2] of type lock)"."""
    text = f"{label} of type {type(value).__qualname__}"
    path = ""
    for _ in range(_SEARCH_DEPTH):
        inner = next(((k, v) for k, v in _parts(value) if not _pickles(v)), None)
        if inner is None:
            break
        path += f"[{inner[0]!r}]"
        value = inner[1]
    if path:
        text += f" (its element {path} of type {type(value).__qualname__})"
    return text


def _locate(args: Any, kwargs: dict[str, Any]) -> str:
    """Name the first argument that fails to pickle, for the error message."""
    named = [(f"positional argument {i}", a) for i, a in enumerate(args)]
    named += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, value in named:
        if not _pickles(value):
            return _describe(label, value)
    return "the arguments"


def _locate_in_item(item: Any, star: bool) -> str:
    """Name a map item that fails to pickle (and, for several iterables, which argument)."""
    if star and isinstance(item, tuple):
        for position, value in enumerate(item):
            if not _pickles(value):
                return _describe(f"argument {position} of a map item", value)
    return _describe("a map item", item)


def _call_error(where: str, fn: Callable[..., Any], exc: Exception) -> SerializationError:
    error = SerializationError(
        f"{where} in a call of {_name(fn)} cannot be pickled to send it to a "
        f"worker process: {type(exc).__name__}: {exc}"
    )
    error.__cause__ = exc
    return error


def dumps_or_none(obj: Any) -> tuple[bytes | None, Exception | None]:
    try:
        return pickle.dumps(obj, PROTOCOL), None
    except Exception:
        pass  # retried below with cloudpickle, which handles lambdas and closures
    try:
        return cloudpickle_dumps(obj), None
    except Exception as exc:
        return None, exc


def dumps_call(fn: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> bytes:
    """Pickle a call's arguments (the function travels separately, see FunctionCache)."""
    data, exc = dumps_or_none((args, kwargs))
    if data is None:
        assert exc is not None
        raise _call_error(_locate(args, kwargs), fn, exc)
    return data


def dumps_chunk(
    fn: Callable[..., Any], items: list[Any], star: bool
) -> tuple[bytes, dict[int, BaseException]]:
    """Pickle a map chunk's items. Items that do not pickle are left out and returned by
    index with their error, so only those items fail and the rest of the chunk runs."""
    data, exc = dumps_or_none((items, {}))
    if data is not None:
        return data, {}
    bad: dict[int, BaseException] = {}
    good: list[Any] = []
    for index, item in enumerate(items):
        _, item_exc = dumps_or_none(item)
        if item_exc is None:
            good.append(item)
        else:
            bad[index] = _call_error(_locate_in_item(item, star), fn, item_exc)
    if not bad:  # every item pickles alone, but not together (rare): fail the whole chunk
        assert exc is not None
        raise _call_error("the items", fn, exc)
    data, exc = dumps_or_none((good, {}))
    if data is None:
        assert exc is not None
        raise _call_error("the items", fn, exc)
    return data, bad


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _dumps_function(fn: Callable[..., Any]) -> bytes:
    """Functions always go through cloudpickle: plain pickle would send a function
    defined in ``__main__`` by reference, which a spawned worker cannot resolve when
    the program has no file (``python -c``, notebooks, the REPL). cloudpickle still
    sends importable functions by reference, and the cache makes the cost once per map."""
    try:
        return cloudpickle_dumps(fn)
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


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<its str() failed>"


def _format(exc: BaseException) -> str:
    try:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        tb = f"{type(exc).__qualname__}: {_safe_str(exc)} (the traceback could not be formatted)\n"
    return f'\n"""\n{tb}"""'


def _round_trips(exc: BaseException) -> Exception | None:
    """None if ``exc`` survives pickling and unpickling (as it must to reach the parent)."""
    try:
        pickle.loads(pickle.dumps(exc, PROTOCOL))
        return None
    except Exception:
        pass  # plain pickle refuses exception classes defined in functions; cloudpickle may not
    try:
        pickle.loads(cloudpickle_dumps(exc))
        return None
    except Exception as pickling_error:
        return pickling_error


def wrap_exception(exc: BaseException) -> Any:
    """Prepare a worker-side exception for the trip home; never fails to pickle."""
    tb = _format(exc)
    pickling_error = _round_trips(exc)
    if pickling_error is not None:
        replacement = SerializationError(
            f"the task raised {type(exc).__qualname__}: {_safe_str(exc)}, which cannot be "
            f"pickled to send it back ({type(pickling_error).__name__}: {pickling_error})"
        )
        return ExceptionWithTraceback(replacement, tb)
    exc.__traceback__ = None  # frames do not pickle; their text travels in tb
    return ExceptionWithTraceback(exc, tb)
