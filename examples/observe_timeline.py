"""pool.statistics() and Pool(timeline=True): what the pool did, as numbers and as a picture.

Writes ``timeline.json`` (open it in https://ui.perfetto.dev or chrome://tracing)
and ``timeline.png`` (a Gantt chart of workers over time; needs
``pip install 'anypool[plot]'``) to the folder given on the command line, or to a
temporary folder.

    python examples/observe_timeline.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import anypool


def work(i: int) -> int:
    time.sleep(0.002 * (i % 7))  # uneven tasks make an interesting chart
    if i % 25 == 24:
        raise ValueError(f"item {i} is unlucky")
    return i


def main(out_dir: Path) -> None:
    with anypool.Pool("thread", 4, timeline=True) as pool:
        results: list[object] = list(
            pool.map(work, range(100), chunksize=4, return_exceptions=True)
        )
        stats = pool.statistics()
        timeline = pool.timeline()
    failed = [r for r in results if isinstance(r, ValueError)]
    print(stats)
    # counts are in items, though the work travelled in chunks of 4
    assert stats.tasks_submitted == 100
    assert (stats.tasks_done, stats.tasks_failed, stats.tasks_cancelled) == (96, 4, 0)
    assert len(failed) == 4
    assert stats.duration_p50 is not None
    assert stats.duration_max is not None
    assert stats.duration_p50 <= stats.duration_max

    trace = timeline.to_chrome_trace(out_dir / "timeline.json")
    spans = [e for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"]
    assert len(spans) == len(timeline) == 25  # one span per chunk
    png = timeline.plot(out_dir / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"{len(timeline)} tasks on {len(timeline.workers)} workers -> {trace}, {png}")
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
