"""Plain-text rendering of ``anypool info`` and ``anypool bench`` results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._verdict import workers_phrase

if TYPE_CHECKING:
    from ._bench import BenchReport
    from ._info import RuntimeInfo

__all__ = ["format_bench", "format_info", "gil_phrase"]


def gil_phrase(info: RuntimeInfo) -> str:
    """The build and GIL state in words."""
    if not info.free_threaded_build:
        return "standard build, GIL enabled"
    if info.gil_enabled:
        return "free-threaded build, GIL enabled (PYTHON_GIL=1 or an extension turned it on)"
    return "free-threaded build, GIL disabled"


def _cpus(info: RuntimeInfo) -> str:
    affinity = "n/a" if info.affinity_cpus is None else str(info.affinity_cpus)
    quota = "none" if info.cgroup_cpu_limit is None else f"{info.cgroup_cpu_limit:g} CPUs"
    return (
        f"{info.usable_cpus} usable (os.cpu_count() {info.os_cpu_count}, "
        f"affinity {affinity}, cgroup quota {quota})"
    )


def _backends(info: RuntimeInfo) -> str:
    ready = [name for name, ok in info.backends.items() if ok]
    missing = []
    for name, ok in info.backends.items():
        if not ok:
            extra = info.backend_extras.get(name)
            missing.append(f"{name} (pip install 'anypool[{extra}]')" if extra else name)
    text = ", ".join(ready) or "none"
    return text + (f"; not available: {', '.join(missing)}" if missing else "")


def _packages(info: RuntimeInfo) -> str:
    present = [f"{name} {version}" for name, version in info.packages.items() if version]
    absent = [name for name, version in info.packages.items() if not version]
    return ", ".join(present) + (f"; not installed: {', '.join(absent)}" if absent else "")


def format_info(info: RuntimeInfo) -> str:
    rows = [
        ("Python", f"{info.implementation} {info.python_version} ({gil_phrase(info)})"),
        ("Build", info.build),
        ("Platform", info.platform),
        ("CPUs", _cpus(info)),
        ("Start method", f"{info.default_start_method} (default for process workers)"),
        ("Backends", _backends(info)),
        ("Packages", _packages(info)),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"anypool {info.anypool_version}"]
    lines += [f"{label + ':':<{width}}{value}" for label, value in rows]
    return "\n".join(lines)


def _table(report: BenchReport) -> list[str]:
    header = ("workload", "mode", "workers", "best s", "speedup", "startup s")
    rows = [header]
    for m in report.measurements:
        startup = "-" if m.startup_s is None else f"{m.startup_s:.3f}"
        factor = report.speedup(m.workload, m.mode)
        speedup = f"{factor:.2f}x" if factor >= 0.1 else f"{factor:.2g}x"  # not "0.00x"
        rows.append((m.workload, m.mode, str(m.workers), f"{m.best_s:.3f}", speedup, startup))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    out = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:])]
        out.append("  ".join(cells).rstrip())
    return out


def format_bench(report: BenchReport) -> str:
    rt = report.runtime
    load = "" if report.load_before is None else f", load average {report.load_before:.2f}"
    lines = [
        f"anypool bench: {rt.implementation} {rt.python_version}, {gil_phrase(rt)}, "
        f"{rt.usable_cpus} usable CPUs{load}, start method {rt.default_start_method}",
        "",
    ]
    lines += [
        f"  {w.name:<6} {w.description}, {workers_phrase(w.workers)}" for w in report.workloads
    ]
    lines += ["", *_table(report), ""]
    rounds = report.config.repeat
    lines.append(
        f"best of {rounds} round{'s' * (rounds != 1)}; speedup = sequential / mode; startup = pool "
        f"start + warm-up, paid once, not in the times; total {report.total_s:.1f} s"
    )
    lines += ["", f"Conclusion: {report.conclusion.summary}"]
    for verdict in report.conclusion.verdicts:
        lines.append(f"  {verdict.workload}: {verdict.reasons[0]}")
        lines += [f"    - {reason}" for reason in verdict.reasons[1:]]
    return "\n".join(lines)
