"""Streaming generator tasks: ``pool.stream(gen_fn, *args, buffer=N)``.

::

    pool.stream(gen_fn) ─► Task(drive_stream, end, gen_fn, ...) ─► Backend.submit (one task)
                                        │ in a worker
                                        ▼
    drive_stream: gen = gen_fn(...); _pump: next(gen) only while undelivered < N
        │ thread / asyncio: items land in a deque the consumer reads (_LocalChannel)
        │ process / auto:   batches of up to N/4 items, pickled, over a Unix socket the
        │                   worker opens to this process (_SocketEnd ─► _SocketChannel);
        │                   a link thread there flushes a batch older than _TICK_S and
        │                   reads the consumer's acks
        ▼
    StreamIterator.__next__ ◄── items ── _refill: acks delivered items, waits for more
        │ close() / break / garbage collection / Ctrl-C / Pool.shutdown (close_streams)
        │ ─► stop (a flag; on a socket, its shutdown) ─► the producer leaves its loop at
        │ the next item and closes the generator (GeneratorExit runs there)
        ▼ END, or the worker's side gone ─► the task's future says how it ended
          (StopIteration, the generator's exception, WorkerCrashed, TaskTimeout)

    inline: no worker; the consumer runs the generator itself, one item per next(), and
            settles the task at the end (its function returns the inline backend's
            SETTLED_LATER, which leaves it running until then).
    ray: the backend's own channel (Backend.stream_channel): Ray's streaming generators
         carry drive_stream's batches (_EngineChannel; anypool._backends._ray).

The stream is one ordinary task, so it needs nothing new from the backends (Ray aside,
whose workers cannot reach this process: its ``stream_channel`` lends Ray's streaming
generators; and inline's SETTLED_LATER) or the process wire protocol: its statistics,
timeline and ``Pool.kill`` are a task's. Why a socket and not ``pool.Queue()``: on
processes that is a proxy to a manager process, two hops and a round trip per call
(docs/design.md, "Streams").
"""

from __future__ import annotations

import functools
import inspect
import os
import pickle
import socket  # multiprocessing.connection imports it anyway; at exit nothing may be imported
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._errors._exceptions import CapabilityError, PoolClosed, SerializationError, TaskTimeout
from .._local._threads import start_thread
from .._observe._progress import ProgressHook, progress_hook
from .._task import Task, fn_name
from .._wire._pickle import split_at_unpicklable

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from ._pool import Pool

__all__ = ["DEFAULT_BUFFER", "StreamIterator", "close_streams", "drive_stream", "open_stream"]

T = TypeVar("T")

# Items the worker may have produced and the consumer not yet received from the iterator.
# Bigger moves small items faster (fewer round trips) but holds more memory in flight.
DEFAULT_BUFFER = 1024
# A process stream sends at most this many items per message (and at most buffer/4, so
# that about four batches are in flight and the worker rarely waits for an ack).
_BATCH_MAX = 256
# ...and aims at messages of about this size: big items go a few at a time, so a batch
# never holds hundreds of them pickled at once. The first batch is small, to measure.
_BATCH_BYTES = 1 << 20
_FIRST_BATCH = 16
# An item the worker produced waits at most about this long in its unsent batch.
_TICK_S = 0.002
# The consumer looks at the task's future (crash, timeout, cancel) at least this often.
_POLL_S = 0.05
# After the worker's end of a socket closed, how long to wait for the task's outcome.
_OUTCOME_WAIT_S = 30.0
_END: Any = None  # the last message of a stream: "no more items"
# Process streams use Unix sockets where there are some; tests turn this off to try TCP.
_UNIX_SOCKETS = True


class _Empty:
    """``take`` found nothing within its wait."""


_EMPTY = _Empty()
_LOST = _Empty()  # the worker's end of the socket closed without _END: it died


def _int_bytes(n: int) -> bytes:
    return n.to_bytes(8, "little", signed=True)


# -- worker side ------------------------------------------------------------------------------
def drive_stream(end: Any, gen_fn: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> int:
    """The stream's task: run ``gen_fn`` here and feed ``end``; returns the items produced.

    Module-level, so that it pickles by reference. The generator's own exception
    propagates after the items before it were sent: it is the task's outcome.
    """
    if not end.open():
        return 0  # the consumer left before the task started
    iterator: Any = None
    try:
        iterator = _iterate(gen_fn(*args, **kwargs), gen_fn)
        produced = _pump(end, iterator)
    finally:
        close = getattr(iterator, "close", None)
        try:
            if close is not None:
                close()  # GeneratorExit at the paused yield when it stopped early
        finally:
            end.finish()  # sends what is left
    if end.error is not None:  # an item that does not pickle stopped it
        raise end.error
    return produced


def _iterate(result: Any, gen_fn: Callable[..., Any]) -> Iterator[Any]:
    try:
        return iter(result)
    except TypeError:
        raise TypeError(
            f"pool.stream() needs a generator function (or one that returns an iterable); "
            f"{fn_name(gen_fn)}() returned {type(result).__name__}"
        ) from None


def _pump(end: Any, iterator: Iterator[Any]) -> int:
    """The hot loop: next() only while fewer than ``buffer`` items are undelivered."""
    append = end.pending.append
    produced = used = 0
    room = end.flush(0)
    if room <= 0:  # stopped before the first item
        return 0
    limit = min(room, end.batch)
    for item in iterator:
        append(item)
        used += 1
        if used >= limit:
            produced += used
            room = end.flush(used)
            used = 0
            if room <= 0:  # the consumer asked to stop
                return produced
            limit = min(room, end.batch)
        elif end.attention:  # stop, or (in-process) a consumer waiting for this item
            if end.stopping:
                break
            end.wake()
    return produced + used


# -- in-process channel (thread, asyncio) -----------------------------------------------------
class _LocalChannel:
    """Both ends in one process: the producer appends to a deque that the consumer pops.

    No lock on the hot path: ``deque.append`` and ``popleft`` are atomic. The producer
    notifies only when the consumer said it waits; both sides wait with a timeout, so a
    missed wake-up costs at most ``_POLL_S``.
    """

    def __init__(self, buffer: int) -> None:
        self.buffer = buffer
        self.batch = buffer  # nothing to send: the room check is the only stop
        self.pending: deque[Any] = deque()
        self.stopping = False
        self.attention = False  # stopping, or the consumer waits: the producer must look
        self.error: BaseException | None = None  # never set: nothing is pickled
        self._cond = threading.Condition(threading.Lock())
        self._produced = 0
        self._delivered = 0
        self._ended = False
        self.started_at: float | None = None

    # producer
    def open(self) -> bool:
        self.started_at = time.monotonic()
        return not self.stopping

    def flush(self, used: int) -> int:
        self._produced += used
        with self._cond:
            self._cond.notify_all()
            while not self.stopping and self._produced - self._delivered >= self.buffer:
                self._cond.wait(_POLL_S)
        return 0 if self.stopping else self.buffer - (self._produced - self._delivered)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def finish(self) -> None:
        self._ended = True
        self.wake()

    # consumer
    def take(self, wait: float) -> Any:
        if not self.pending:
            if self._ended and not self.pending:
                return _END
            with self._cond:
                # under the lock: a producer that appends after this check sees attention
                # and notifies, which waits for the lock until wait() below releases it
                self.attention = True
                if not self.pending and not self._ended:
                    self._cond.wait(wait)
                self.attention = self.stopping
        popleft = self.pending.popleft
        items = [popleft() for _ in range(len(self.pending))]
        if items:
            return items
        return _END if self._ended else _EMPTY

    def ack(self, n: int) -> None:
        self._delivered += n
        with self._cond:
            self._cond.notify_all()

    def stop(self) -> None:
        # no lock: close() may run in __del__, inside a wait here; the producer polls
        self.stopping = self.attention = True

    def close(self) -> None:
        pass


# -- cross-process channel (process, auto) ----------------------------------------------------
@dataclass
class _SocketEnd:
    """The worker's end of a stream: connects back to the consumer's socket. Pickles as
    the address, a one-time token and the sizes; the rest is made in the worker."""

    address: Any  # a Unix socket's path, or a loopback (host, port)
    token: bytes
    buffer: int
    batch: int
    pending: list[Any] = field(default_factory=list)
    stopping: bool = False
    attention: bool = False  # == stopping: the consumer, in another process, is never woken
    error: BaseException | None = None  # an item that does not pickle

    def wake(self) -> None:
        pass

    def __getstate__(self) -> tuple[Any, bytes, int, int]:
        return (self.address, self.token, self.buffer, self.batch)

    def __setstate__(self, state: tuple[Any, bytes, int, int]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def open(self) -> bool:
        from multiprocessing.connection import Connection

        unix = isinstance(self.address, str)
        sock = socket.socket(socket.AF_UNIX if unix else socket.AF_INET, socket.SOCK_STREAM)
        if not unix:  # acks are tiny: Nagle's delay would hold them back
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect(self.address)
        except OSError:  # the consumer closed the stream before it started
            sock.close()
            return False
        self._conn = Connection(sock.detach())
        self._conn.send_bytes(self.token)
        self._send_lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._produced = self._acked = 0
        self._max_batch, self.batch = self.batch, min(self.batch, _FIRST_BATCH)
        self._flushed_at = time.monotonic()
        self._done = False
        self._link = threading.Thread(target=self._run_link, name="anypool-stream-link")
        self._link.daemon = True
        start_thread(self._link)
        return True

    def flush(self, used: int) -> int:
        self._produced += used
        self._send_pending()
        with self._cond:
            while not self.stopping and self._produced - self._acked >= self.buffer:
                self._cond.wait(_POLL_S)
            return 0 if self.stopping else self.buffer - (self._produced - self._acked)

    def _send_pending(self, blocking: bool = True) -> None:
        # A send blocks while the socket is full (the consumer reads slowly): that is
        # backpressure too. The link thread does not queue behind the producer's send, so
        # that it keeps reading acks meanwhile.
        if not self._send_lock.acquire(blocking):
            return
        try:
            pending = self.pending
            n = len(pending)
            if not n or self.stopping:
                return
            # slice then delete: the producer may append meanwhile, past index n
            batch = pending[:n]
            del pending[:n]
            self._flushed_at = time.monotonic()
            data = self._dumps(batch)
            # the next batches' size, from this one's bytes per item (read by _pump)
            per_item = max(1, len(data) // n)
            self.batch = max(1, min(self._max_batch, _BATCH_BYTES // per_item))
            self._conn.send_bytes(data)
        except OSError:  # the consumer shut the socket: stop
            self._lost()
        finally:
            self._send_lock.release()

    def _dumps(self, batch: list[Any]) -> bytes:
        """The batch pickled; when an item does not pickle, the items before it, and the
        stream stops with a SerializationError naming it."""
        try:
            return pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
        except Exception:
            pass
        split = split_at_unpicklable(batch, functools.partial(pickle.dumps, protocol=5))
        if split is None:  # pragma: no cover  (every item alone pickles, together not)
            raise SerializationError("a batch of streamed items cannot be pickled")
        good, self.error = split
        self._lost()
        return pickle.dumps(good, pickle.HIGHEST_PROTOCOL)

    def _run_link(self) -> None:
        """Reads acks (the end of the socket is the consumer's stop), and sends a batch the
        producer left waiting (it is inside a slow next())."""
        conn = self._conn
        while not self._done:
            try:
                if conn.poll(_TICK_S):
                    self._received(int.from_bytes(conn.recv_bytes(), "little", signed=True))
                elif self.pending and time.monotonic() - self._flushed_at >= _TICK_S:
                    self._send_pending(blocking=False)
            except (EOFError, OSError):
                self._lost()
                return

    def _received(self, n: int) -> None:
        with self._cond:
            self._acked += n
            self._cond.notify_all()

    def _lost(self) -> None:
        with self._cond:  # the consumer is gone: nobody wants more items
            self.stopping = self.attention = True
            self._cond.notify_all()

    def finish(self) -> None:
        self._send_pending()
        try:
            with self._send_lock:
                if not self.stopping:
                    self._conn.send_bytes(pickle.dumps(_END))
        except OSError:
            pass
        self._done = True
        self._link.join()
        self._conn.close()


class _SocketChannel:
    """The consumer's end of a process stream: a listening Unix socket in a private
    directory; the worker connects and proves itself with the token."""

    def __init__(self, buffer: int) -> None:
        # imported here: a pool that never streams to a process does not pay for them
        import tempfile

        if _UNIX_SOCKETS and hasattr(socket, "AF_UNIX"):
            self._dir: str | None = tempfile.mkdtemp(prefix="anypool-stream-")
            address: Any = os.path.join(self._dir, "s")
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:  # no Unix sockets (older Windows): loopback TCP, the token still guards it
            self._dir = None
            address = ("127.0.0.1", 0)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(address)
        listener.listen(1)
        self._listener: socket.socket | None = listener
        address = listener.getsockname()
        self._token = os.urandom(16)
        self._conn: Connection | None = None
        self.started_at: float | None = None
        batch = max(1, min(_BATCH_MAX, buffer // 4))
        self.end = _SocketEnd(address, self._token, buffer, batch)
        self._unacked = 0
        self._ack_every = batch
        self._send_lock = threading.Lock()  # acks (consumer) and stop (pool shutdown)

    def _accept(self, wait: float) -> bool:
        import select
        from multiprocessing.connection import Connection

        listener = self._listener
        if listener is None or not select.select([listener], [], [], wait)[0]:
            return False
        sock, _ = listener.accept()
        if self._dir is None:  # TCP: see _SocketEnd.open
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock.detach())
        if not conn.poll(_OUTCOME_WAIT_S) or conn.recv_bytes(64) != self._token:
            conn.close()  # not our worker
            return False
        self._conn = conn
        self.started_at = time.monotonic()
        self._close_listener()
        return True

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            if self._dir is not None:
                try:
                    os.unlink(self.end.address)
                    os.rmdir(self._dir)
                except OSError:
                    pass

    def take(self, wait: float) -> Any:
        """A batch, ``_END``, ``_EMPTY``, or ``_LOST`` when the worker's end closed
        without ``_END`` (the worker died)."""
        if self._conn is None and not self._accept(wait):
            return _EMPTY
        conn = self._conn
        assert conn is not None
        try:
            if self._unacked and not conn.poll(0):
                self._send_ack()  # about to wait: the producer may be waiting for room
            if not conn.poll(wait):
                return _EMPTY
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return _LOST
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise SerializationError(
                f"items the worker streamed cannot be unpickled in this process: {exc!r}"
            ) from exc

    def ack(self, n: int) -> None:
        self._unacked += n
        if self._unacked >= self._ack_every:
            self._send_ack()

    def _send_ack(self) -> None:
        n, self._unacked = self._unacked, 0
        self._send(n)

    def _send(self, n: int) -> None:
        with self._send_lock:
            conn = self._conn
            if conn is not None:
                try:
                    conn.send_bytes(_int_bytes(n))
                except OSError:
                    pass  # the worker's side is gone; take() will say so

    def stop(self) -> None:
        """Shut the socket down both ways: the worker's link thread reads its end, or its
        blocked send fails, either way at once; a stop message could wait behind a full
        socket. Safe from another thread while the consumer reads: shutdown(), unlike
        close(), leaves the descriptor in place, and the reader gets an end of file."""
        self._close_listener()  # a worker that has not started yet finds nobody
        with self._send_lock:
            conn = self._conn
            if conn is None:
                return
            try:
                sock = socket.socket(fileno=os.dup(conn.fileno()))
            except OSError:
                return  # already closed
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the worker's side is gone already
        finally:
            sock.close()

    def close(self) -> None:
        self._close_listener()
        with self._send_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


# -- inline: the consumer runs the generator ----------------------------------------------------
class _DirectChannel:
    """For backends whose tasks run in the caller: no worker, no buffer. The task only
    makes the iterator (``_make_iterator``) and stays running; the consumer runs the
    generator here, one item per ``take``, and settles the task at the end: the number
    of items produced, or the generator's exception, as drive_stream's outcome is."""

    started_at: float | None = None

    def __init__(self) -> None:
        self.task: Task | None = None  # the stream's task, set before it is submitted
        self.iterator: Iterator[Any] | None = None  # set by the task; None once it ended
        self._produced = 0
        self._stopping = threading.Event()  # stop() came, maybe from another thread
        self._busy = threading.Lock()  # held while the generator runs

    def take(self, wait: float) -> Any:
        with self._busy:
            if self.iterator is None or self._stopping.is_set():
                self._finish()
                return _END  # ended, stopped, or the task failed before it made one
            try:
                item = next(self.iterator)
            except StopIteration:
                self._finish()
                return _END
            except BaseException as exc:
                self._fail(exc)
                raise
            self._produced += 1
            if self._stopping.is_set():  # stop() came from another thread meanwhile
                self._finish()
            return [item]

    def ack(self, n: int) -> None:
        pass

    def stop(self) -> None:
        """Close the generator (GeneratorExit at its yield), here or, when another thread
        is inside it, in that thread's ``take`` once the item is made."""
        self._stopping.set()
        if self._busy.acquire(blocking=False):
            try:
                self._finish()
            finally:
                self._busy.release()

    def _finish(self) -> None:
        iterator, self.iterator = self.iterator, None
        close = getattr(iterator, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as exc:
            self._fail(exc)
            raise
        if self.task is not None:
            self.task.settle(self._produced)  # a no-op once the task is resolved

    def _fail(self, exc: BaseException) -> None:
        self.iterator = None
        if self.task is not None:
            self.task.fail(exc)

    def close(self) -> None:
        pass


class _EngineChannel:
    """A backend's own streaming behind the channel protocol (Ray's streaming generators,
    from its ``stream_channel`` hook): its ``take`` gives a batch, ``[]`` when nothing came
    within the wait, None at the end; the engine counts what was consumed (no acks)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.end = stream.end

    @property
    def started_at(self) -> float | None:
        started: float | None = self._stream.started_at
        return started

    def take(self, wait: float) -> Any:
        got = self._stream.take(wait)
        if got is None:
            return _END
        return got if got else _EMPTY

    def ack(self, n: int) -> None:
        pass

    def stop(self) -> None:
        self._stream.stop()

    def close(self) -> None:
        self._stream.close()


def _make_iterator(
    end: _DirectChannel, gen_fn: Callable[..., Any], args: Any, kwargs: dict[str, Any]
) -> Any:
    """The inline stream's task: makes the iterator, which the consumer drives, and
    leaves the task running: ``end`` settles it when the generator ends."""
    from .._backends._inline import SETTLED_LATER

    end.iterator = _iterate(gen_fn(*args, **kwargs), gen_fn)
    return SETTLED_LATER


class _StreamCall:
    """A stream's task function: calls ``run`` (drive_stream), and is named and compared
    by the generator function, so that statistics and the timeline show
    ``stream(gen_fn)`` and ``backend="auto"`` measures each generator function apart."""

    def __init__(self, run: Callable[..., Any], gen_fn: Callable[..., Any]) -> None:
        self.run = run
        self.gen_fn = gen_fn
        self.__qualname__ = f"stream({fn_name(gen_fn)})"

    def __call__(self, end: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        return self.run(end, self.gen_fn, args, kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_StreamCall, (self.run, self.gen_fn))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _StreamCall) and (self.run, self.gen_fn) == (
            other.run,
            other.gen_fn,
        )

    def __hash__(self) -> int:
        try:
            return hash((self.run, self.gen_fn))
        except TypeError:  # an unhashable callable: by identity
            return hash((self.run, id(self.gen_fn)))

    def __repr__(self) -> str:
        return f"<anypool {self.__qualname__}>"


# -- the consumer ---------------------------------------------------------------------------------
class StreamIterator(Generic[T]):
    """What :meth:`Pool.stream` returns: the items of a generator running in a worker,
    as it yields them; ``for``, ``async for``, ``with`` and ``close()``.

    ``future`` is the stream's task: it resolves to the number of items produced, or
    to the generator's exception, when the stream ends.
    """

    def __init__(
        self,
        channel: Any,
        future: Future[Any],
        *,
        name: str,
        expire: Callable[[TaskTimeout], object],
        item_timeout: float | None,
        hook: ProgressHook | None,
    ) -> None:
        self._channel = channel
        self.future = future
        self._name = name
        self._expire = expire
        self._item_timeout = item_timeout
        self._hook = hook
        self._items: Iterator[T] = iter(())
        self._last = 0  # items in the batch being yielded (acked at the next refill)
        self._done = False
        self._shut = False  # stopped by the pool's shutdown
        self.items_received = 0

    def __repr__(self) -> str:
        state = "done" if self._done else "open"
        return f"<anypool.StreamIterator {self._name} {state}, {self.items_received} items>"

    def __iter__(self) -> StreamIterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return next(self._items)
        except StopIteration:
            pass
        try:
            self._items = iter(self._refill())
        except BaseException:
            self._end(stop=True)
            raise
        return next(self._items)

    def _refill(self) -> list[T]:
        if self._done:
            raise StopIteration
        self._channel.ack(self._last)
        self._last = 0
        waited_from = time.monotonic()
        while True:
            got = self._take(waited_from)
            if got is _END:
                self._end(stop=False)
                self._raise_outcome()
            if got is not _EMPTY:
                return self._received(got)
            if self.future.done() and (self.future.cancelled() or self.future.exception()):
                self._raise_outcome()  # failed, timed out, cancelled: nothing more comes

    def _take(self, waited_from: float) -> Any:
        started = self._channel.started_at
        if self._item_timeout is None or started is None:
            wait = _POLL_S
        else:
            since = max(waited_from, started)
            wait = since + self._item_timeout - time.monotonic()
            if wait <= 0:
                error = TaskTimeout(
                    f"stream {self._name} produced no item for {self._item_timeout} s "
                    f"(item_timeout={self._item_timeout}); the task was stopped"
                )
                self._expire(error)  # the task fails with it, then is stopped
                raise error
            wait = min(wait, _POLL_S)
        got = self._channel.take(wait)
        if got is _LOST:
            self._end(stop=False)
            self._wait_outcome()
            self._raise_outcome()
        return got

    def _received(self, batch: list[T]) -> list[T]:
        self._last = len(batch)
        self.items_received += len(batch)
        if self._hook is not None:
            self._hook.advance(len(batch))
        return batch

    def _wait_outcome(self) -> None:
        try:
            self.future.exception(timeout=_OUTCOME_WAIT_S)
        except CancelledError:
            pass

    def _raise_outcome(self) -> None:
        """The task's outcome: StopIteration when it ended well, else its exception. A
        failed task's generator may still run (a thread abandoned at its timeout): it is
        told to stop."""
        future = self.future
        if not future.done():
            self._wait_outcome()
        if future.cancelled():
            self._end(stop=True)
            raise CancelledError(f"stream {self._name} was cancelled before it started")
        if not future.done():
            self._end(stop=True)
            raise TaskTimeout(
                f"stream {self._name}: the worker's side ended but its task has not "
                f"resolved after {_OUTCOME_WAIT_S} s"
            )
        error = future.exception()
        self._end(stop=error is not None)
        if error is not None:
            raise error
        if self._shut:
            raise PoolClosed(f"stream {self._name} was stopped: its pool was shut down")
        raise StopIteration

    def _end(self, *, stop: bool) -> None:
        if self._done:
            return
        self._done = True
        self._items = iter(())
        if stop:
            self.future.cancel()  # not started yet: it never will
            self._channel.stop()
        self._channel.close()
        if self._hook is not None:
            self._hook.close()

    def close(self) -> None:
        """Stop the stream: the generator in the worker gets ``GeneratorExit`` at its next
        ``yield`` (its ``finally`` runs there) and the items in flight are dropped. Does
        not wait; ``future`` resolves when the worker has left the generator."""
        self._end(stop=True)

    def _shutdown(self) -> None:
        """From the pool's shutdown, in any thread: stop the producer only. The consumer's
        own thread closes the channel when it sees the end (it may be reading it now)."""
        if not self._done:
            self._shut = True
            self._channel.stop()

    def __enter__(self) -> StreamIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self.__dict__.get("_done", True):
            self.close()

    # -- async for ------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[T]:
        return _AsyncStream(self)

    def _refill_for_async(self) -> None:
        try:
            self._items = iter(self._refill())
        except StopIteration:
            self._items = iter(())
            self._done = True
        except BaseException:
            self._end(stop=True)
            raise


class _AsyncStream(AsyncIterator[T]):
    """``async for`` over a stream: items already here come without a thread; waiting for
    the next batch runs in a thread of its own, so the loop never blocks."""

    def __init__(self, stream: StreamIterator[T]) -> None:
        self._stream = stream

    def __aiter__(self) -> _AsyncStream[T]:
        return self

    async def __anext__(self) -> T:
        from ._aio import _in_thread

        stream = self._stream
        while True:
            try:
                return next(stream._items)
            except StopIteration:
                if stream._done:
                    raise StopAsyncIteration from None
            try:
                await _in_thread(stream._refill_for_async, "anypool-stream-aio")
            except BaseException:  # cancelled (Ctrl-C under asyncio.run): stop the worker
                stream.close()
                raise

    async def aclose(self) -> None:
        self._stream.close()


# -- Pool.stream ---------------------------------------------------------------------------------
# The open streams of each pool: its shutdown stops them, or a producer paused by
# backpressure (nobody reads) would hold shutdown(wait=True) forever.
_OPEN: weakref.WeakKeyDictionary[Any, weakref.WeakSet[StreamIterator[Any]]] = (
    weakref.WeakKeyDictionary()
)
_OPEN_LOCK = threading.Lock()
_exit_hooked = False


def close_streams(pool: Pool) -> None:
    """At pool shutdown, before the backend's: stop every stream still open on ``pool``;
    their generators get GeneratorExit and an iterator read later raises PoolClosed."""
    with _OPEN_LOCK:
        streams = list(_OPEN.pop(pool, ()))
    for stream in streams:
        stream._shutdown()


def _register(pool: Pool, stream: StreamIterator[Any]) -> None:
    global _exit_hooked
    with _OPEN_LOCK:
        _OPEN.setdefault(pool, weakref.WeakSet()).add(stream)
        if not _exit_hooked:
            # A stream left open on a pool never shut down: at exit the backends' hook
            # (anypool._local._atexit) waits for running tasks, and a producer paused by
            # backpressure never ends. This hook is registered after theirs, so it runs
            # first (threading's exit hooks run last-in, first-out) and stops the streams.
            try:
                threading._register_atexit(_close_all_streams)  # type: ignore[attr-defined]
            except RuntimeError:  # the interpreter is already shutting down
                pass
            _exit_hooked = True


def _close_all_streams() -> None:
    with _OPEN_LOCK:
        streams = [stream for group in _OPEN.values() for stream in group]
        _OPEN.clear()
    for stream in streams:
        stream._shutdown()


def _check_options(buffer: object, item_timeout: object, retries: object) -> None:
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer <= 0:
        raise ValueError(f"buffer must be a positive int (items), got {buffer!r}")
    if item_timeout is not None and (
        isinstance(item_timeout, bool)
        or not isinstance(item_timeout, (int, float))
        or item_timeout <= 0
    ):
        raise ValueError(f"item_timeout must be a positive number or None, got {item_timeout!r}")
    if retries:
        raise ValueError(
            f"pool.stream() cannot retry (retries={retries!r}): a re-run would deliver the "
            "items produced before the failure twice; catch the error and start a new stream"
        )


def _check_generator_fn(gen_fn: object, options: dict[str, object]) -> None:
    if not callable(gen_fn):
        raise TypeError(f"gen_fn must be callable, got {type(gen_fn).__name__} {gen_fn!r}")
    if inspect.isasyncgenfunction(gen_fn):
        raise TypeError(
            f"pool.stream() runs plain generator functions; {fn_name(gen_fn)} is an async "
            "generator function"
        )
    try:
        parameters = inspect.signature(gen_fn).parameters
    except (TypeError, ValueError):
        return
    for name, value in options.items():
        if name in parameters and parameters[name].kind is not inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(
                f"pool.stream({fn_name(gen_fn)}, ..., {name}={value!r}) is ambiguous: "
                f"{fn_name(gen_fn)}() also takes {name}=, and stream() reads it as its own "
                f"option; pass the function's argument with functools.partial"
            )


def _channel_for(pool: Pool, buffer: int) -> Any:
    caps = pool._backend.capabilities
    name = pool._backend.name
    # a backend that streams through its engine (Ray) says so with this hook; it is not
    # part of abc.Backend, since the channel it returns follows this module's protocol
    engine_channel = getattr(pool._backend, "stream_channel", None)
    if engine_channel is not None:
        return _EngineChannel(engine_channel(buffer))
    if caps.remote:
        raise CapabilityError(
            f"the {name!r} backend has no streaming in anypool yet: its workers are on other "
            "machines and cannot reach this process's stream socket, and the engine has no "
            "streaming results of its own; use a ray, process or thread pool, or return a "
            "list from a task"
        )
    if name != "auto" and caps.shares_memory:
        return _LocalChannel(buffer)
    # process, or auto (which may run it on a thread or a process: a socket serves both)
    return _SocketChannel(buffer)


def open_stream(
    pool: Pool,
    gen_fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    buffer: int,
    timeout: float | None,
    item_timeout: float | None,
    retries: int | None,
    progress: bool | Mapping[str, Any],
) -> StreamIterator[Any]:
    """:meth:`Pool.stream`: submit the stream's task and return its iterator."""
    _check_options(buffer, item_timeout, retries)
    given = {"buffer": buffer, "timeout": timeout, "item_timeout": item_timeout}
    _check_generator_fn(gen_fn, {k: v for k, v in given.items() if v not in (None, DEFAULT_BUFFER)})
    caps = pool._backend.capabilities
    if caps.runs_in_caller and (timeout is not None or item_timeout is not None):
        raise CapabilityError(
            f"the {pool._backend.name!r} backend runs the generator in the caller: nothing "
            "can interrupt it, so timeout= and item_timeout= cannot be enforced"
        )
    hook = progress_hook(progress, (iter(()),))  # no total: a generator's length is unknown
    inline = caps.runs_in_caller
    channel: Any = _DirectChannel() if inline else _channel_for(pool, buffer)
    end = getattr(channel, "end", channel)
    call = _StreamCall(_make_iterator if inline else drive_stream, gen_fn)
    task = pool._task(call, (end, args, kwargs), {}, timeout=timeout, retries=0, priority=None)
    if inline:
        channel.task = task
    try:
        future = pool._submit_task(task)
    except BaseException:
        channel.stop()
        channel.close()
        raise
    if hook is not None:
        hook.start()
    stream: StreamIterator[Any] = StreamIterator(
        channel,
        future,
        name=f"stream({fn_name(gen_fn)})",
        expire=functools.partial(_expire, pool, task),
        item_timeout=item_timeout,
        hook=hook,
    )
    _register(pool, stream)  # inline too: shutdown closes the generator, settling its task
    return stream


def _expire(pool: Pool, task: Task, error: TaskTimeout) -> None:
    """``item_timeout`` ran out: the task fails with the consumer's TaskTimeout first (a
    timeout in statistics and the timeline, as ``timeout=``'s), then the backend stops
    it (kills the process, abandons the thread): Pool.kill would make it a cancel."""
    task.fail(error)
    pool._backend.kill(task)
