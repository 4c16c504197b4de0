"""The fault examples exist (tests/test_examples.py runs every example, these included)."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_there_are_fault_examples():
    names = {p.stem for p in EXAMPLES.glob("faults_*.py")}
    assert names >= {"faults_timeout", "faults_crash", "faults_ctrl_c"}
