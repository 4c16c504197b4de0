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


MIGRATION = REPO / "docs" / "migration"
MIGRATION_PAGES = {  # guide -> its before/after example
    "concurrent-futures.md": "migrate_concurrent_futures.py",
    "multiprocessing.md": "migrate_multiprocessing.py",
    "threading.md": "migrate_threading.py",
    "joblib.md": "migrate_joblib.py",
    "pebble.md": "migrate_pebble.py",
    "mpire.md": "migrate_mpire.py",
    "vthread.md": "migrate_vthread.py",
    "threadpool.md": "migrate_threadpool.py",
}


def test_every_migration_guide_has_its_example_and_the_index_lists_it():
    index = (MIGRATION / "index.md").read_text(encoding="utf-8")
    guides = {path.name for path in MIGRATION.glob("*.md")} - {"index.md"}
    assert guides == set(MIGRATION_PAGES)
    examples = {path.name for path in EXAMPLES if path.name.startswith("migrate_")}
    assert examples == set(MIGRATION_PAGES.values())
    for guide, example in MIGRATION_PAGES.items():
        text = (MIGRATION / guide).read_text(encoding="utf-8")
        assert f"(../../examples/{example})" in text, f"{guide} does not link {example}"
        assert f"]({guide})" in index, f"index.md does not list {guide}"
        for section in ("## Equivalents", "## Differences that bite", "## Before and after"):
            assert section in text, f"{guide} has no {section!r} section"


@pytest.mark.timeout(TIMEOUT_S + 30)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs(example, run_python):
    proc = run_python(str(example.relative_to(REPO)), cwd=REPO, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{example.name} printed nothing: an example says what it shows"
    assert "Traceback" not in proc.stderr, proc.stderr
