"""Pickling across process boundaries, with errors that say what failed and where.

Plain data takes pickle's C fast path; only what plain pickle refuses
(lambdas, closures, nested functions) goes through cloudpickle. Functions are
pickled once and cached, because ``map`` sends the same function with every chunk.
A function or class of the main script travels by reference, with a copy by
value for workers whose ``__main__`` lacks it (see "how functions travel"
below); by-value code keeps its real file name, so tracebacks show the source.
An open file or socket is refused with advice, never sent as a copy.

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

import functools
import io
import pickle
import sys
import threading
import traceback
import types
import weakref
import zlib
from collections import ChainMap
from collections.abc import Callable
from typing import Any

from .._errors._exceptions import SerializationError
from . import _shm
from ._shm import Encoded

__all__ = [
    "Carried",
    "ExceptionWithTraceback",
    "FunctionCache",
    "RemoteTraceback",
    "carried_initializer",
    "cloudpickle_dumps",
    "cloudpickle_with",
    "dumps",
    "dumps_call",
    "dumps_chunk",
    "wrap_exception",
]

PROTOCOL = pickle.HIGHEST_PROTOCOL


# -- how functions travel (see docs/design.md, "How functions travel to workers") -----------
# A function or class defined at the top of the main script travels by reference, as with
# multiprocessing: the worker's __main__ (the script imported as __mp_main__ under spawn and
# forkserver, or inherited under fork) already holds it, so globals that an initializer set
# and caches shared by several functions are the worker's own. A copy by value rides along
# and is used only when the worker's __main__ lacks that exact function (no script file:
# python -c, the REPL, notebooks; or defined under the main guard, or redefined since).
# Everything else that plain pickle refuses (lambdas, closures, nested functions) goes by
# value through cloudpickle, keeping its real file name so tracebacks show the source.


def _code_reduce(code: types.CodeType) -> Any:
    """cloudpickle's code reducer, but keeping ``co_filename`` (it writes ``<dynamic-code>``),
    so that a by-value function's traceback names its file and linecache finds its lines."""
    import cloudpickle

    reduced = cloudpickle.Pickler.dispatch_table[types.CodeType](code)
    args = list(reduced[1])
    if len(args) > _CO_FILENAME and args[_CO_FILENAME] == "<dynamic-code>":
        args[_CO_FILENAME] = code.co_filename
    return (reduced[0], tuple(args), *reduced[2:])


_CO_FILENAME = 10  # position of co_filename in CodeType's constructor, 3.8 through 3.13


def _open_file_error(obj: Any) -> SerializationError | None:
    """A SerializationError for an open file or socket, which must not travel by value:
    cloudpickle would send a text file as an io.StringIO copy of its contents, silently."""
    import socket

    if obj is sys.stdout or obj is sys.stderr or obj is sys.stdin:
        return None  # cloudpickle sends these as the worker's own stream
    inner = obj
    for attribute in ("buffer", "raw"):  # TextIOWrapper -> BufferedReader -> FileIO
        if isinstance(inner, io.IOBase) and not isinstance(inner, io.FileIO):
            inner = getattr(inner, attribute, inner)
    if isinstance(obj, socket.socket):
        what = f"an open socket ({obj!r})"
        advice = "open the connection in the task, or pass its address"
    elif isinstance(inner, io.FileIO):
        mode = getattr(obj, "mode", "?")
        what = f"an open file ({getattr(obj, 'name', '?')!r}, mode {mode!r})"
        advice = "pass its path and open it in the task"
    else:
        return None
    return SerializationError(
        f"{what} cannot be sent to another process: the worker would get a copy, or "
        f"nothing, and never the file itself; {advice}"
    )


def _main_object(obj: Any) -> bool:
    """True for a function or class defined at the top of the main script (or session)."""
    if getattr(obj, "__module__", None) != "__main__":
        return False
    qualname = getattr(obj, "__qualname__", "")
    if not qualname or "<" in qualname:  # <lambda>, <locals>: not reachable by name
        return False
    found = _lookup(sys.modules.get("__main__"), qualname)
    return any(candidate is obj for candidate in _unwrapped(found))


def _lookup(module: Any, qualname: str) -> Any:
    found = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


def _unwrapped(found: Any) -> list[Any]:
    """``found`` and what it wraps (functools.wraps, ``@pool.task``): the name of a decorated
    function holds the wrapper, and the function itself is reached through it."""
    chain = [found]
    for _ in range(_MAX_WRAPPERS):
        found = getattr(found, "__wrapped__", None)
        if found is None:
            break
        chain.append(found)
    return chain


_MAX_WRAPPERS = 8


def _fingerprint(obj: Any) -> int:
    """Identifies a function's (or a class's methods') code, so that the worker never takes
    a different function that happens to have the same name (a notebook redefined it)."""
    codes = [obj.__code__] if isinstance(obj, types.FunctionType) else []
    if isinstance(obj, type):
        codes = [v.__code__ for _, v in sorted(vars(obj).items()) if hasattr(v, "__code__")]
    digest = zlib.crc32(getattr(obj, "__qualname__", "").encode())
    for code in codes:
        digest = _code_digest(code, digest)
    return digest


def _code_digest(code: types.CodeType, digest: int) -> int:
    # not co_filename: the worker may reach the same script by another spelling of its path
    digest = zlib.crc32(code.co_code, digest)
    text = f"{code.co_firstlineno}:{code.co_names}:{code.co_varnames}"
    digest = zlib.crc32(text.encode(), digest)
    for const in code.co_consts:
        digest = _const_digest(const, digest)
    return digest


def _const_digest(const: Any, digest: int) -> int:
    """Constants by value, stable across processes (no addresses, no hash order)."""
    if isinstance(const, types.CodeType):
        return _code_digest(const, digest)
    if isinstance(const, tuple):
        for item in const:
            digest = _const_digest(item, digest)
        return digest
    if isinstance(const, frozenset):
        return zlib.crc32(repr(sorted(map(repr, const))).encode(), digest)
    return zlib.crc32(repr(const).encode(), digest)


def resolve_main(qualname: str, fingerprint: int, by_value: bytes | str) -> Any:
    """In the worker: the main script's own object if its __main__ has it, else the copy
    (a str: why the parent could make none)."""
    for found in _unwrapped(_lookup(sys.modules.get("__main__"), qualname)):
        if isinstance(found, (types.FunctionType, type)) and _fingerprint(found) == fingerprint:
            return found
    if isinstance(by_value, str):
        raise LookupError(
            f"the worker's __main__ has no {qualname} as the parent defined it (defined under "
            f"the main guard, in a notebook or with python -c, or redefined since), and no "
            f"copy by value could be sent: {by_value}; define it at the top of the script "
            f"or in a module"
        )
    return pickle.loads(by_value)


def _by_value_pickler() -> type:
    import cloudpickle

    class ByValue(cloudpickle.Pickler):  # type: ignore[misc]  # untyped base
        """cloudpickle that keeps file names and refuses open files."""

        dispatch_table = ChainMap(
            {types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table
        )

        def reducer_override(self, obj: Any) -> Any:
            if _spawning():  # a worker is starting: it inherits descriptors and semaphores
                reduced = _spawn_reduce(obj)
                if reduced is not NotImplemented:
                    return reduced
            if isinstance(obj, (io.IOBase, _socket_type())):
                error = _open_file_error(obj)
                if error is not None:
                    raise error
            return super().reducer_override(obj)

    return ByValue


def _reference_pickler(by_value: type) -> type:
    class ByReference(by_value):  # type: ignore[misc]  # built at run time
        """As ByValue, but the main script's functions and classes go by reference."""

        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, (types.FunctionType, type)) and _main_object(obj):
                fingerprint = _fingerprint(obj)
                copy = _class_copy(by_value, obj, fingerprint)
                return resolve_main, (obj.__qualname__, fingerprint, copy)
            return super().reducer_override(obj)

    return ByReference


# A class's copy by value costs ~0.2 ms, and a bound method of one (pool.submit(model.predict))
# is a new object each time, which no function cache keeps: classes keep their copy here.
_CLASS_COPIES: weakref.WeakKeyDictionary[type, tuple[int, bytes]] = weakref.WeakKeyDictionary()


def _class_copy(by_value: type, obj: Any, fingerprint: int) -> bytes | str:
    """The copy by value of a main-script object that travels by reference; a str (the
    reason) when it does not pickle. The copy takes the globals the code uses as they are
    now: a global the parent filled with a lock or a client (a session made on first use)
    does not pickle, and the worker's own __main__, which the reference finds, never needed
    the copy (multiprocessing would not have made one)."""
    try:
        return _copy(by_value, obj, fingerprint)
    except Exception as exc:
        if getattr(_STRICT, "on", False):
            raise
        return f"{type(exc).__name__}: {exc}"


# dumps_function_strictly() sets this: a copy that cannot be made fails the pickling
_STRICT = threading.local()


def _copy(by_value: type, obj: Any, fingerprint: int) -> bytes:
    if not isinstance(obj, type) or _spawning():
        return _pickle_with(by_value, obj)
    cached = _CLASS_COPIES.get(obj)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    copy = _pickle_with(by_value, obj)
    try:
        _CLASS_COPIES[obj] = (fingerprint, copy)
    except TypeError:
        pass  # a metaclass that refuses weak references: copied every time
    return copy


@functools.cache
def _picklers() -> tuple[type, type]:
    by_value = _by_value_pickler()
    return by_value, _reference_pickler(by_value)


@functools.cache  # asked for every object cloudpickle sees: import once
def _socket_type() -> type:
    import socket

    return socket.socket


def _pickle_with(pickler: type, obj: Any, buffer_callback: Any = None) -> bytes:
    buffer = io.BytesIO()
    pickler(buffer, protocol=PROTOCOL, buffer_callback=buffer_callback).dump(obj)
    return buffer.getvalue()


def cloudpickle_dumps(obj: Any) -> bytes:
    """cloudpickle, with the main script's functions by reference (see above), real file
    names in by-value code, and a SerializationError for open files and sockets."""
    return _pickle_with(_picklers()[1], obj)


def cloudpickle_with(obj: Any, buffer_callback: Callable[[pickle.PickleBuffer], bool]) -> bytes:
    """:func:`cloudpickle_dumps` with a protocol-5 ``buffer_callback`` (large buffers out of
    band, anypool._wire._shm), and memoryviews pickled as anypool._wire._shm does."""
    return _pickle_with(_buffer_pickler(), obj, buffer_callback)


@functools.cache
def _buffer_pickler() -> type:
    from ._shm import _reduce_memoryview

    by_reference: Any = _picklers()[1]

    class WithBuffers(by_reference):  # type: ignore[misc]  # built at run time
        dispatch_table = ChainMap({memoryview: _reduce_memoryview}, by_reference.dispatch_table)

    return WithBuffers


def dumps(obj: Any, what: str) -> bytes:
    """Pickle ``obj``, falling back to cloudpickle; ``what`` names it in the error."""
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        pass  # retried below with cloudpickle, which handles lambdas and closures
    try:
        return cloudpickle_dumps(obj)
    except SerializationError as exc:
        raise SerializationError(f"{what}: {exc}") from exc
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
    if isinstance(exc, SerializationError):  # already says why, e.g. an open file
        error = SerializationError(f"{where} in a call of {_name(fn)}: {exc}")
    else:
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


def encode_or_none(obj: Any) -> tuple[Encoded | None, Exception | None]:
    """:func:`dumps_or_none`, large buffers out of band (anypool._wire._shm)."""
    try:
        return _shm.dumps(obj, fallback=cloudpickle_with), None
    except Exception as exc:
        return None, exc


def dumps_call(fn: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Encoded:
    """Pickle a call's arguments (the function travels separately, see FunctionCache)."""
    data, exc = encode_or_none((args, kwargs))
    if data is None:
        assert exc is not None
        raise _call_error(_locate(args, kwargs), fn, exc)
    return data


def dumps_chunk(
    fn: Callable[..., Any], items: list[Any], star: bool
) -> tuple[Encoded, dict[int, BaseException]]:
    """Pickle a map chunk's items. Items that do not pickle are left out and returned by
    index with their error, so only those items fail and the rest of the chunk runs."""
    data, exc = encode_or_none((items, {}))
    if data is not None:
        return data, {}
    bad: dict[int, BaseException] = {}
    good: list[Any] = []
    for index, item in enumerate(items):
        _, item_exc = encode_or_none(item)
        if item_exc is None:
            good.append(item)
        else:
            bad[index] = _call_error(_locate_in_item(item, star), fn, item_exc)
    if not bad:  # every item pickles alone, but not together (rare): fail the whole chunk
        assert exc is not None
        raise _call_error("the items", fn, exc)
    data, exc = encode_or_none((good, {}))
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


def dumps_function_strictly(fn: Callable[..., Any]) -> bytes:
    """As the process backend pickles ``fn``, except that a main-script function whose copy
    by value cannot be made fails: ``backend="auto"`` asks whether a function surely reaches
    a spawned worker before it sends it there, and a function defined under the main guard
    reaches one only through that copy (whether it was is not known here)."""
    _STRICT.on = True
    try:
        return _dumps_function(fn)
    finally:
        _STRICT.on = False


def split_at_unpicklable(
    batch: list[Any], dumps: Callable[[Any], bytes]
) -> tuple[list[Any], SerializationError] | None:
    """A stream's batch that ``dumps`` refuses as a whole: the items before the first one
    it refuses, and the error the stream ends with (naming that item's type); None if
    every item pickles alone."""
    for index, item in enumerate(batch):
        try:
            dumps(item)
        except Exception as exc:
            error = SerializationError(
                f"an item the generator yielded, a {type(item).__name__}, cannot be "
                f"pickled to reach the caller: {exc!r}; the items before it were sent"
            )
            error.__cause__ = exc
            return batch[:index], error
    return None


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


# -- what a worker process gets as it starts (the initializer and its arguments) ----------------
# multiprocessing's Value, Array, Lock & co. pickle only while a child process is being
# started, and then by handing it their file descriptors and semaphores: the stdlib's way to
# share them is initargs. So the initializer travels inside the Process object's arguments,
# pickled at that moment (under fork it is not pickled at all: the worker inherits it).
class _ProbePopen:
    """Stands in for the Popen of a starting worker, to check early that everything will
    pickle then (file descriptors are only named, not handed over)."""

    def duplicate_for_child(self, fd: int) -> int:
        return fd

    def DupFd(self, fd: int) -> int:  # multiprocessing's spelling
        return fd


def _spawning() -> bool:
    context = sys.modules.get("multiprocessing.context")
    return context is not None and context.get_spawning_popen() is not None


def _spawn_reduce(obj: Any) -> Any:
    """While a worker starts: multiprocessing's own reducers (connections, sockets), and a
    clear error for a lock made by a fork context, which no spawned process can reopen."""
    synchronize = sys.modules.get("multiprocessing.synchronize")
    is_semlock = synchronize is not None and isinstance(obj, synchronize.SemLock)
    # a fork context's semaphores are unlinked at once (no name): only a fork inherits them
    if is_semlock and sys.platform != "win32" and obj._semlock.name is None:
        raise SerializationError(
            f"it is or holds a {type(obj).__name__} made with the 'fork' start method's "
            "context (the default of multiprocessing.Lock(), Value(), Queue() & co. before "
            "Python 3.14), which only forked processes can inherit; make it "
            "with multiprocessing.get_context(start_method) for the pool's start method, "
            "or use start_method='fork'; or create it with pool.Value(), pool.Array(), "
            "pool.Lock() and pass it to the tasks"
        )
    from multiprocessing.reduction import ForkingPickler

    reducer = ForkingPickler._extra_reducers.get(type(obj))  # type: ignore[attr-defined]
    return NotImplemented if reducer is None else reducer(obj)


class Carried:
    """Objects handed to a worker process as it starts: inherited as they are under fork,
    pickled while the worker is spawned otherwise, and unpickled only when the worker calls
    :meth:`load`, so that a failure there is reported as the initializer's, not as a crash."""

    def __init__(self, obj: Any, blob: bytes | None = None) -> None:
        self._obj = obj
        self._blob = blob

    def __reduce__(self) -> tuple[Any, ...]:
        return (Carried, (None, self._blob or cloudpickle_dumps(self._obj)))

    def load(self) -> Any:
        return self._obj if self._blob is None else pickle.loads(self._blob)


def carried_initializer(
    initializer: Callable[..., object] | None, initargs: tuple[Any, ...], start_method: str
) -> Carried | None:
    """What WorkerSpec carries as the initializer: the user's, with its arguments, checked
    now (under every start method but fork) so that what cannot reach a worker fails here
    and names the culprit; and for workers that do not fork, the parent's logging setup."""
    if start_method == "fork":
        return None if initializer is None else Carried((initializer, tuple(initargs)))
    if initializer is not None:
        _check_carried(f"the initializer {_name(initializer)}", initializer)
        for index, value in enumerate(initargs):
            _check_carried(f"initargs[{index}] (of type {type(value).__qualname__})", value)
    from .._runtime import logging_snapshot

    snapshot = logging_snapshot()
    if initializer is None and snapshot is None:
        return None
    return Carried((start_worker, (snapshot, initializer, tuple(initargs))))


def start_worker(
    snapshot: dict[str, Any] | None, initializer: Callable[..., object] | None, initargs: Any
) -> object:
    """In a spawned or forkserver worker: the parent's logging setup, then the initializer."""
    if snapshot is not None:
        from .._runtime import apply_logging

        try:
            apply_logging(snapshot)
        except Exception:  # a copy of the parent's logging is a convenience: never fatal
            pass
    if initializer is not None:
        return initializer(*initargs)  # a coroutine, for an async def one: the caller runs it
    return None


def _check_carried(what: str, value: Any) -> None:
    from multiprocessing import context

    previous = context.get_spawning_popen()
    context.set_spawning_popen(_ProbePopen())  # type: ignore[arg-type]  # a stand-in
    try:
        cloudpickle_dumps(value)
    except SerializationError as exc:
        raise SerializationError(f"{what} cannot be sent to the worker processes: {exc}") from exc
    except Exception as exc:
        raise SerializationError(
            f"{what} cannot be sent to the worker processes: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        context.set_spawning_popen(previous)
