"""Large buffers out of band on the process backend (issue 13): round trips, where the
bytes really travel, segment reuse, and map's read-ahead bounded in bytes both ways.

A buffer at least ``OOB_THRESHOLD`` long travels in a memfd segment (anypool._wire._shm);
the tests look at what arrives: a memoryview's ``obj`` and an array's base chain end in
an ``mmap`` when the payload came through shared memory, in ``bytes`` when in band.
"""

from __future__ import annotations

import mmap
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

import anypool
from anypool._wire import _shm

pytestmark = pytest.mark.skipif(not _shm.SUPPORTED, reason="memfd segments are Linux-only")

BIG = _shm.OOB_THRESHOLD * 4
START_METHODS = ["fork", "forkserver", "spawn"]


def identity(x: Any) -> Any:
    return x


def describe(x: Any) -> tuple[str, bool]:
    """In the worker: the type of what arrived, and whether it lies in a mapping."""
    return type(x).__name__, _over_mapping(x)


def _over_mapping(x: Any) -> bool:
    while x is not None:
        if isinstance(x, memoryview):
            return isinstance(x.obj, mmap.mmap)
        x = getattr(x, "base", None)
    return False


def memfds() -> int:
    """Open descriptors of this process that are payload segments."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "anypool-payload" in os.readlink(f"/proc/self/fd/{fd}"):
                count += 1
        except OSError:
            pass
    return count


def worker_memfds(_: Any = None) -> int:
    return memfds()


def numpy_loaded(_: Any = None) -> bool:
    return "numpy" in sys.modules


class Buffered:
    """Any object whose protocol-5 reduction yields a PickleBuffer travels out of band."""

    def __init__(self, data: bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> Any:
        return Buffered, (pickle.PickleBuffer(self.data),)


def payloads() -> dict[str, Any]:
    raw = bytes(range(256)) * (BIG // 256)
    doubles = memoryview(bytearray(raw)).cast("d", (len(raw) // 64, 8))
    return {
        "bytes": raw,
        "bytearray": bytearray(raw),
        "memoryview": memoryview(raw),
        "memoryview-2d-doubles": doubles,
        "small bytes": raw[:100],
        "nested": {"a": [raw, (bytearray(raw), 1)], "b": memoryview(raw)[:BIG]},
    }


@pytest.mark.parametrize("start_method", START_METHODS)
def test_every_buffer_kind_round_trips_through_shared_memory(make_pool, start_method):
    pool = make_pool("process", 1, start_method=start_method)
    sent = payloads()
    back = {name: pool.submit(identity, value).result(timeout=60) for name, value in sent.items()}
    assert back["bytes"] == sent["bytes"]
    assert type(back["bytes"]) is bytes
    assert back["bytearray"] == sent["bytearray"]
    assert type(back["bytearray"]) is bytearray
    assert back["small bytes"] == sent["small bytes"]
    view = back["memoryview"]
    assert view == sent["memoryview"]
    assert view.readonly
    assert isinstance(view.obj, mmap.mmap)
    doubles = back["memoryview-2d-doubles"]
    assert (doubles.format, doubles.shape) == ("d", sent["memoryview-2d-doubles"].shape)
    assert doubles.tobytes() == sent["memoryview-2d-doubles"].tobytes()
    nested = back["nested"]
    assert nested["a"][0] == sent["bytes"]
    assert nested["a"][1] == (sent["bytearray"], 1)
    assert bytes(nested["b"]) == sent["bytes"]
    buffered = pool.submit(identity, Buffered(bytearray(sent["bytes"]))).result(timeout=60)
    assert isinstance(buffered, Buffered)
    assert bytes(buffered.data) == sent["bytes"]
    assert _over_mapping(buffered.data)  # arrived as a view of the segment, no copy


def test_what_arrives_in_the_worker_lies_in_shared_memory(make_pool):
    pool = make_pool("process", 1)
    raw = bytes(BIG)
    assert pool.submit(describe, memoryview(raw)).result(timeout=60) == ("memoryview", True)
    # bytes and bytearray own their storage: one copy out of the mapping, as documented
    assert pool.submit(describe, raw).result(timeout=60) == ("bytes", False)
    # below the threshold, in band: a small memoryview comes back over plain bytes
    small = pool.submit(identity, memoryview(raw[:100])).result(timeout=60)
    assert isinstance(small, memoryview)
    assert not isinstance(small.obj, mmap.mmap)


def test_numpy_arrays_arrive_over_the_mapping_and_stay_writable(make_pool):
    numpy = pytest.importorskip("numpy")
    pool = make_pool("process", 1)
    array = numpy.arange(BIG, dtype=numpy.float64).reshape(-1, 4)
    back = pool.submit(identity, array).result(timeout=60)
    assert numpy.array_equal(back, array)
    assert back.dtype == array.dtype
    assert _over_mapping(back)
    assert back.flags.writeable
    back[0, 0] = -1.0  # private (copy-on-write): the segment, reused later, is untouched
    assert pool.submit(describe, array).result(timeout=60) == ("ndarray", True)
    again = pool.submit(identity, array).result(timeout=60)
    assert again[0, 0] == 0.0
    assert back[0, 0] == -1.0
    fortran = numpy.asfortranarray(array)  # not C-contiguous: numpy pickles it its own way
    assert numpy.array_equal(pool.submit(identity, fortran).result(timeout=60), fortran)


def test_a_result_kept_by_the_caller_is_never_overwritten_by_a_reused_segment(make_pool):
    pool = make_pool("process", 1)
    kept = [
        pool.submit(identity, memoryview(bytes([i]) * BIG)).result(timeout=60) for i in range(6)
    ]
    for i, view in enumerate(kept):  # all still mapped here: none of them was reused
        assert view[0] == i
        assert view[-1] == i


def test_segments_are_reused_and_their_descriptors_bounded(make_pool):
    pool = make_pool("process", 2)
    before = memfds()
    items = [bytes([i]) * BIG for i in range(40)]
    assert list(pool.map(len, items, chunksize=1)) == [BIG] * 40
    assert list(pool.map(identity, items, chunksize=1)) == items
    # the parent keeps, per worker, the segments awaiting a verdict and a few free ones
    assert memfds() - before <= 2 * (_shm._KEEP_FREE + 2)
    in_workers = pool.map(worker_memfds, range(2), chunksize=1)
    assert max(in_workers) <= _shm._KEEP_FREE + _shm.AWAITING
    pool.shutdown()
    assert memfds() == before


def test_bytes_never_load_numpy_in_the_parent_or_a_spawned_worker(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import anypool
        from tests.test_payloads import identity, numpy_loaded
        if __name__ == "__main__":
            with anypool.Pool("process", 1, start_method="spawn") as pool:
                data = bytes(1 << 20)
                assert pool.submit(identity, memoryview(data)).result() == data
                assert pool.submit(identity, data).result() == data
                print("worker", pool.submit(numpy_loaded).result())
            print("parent", "numpy" in sys.modules)
        """
    )
    path = tmp_path / "no_numpy.py"
    path.write_text(script)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["worker", "False", "parent", "False"]


def test_the_same_path_serves_the_executor_and_process(make_pool):
    raw = bytes(range(256)) * (BIG // 256)
    with anypool.ProcessPoolExecutor(1) as executor:
        assert executor.submit(describe, memoryview(raw)).result(timeout=60) == ("memoryview", True)
        assert list(executor.map(identity, [raw, raw])) == [raw, raw]
    process = anypool.Process(target=describe, args=(memoryview(raw),))
    process.start()
    process.join()
    assert process.result() == ("memoryview", True)


def make_view(index: int) -> memoryview:
    return memoryview(bytes([index]) * BIG)


def test_process_stages_of_a_pipeline_pass_buffers_through_shared_memory():
    stages = [
        anypool.Stage(make_view, backend="process", workers=1),
        anypool.Stage(describe, backend="process", workers=1),
    ]
    with anypool.pipeline(range(3), *stages) as out:
        assert list(out) == [("memoryview", True)] * 3


# -- map's read-ahead, bounded in bytes both ways ------------------------------------------------
class Ahead:
    """Items that record how far they were pulled ahead of what the consumer took."""

    def __init__(self, count: int, make: Any) -> None:
        self.count, self.make = count, make
        self.pulled = self.taken = self.most_ahead = 0

    def __iter__(self) -> Iterator[Any]:
        for index in range(self.count):
            self.pulled += 1
            self.most_ahead = max(self.most_ahead, self.pulled - self.taken)
            yield self.make(index)


def big_result(index: int) -> bytes:
    return bytes([index % 256]) * (4 << 20)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_map_does_not_pile_up_large_items_or_results(make_pool, backend):
    # 100 x 4 MiB either way: the read-ahead bound (MAX_READ_AHEAD_BYTES, 16 MiB) holds
    # both for large items and for small items whose results are large
    from anypool._scheduler._chunking import MAX_READ_AHEAD_BYTES

    pool = make_pool(backend, 2)
    bound = 2 * MAX_READ_AHEAD_BYTES // (4 << 20) + 2  # 2x: slack for the estimate; + workers
    for fn, source in [
        (len, Ahead(100, lambda i: bytes([i]) * (4 << 20))),
        (big_result, Ahead(100, lambda i: i)),
    ]:
        for value in pool.map(fn, source):
            assert value
            source.taken += 1
            time.sleep(0.002)  # a consumer slower than the workers
        assert source.taken == 100
        assert source.most_ahead <= bound, (fn.__name__, source.most_ahead)


def test_a_forked_worker_inherits_no_segment_of_another_pool(make_pool):
    first = make_pool("process", 1, start_method="fork")
    assert first.submit(len, bytes(BIG)).result(timeout=60) == BIG  # a segment kept here
    assert first.submit(identity, bytes(BIG)).result(timeout=60) == bytes(BIG)
    assert memfds() > 0
    second = make_pool("process", 1, start_method="fork")
    assert second.submit(worker_memfds).result(timeout=60) == 0


def test_one_buffer_held_twice_travels_once_and_arrives_as_one_object(make_pool):
    pool = make_pool("process", 1)
    raw = bytes(BIG)
    encoded = _shm.dumps(([raw, raw, {"again": raw}], {}))
    assert len(encoded.buffers) == 1
    back = pool.submit(identity, [raw, raw, {"again": raw}]).result(timeout=60)
    assert back[0] == raw
    assert back[0] is back[1]
    assert back[0] is back[2]["again"]
