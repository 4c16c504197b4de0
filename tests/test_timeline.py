"""Pool(timeline=True): per-task records, a Chrome trace and a PNG Gantt chart."""

from __future__ import annotations

import json
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import anypool

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def nap(x: float) -> float:
    time.sleep(x)
    return x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    time.sleep(0.005)
    return x


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_records_start_end_worker_outcome(
    make_pool: Callable[..., anypool.Pool], backend: str
) -> None:
    pool = make_pool(backend, 2, timeline=True)
    out: list[object] = list(pool.map(fail_on_three, range(8), chunksize=1, return_exceptions=True))
    assert isinstance(out[3], ValueError)
    timeline = pool.timeline()
    assert len(timeline) == 8
    assert timeline.backend == backend
    assert sorted(e.outcome for e in timeline.events) == ["error"] + ["ok"] * 7
    for event in timeline.events:
        assert 0 <= event.start <= event.end
        assert event.worker.startswith(f"anypool-{backend}")
        assert event.name == "fail_on_three"
        assert event.items == 1
    assert 1 <= len(timeline.workers) <= 2


def test_chunks_are_one_event_with_their_items(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", 2, timeline=True)
    list(pool.map(fail_on_three, range(20), chunksize=5, return_exceptions=True))
    events = pool.timeline().events
    assert sorted(e.items for e in events) == [5, 5, 5, 5]
    assert sorted(e.outcome for e in events) == ["ok", "ok", "ok", "partial"]


def test_timeout_outcome(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("process", 1, timeline=True)
    with pytest.raises(anypool.TaskTimeout):
        pool.submit(nap, 5, timeout=0.2).result(timeout=30)
    assert [e.outcome for e in pool.timeline().events] == ["timeout"]


def test_chrome_trace(make_pool: Callable[..., anypool.Pool], tmp_path: Path) -> None:
    pool = make_pool("thread", 2, timeline=True)
    list(pool.map(nap, [0.01] * 6, chunksize=1))
    path = pool.timeline().to_chrome_trace(tmp_path / "trace.json")
    trace = json.loads(path.read_text())
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    names = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert len(spans) == 6
    assert all(e["dur"] >= 9_000 for e in spans)  # microseconds: each nap is 10 ms
    assert names == {e.worker for e in pool.timeline().events}
    assert {e["tid"] for e in spans} <= set(range(1, len(names) + 1))


def test_plot_writes_a_png(make_pool: Callable[..., anypool.Pool], tmp_path: Path) -> None:
    pool = make_pool("thread", 3, timeline=True)
    list(pool.map(fail_on_three, range(12), chunksize=1, return_exceptions=True))
    path = pool.timeline().plot(tmp_path / "gantt.png")
    width, height = png_size(path)
    assert width >= 500
    assert height >= 100
    assert path.stat().st_size > 5_000  # bars, labels and legend, not a blank canvas


def test_plot_of_an_empty_timeline(make_pool: Callable[..., anypool.Pool], tmp_path: Path) -> None:
    path = make_pool("thread", 1, timeline=True).timeline().plot(tmp_path / "empty.png")
    assert png_size(path)[0] > 0


def test_timeline_off_by_default(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool("thread", 1)
    pool.submit(abs, 1).result(timeout=5)
    with pytest.raises(RuntimeError, match=r"timeline=True"):
        pool.timeline()
    with pytest.raises(TypeError, match="timeline must be True or False"):
        anypool.Pool("thread", 1, timeline="yes")  # type: ignore[arg-type]


def test_missing_matplotlib_is_a_clear_error(
    make_pool: Callable[..., anypool.Pool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    timeline = make_pool("thread", 1, timeline=True).timeline()
    with pytest.raises(ImportError, match=r"pip install 'anypool\[plot\]'"):
        timeline.plot(tmp_path / "x.png")


def test_auto_timeline_shows_probe_and_choice(make_pool: Callable[..., anypool.Pool]) -> None:
    pool = make_pool(timeline=True)
    list(pool.map(nap, [0.02] * 10))
    timeline = pool.timeline()
    assert timeline.backend == "thread"
    assert len(timeline) == 10
    assert timeline.workers[0].endswith("-probe")
