"""The benchmark script still runs: ``benchmarks/run.py --quick --case tiny`` in a subprocess.

Only that it completes and reports; speed is judged in benchmarks/RESULTS.md, never here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RUN_PY = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


@pytest.mark.timeout(300)
def test_quick_tiny_benchmark_prints_a_table(tmp_path: Path) -> None:
    out_json = tmp_path / "tiny.json"
    cmd = [sys.executable, str(RUN_PY), "--quick", "--case", "tiny", "--repeat", "1"]
    proc = subprocess.run(
        [*cmd, "--json", str(out_json)], capture_output=True, text=True, timeout=280
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "## tiny: map(identity) over ints" in proc.stdout
    assert any(line.startswith("| implementation") for line in lines), proc.stdout
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    for impl in ("anypool process", "anypool thread", "multiprocessing.Pool.map"):
        assert impl in rows, f"no row for {impl}:\n{proc.stdout}"
        assert "1/1" in rows[impl], f"{impl} did not complete:\n{rows[impl]}"
    assert "## targets" in proc.stdout

    data = json.loads(out_json.read_text())
    assert data["quick"] is True
    anypool_runs = data["runs"]["tiny"]["anypool process"]
    assert len(anypool_runs) == 1
    assert anypool_runs[0]["items_per_s"] > 0
    assert {t["case"] for t in data["targets"]} == {"tiny"}


@pytest.mark.timeout(300)
def test_submit_benchmark_prints_every_row() -> None:
    script = RUN_PY.with_name("bench_submit.py")
    cmd = [sys.executable, str(script), "--rounds", "1", "--tasks", "300"]
    proc = subprocess.run(
        [*cmd, "--process-tasks", "50"], capture_output=True, text=True, timeout=280
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and "µs/task" not in line
    }
    assert set(rows) == {
        "ThreadPoolExecutor",
        "anypool thread",
        "anypool inline",
        "ProcessPoolExecutor",
        "anypool process",
    }, proc.stdout
    assert all(float(value) > 0 for value in rows.values()), proc.stdout
