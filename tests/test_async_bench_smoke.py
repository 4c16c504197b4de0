"""benchmarks/bench_async.py runs end to end (a few tasks per row; no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_async.py"


@pytest.mark.timeout(120)
def test_bench_async_prints_every_row():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--tasks", "50"],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for row in ("sequential: await pool.submit", "gather: pool.submit", "map: await pool.map"):
        assert row in proc.stdout, proc.stdout
