"""A worker's event loop: coroutine tasks run side by side, as many as the worker measures
it can keep busy with (or ``concurrency=``).

::

    parent ══ socketpair ══► loop.add_reader(conn) ─► every frame waiting, in order:
        task of a coroutine function ─► asyncio task: fn._anypool_coroutine(args, kwargs)
                                           └─ done ─► answer (header + body [+ segment]) ══► parent
        task of a plain function     ─► run at once (the parent sends one only to an idle worker)
        (task_id,)                   ─► cancel that asyncio task (Pool.kill); it answers the error
        None / RETIRING answered     ─► take nothing more; exit once the running ones answered
        EOF                          ─► the parent is gone: exit
    call_later(WINDOW_S) ─► Concurrency.measure(process CPU / wall) ─► CAPACITY ══► parent

A worker enters this loop at its first coroutine task and stays in it: the parent sends
more coroutine tasks to it while its load (a map chunk counts its items) is below the
concurrency it last reported, and a plain task only once nothing runs here. Answers go
out in the order tasks end; the header names each task (_protocol).

The concurrency is measured, not guessed: it starts at 1 and, every WINDOW_S while the
worker was kept full, grows by how idle the loop was (an IO-bound coroutine leaves the
loop ~95 % idle: x8 per window, up to MAX_CONCURRENCY) and shrinks by a fifth when the
loop was saturated, so that CPU-heavy coroutines do not queue up behind each other in
one worker while another worker sits idle.
"""

from __future__ import annotations

import math
import pickle
import time

from ._protocol import CAPACITY, RETIRING, header

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from ._child import Frame, Worker

__all__ = ["MAX_CONCURRENCY", "WINDOW_S", "Concurrency", "serve"]

# How often the worker measures how busy its loop was.
WINDOW_S = 0.05
# The measured concurrency never goes past this (``concurrency=`` may): each waiting
# coroutine holds its sockets and buffers, and beyond a few hundred per core an IO-bound
# load is limited by the peer, not by how many wait.
MAX_CONCURRENCY = 256
# Busy below this share of the window, with every slot used: more coroutines help.
_GROW_BELOW = 0.8
# Aim for this share when growing: a little headroom against the next burst of work.
_TARGET_BUSY = 0.9
# Busy above this with every slot used: the coroutines queue for the CPU; fewer do as well.
_SHRINK_ABOVE = 0.97
_MAX_GROWTH = 8.0


class Concurrency:
    """How many coroutines this worker asks the parent for: fixed, or measured per window."""

    def __init__(self, fixed: int | None) -> None:
        self.fixed = fixed
        self.limit = fixed or 1
        self.busy: float | None = None  # the last window's CPU share of the loop
        self._load = 0
        self._start_window(time.monotonic())

    def _start_window(self, now: float) -> None:
        self._window = now
        self._cpu = time.process_time()
        self._area = 0.0  # load x seconds over the window
        self._since = now

    def load_changed(self, load: int) -> None:
        now = time.monotonic()
        self._area += self._load * (now - self._since)
        self._since, self._load = now, load

    def measure(self) -> bool:
        """Close the window; True if the limit changed (the parent must hear of it)."""
        now = time.monotonic()
        self.load_changed(self._load)
        wall = now - self._window
        if wall <= 0:
            return False
        busy = (time.process_time() - self._cpu) / wall
        full = self._area / wall >= 0.8 * self.limit  # the parent kept every slot used
        self._start_window(now)
        if not full:
            return False  # an idle or half-fed worker says nothing about its limit
        first, self.busy = self.busy is None, busy
        changed = self.fixed is None and self._adjust(busy)
        return changed or first  # the parent hears the first measure (explain()) and changes

    def _adjust(self, busy: float) -> bool:
        old = self.limit
        if busy < _GROW_BELOW:
            growth = min(_MAX_GROWTH, _TARGET_BUSY / max(busy, 0.01))
            # (less a hair: 0.9 / 0.45 is 2.0000000000000004, and 16 must not become 17)
            self.limit = min(MAX_CONCURRENCY, math.ceil(old * growth - 1e-9))
        elif busy > _SHRINK_ABOVE and old > 1:
            self.limit = max(1, math.floor(old * 0.8))
        return self.limit != old


class _Server:
    """The worker's loop once it runs coroutine tasks; see the module's diagram."""

    def __init__(self, worker: Worker, fixed: int | None) -> None:
        from ..._local._loops import worker_loop

        self.worker = worker
        self.loop = worker_loop()  # the one an initializer prepared, if any
        self.running: dict[int, tuple[asyncio.Task[None], int]] = {}  # id -> (task, weight)
        self.closing = False  # asked to exit, or retiring: take nothing new
        self.over = self.loop.create_future()
        self.concurrency = Concurrency(fixed)
        self.load = 0  # the running tasks' weights
        self.ticking = False  # a measure is scheduled (only while something runs)

    def serve(self, message: tuple[Any, ...], mapped: Any, fn: Any) -> None:
        loop = self.loop
        loop.add_reader(self.worker.conn.fileno(), self._readable)
        loop.call_soon(self._start, message, mapped, fn)
        try:
            loop.run_until_complete(self.over)
        finally:
            self._cancel_all()
            loop.close()

    # -- frames from the parent -----------------------------------------------------------
    def _readable(self) -> None:
        conn = self.worker.conn
        try:
            while not self.over.done() and conn.poll():
                self._on_frame(pickle.loads(conn.recv_bytes()))
        except (EOFError, OSError):
            self._end()  # the parent closed our pipe: it is gone or shutting down

    def _on_frame(self, message: tuple[Any, ...] | None) -> None:
        if message is None:
            self._close()
        elif len(message) == 1:
            entry = self.running.get(message[0])
            if entry is not None:
                entry[0].cancel()  # at its next await; it answers CancelledError
        else:
            mapped = self.worker.receive(message)  # read even if ignored: the stream stays in step
            fn = self.worker.function(message[1], message[2])
            if not self.closing:  # else it never ran here; the parent requeues it
                self._start(message, mapped, fn)

    def _start(self, message: tuple[Any, ...], mapped: Any, fn: Any) -> None:
        worker = self.worker
        if not hasattr(type(fn), "_anypool_coroutine"):
            self._answer(worker.run_one(message, fn, mapped), mapped)  # nothing else runs
            return
        task_id, chunk, star = message[0], message[3], message[4]
        try:
            args, kwargs = worker.load_args(fn, message[5], mapped)
            if chunk:
                coroutine = fn._anypool_chunk_coroutine(args, star)
            else:
                coroutine = fn._anypool_coroutine(args, kwargs)
        except BaseException as exc:  # nothing of it ran
            self._answer(worker.failed(task_id, exc), mapped)
            return
        job = self.loop.create_task(self._run(task_id, coroutine, fn, chunk, mapped))
        job.add_done_callback(lambda done: self._cancelled_early(done, task_id, coroutine, mapped))
        self.running[task_id] = (job, len(args) if chunk else 1)
        self._load_changed(len(args) if chunk else 1)

    def _cancelled_early(self, job: Any, task_id: int, coroutine: Any, mapped: Any) -> None:
        """A cancel read in the same batch as its task cancels the asyncio task before its
        first step: _run never runs, and must still answer (the parent waits for it)."""
        if not job.cancelled() or task_id not in self.running:
            return
        import asyncio

        coroutine.close()  # never started: nothing of it ran
        self._load_changed(-self.running.pop(task_id)[1])
        error = asyncio.CancelledError("cancelled before it started")
        self._answer(self.worker.failed(task_id, error), mapped)

    async def _run(self, task_id: int, coroutine: Any, fn: Any, chunk: bool, mapped: Any) -> None:
        try:
            value = await coroutine
        except BaseException as exc:  # CancelledError (Pool.kill) and SystemExit too: its answer
            frame = self.worker.failed(task_id, exc)
        else:
            frame = self.worker.succeeded(task_id, fn, value, chunk)
        self._load_changed(-self.running.pop(task_id)[1])
        self._answer(frame, mapped)

    def _answer(self, frame: Frame, mapped: Any) -> None:
        try:
            self.worker.send(frame, mapped)
        except OSError:
            self._end()  # the parent is gone
            return
        if frame[1] & RETIRING:
            self._close()

    # -- ending -----------------------------------------------------------------------------
    def _close(self) -> None:
        """Take nothing new; exit once the running tasks have answered."""
        self.closing = True
        if not self.running:
            self._end()

    def _end(self) -> None:
        if not self.over.done():
            self.over.set_result(None)

    def _cancel_all(self) -> None:
        import asyncio

        jobs = [job for job, _ in self.running.values()]
        for job in jobs:
            job.cancel()
        if jobs:
            self.loop.run_until_complete(asyncio.gather(*jobs, return_exceptions=True))

    # -- concurrency ------------------------------------------------------------------------
    def _load_changed(self, change: int) -> None:
        self.load += change
        self.concurrency.load_changed(self.load)
        if self.closing and not self.running:
            self._end()
        elif self.running and not self.ticking:  # an idle worker does not wake to measure
            self.ticking = True
            self.loop.call_later(WINDOW_S, self._measure)

    def _measure(self) -> None:
        self.ticking = False
        if self.over.done():
            return
        if self.concurrency.measure():
            body = pickle.dumps((self.concurrency.limit, self.concurrency.busy))
            try:
                self.worker.conn.send_bytes(header(CAPACITY, 0) + body)
            except OSError:
                self._end()
                return
        if self.running:
            self.ticking = True
            self.loop.call_later(WINDOW_S, self._measure)


def serve(worker: Worker, message: tuple[Any, ...], mapped: Any, fn: Any) -> None:
    """Run ``message`` (the worker's first coroutine task) and every later task on an event
    loop, until the parent asks the worker to exit or goes away."""
    _Server(worker, worker.spec.concurrency).serve(message, mapped, fn)
