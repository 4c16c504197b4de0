"""``Pool(timeline=True)``: when each task ran, on which worker, and how it ended.

::

    StatsRecorder._finished ──► TimelineRecorder.add(task, start, end, outcome)
    pool.timeline() ──► Timeline (frozen) ──► .to_chrome_trace(path)  JSON for Perfetto
                                          └─► .plot(path)             PNG Gantt chart

Times are seconds since the pool was created (``time.monotonic`` based), taken
in the parent: start when a worker took the task (``Task.started_at``), end
when its future resolved. A disabled timeline records nothing and costs one
``is None`` check per finished task.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._task import Task, fn_name

__all__ = ["Timeline", "TimelineEvent", "TimelineRecorder"]

# Gantt bar colours by outcome (matplotlib's tab10 palette, colour-blind safe enough).
_COLOURS = {
    "ok": "#1f77b4",
    "partial": "#ff7f0e",
    "error": "#d62728",
    "timeout": "#9467bd",
    "crashed": "#7f7f7f",
}
# Figure height grows with the worker rows, up to this many inches.
_MAX_HEIGHT_IN = 20.0


@dataclass(frozen=True)
class TimelineEvent:
    """One task (a call, or a ``map`` chunk of ``items`` items) as it ran."""

    start: float
    """Seconds since the pool was created."""
    end: float
    worker: str
    outcome: str
    """``ok``, ``partial``, ``error``, ``timeout`` or ``crashed``."""
    items: int
    name: str
    attempts: int

    @property
    def duration(self) -> float:
        return self.end - self.start


_Row = tuple[float, float, str, str, int, str, int]


class TimelineRecorder:
    """Keeps plain tuples while tasks finish; events are built when someone asks.

    Rows hold only numbers and strings, so the garbage collector stops tracking them:
    a timeline of a million tasks does not slow every later collection.
    """

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self._rows: list[_Row] = []
        self._lock = threading.Lock()

    def add(self, task: Task, start: float, end: float, outcome: str) -> None:
        name = fn_name(task.fn)
        row = (start, end, task.worker or "?", outcome, task.n_items, name, task.attempts)
        with self._lock:
            self._rows.append(row)

    def snapshot(self, backend: str) -> Timeline:
        with self._lock:
            rows = list(self._rows)
        events = [
            TimelineEvent(start - self.origin, end - self.origin, worker, outcome, n, name, tries)
            for start, end, worker, outcome, n, name, tries in rows
        ]
        events.sort(key=lambda e: e.start)
        return Timeline(tuple(events), backend)


@dataclass(frozen=True)
class Timeline:
    """The recorded tasks of a pool, oldest first."""

    events: tuple[TimelineEvent, ...]
    backend: str

    def __len__(self) -> int:
        return len(self.events)

    @property
    def workers(self) -> tuple[str, ...]:
        """Worker labels in the order they first ran a task."""
        return tuple(dict.fromkeys(e.worker for e in self.events))

    def chrome_trace(self) -> dict[str, Any]:
        """The Trace Event Format dict: one complete ("X") event per task, one row per worker."""
        rows = {worker: index for index, worker in enumerate(self.workers, start=1)}
        meta: list[dict[str, Any]] = [
            {
                "ph": "M",
                "pid": 1,
                "tid": 0,
                "name": "process_name",
                "args": {"name": f"anypool pool ({self.backend})"},
            },
        ]
        meta += [
            {"ph": "M", "pid": 1, "tid": tid, "name": "thread_name", "args": {"name": worker}}
            for worker, tid in rows.items()
        ]
        spans = [
            {
                "name": e.name,
                "cat": e.outcome,
                "ph": "X",
                "pid": 1,
                "tid": rows[e.worker],
                "ts": round(e.start * 1e6, 3),
                "dur": round(max(0.0, e.duration) * 1e6, 3),
                "args": {"outcome": e.outcome, "items": e.items, "attempts": e.attempts},
            }
            for e in self.events
        ]
        return {"traceEvents": meta + spans, "displayTimeUnit": "ms"}

    def to_chrome_trace(self, path: str | os.PathLike[str]) -> Path:
        """Write the trace as JSON (open it in https://ui.perfetto.dev or chrome://tracing)."""
        target = Path(path)
        target.write_text(json.dumps(self.chrome_trace()), encoding="utf-8")
        return target

    def plot(self, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
        """Draw a Gantt chart of workers over time to a PNG file (needs matplotlib)."""
        figure = _gantt(self, title or f"anypool timeline: {self.backend} backend")
        target = Path(path)
        figure.savefig(target, format="png", dpi=100)
        return target


def _import_matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "Timeline.plot() needs matplotlib, which is not installed; "
            "install it with: pip install 'anypool[plot]'"
        ) from exc
    return Figure, FigureCanvasAgg


def _gantt(timeline: Timeline, title: str) -> Any:
    figure_class, canvas_class = _import_matplotlib()
    workers = timeline.workers
    height = min(_MAX_HEIGHT_IN, 1.5 + 0.35 * max(1, len(workers)))
    figure = figure_class(figsize=(10, height))
    canvas_class(figure)  # attaches itself: PNG output without pyplot's global state
    axes = figure.add_subplot(1, 1, 1)
    for row, worker in enumerate(workers):
        for outcome, colour in _COLOURS.items():
            spans = [
                (e.start, max(e.duration, 1e-6))
                for e in timeline.events
                if e.worker == worker and e.outcome == outcome
            ]
            if spans:
                axes.broken_barh(
                    spans, (row - 0.4, 0.8), facecolors=colour, edgecolors="white", linewidth=1
                )
    _decorate(axes, timeline, workers, title)
    figure.tight_layout()
    return figure


def _decorate(axes: Any, timeline: Timeline, workers: tuple[str, ...], title: str) -> None:
    axes.set_title(title)
    axes.set_xlabel("seconds since the pool was created")
    axes.set_yticks(range(len(workers)))
    axes.set_yticklabels(workers)
    axes.invert_yaxis()
    if not timeline.events:
        axes.text(0.5, 0.5, "no tasks recorded", transform=axes.transAxes, ha="center")
        return
    seen = {e.outcome for e in timeline.events}
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=o) for o, c in _COLOURS.items() if o in seen]
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
