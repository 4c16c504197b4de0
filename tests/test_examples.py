"""Every ``examples/*.py`` runs to completion, fast, and leaves no process behind.

Each example checks itself with ``assert``; here it runs as a user would run it
(``python examples/NAME.py`` from the repository root) in a fresh interpreter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
TIMEOUT_S = 60


def test_the_basics_examples_exist():
    names = {path.name for path in EXAMPLES}
    for name in (
        "basics_quickstart.py",
        "basics_lazy_map.py",
        "basics_gil.py",
        "basics_executors.py",
        "basics_processes.py",
    ):
        assert name in names


def test_every_coordination_lesson_has_an_example():
    # the tutorial's lessons: lock counter, RLock, Condition, Semaphore, Event, Timer,
    # queues, producer-consumer, threadpool batch, vthread groups
    assert len([p for p in EXAMPLES if p.name.startswith("coord_")]) >= 10


def test_the_cluster_examples_exist():
    assert len([p for p in EXAMPLES if p.name.startswith("cluster_")]) >= 2


@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(example, run_python):
    proc = run_python(str(example.relative_to(REPO)), cwd=REPO, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{example.name} printed nothing: an example says what it shows"
    assert "Traceback" not in proc.stderr, proc.stderr
