"""The process backend's wire format, shared by the dispatcher (parent) and the workers.

::

    parent ─► worker: one frame, the pickle of
        None (exit) | (task_id, fn_id, fn_blob | None, chunk, star, args_pickle, sizes,
                       verdicts: [(id of an earlier result, released)])
                    | (task_id,): cancel that running coroutine task (Pool.kill)
    worker ─► parent: one frame, HEADER (task_id, flags, n) + n x SIZE + pickled body
    either way, when sizes/n are not empty, right after the frame:
        1 byte carrying one descriptor (SCM_RIGHTS): the shared-memory segment that holds
        the message's out-of-band buffers, of those sizes, in order (anypool._wire._shm)

Frames go through the multiprocessing ``Connection`` over the worker's socketpair (a Unix
stream socket on Linux); its ``recv_bytes`` reads exactly one frame, so the byte that
carries the descriptor is never read by it, and is read with ``recvmsg`` right after.

The header never fails to decode, so the parent always knows which task a message
answers even when the body cannot be unpickled there. ``task_id`` is a task's id,
``READY`` (the initializer ran; no body), ``INIT_FAILED`` (body: the exception) or
``CAPACITY`` (body: (how many coroutines the worker now runs at once, the share of its
time it was busy): see _loop.Concurrency). Flags:
``OK`` (the body is the result, else an exception), ``RETIRING`` (this worker exits after
this message and will not read the task waiting in its pipe), ``ARGS_FAILED`` (the
arguments could not be unpickled: nothing of the task ran), ``ARGS_RELEASED`` (nothing in
the worker maps the segment of the task's arguments any more).

Answers come in the order tasks end: in the order sent for plain functions (a worker
runs them one at a time), in any order for coroutine functions, which a worker runs at
once on its event loop (_loop).

Segments are reused (anypool._wire._shm.Segments): the writer keeps a segment's descriptor
until the reader's verdict on it, ``ARGS_RELEASED`` for a task's arguments, and the
``verdicts`` of the next task message for results; a released segment is rewritten for a
later message, any other is closed (the reader's mapping then holds it alone).

Imported by every worker: it must stay cheap to import (socket and mmap load only when a
segment travels).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ARGS_FAILED",
    "ARGS_RELEASED",
    "CAPACITY",
    "FN_CACHE_SIZE",
    "HEADER",
    "INIT_FAILED",
    "OK",
    "READY",
    "RETIRING",
    "SIZE",
    "body_offset",
    "header",
    "recv_segment",
    "send_segment",
]

HEADER = struct.Struct("<qBI")
SIZE = struct.Struct("<Q")
INIT_FAILED = -1
READY = -2
CAPACITY = -3
OK = 1
RETIRING = 2
ARGS_FAILED = 4
# the worker no longer maps the segment of the task's arguments: the parent may rewrite it
ARGS_RELEASED = 8
# Functions kept unpickled per worker; the parent mirrors this LRU exactly.
FN_CACHE_SIZE = 64


def header(task_id: int, flags: int, sizes: Sequence[int] = ()) -> bytes:
    return HEADER.pack(task_id, flags, len(sizes)) + b"".join(SIZE.pack(s) for s in sizes)


def body_offset(frame: Any) -> tuple[list[int], int]:
    """(sizes of the out-of-band buffers, where the pickled body starts) of a frame."""
    count = HEADER.unpack_from(frame)[2]
    sizes = [SIZE.unpack_from(frame, HEADER.size + i * SIZE.size)[0] for i in range(count)]
    return sizes, HEADER.size + count * SIZE.size


def _socket(conn: Any) -> Any:
    """A socket object over the Connection's descriptor, without a second descriptor: the
    caller detaches it when done, so closing stays the Connection's business."""
    import socket

    sock = socket.socket(fileno=conn.fileno())
    sock.settimeout(None)  # blocking, as the Connection uses it (setdefaulttimeout aside)
    return sock


def send_segment(conn: Any, fd: int) -> None:
    """Send the segment ``fd`` right after the frame it belongs to (the caller closes fd)."""
    import socket

    sock = _socket(conn)
    try:
        socket.send_fds(sock, [b"\0"], [fd])
    finally:
        sock.detach()


def recv_segment(conn: Any) -> int:
    """Receive the segment sent right after the frame just read; EOFError if the peer died
    between the two (its socket is gone, and the descriptor with it)."""
    import socket

    sock = _socket(conn)
    try:
        flags = getattr(socket, "MSG_CMSG_CLOEXEC", 0)  # never inherited by a fork meanwhile
        _, fds, _, _ = socket.recv_fds(sock, 1, 1, flags)
    finally:
        sock.detach()
    if not fds:
        raise EOFError("the peer closed its socket before it sent a segment")
    for extra in fds[1:]:  # never sent; closed rather than leaked
        import os

        os.close(extra)
    return int(fds[0])
