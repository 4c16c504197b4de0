"""``anypool.Process``: one function in its own worker, with ``multiprocessing.Process``'s API.

The tutorial's first lessons start processes (and threads) by hand: ``Process(target=,
args=)``, ``start()``, ``join()``, ``exitcode``, ``daemon``, or a subclass that overrides
``run()``. ``multiprocessing.Process`` drops the target's return value, prints its
exception in the child and leaves only ``exitcode == 1`` to the parent, has no timeout, and
a worker killed by a signal says only ``-9``. This class keeps that interface and runs the
target as the one task of a one-worker :class:`~anypool.Pool`, so it gets the pool's
machinery: ``result()`` returns the value or re-raises the exception with the child's
traceback, ``timeout=`` stops it, a crash is a :class:`~anypool.WorkerCrashed` naming the
signal, the worker dies with the parent, and any backend can run it (``backend="thread"``
is the ``threading.Thread`` lesson with a result)::

    Process.start() ─► Pool(backend, workers=1).submit(self.run) ─► worker: self.run()
                                                                         │
    join() / result() / exitcode ◄── Future ◄── value or exception ◄─────┘
         └ join() then shuts the one-worker pool down, which reaps the worker

``self`` travels to a process worker by pickling (cloudpickle for a subclass defined in
``__main__``); the pool, the future and the lock stay behind (``__getstate__``).
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import CancelledError, Future
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager
from typing import Any

from .._errors._exceptions import CapabilityError, SerializationError, TaskTimeout
from .._task import fn_name

__all__ = ["Process"]

_names = itertools.count(1)
# start() waits this long for a process worker to exist, so that ``pid`` is set when it
# returns, as multiprocessing's start() guarantees; a worker that cannot start breaks
# the pool (and fails the future) well before.
_START_WAIT_S = 60.0


class Process:
    """Run ``target(*args, **kwargs)`` in a worker of its own (``multiprocessing.Process``).

    Beyond the stdlib interface: ``result()`` and ``exception()``, ``timeout=`` and
    ``retries=`` (as on :class:`~anypool.Pool`), ``backend=`` (``"process"`` by default;
    ``"thread"`` runs it in a thread of this process) and other keyword arguments for the
    pool (``start_method=``, ``initializer=``...).

    >>> p = Process(target=pow, args=(2, 10), backend="thread")
    >>> p.start(); p.join(); (p.exitcode, p.result())
    (0, 1024)
    """

    def __init__(
        self,
        target: Callable[..., Any] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
        backend: str = "process",
        timeout: float | None = None,
        retries: int = 0,
        **pool_options: Any,
    ) -> None:
        if target is not None and not callable(target):
            raise TypeError(f"target must be callable, got {type(target).__name__} {target!r}")
        from .._auto import load_backend
        from .._core._pool import check_positive, check_retries

        check_positive("timeout", timeout)  # here, as multiprocessing checks its arguments
        check_retries(retries)

        load_backend(backend)  # an unknown or missing backend fails here, not at start()
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self._name = name if name is not None else f"Process-{next(_names)}"
        self._daemon = bool(daemon)
        self._pool_args: dict[str, Any] = {
            "backend": backend,
            "timeout": timeout,
            "retries": retries,
            **pool_options,
        }
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._pool: Any = None
        self._future: Future[Any] | None = None
        self._stop_signal: int | None = None  # set by terminate() / kill()
        self._last_pid: int | None = None

    # -- pickling: only the recipe travels, never the parent's pool ---------------------------
    def __getstate__(self) -> dict[str, Any]:
        # _pool_args stays behind too: the worker never needs it, and its initargs may hold
        # multiprocessing objects that only travel by inheritance (the pool passes those to
        # its workers at start; pickling them again with the target would be refused)
        # _args and _kwargs travel as the task's own arguments (see _run_process)
        runtime = ("_lock", "_pool", "_future", "_stop_signal", "_last_pid", "_pool_args")
        left = (*runtime, "_args", "_kwargs")
        return {k: v for k, v in self.__dict__.items() if k not in left}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    # -- what runs in the worker --------------------------------------------------------------
    def run(self) -> Any:
        """The work; override it in a subclass, or pass ``target=``. Its return value is
        what :meth:`result` returns."""
        if self._target is None:
            return None
        return self._target(*self._args, **self._kwargs)

    # -- the multiprocessing.Process interface ------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)

    @property
    def daemon(self) -> bool:
        """A daemon is stopped when the program exits; a non-daemon is waited for."""
        return self._daemon

    @daemon.setter
    def daemon(self, value: bool) -> None:
        if self._future is not None:
            raise RuntimeError("daemon cannot be changed after the process has started")
        self._daemon = bool(value)

    def start(self) -> None:
        """Start running :meth:`run` in a new worker; once only."""
        with self._lock:
            if self._pool is not None:
                raise RuntimeError(f"{self._name} has already been started; a process starts once")
            from .._core._pool import Pool

            pool_args = dict(self._pool_args)
            if pool_args["backend"] == "thread":  # its threads carry the process's name
                pool_args.setdefault("thread_name_prefix", self._name)
            self._pool = Pool(workers=1, **pool_args)
        if self._daemon:
            from .._core._pool import backend_of
            from .._local._atexit import stop_at_exit

            stop_at_exit(backend_of(self._pool))
        try:
            run = _RunProcess(self._what())
            self._future = self._pool.submit(run, self, self._args, self._kwargs)
        except BaseException:
            self._pool.shutdown(wait=True, cancel_pending=True, kill_running=True)
            raise
        # the worker is not needed once the task is over: let it go without waiting for join()
        # (the callback holds the pool, not self: self -> future -> callback -> self would be
        # a cycle that only the garbage collector frees)
        pool = self._pool
        self._future.add_done_callback(lambda _: pool.shutdown(wait=False))
        if self._future.done():  # failed in this process: its frames are finished by now
            _drop_parent_frames(self._future)
        self._wait_for_worker()

    def _what(self) -> str:
        """How messages name what runs: the target, or the subclass's ``run``."""
        if type(self).run is not Process.run or self._target is None:
            return f"{type(self).__qualname__}.run"
        return fn_name(self._target)

    def _wait_for_worker(self) -> None:
        if self._pool.backend != "process":
            return  # in this process (pid is ours), on a cluster (no pid), or not chosen yet
        deadline = time.monotonic() + _START_WAIT_S
        assert self._future is not None
        while self.pid is None and not self._future.done() and time.monotonic() < deadline:
            time.sleep(0.001)

    def _started(self, what: str) -> Future[Any]:
        if self._future is None:
            raise RuntimeError(f"can only {what} a started process; call start() first")
        return self._future

    def join(self, timeout: float | None = None) -> None:
        """Wait until it ends (or ``timeout`` seconds pass), then reap its worker."""
        future = self._started("join")
        with self._stop_on_interrupt():
            wait_futures([future], timeout=timeout)
            if future.done():
                self._pool.shutdown(wait=True)

    def is_alive(self) -> bool:
        return self._future is not None and not self._future.done()

    @property
    def pid(self) -> int | None:
        """The OS process the target runs in: the worker's for process backends, this
        process's for threads; None before start() and on cluster backends."""
        if self._pool is None:
            return None
        if not self._pool.capabilities.needs_pickling:
            return os.getpid()
        from .._core._pool import backend_of

        pids = backend_of(self._pool).worker_pids()
        if pids:
            self._last_pid = pids[0]
        return self._last_pid

    ident = pid

    @property
    def exitcode(self) -> int | None:
        """None while running; 0 on success; 1 if ``run`` raised; the code of a
        ``SystemExit`` or ``os._exit``; ``-N`` if signal N ended it (``terminate()`` gives
        ``-SIGTERM``, ``kill()`` ``-SIGKILL``, a timeout ``-SIGTERM``)."""
        if self._future is None or not self._future.done():
            return None
        if self._stop_signal is not None:
            return -self._stop_signal
        if self._future.cancelled():
            return -signal.SIGTERM
        return _exitcode_of(self._future.exception())

    def terminate(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after a grace period); no-op once it has ended."""
        self._stop(signal.SIGTERM)

    def kill(self) -> None:
        """Like :meth:`terminate`; ``exitcode`` then reads ``-SIGKILL``, as in multiprocessing."""
        self._stop(signal.SIGKILL)

    def _stop(self, signum: int) -> None:
        future = self._started("stop")
        if future.done():
            return
        if not self._pool.capabilities.kills_running_tasks:
            raise CapabilityError(
                f"the {self._pool.backend!r} backend cannot stop a running task "
                "(a thread cannot be killed); use backend='process'"
            )
        self._stop_signal = signum
        self._pool.kill(future)

    def close(self) -> None:
        """Release the worker; an error while it still runs, as in multiprocessing."""
        if self.is_alive():
            raise ValueError(f"cannot close {self._name}: it is still running")
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # -- beyond multiprocessing ---------------------------------------------------------------
    @property
    def future(self) -> Future[Any]:
        """The :class:`concurrent.futures.Future` of :meth:`run`, once started."""
        return self._started("get the future of")

    def result(self, timeout: float | None = None) -> Any:
        """What :meth:`run` returned; re-raises its exception (the worker's traceback as
        ``__cause__``), :class:`~anypool.TaskTimeout` or :class:`~anypool.WorkerCrashed`."""
        future = self._started("get the result of")
        with self._stop_on_interrupt():
            try:
                return future.result(timeout)
            except CancelledError as exc:
                raise self._stopped(exc) from None

    def exception(self, timeout: float | None = None) -> BaseException | None:
        future = self._started("get the exception of")
        with self._stop_on_interrupt():
            try:
                error = future.exception(timeout)
            except CancelledError as exc:  # cancelled before it ran
                return self._stopped(exc)
        return self._stopped(error) if isinstance(error, CancelledError) else error

    def _stopped(self, error: CancelledError) -> CancelledError:
        """What stopped it, in this API's words (the pool's say "killed by Pool.kill()")."""
        if self._stop_signal is None:
            return error
        how = "kill()" if self._stop_signal == signal.SIGKILL else "terminate()"
        return CancelledError(f"{self._name} was stopped by {how} while it ran")

    @contextmanager
    def _stop_on_interrupt(self) -> Iterator[None]:
        """Ctrl-C while waiting on a process stops it before the KeyboardInterrupt
        propagates, as every wait in anypool does (docs/failure-model.md)."""
        try:
            yield
        except KeyboardInterrupt:
            self._pool.shutdown(wait=True, cancel_pending=True, kill_running=True)
            raise

    def __repr__(self) -> str:
        if self._future is None:
            state = "initial"
        elif self.is_alive():
            state = "started"
        else:
            state = f"stopped exitcode={self.exitcode}"
        daemon = " daemon" if self._daemon else ""
        return f"<{type(self).__name__} name={self._name!r} {state}{daemon}>"


def _exitcode_of(error: BaseException | None) -> int:
    if error is None:
        return 0
    if isinstance(error, SystemExit):
        code = error.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(error, TaskTimeout):
        return -signal.SIGTERM
    if isinstance(error, CancelledError):
        return -signal.SIGTERM
    exitcode = getattr(error, "exitcode", None)  # WorkerCrashed: the dead worker's own code
    return exitcode if isinstance(exitcode, int) else 1


def _run_process(process: Process, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """In the worker: ``process.run()``. The target's arguments travel as the task's own,
    not inside the pickled Process, so that large buffers among them go out of band
    (anypool._wire._shm) on the process backend."""
    process._args, process._kwargs = args, kwargs
    return process.run()


class _RunProcess:
    """:func:`_run_process`, named after what it runs: the pool's messages name a task by
    its function ("worker process N exited ... while running work"), and
    ``_run_process`` would mean nothing to the user."""

    def __init__(self, what: str) -> None:
        self.__qualname__ = what

    def __call__(self, process: Process, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _run_process(process, args, kwargs)


def _drop_parent_frames(future: Future[Any]) -> None:
    """An error raised in this process while sending ``run`` (a call that does not pickle)
    has a traceback whose frames, and their callers up to ``start()``, hold this Process:
    the future that keeps the error would make a cycle, and the pool options (a lock's
    resource-tracker registration among them) would wait for the garbage collector. Those
    frames are anypool's own and the message names what did not pickle, so they go."""
    error = None if future.cancelled() else future.exception()
    if not isinstance(error, SerializationError):
        return  # a task's own error keeps its traceback, for post-mortem debugging
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        error.__traceback__ = None
        error = error.__cause__ or error.__context__
