"""Large buffers out of band: pickle protocol 5, and one shared-memory segment per message.

::

    writer: obj ─► Pickler(protocol 5, buffer_callback) ─► in-band pickle  ─► pipe (frame)
                    │ large bytes/bytearray swapped for _Large                 │
                    └ buffers ≥ OOB_THRESHOLD ─► memfd (one copy: pwrite) ─► SCM_RIGHTS ─┐
    reader: frame ─► loads(buffers=views) ◄── memoryview slices ◄── mmap(MAP_PRIVATE) ◄──┘
                                                                   (fd closed at once)

What travels out of band: every ``pickle.PickleBuffer`` the object produces (NumPy arrays,
anything with a protocol-5 ``__reduce_ex__``), ``memoryview``\\ s (which plain pickle
refuses), and ``bytes``/``bytearray`` that are an argument, a map item or a result, or an
element of a tuple, list or dict among those, up to ``_SWAP_DEPTH`` levels down and
``_SWAP_WIDTH`` elements wide. Pickle's C fast path never asks a hook about exact
``bytes`` (not ``reducer_override``, not ``dispatch_table``), so they are found by that
shallow walk; deeper ones (inside your own objects) travel in band, still correct.

How each kind arrives: a NumPy array as an array over the mapping (zero copies on the
reader), a ``memoryview`` as a memoryview over it (read-only if the original was), ``bytes``
and ``bytearray`` as themselves (one copy out of the mapping: a bytes object owns its
storage). The mapping is private (copy-on-write): an array that arrives is writable, and
writing to it touches neither the other process nor the segment.

A segment is a ``memfd`` (Linux): it has no name, so nothing is ever left in /dev/shm or
in multiprocessing's resource tracker, whoever dies. The kernel frees it when its last
descriptor and mapping go: the writer closes its descriptor right after sending it, a
descriptor still in flight dies with the socket, and the reader closes its descriptor as
soon as it has mapped it; the mapping lives as long as the objects built over it.
Elsewhere (no memfd) every buffer travels in band, as before.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import sys
from collections.abc import Callable, Sequence

# A spawned worker imports this module at every start: typing is for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AWAITING",
    "OOB_THRESHOLD",
    "SUPPORTED",
    "Encoded",
    "Mapped",
    "Segments",
    "dumps",
    "load",
    "map_segment",
    "segment_size",
]

# Buffers at least this large travel out of band (measured with benchmarks/bench_payload.py
# --threshold; docs/design.md, "Zero-copy payloads"). A segment costs a fixed ~100 us per
# round trip on the 2-core VM (pwrite, a second sendmsg/recvmsg for the descriptor and the
# wake-up it may cost, fstat, mmap, munmap); in band costs copies of the bytes through the
# pipe, and a frame larger than the socket's buffer (~208 KiB) makes the writer wait for
# the reader. Measured round trips, in band / out of band: 128 KiB 316 / 357 us, 256 KiB
# 1062 / 631 us, 1 MiB 5.6 / 2.6 ms. Lower wastes ~100 us on buffers that copy faster
# than that; higher sends 200 KiB+ frames over the pipe's cliff.
OOB_THRESHOLD = 128 * 1024
# Linux only: memfd_create (3.8+) and SCM_RIGHTS through socket.send_fds (3.9+).
SUPPORTED = sys.platform.startswith("linux") and hasattr(os, "memfd_create")
PROTOCOL = 5
# Buffers start at multiples of this in a segment: NumPy wants aligned data (64 covers
# every dtype and a cache line).
_ALIGN = 64
# How far the walk for large bytes/bytearray looks: (args, kwargs) -> args -> an argument
# -> its elements; a map chunk: (items, {}) -> items -> an item (a tuple for starmap) ->
# its elements. Containers wider than _SWAP_WIDTH are not searched: a map chunk of large
# items is always small (the read-ahead caps a chunk's bytes), and searching 10,000s of
# small items per chunk would cost more than it could ever save.
_SWAP_DEPTH = 4
_SWAP_WIDTH = 64


def _rebuild_bytes(buffer: Any) -> bytes:
    return buffer if type(buffer) is bytes else bytes(buffer)


def _rebuild_bytearray(buffer: Any) -> bytearray:
    return buffer if type(buffer) is bytearray else bytearray(buffer)


class _Large:
    """Stands in for a large bytes or bytearray so that it pickles as a PickleBuffer."""

    __slots__ = ("obj",)

    def __init__(self, obj: bytes | bytearray) -> None:
        self.obj = obj

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild = _rebuild_bytes if type(self.obj) is bytes else _rebuild_bytearray
        return rebuild, (pickle.PickleBuffer(self.obj),)


def _rebuild_memoryview(buffer: Any, fmt: str, shape: tuple[int, ...]) -> memoryview:
    view: Any = memoryview(buffer)  # Any: typeshed's cast() wants a literal format
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    rebuilt: memoryview = view if (fmt, shape) == ("B", (view.nbytes,)) else view.cast(fmt, shape)
    return rebuilt


def _reduce_memoryview(view: memoryview) -> tuple[Any, ...]:
    """memoryview, which plain pickle refuses: its bytes as a PickleBuffer (out of band when
    large), rebuilt as a memoryview of the same format and shape."""
    shape = view.shape or ()
    if not view.c_contiguous:
        copy: Any = memoryview(view.tobytes())  # Any: typeshed's cast() wants a literal
        view = copy.cast(view.format, shape)
    return _rebuild_memoryview, (pickle.PickleBuffer(view), view.format, shape)


def _swap(obj: Any, depth: int, memo: dict[int, _Large]) -> Any:
    """``obj`` with large bytes/bytearray (see _SWAP_DEPTH) replaced by _Large; containers
    are copied only where something was replaced. ``memo``: one stand-in per object, so
    that one buffer held twice travels once and arrives as one object, as pickle's own
    memo would have it."""
    kind = type(obj)
    if kind is bytes or kind is bytearray:
        if len(obj) < OOB_THRESHOLD:
            return obj
        large = memo.get(id(obj))
        if large is None:
            large = memo[id(obj)] = _Large(obj)
        return large
    if depth == 0 or not (kind is tuple or kind is list or kind is dict) or len(obj) > _SWAP_WIDTH:
        return obj
    if kind is dict:
        values = [_swap(v, depth - 1, memo) for v in obj.values()]
        if all(a is b for a, b in zip(values, obj.values())):
            return obj
        return dict(zip(obj.keys(), values))
    items = [_swap(v, depth - 1, memo) for v in obj]
    if all(a is b for a, b in zip(items, obj)):
        return obj
    return tuple(items) if kind is tuple else items


class _Pickler(pickle.Pickler):
    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[memoryview] = _reduce_memoryview


class Encoded:
    """A pickled object and its out-of-band buffers (views of the original objects: the
    copy into shared memory is made when it is sent, see :func:`write_segment`)."""

    __slots__ = ("buffers", "data")

    def __init__(self, data: bytes, buffers: list[memoryview]) -> None:
        self.data = data
        self.buffers = buffers

    def __len__(self) -> int:
        """Bytes that travel through the pipe."""
        return len(self.data)

    @property
    def sizes(self) -> list[int]:
        return [b.nbytes for b in self.buffers]


def _collector(buffers: list[memoryview]) -> Callable[[pickle.PickleBuffer], bool]:
    def collect(buffer: pickle.PickleBuffer) -> bool:
        """False (out of band) for a large contiguous buffer; True keeps it in band."""
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: pickle copies it in band
            return True
        if raw.nbytes < OOB_THRESHOLD:
            return True
        buffers.append(raw)
        return False

    return collect


def dumps(obj: Any, fallback: Callable[[Any, Any], bytes] | None = None) -> Encoded:
    """Pickle ``obj`` with its large buffers out of band (in band where unsupported).
    ``fallback(obj, buffer_callback)`` pickles what plain pickle refuses (cloudpickle)."""
    if not SUPPORTED:
        return Encoded(_dumps_plain(obj, None), [])
    buffers: list[memoryview] = []
    callback = _collector(buffers)
    swapped = _swap(obj, _SWAP_DEPTH, {})
    try:
        return Encoded(_dumps_plain(swapped, callback), buffers)
    except Exception:
        if fallback is None:
            raise
    buffers.clear()
    return Encoded(fallback(swapped, callback), buffers)


def _dumps_plain(obj: Any, callback: Callable[[pickle.PickleBuffer], bool] | None) -> bytes:
    stream = io.BytesIO()
    _Pickler(stream, PROTOCOL, buffer_callback=callback).dump(obj)
    return stream.getvalue()


# -- segments ---------------------------------------------------------------------------------
# Segments this process wrote and still holds (sent and awaiting the reader's verdict, or
# free for reuse). A forked child closes their descriptors at once: it would otherwise keep
# them, and the memory behind them, for its whole life. (Their mappings are not inherited,
# MADV_DONTFORK; the child closes its mmap objects over the now empty range right away, so
# that none of them can unmap what the child maps there later.)
_OWNED: set[_Segment] = set()
# Forks of this process so far. A mapping made before a fork may live on in the child (over
# an object the child inherited), so it is never reported released: its segment is not
# rewritten under the child's feet.
_FORKS = 0
# Writing into pages a segment already has is a plain copy; a new segment's pages are
# allocated and zeroed by the kernel first, which on the 2-core VM of benchmarks/RESULTS.md
# cost 3-5x the copy (8 MiB: 1.5 ms into an old segment, 4-8 ms into a new one). So each
# writer keeps, per peer, up to _KEEP_FREE segments that the reader reported released,
# each at most _KEEP_MAX_BYTES (memory a quiet pool holds: 2 x 256 MiB per worker per
# direction at worst), and waits for at most AWAITING verdicts before it gives up on the
# oldest (closes it: always safe, only not reused).
_KEEP_FREE = 2
_KEEP_MAX_BYTES = 256 << 20
AWAITING = 8


def _close_owned_after_fork() -> None:
    global _FORKS
    _FORKS += 1
    for segment in list(_OWNED):
        segment.close()
    _OWNED.clear()


def _count_fork() -> None:
    global _FORKS
    _FORKS += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_owned_after_fork, after_in_parent=_count_fork)


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


def segment_size(sizes: Sequence[int]) -> int:
    return sum(_aligned(size) for size in sizes)


class _Segment:
    """A memfd this process writes, mapped here once (shared, never inherited by a fork):
    rewriting it is then a plain copy into pages that are already there."""

    __slots__ = ("fd", "mapping", "size")

    def __init__(self) -> None:
        self.fd = os.memfd_create("anypool-payload", os.MFD_CLOEXEC)
        self.size = 0
        self.mapping: Any = None
        _OWNED.add(self)

    def fill(self, buffers: Sequence[memoryview]) -> None:
        need = segment_size([b.nbytes for b in buffers])
        if need > self.size:
            import mmap

            os.ftruncate(self.fd, need)
            self._unmap()
            self.mapping = mmap.mmap(self.fd, need)
            if hasattr(mmap, "MADV_DONTFORK"):  # a forked child must not pin these pages
                self.mapping.madvise(mmap.MADV_DONTFORK)
            self.size = need
        with memoryview(self.mapping) as whole:
            offset = 0
            for buffer in buffers:
                flat = buffer if buffer.format == "B" and buffer.ndim == 1 else buffer.cast("B")
                whole[offset : offset + flat.nbytes] = flat
                offset += _aligned(flat.nbytes)

    def _unmap(self) -> None:
        if self.mapping is not None:
            self.mapping.close()
            self.mapping = None

    def close(self) -> None:
        _OWNED.discard(self)
        try:
            self._unmap()
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass  # closed already (a forked child closes what it inherited)


class Segments:
    """The segments one writer sends to one reader: those awaiting the reader's verdict (by
    message id) and the free ones it may rewrite. Only the writer's thread uses it."""

    def __init__(self) -> None:
        self.awaiting: dict[int, _Segment] = {}  # by message id
        self.free: list[_Segment] = []

    def write(self, buffers: Sequence[memoryview]) -> _Segment:
        """A segment holding ``buffers`` one after another (aligned): the writer's one copy.
        The caller sends its ``fd``, then calls sent() or discard()."""
        segment = self.free.pop() if self.free else _Segment()
        try:
            segment.fill(buffers)
        except BaseException:
            segment.close()
            raise
        return segment

    def sent(self, message_id: int, segment: _Segment) -> None:
        self.awaiting[message_id] = segment
        if len(self.awaiting) > AWAITING:
            self.awaiting.pop(next(iter(self.awaiting))).close()

    @staticmethod
    def discard(segment: _Segment) -> None:
        segment.close()

    def verdict(self, message_id: int, released: bool) -> None:
        """The reader no longer maps that message's segment (released), or may still."""
        segment = self.awaiting.pop(message_id, None)
        if segment is None:
            return
        if released and len(self.free) < _KEEP_FREE and segment.size <= _KEEP_MAX_BYTES:
            self.free.append(segment)
        else:
            segment.close()

    def close(self) -> None:
        for segment in [*self.awaiting.values(), *self.free]:
            segment.close()
        self.awaiting.clear()
        self.free.clear()


class Mapped:
    """A received segment, mapped: ``views`` for pickle.loads, then :meth:`released`."""

    __slots__ = ("_forks", "_mapping", "views")

    def __init__(self, mapping: Any, views: list[memoryview]) -> None:
        import weakref

        self._mapping = weakref.ref(mapping)
        self._forks = _FORKS
        self.views = views

    def released(self) -> bool:
        """True once nothing here maps the segment (the writer may rewrite it)."""
        return not self.views and self._mapping() is None and self._forks == _FORKS


def map_segment(fd: int, sizes: Sequence[int]) -> Mapped:
    """Map a received segment (private, copy-on-write) and close ``fd``; the views keep the
    mapping alive, and it goes (munmap) when the last object built over it does."""
    import mmap

    try:
        total = segment_size(sizes)
        if os.fstat(fd).st_size < total:
            raise ValueError(f"a shared-memory segment holds fewer bytes than its {total}")
        mapping = mmap.mmap(
            fd, total, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )
    finally:
        os.close(fd)
    whole = memoryview(mapping)
    views: list[memoryview] = []
    offset = 0
    for size in sizes:
        views.append(whole[offset : offset + size])
        offset += _aligned(size)
    whole.release()  # the slices hold the mapping on their own
    return Mapped(mapping, views)


def load(data: Any, mapped: Mapped | None = None) -> Any:
    """Unpickle ``data`` with the out-of-band buffers of ``mapped``, whose views are let go
    of afterwards: what the object built over them keeps is all that keeps the mapping."""
    if mapped is None:
        return pickle.loads(data)
    try:
        return pickle.loads(data, buffers=mapped.views)
    finally:
        mapped.views = []
