"""anypool's exceptions.

Every class subclasses the stdlib exception that existing ``except`` clauses
already catch, so code written for ``concurrent.futures`` keeps working::

    Exception
    └── AnyPoolError
        ├── PoolClosed ..................... also RuntimeError (submit after shutdown)
        ├── PoolFull ....................... also queue.Full (max_pending reached, block=False)
        ├── CapabilityError ................ also ValueError (option the backend cannot do)
        ├── BackendUnavailable ............. also ImportError (engine not installed)
        ├── TaskTimeout .................... also TimeoutError (per-task timeout hit; and
        │                                     concurrent.futures.TimeoutError on 3.10)
        ├── SerializationError ............. also pickle.PicklingError and TypeError (call/result
        │                                     does not pickle)
        └── BrokenPool ..................... also concurrent.futures.BrokenExecutor
            ├── BrokenThreadPool ........... also concurrent.futures.thread.BrokenThreadPool
            └── BrokenProcessPool .......... also concurrent.futures.process.BrokenProcessPool
                ├── WorkerCrashed .......... a worker died while running this task
                ├── WorkersCannotStart ..... workers die before their first task, again and again
                └── TaskUnpicklingError .... also anypool.SerializationError (a call or its outcome
                                              does not unpickle; only that task fails)

``BrokenProcessPool`` and the classes below it live in :mod:`anypool._errors._process`
because their stdlib base imports ``multiprocessing``; ``import anypool`` stays
free of it and resolves them on first use. ``TaskUnpicklingError`` is both a
``SerializationError`` and a ``BrokenProcessPool``: the stdlib's executor reports a
call or outcome that does not unpickle as ``BrokenProcessPool``, and code written for
it catches that; anypool fails only that task and keeps the pool.

All classes keep ``__init__`` simple (message only) so they pickle across
process boundaries unchanged.
"""

from __future__ import annotations

import pickle
import queue
import sys
from concurrent.futures import BrokenExecutor
from concurrent.futures import TimeoutError as _StdFuturesTimeoutError
from concurrent.futures.thread import BrokenThreadPool as _StdBrokenThreadPool

__all__ = [
    "AnyPoolError",
    "BackendUnavailable",
    "BrokenPool",
    "BrokenThreadPool",
    "CapabilityError",
    "PoolClosed",
    "PoolFull",
    "SerializationError",
    "TaskTimeout",
]


class AnyPoolError(Exception):
    """Base class of every exception anypool raises itself."""


class PoolClosed(AnyPoolError, RuntimeError):
    """Work was submitted to a pool that is shutting down or shut down."""


class PoolFull(AnyPoolError, queue.Full):
    """``max_pending`` tasks are already queued and the caller asked not to wait."""


class CapabilityError(AnyPoolError, ValueError):
    """An option was asked of a backend that cannot honour it (see ``Backend.capabilities``)."""


class BackendUnavailable(AnyPoolError, ImportError):
    """The engine behind a backend is not installed; the message names the extra to install."""


if sys.version_info >= (3, 11):

    class TaskTimeout(AnyPoolError, TimeoutError):
        """A task ran past its ``timeout=`` and was stopped (or, on threads, abandoned)."""

else:  # concurrent.futures.TimeoutError became the builtin only in 3.11

    class TaskTimeout(AnyPoolError, TimeoutError, _StdFuturesTimeoutError):
        """A task ran past its ``timeout=`` and was stopped (or, on threads, abandoned)."""


class SerializationError(AnyPoolError, pickle.PicklingError, TypeError):
    """A function, argument, result or exception could not cross a process boundary.

    Also a ``TypeError``: pickle itself raises one for most objects that cannot be
    pickled ("cannot pickle '_thread.lock' object"), so code written for the stdlib's
    executors catches it as that."""


class BrokenPool(AnyPoolError, BrokenExecutor):
    """The pool can no longer run work (an initializer failed, or it was torn down)."""


class BrokenThreadPool(BrokenPool, _StdBrokenThreadPool):
    """A thread pool's initializer failed."""


def fresh_copy(error: BaseException) -> BaseException:
    """A copy of ``error`` for one more future (or one more raise).

    One exception object raised from many places collects every raise's frames on its one
    ``__traceback__``: a pool that broke under 2,000 awaited futures printed a 163 KB
    traceback, one frame group per future. Copies share the cause, the notes and the
    attributes (pid, exitcode); an exception whose class cannot be rebuilt from its args
    is handed on as it is."""
    import copy

    try:
        twin = copy.copy(error)
    except Exception:
        return error
    if type(twin) is not type(error):
        return error
    twin.__cause__, twin.__context__ = error.__cause__, error.__context__
    twin.__suppress_context__ = error.__suppress_context__
    twin.__traceback__ = error.__traceback__
    return twin
