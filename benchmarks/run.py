"""anypool vs the stdlib and its peers, side by side in one run.

Usage::

    python benchmarks/run.py                 # every case, full sizes, 3 repeats
    python benchmarks/run.py --quick         # small sizes: a smoke run
    python benchmarks/run.py --case tiny --case startup --repeat 5 --json out.json
    python benchmarks/run.py --case tiny --impl anypool --impl Pool.map   # a subset of rows
    git archive <rev> src | tar -x -C /tmp/old                           # before/after:
    python benchmarks/run.py --case tiny --impl anypool --baseline-src /tmp/old/src

::

    run.py ── for each repeat, case, implementation ──► fresh `python _cases.py ...`
       ▲                                                     │ own session (killed after)
       └──────────── "RESULT {json}" on its stdout ◄─────────┘
    then: median and best per metric ─► tables, ratios vs anypool, targets met/missed

Every (case, implementation) runs in a fresh interpreter so that memory, warm
caches and leftover workers cannot leak from one into the next. Repeats are
interleaved (round after round over every implementation) so that load from
other jobs on a shared machine spreads over all of them alike.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _tasks import calibrate_spin  # noqa: E402

CHILD = os.path.join(HERE, "_cases.py")
WORKERS = 2

PROCESS_REF = "anypool process"
THREAD_REF = "anypool thread"

# implementations per case; peers whose package is missing are skipped and listed
PLAN: dict[str, list[str]] = {
    "tiny": [
        "anypool process",
        "anypool process (unsized iter)",
        "anypool thread",
        "ThreadPoolExecutor.map",
        "ProcessPoolExecutor.map",
        "ProcessPoolExecutor.map tuned",
        "multiprocessing.Pool.map",
        "multiprocessing.Pool.imap",
        "multiprocessing.Pool.imap tuned",
        "joblib",
        "loky tuned",
        "pebble tuned",
        "mpire",
    ],
    "cpu": [
        "anypool process",
        "anypool thread",
        "ProcessPoolExecutor.map",
        "multiprocessing.Pool.map",
        "joblib",
        "loky",
        "pebble",
        "mpire",
    ],
    "io": [
        "anypool thread",
        "ThreadPoolExecutor.map",
        "multiprocessing ThreadPool.map",
        "joblib threads",
        "pebble threads",
        "mpire threading",
    ],
    "streaming": [
        "anypool process",
        "anypool thread",
        "ProcessPoolExecutor.map",
        "ProcessPoolExecutor.map tuned",
        "multiprocessing.Pool.imap",
        "joblib generator",
        "loky",
        "pebble",
        "mpire imap",
    ],
    "startup": [
        "anypool-thread",
        "ThreadPoolExecutor",
        *(
            f"{name} {method}"
            for method in ("fork", "forkserver", "spawn")
            for name in ("anypool-process", "ProcessPoolExecutor", "multiprocessing.Pool")
        ),
        "loky",
        "pebble",
        "mpire",
    ],
}

NOTES = {
    "tiny": "map(identity) over ints; pool created and workers warmed first: map time only",
    "cpu": "pure-Python tasks; speedup = sequential time (same child, mean of one run before "
    "and one after) / map time; busy = time inside tasks / (map time x workers)",
    "io": "time.sleep tasks on thread pools; ideal = tasks / workers * delay",
    "streaming": "map over a generator, take the first results; RSS = parent's peak growth",
    "startup": "create pool, submit one task, get result, shut down; imports excluded",
}

PEER_PACKAGES = {"joblib": "joblib", "loky": "loky", "pebble": "pebble", "mpire": "mpire"}

# --baseline-src DIR: every anypool row runs a second time on the anypool package in DIR
# (e.g. `git archive <rev> src | tar -x -C /tmp/old` then DIR=/tmp/old/src), as this row
BASELINE = " @baseline"


def plan_for(case: str, with_baseline: bool) -> list[str]:
    out = []
    for impl in PLAN[case]:
        out.append(impl)
        if with_baseline and impl.startswith("anypool"):
            out.append(impl + BASELINE)
    return out


def params_for(case: str, quick: bool) -> dict[str, Any]:
    if case == "tiny":
        return {"n": 10_000 if quick else 100_000, "workers": WORKERS}
    if case == "cpu":
        tasks, seconds = (8, 0.02) if quick else (40, 0.05)
        return {"tasks": tasks, "task_s": seconds, "workers": WORKERS}
    if case == "io":
        if quick:
            return {"tasks": 200, "delay": 0.02, "workers": 50}
        return {"tasks": 2000, "delay": 0.05, "workers": 200}
    if case == "streaming":
        if quick:
            return {"n": 200_000, "take": 200, "workers": WORKERS, "cap_s": 2.0}
        return {"n": 2_000_000, "take": 2000, "workers": WORKERS, "cap_s": 10.0}
    return {"cycles": 3 if quick else 6}


def available(impl: str) -> bool:
    first = impl.split()[0].split("-")[0]
    package = PEER_PACKAGES.get(first)
    return package is None or importlib.util.find_spec(package) is not None


# -- running children -------------------------------------------------------------------------
def run_child(
    case: str, impl: str, params: dict[str, Any], hard_timeout: float, baseline: str | None
) -> dict[str, Any]:
    """One fresh interpreter for one (case, implementation); its whole session dies after.

    Output goes to files, not pipes: workers a cut-off child leaves behind would hold
    a pipe open, and reading it to EOF would wait for them.
    """
    env = None
    if impl.endswith(BASELINE):
        impl = impl[: -len(BASELINE)]
        env = _baseline_env(baseline)
    cmd = [sys.executable, CHILD, case, impl, json.dumps(params)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, text=True, start_new_session=True, env=env
        )
        try:
            proc.wait(timeout=hard_timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {hard_timeout:g} s"}
        finally:
            _kill_session(proc.pid)  # the child if it hangs, and any workers it left behind
            proc.wait()
        out.seek(0)
        err.seek(0)
        return _parse(out.read(), err.read(), proc.returncode)


def _parse(out: str, err: str, returncode: int) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        tail = (err.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit code {returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _baseline_env(baseline: str | None) -> dict[str, str]:
    assert baseline is not None
    path = os.pathsep.join(p for p in (baseline, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def anypool_location(baseline: str | None = None) -> str:
    """Where the children import anypool from (checks that --baseline-src takes effect)."""
    env = _baseline_env(baseline) if baseline else None
    code = "import os, anypool; print(os.path.dirname(anypool.__file__))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Runs:
    """Every run's metrics, by case and implementation."""

    params: dict[str, dict[str, Any]]
    results: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def add(self, case: str, impl: str, result: dict[str, Any]) -> None:
        self.results.setdefault(case, {}).setdefault(impl, []).append(result)

    def ok(self, case: str, impl: str) -> list[dict[str, Any]]:
        return [r for r in self.results.get(case, {}).get(impl, []) if "error" not in r]

    def median(self, case: str, impl: str, key: str) -> float | None:
        values = [r[key] for r in self.ok(case, impl) if r.get(key) is not None]
        return statistics.median(values) if values else None

    def best(self, case: str, impl: str, key: str, *, high: bool = False) -> float | None:
        values = [r[key] for r in self.ok(case, impl) if r.get(key) is not None]
        if not values:
            return None
        return max(values) if high else min(values)


def hard_timeout(case: str, params: dict[str, Any]) -> float:
    return 60.0 + float(params.get("cap_s", 0)) + (120.0 if case in ("tiny", "startup") else 0)


def run_all(
    cases: list[str],
    repeat: int,
    quick: bool,
    baseline: str | None = None,
    only: list[str] | None = None,
) -> Runs:
    runs = Runs({case: params_for(case, quick) for case in cases})
    if "cpu" in runs.params:
        p = runs.params["cpu"]
        p["spin"] = calibrate_spin(p["task_s"])
    for round_no in range(1, repeat + 1):
        for case in cases:
            for impl in plan_for(case, baseline is not None):
                if only and not any(word in impl for word in only):
                    continue
                if not available(impl) or _cut_off_before(runs, case, impl):
                    continue
                _progress(f"[{round_no}/{repeat}] {case}: {impl} ...")
                params = runs.params[case]
                result = run_child(case, impl, params, hard_timeout(case, params), baseline)
                runs.add(case, impl, result)
                _progress(f" {_short(result)}\n")
    return runs


def _cut_off_before(runs: Runs, case: str, impl: str) -> bool:
    """A run that hit its cap is not repeated: it would only burn the cap again."""
    return any(r.get("timed_out") or "error" in r for r in runs.results.get(case, {}).get(impl, []))


def _progress(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _short(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"]
    return ", ".join(f"{k}={_fmt(v)}" for k, v in result.items() if k != "note")


# -- reporting --------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value >= 1e5:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.3g}x"


def ref_for(case: str, impl: str) -> str:
    if impl.endswith(BASELINE):
        return impl[: -len(BASELINE)]
    if case == "startup":
        name, _, method = impl.partition(" ")
        if "Thread" in name or name == "anypool-thread":
            return "anypool-thread"
        return f"anypool-process {method or 'forkserver'}"
    thread = any(word in impl for word in ("thread", "Thread"))
    return THREAD_REF if thread else PROCESS_REF


Column = tuple[str, Callable[[Runs, str, str], str]]


def _col_median(key: str) -> Callable[[Runs, str, str], str]:
    return lambda runs, case, impl: _fmt(runs.median(case, impl, key))


def _col_best(key: str, high: bool = False) -> Callable[[Runs, str, str], str]:
    return lambda runs, case, impl: _fmt(runs.best(case, impl, key, high=high))


def _col_faster(key: str, higher_is_better: bool) -> Callable[[Runs, str, str], str]:
    """How many times anypool (the matching backend) beats this row; >1: anypool is better."""

    def column(runs: Runs, case: str, impl: str) -> str:
        ours = runs.median(case, ref_for(case, impl), key)
        theirs = runs.median(case, impl, key)
        return _ratio(ours, theirs) if higher_is_better else _ratio(theirs, ours)

    return column


def _col_runs(runs: Runs, case: str, impl: str) -> str:
    all_runs = runs.results.get(case, {}).get(impl, [])
    notes = {r.get("note") or r.get("error") for r in all_runs} - {None}
    return f"{len(runs.ok(case, impl))}/{len(all_runs)}" + (
        f"  {'; '.join(notes)}" if notes else ""
    )


COLUMNS: dict[str, list[Column]] = {
    "tiny": [
        ("items/s (median)", _col_median("items_per_s")),
        ("items/s (best)", _col_best("items_per_s", high=True)),
        ("seconds (median)", _col_median("seconds")),
        ("anypool is x faster", _col_faster("items_per_s", True)),
    ],
    "cpu": [
        ("seconds (median)", _col_median("seconds")),
        ("seconds (best)", _col_best("seconds")),
        ("speedup (median)", _col_median("speedup")),
        ("workers busy % (median)", _col_median("busy_pct")),
        ("anypool is x faster", _col_faster("seconds", False)),
    ],
    "io": [
        ("seconds (median)", _col_median("seconds")),
        ("seconds (best)", _col_best("seconds")),
        ("over ideal % (median)", _col_median("overhead_pct")),
        ("anypool is x faster", _col_faster("seconds", False)),
    ],
    "streaming": [
        ("first result ms", _col_median("first_ms")),
        ("all taken s", _col_median("take_s")),
        ("taken", _col_median("taken")),
        ("RSS growth MiB", _col_median("rss_growth_mib")),
    ],
    "startup": [
        ("first cycle ms", _col_median("first_ms")),
        ("ms (median)", _col_median("ms")),
        ("ms (best)", _col_best("best_ms")),
        ("anypool is x faster", _col_faster("ms", False)),
    ],
}


def table(runs: Runs, case: str) -> str:
    impls = [i for i in plan_for(case, True) if i in runs.results.get(case, {})]
    header = ["implementation", *(name for name, _ in COLUMNS[case]), "runs ok"]
    rows = [
        [impl, *(col(runs, case, impl) for _, col in COLUMNS[case]), _col_runs(runs, case, impl)]
        for impl in impls
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(padded) + " | " + cells[-1] + " |"

    rule = "|-" + "-|-".join("-" * w for w in widths) + "-|---|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def missing_peers() -> list[str]:
    return sorted(p for p in PEER_PACKAGES.values() if importlib.util.find_spec(p) is None)


# -- targets (issue 2, "Performance") ------------------------------------------------------------
@dataclass
class Target:
    case: str
    text: str
    check: Callable[[Runs], tuple[float | None, bool]]  # (measured, met)
    unit: str = ""


def _rate_ratio(runs: Runs, ours: str, theirs: str) -> float | None:
    a, b = runs.median("tiny", ours, "items_per_s"), runs.median("tiny", theirs, "items_per_s")
    return a / b if a and b else None


def _at_least(value: float | None, bound: float) -> tuple[float | None, bool]:
    return value, value is not None and value >= bound


def _below(value: float | None, bound: float) -> tuple[float | None, bool]:
    return value, value is not None and value < bound


def _startup_vs(method: str) -> Callable[[Runs], tuple[float | None, bool]]:
    def check(runs: Runs) -> tuple[float | None, bool]:
        ours = runs.median("startup", f"anypool-process {method}", "ms")
        theirs = runs.median("startup", f"ProcessPoolExecutor {method}", "ms")
        ratio = theirs / ours if ours and theirs else None
        return _at_least(ratio, 1.0)

    return check


TARGETS = [
    Target(
        "tiny",
        "process map >= multiprocessing.Pool.map (x)",
        lambda r: _at_least(_rate_ratio(r, PROCESS_REF, "multiprocessing.Pool.map"), 1.0),
    ),
    Target(
        "tiny",
        "process map >= 100x ProcessPoolExecutor.map, default chunksize (x)",
        lambda r: _at_least(_rate_ratio(r, PROCESS_REF, "ProcessPoolExecutor.map"), 100.0),
    ),
    Target(
        "tiny",
        "thread map >= 10x ThreadPoolExecutor.map (x)",
        lambda r: _at_least(_rate_ratio(r, THREAD_REF, "ThreadPoolExecutor.map"), 10.0),
    ),
    Target(
        "cpu",
        "process speedup over sequential >= 1.9",
        lambda r: _at_least(r.median("cpu", PROCESS_REF, "speedup"), 1.9),
    ),
    Target(
        "io",
        "thread map within 5% of ideal (% over)",
        lambda r: _below(r.median("io", THREAD_REF, "overhead_pct"), 5.0),
    ),
    Target(
        "streaming",
        "process map: first result < 10 ms",
        lambda r: _below(r.median("streaming", PROCESS_REF, "first_ms"), 10.0),
    ),
    Target(
        "streaming",
        "process map: parent RSS growth < 10 MiB",
        lambda r: _below(r.median("streaming", PROCESS_REF, "rss_growth_mib"), 10.0),
    ),
    Target(
        "startup",
        "thread backend cycle < 1 ms",
        lambda r: _below(r.median("startup", "anypool-thread", "ms"), 1.0),
    ),
    *(
        Target(
            "startup", f"process ({m}) no slower than ProcessPoolExecutor ({m}) (x)", _startup_vs(m)
        )
        for m in ("fork", "forkserver", "spawn")
    ),
]


def evaluate(runs: Runs) -> list[dict[str, Any]]:
    out = []
    for target in TARGETS:
        if target.case not in runs.results:
            continue
        value, met = target.check(runs)
        out.append({"case": target.case, "target": target.text, "measured": value, "met": met})
    return out


def targets_table(results: list[dict[str, Any]]) -> str:
    lines = ["| target | measured (medians) | met |", "|---|---|---|"]
    for t in results:
        verdict = "met" if t["met"] else "MISSED"
        if t["measured"] is None:
            verdict = "not measured (rows not run)"
        lines.append(f"| {t['case']}: {t['target']} | {_fmt(t['measured'])} | {verdict} |")
    return "\n".join(lines)


# -- the machine --------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    anypool_info = subprocess.run(
        [sys.executable, "-m", "anypool", "info"], capture_output=True, text=True, timeout=60
    )
    if anypool_info.returncode == 0:
        info["anypool_info"] = anypool_info.stdout.strip()
    return info


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("anypool", *PEER_PACKAGES.values()):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def report(runs: Runs, repeat: int, quick: bool, meta: dict[str, Any]) -> str:
    parts = [
        f"anypool benchmarks ({'quick' if quick else 'full'} sizes, up to {repeat} repeat(s) "
        f"per implementation, each in a fresh subprocess; medians and best of the repeats)",
        f"{meta['date']}  {meta['python']}  {meta['platform']}  cpus={meta['cpus']}  "
        f"load avg at start={meta['load_avg']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        "Pool start-up is excluded from tiny/cpu/io/streaming: each pool is created and its "
        "workers warmed before timing; the startup case measures it.",
        "'anypool is x faster': the anypool row of the same kind (thread/process, start method) "
        "divided by this row; above 1 means anypool is better.",
    ]
    parts.append(f"anypool imported from {meta['anypool_from']}")
    if "baseline_from" in meta:
        parts.append(
            f"rows marked{BASELINE} import anypool from {meta['baseline_from']}; "
            "their 'anypool is x faster' column compares the current anypool with them"
        )
    if missing_peers():
        parts.append("not installed (skipped): " + ", ".join(missing_peers()))
    if "anypool_info" in meta:
        parts += [
            "",
            "python -m anypool info:",
            *("    " + line for line in meta["anypool_info"].splitlines()),
        ]
    for case in runs.results:
        params = runs.params[case]
        parts += ["", f"## {case}: {NOTES[case]}", f"params: {params}", "", table(runs, case)]
    parts += ["", "## targets", "", targets_table(evaluate(runs))]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--case", action="append", choices=list(PLAN), help="run only this case (repeatable)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per implementation (default 3)")
    parser.add_argument("--json", metavar="PATH", help="also write every run and the summary here")
    parser.add_argument(
        "--impl",
        action="append",
        metavar="TEXT",
        help="run only implementations whose name contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="also run every anypool row on the anypool package found in DIR (before/after)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    cases = args.case or list(PLAN)
    meta = machine()
    meta["anypool_from"] = anypool_location()
    if args.baseline_src:
        meta["baseline_from"] = anypool_location(os.path.abspath(args.baseline_src))
        if meta["baseline_from"] == meta["anypool_from"]:
            parser.error(
                f"--baseline-src: children still import anypool from {meta['anypool_from']}"
            )
    runs = run_all(cases, args.repeat, args.quick, args.baseline_src, args.impl)
    print(report(runs, args.repeat, args.quick, meta))
    if args.json:
        data = {
            "meta": meta,
            "versions": versions(),
            "quick": args.quick,
            "repeat": args.repeat,
            "params": runs.params,
            "runs": runs.results,
            "targets": evaluate(runs),
        }
        with open(args.json, "w") as f:
            json.dump(data, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
