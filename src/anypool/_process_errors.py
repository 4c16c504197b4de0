"""Process-flavoured exceptions, kept apart so ``import anypool`` does not import multiprocessing.

See the tree in :mod:`anypool._exceptions`.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool as _StdBrokenProcessPool

from ._exceptions import BrokenPool

__all__ = ["BrokenProcessPool", "WorkerCrashed"]


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
