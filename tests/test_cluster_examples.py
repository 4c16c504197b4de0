"""Every examples/cluster_*.py runs to completion on a local cluster, within 30 s of work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="pip install 'anypool[dask]'")

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("cluster_*.py"))


def test_there_are_cluster_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.dask
@pytest.mark.timeout(120)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(example: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=example.parent,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), "an example says what it showed"
    assert "Traceback" not in proc.stderr, proc.stderr
    # the budget is 30 s; a shared 2-core CI machine gets some slack before failing
    assert elapsed < 60, f"{example.name} took {elapsed:.0f} s"
