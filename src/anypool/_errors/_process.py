"""Process-flavoured exceptions, kept apart so ``import anypool`` does not import multiprocessing.

See the tree in :mod:`anypool._errors._exceptions`.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool as _StdBrokenProcessPool

from ._exceptions import BrokenPool, SerializationError

__all__ = ["BrokenProcessPool", "TaskUnpicklingError", "WorkerCrashed", "WorkersCannotStart"]


class BrokenProcessPool(BrokenPool, _StdBrokenProcessPool):
    """A process pool cannot run work: an initializer failed or the pool was torn down."""


class WorkerCrashed(BrokenProcessPool):
    """The worker process running this task died (signal, ``os._exit``, segfault, OOM killer).

    Only the task that was running fails with this; the pool replaces the worker
    and carries on. ``pid`` and ``exitcode`` (negative: the signal, as in
    :attr:`multiprocessing.Process.exitcode`) describe the worker that died, where known.
    """

    pid: int | None = None
    exitcode: int | None = None


class WorkersCannotStart(BrokenProcessPool):
    """Worker processes die before they take their first task, again and again (an import
    or an initializer that crashes, a thread they cannot start): the pool is broken instead
    of starting processes forever. ``exitcode`` is the last one's, as in :class:`WorkerCrashed`."""

    pid: int | None = None
    exitcode: int | None = None


class TaskUnpicklingError(SerializationError, BrokenProcessPool):
    """A task's call could not be unpickled in the worker, or its outcome in the parent
    (the error, or an exit, came from a ``__reduce__`` or ``__setstate__``).

    Only that task fails; the pool carries on. It is a :class:`SerializationError`, and a
    ``BrokenProcessPool`` too, because that is what the stdlib's executor raises there and
    what code written for it catches.
    """
