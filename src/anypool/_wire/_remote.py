"""Running a task in another process and bringing its outcome back, as bytes both ways.

The cluster backends (Dask, Ray) ship every task through here::

    caller                                        worker (a Dask or Ray process)
    dumps_call(task) ─► bytes ─► engine ─► run_payload(bytes)
      SerializationError                        loads; fn(*args) or run_chunk
      if the call won't pickle                  dumps((ok, value | exception+traceback))
    loads_outcome(bytes) ◄─ bytes ◄─ engine ◄───┘
      value, or the task's own exception type
      with RemoteTraceback as __cause__

Why bytes both ways rather than letting the engine pickle: anypool then owns
every pickling failure and can name it (``SerializationError`` on the side
where it happened) instead of the engine hanging or failing obscurely —
``distributed.as_completed`` hangs on a result that cannot be pickled — and
the engine only ever moves an opaque blob. A task's exception comes back as
itself with the worker's traceback text attached as ``__cause__`` (``_wire._pickle``'s
``wrap_exception``, shared with the process backend); one that cannot cross a
process boundary is replaced by a SerializationError naming it.

The worker needs anypool importable (same version), as it needs the task's own modules.
"""

from __future__ import annotations

import pickle
from typing import Any

from .._errors._exceptions import SerializationError
from .._task import ChunkResult, Task, run_chunk
from ._pickle import cloudpickle_dumps
from ._pickle import wrap_exception as _carry

__all__ = ["dumps_call", "loads_outcome", "run_payload"]


# -- the caller's side ---------------------------------------------------------------------
def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _culprit(task: Task) -> str:
    """Say which part of the call does not pickle: the function, an argument or an item."""
    parts: list[tuple[str, object]] = [(f"the function {_name(task.fn)}", task.fn)]
    label = "item" if task.chunk else "argument"
    parts += [(f"{label} {i} ({type(a).__name__})", a) for i, a in enumerate(task.args)]
    parts += [(f"keyword argument {k!r} ({type(v).__name__})", v) for k, v in task.kwargs.items()]
    for where, value in parts:
        try:
            cloudpickle_dumps(value)
        except Exception:
            return where
    return "the call"


def dumps_call(task: Task) -> bytes:
    """The task's call as bytes, cached on ``task.payload`` for retries."""
    if task.payload is None:
        call = (task.fn, task.args, task.kwargs, task.chunk, task.star)
        try:
            task.payload = cloudpickle_dumps(call)
        except Exception as exc:
            error = SerializationError(
                f"cannot send {_name(task.fn)} to the workers: {_culprit(task)} "
                f"cannot be pickled ({exc})"
            )
            raise error from exc
    payload: bytes = task.payload
    return payload


def loads_outcome(blob: bytes) -> tuple[bool, Any]:
    """``(True, value)`` or ``(False, exception)`` from what :func:`run_payload` returned."""
    try:
        ok, value = pickle.loads(blob)
    except Exception as exc:
        error = SerializationError(f"the task's result could not be unpickled here: {exc!r}")
        error.__cause__ = exc
        return False, error
    return ok, value


# -- the worker's side ---------------------------------------------------------------------
def _dumps(outcome: tuple[bool, Any]) -> bytes:
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        # lambdas, local classes, objects of __main__: cloudpickle handles them, and is
        # slower, so it is the fallback rather than the rule (Dask does the same)
        return cloudpickle_dumps(outcome)


def _unpicklable_result(value: object, exc: Exception) -> SerializationError:
    return SerializationError(
        f"the task's result ({type(value).__name__}) could not be pickled to send it back: {exc}"
    )


def _dumps_chunk(result: ChunkResult) -> bytes:
    try:
        return _dumps((True, result))
    except Exception:
        pass
    for index, value in enumerate(result.values):  # find the items that spoil the chunk
        try:
            cloudpickle_dumps(value)
        except Exception as exc:
            result.values[index] = None
            result.errors[index] = _carry(_unpicklable_result(value, exc))
    return _dumps((True, result))


def run_payload(payload: bytes) -> bytes:
    """Run a call made by :func:`dumps_call`; never raises, the outcome is in the bytes."""
    try:
        fn, args, kwargs, chunk, star = pickle.loads(payload)
    except BaseException as exc:
        error = SerializationError(f"the task could not be unpickled on the worker: {exc!r}")
        error.__cause__ = exc
        return _dumps((False, _carry(error)))
    try:
        value = run_chunk(fn, args, star) if chunk else fn(*args, **kwargs)
    except BaseException as exc:
        return _dumps((False, _carry(exc)))
    if chunk:
        value.errors = {i: _carry(e) for i, e in value.errors.items()}
        return _dumps_chunk(value)
    try:
        return _dumps((True, value))
    except Exception as exc:
        return _dumps((False, _carry(_unpicklable_result(value, exc))))
