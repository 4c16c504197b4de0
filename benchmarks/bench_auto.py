"""``backend="auto"`` against the best fixed backend, on four workloads (issue 10).

Usage::

    python benchmarks/bench_auto.py                 # 3 rounds
    python benchmarks/bench_auto.py --rounds 5 --only tiny cpu
    python benchmarks/bench_auto.py --baseline-src /tmp/base/src   # adds "auto @baseline"
    python benchmarks/bench_auto.py --auto-src early=/tmp/early/src  # adds "auto @early"
    PYTHONPATH=/tmp/tree/src python benchmarks/bench_auto.py  # every other row: that tree

On a shared checkout, copy the tree under test aside and run it through ``PYTHONPATH``
(the children inherit it), so that others' edits in progress cannot reach the run.

Each (workload, pool) pair runs in a fresh interpreter: the pool is opened, warmed
with one short sleeping task (``time.sleep(0.01)``, as a program's first call might
be), and then the workload is timed in that same pool. Auto's sampling and the start
of the backend it chooses happen inside the timed part: that is its real cost.
Rounds are interleaved so that load on this shared machine hits every row alike.

Workloads:

* ``tiny``: ``map(ident, range(200_000))``: the per-item cost is the pool's own;
* ``tiny-submit``: ``submit(ident, i)`` 20 000 times, then every ``result()``;
* ``cpu``: ``map`` of 40 pure-Python tasks of ~50 ms each (calibrated once, in the parent,
  so that every child runs the same work whatever the load was when it started);
* ``io``: ``map`` of 2000 x ``time.sleep(0.05)``;
* ``payload``: ``map`` of 50 arguments of 8 MiB each through a cheap function.

Fixed pools are the backends at their defaults and, where the default is obviously
not meant for the work, tuned (threads for sleeping, processes per CPU): the best
fixed row per workload is what auto is held against. Reported: median and best
seconds, the spread (fastest-slowest round), and auto's median over the best fixed
median (1.00 = as fast; > 1.10 misses the 10% target). The load average is printed at
the start and the end: on a shared machine, read the ratios against it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# workload -> pool expressions to compare (the key is the row label)
POOLS: dict[str, dict[str, str]] = {
    "tiny": {
        "auto": "anypool.Pool()",
        "thread": "anypool.Pool('thread')",
        "inline": "anypool.Pool('inline')",
        "process": "anypool.Pool('process')",
    },
    "tiny-submit": {
        "auto": "anypool.Pool()",
        "thread": "anypool.Pool('thread')",
        "inline": "anypool.Pool('inline')",
    },
    "cpu": {
        "auto": "anypool.Pool()",
        "process": "anypool.Pool('process')",
        "thread": "anypool.Pool('thread')",
    },
    "io": {
        "auto": "anypool.Pool()",
        "thread x128": "anypool.Pool('thread', 128)",
        "thread x200": "anypool.Pool('thread', 200)",
        "process x16": "anypool.Pool('process', 16)",
    },
    "payload": {
        "auto": "anypool.Pool()",
        "thread": "anypool.Pool('thread')",
        "inline": "anypool.Pool('inline')",
        "process": "anypool.Pool('process')",
    },
}

CHILD = """
import json, sys, time
sys.path.insert(0, {here!r})
import anypool
from _tasks import ident, nap, spin

def size(b):
    return len(b)

def workload(pool, name):
    if name == "tiny":
        return lambda: sum(pool.map(ident, range(200_000)))
    if name == "tiny-submit":
        return lambda: [f.result() for f in [pool.submit(ident, i) for i in range(20_000)]]
    if name == "cpu":
        return lambda: list(pool.map(spin, [{spin_n}] * 40))
    if name == "io":
        return lambda: list(pool.map(nap, [0.05] * 2000))
    if name == "payload":
        blobs = [bytes([i]) * (8 << 20) for i in range(50)]
        return lambda: list(pool.map(size, blobs))
    raise SystemExit(f"unknown workload {{name}}")

if __name__ == "__main__":
    with {make} as pool:
        pool.submit(time.sleep, 0.01).result()  # warm: open the pool, start its workers
        run = workload(pool, {workload!r})
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        decision = pool.explain()
        functions = getattr(decision, "functions", ())  # () before per-function decisions
        chosen = [(d.function, d.backend, d.workers) for d in functions] or [
            (getattr(decision, "function", None), decision.backend, decision.workers)
        ]
    print("RESULT " + json.dumps({{"seconds": seconds, "chosen": chosen}}))
"""


def run_one(
    workload: str, make: str, timeout: float, spin_n: int, src: str | None = None
) -> dict[str, object]:
    code = CHILD.format(here=str(HERE), make=make, workload=workload, spin_n=spin_n)
    env = dict(os.environ)
    if src is not None:  # an older anypool, ahead of the installed one
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=HERE,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"seconds": float("inf"), "chosen": [], "error": f"over {timeout} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        return {"seconds": float("inf"), "chosen": [], "error": out.stderr[-500:]}
    result: dict[str, object] = json.loads(lines[-1][len("RESULT ") :])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=sorted(POOLS), default=sorted(POOLS))
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--baseline-src", help="an older anypool's src/: adds its auto rows")
    parser.add_argument(
        "--auto-src",
        action="append",
        default=[],
        metavar="LABEL=SRC",
        help="another anypool's src/ (a variant under test): adds 'auto @LABEL' rows",
    )
    args = parser.parse_args()
    sources = dict(item.split("=", 1) for item in args.auto_src)
    if args.baseline_src:
        sources["baseline"] = args.baseline_src
    pools = {w: dict(POOLS[w]) for w in args.only}
    for workload in pools:
        for label in sources:
            pools[workload][f"auto @{label}"] = "anypool.Pool()"
    sys.path.insert(0, str(HERE))
    from _tasks import calibrate_spin

    spin_n = calibrate_spin(0.05)
    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    times: dict[tuple[str, str], list[float]] = {}
    chosen: dict[str, object] = {}
    for _ in range(args.rounds):
        for workload in args.only:
            for label, make in pools[workload].items():
                src = sources.get(label.partition(" @")[2]) if label.startswith("auto @") else None
                result = run_one(workload, make, args.timeout, spin_n, src)
                if "error" in result:
                    print(f"{workload} {label}: {result['error']}", file=sys.stderr)
                times.setdefault((workload, label), []).append(float(result["seconds"]))  # type: ignore[arg-type]
                if label.startswith("auto"):
                    chosen[f"{workload} ({label})"] = result["chosen"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.rounds} rounds")
    print(f"spin({spin_n}) ~ 50 ms; load average at the start: {load_start}, at the end: {load}\n")
    print("| workload | pool | median | spread (fastest-slowest) | vs best fixed |")
    print("|---|---|---|---|---|")
    for workload in args.only:
        medians = {label: statistics.median(times[(workload, label)]) for label in pools[workload]}
        fixed = min(m for label, m in medians.items() if not label.startswith("auto"))
        for label in pools[workload]:
            ratio = medians[label] / fixed
            runs = times[(workload, label)]
            spread = f"{_duration(min(runs))}-{_duration(max(runs))}"
            print(
                f"| {workload} | {label} | {_duration(medians[label])} | {spread} | {ratio:.2f}x |"
            )
    print()
    for name, picks in chosen.items():
        print(f"{name}: {picks} (last round)")


def _duration(seconds: float) -> str:
    """Seconds with three significant digits; milliseconds below a tenth of a second."""
    if seconds < 0.1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


if __name__ == "__main__":
    main()
