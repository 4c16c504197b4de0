"""``anypool bench --plot``: a bar chart of speedups, drawn with matplotlib (optional extra).

Uses :class:`matplotlib.figure.Figure` directly rather than ``pyplot``, so no GUI
backend is chosen and no global figure state is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._bench import BenchReport

__all__ = ["plot_report"]

# Bar group width: the bars of one workload share this much of the unit gap between groups.
_GROUP_WIDTH = 0.8


def plot_report(report: BenchReport, path: str) -> None:
    """Write a PNG: one group of bars per workload, one bar per mode, height = speedup."""
    from matplotlib.figure import Figure

    names = [w.name for w in report.workloads]
    modes = list(dict.fromkeys(m.mode for m in report.measurements))
    width = _GROUP_WIDTH / len(modes)
    fig = Figure(figsize=(2.2 + 1.6 * len(names), 4.2), layout="constrained")
    ax = fig.subplots()
    for i, mode in enumerate(modes):
        xs = [g + (i - (len(modes) - 1) / 2) * width for g in range(len(names))]
        heights = [report.speedup(name, mode) for name in names]
        bars = ax.bar(xs, heights, width, label=mode)
        ax.bar_label(bars, labels=[f"{h:.2f}x" for h in heights], fontsize=8)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("speedup over the sequential loop")
    rt = report.runtime
    gil = "GIL enabled" if rt.gil_enabled else "GIL disabled"
    ax.set_title(f"anypool bench: Python {rt.python_version}, {gil}, {rt.usable_cpus} CPUs")
    ax.legend()
    fig.savefig(path, dpi=100)
