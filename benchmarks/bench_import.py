"""How long ``import anypool`` takes, next to ``import concurrent.futures`` (attrs counts
import time as a benchmark: every user pays it, even for ``anypool --help``).

Usage::

    python benchmarks/bench_import.py            # 15 fresh interpreters per module
    python benchmarks/bench_import.py --runs 30 --json import.json

Each measurement is a fresh interpreter (``python -X importtime -c "import X"``), so
nothing is cached in ``sys.modules``; runs of the modules are interleaved so that load
from other jobs hits them alike. Reported: the median and best of the import's own
time (from ``-X importtime``, interpreter start-up excluded), the median wall time of
the whole interpreter, the modules that cost the most, and a check that the heavy ones
(multiprocessing, psutil, cloudpickle, dask, ray, tqdm, matplotlib) stay unloaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

MODULES = ["concurrent.futures", "anypool"]
HEAVY = ["multiprocessing", "psutil", "cloudpickle", "dask", "ray", "tqdm", "matplotlib"]


def one_run(module: str) -> tuple[float, float, dict[str, int]]:
    """(import µs by -X importtime, whole interpreter wall s, cumulative µs per module)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    per_module = _parse_importtime(proc.stderr)
    return per_module[module], wall, per_module


def _parse_importtime(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, own_cum_name = line.split(":", 1)
        _own, cumulative, name = own_cum_name.split("|")
        out[name.strip()] = int(cumulative)
    return out


def baseline_wall() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def heavy_modules_loaded() -> list[str]:
    code = f"import sys, anypool; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout.split()


def measure(runs: int) -> dict[str, Any]:
    own: dict[str, list[float]] = {m: [] for m in MODULES}
    wall: dict[str, list[float]] = {m: [] for m in [*MODULES, "(nothing)"]}
    children: dict[str, list[int]] = {}
    for _ in range(runs):
        wall["(nothing)"].append(baseline_wall())
        for module in MODULES:
            micros, seconds, per_module = one_run(module)
            own[module].append(micros / 1000)
            wall[module].append(seconds)
            if module == "anypool":
                for name, cum in per_module.items():
                    children.setdefault(name, []).append(cum)
    top = sorted(
        ((name, statistics.median(v) / 1000) for name, v in children.items() if name != "anypool"),
        key=lambda item: -item[1],
    )[:12]
    return {
        "runs": runs,
        "import_ms": {m: {"median": statistics.median(v), "best": min(v)} for m, v in own.items()},
        "interpreter_wall_ms": {m: 1000 * statistics.median(v) for m, v in wall.items()},
        "slowest_under_anypool_ms": top,
        "heavy_loaded": heavy_modules_loaded(),
    }


def report(result: dict[str, Any]) -> str:
    imp, wall = result["import_ms"], result["interpreter_wall_ms"]
    ref = imp["concurrent.futures"]["median"]
    lines = [
        f"import time, {result['runs']} fresh interpreters per module "
        f"(python {sys.version.split()[0]})",
        "",
        "| import | own ms (median) | own ms (best) | vs concurrent.futures "
        "| interpreter wall ms |",
        "|---|---|---|---|---|",
    ]
    for module in MODULES:
        ratio = imp[module]["median"] / ref
        lines.append(
            f"| {module} | {imp[module]['median']:.1f} | {imp[module]['best']:.1f} | "
            f"{ratio:.2f}x | {wall[module]:.0f} |"
        )
    lines.append(f"| (nothing: `python -c pass`) | - | - | - | {wall['(nothing)']:.0f} |")
    lines += ["", "slowest modules under `import anypool` (cumulative ms, median):"]
    lines += [f"  {ms:7.1f}  {name}" for name, ms in result["slowest_under_anypool_ms"]]
    heavy = result["heavy_loaded"]
    lines += ["", "heavy modules loaded by `import anypool`: " + (", ".join(heavy) or "none")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="interpreters per module")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    result = measure(args.runs)
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 1 if result["heavy_loaded"] else 0


if __name__ == "__main__":
    sys.exit(main())
