"""The CPython-suite runner's own checks (the suite itself runs from ``.ci/run`` on 3.13).

Cheap: they build the test classes without running any. The skip list must stay
short and exact: every line names tests that exist, gives a reason, and names a
private attribute or a stdlib-internal mechanism the test depends on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent


def _ships_the_suite() -> bool:
    """The package layout the runner reads (3.12+; before, it was a single module)."""
    try:
        return importlib.util.find_spec("test.test_concurrent_futures.util") is not None
    except ImportError:  # no test package, or test_concurrent_futures is a module
        return False


pytestmark = pytest.mark.skipif(
    not _ships_the_suite(),
    reason="this interpreter does not ship CPython's test.test_concurrent_futures package",
)


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cpython_suite_run", HERE / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _all_tests(run: ModuleType) -> list[tuple[str, str, bool]]:
    """(stdlib class name, method, skipped by the list) for every test the runner builds."""
    import unittest

    out = []
    for module_name in run.MODULES:
        for test in run.build_suite(module_name, False, run.read_skips()):
            assert isinstance(test, unittest.TestCase)
            base = type(test).__name__.removeprefix(run.PREFIX)
            method = test._testMethodName
            skipped = getattr(getattr(test, method), "__unittest_skip__", False)
            out.append((base, method, skipped))
    return out


def test_every_skip_line_names_existing_tests_with_a_reason():
    run = _runner()
    tests = _all_tests(run)
    for pattern, reason in run.read_skips():
        matched = [t for t in tests if run.skip_reason(t[0], t[1], [(pattern, reason)])]
        assert matched, f"skip line {pattern!r} matches no test"
        assert len(reason) > 20, f"skip line {pattern!r}: give a reason"


def test_the_runner_covers_every_executor_class():
    run = _runner()
    tests = _all_tests(run)
    classes = {base for base, _, _ in tests}
    # thread plus the three start methods for each executor test family
    for family in ("ExecutorDeadlockTest", "ProcessPoolExecutorTest", "ProcessPoolShutdownTest"):
        for method in ("Fork", "Forkserver", "Spawn"):
            assert f"ProcessPool{method}{family}" in classes
    assert "ThreadPoolShutdownTest" in classes
    assert "FailingInitializerResourcesTest" in classes
    skipped = sum(1 for _, _, s in tests if s)
    assert skipped <= 60, "the skip list is meant to stay short"
    assert len(tests) - skipped >= 170
