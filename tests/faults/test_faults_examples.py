"""Every examples/faults_*.py runs to completion (each checks itself with asserts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("faults_*.py"))


def test_there_are_fault_examples():
    assert {p.stem for p in EXAMPLES} >= {"faults_timeout", "faults_crash", "faults_ctrl_c"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example):
    proc = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=example.parent,
    )
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), "an example says what it showed"
    assert "Traceback" not in proc.stderr, proc.stderr
