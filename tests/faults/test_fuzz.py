"""The fault fuzzer (issue 9): random faults at every point a call can break, in every way,
through every API path and start method; each case a fresh pool, held to the outcome in
docs/failure-model.md ("Fault fuzzer: expected outcome per cell"), to time bounds, and to
leaving no thread, process, file descriptor or resource-tracker registration behind.

``ANYPOOL_FUZZ_CASES=1000`` runs more cases; ``ANYPOOL_FUZZ_SEED=s`` replays run ``s``
(every failure prints its seed), and ``ANYPOOL_FUZZ_ONLY=i,j`` only those cases of it.
"""

from __future__ import annotations

import fnmatch
import os
import random
import re

import fuzzlib
import pytest
from fuzzlib import Case

pytestmark = pytest.mark.timeout(600)


def _seed() -> int:
    return int(os.environ.get("ANYPOOL_FUZZ_SEED") or random.SystemRandom().randrange(10**9))


def _indices() -> list[int]:
    only = os.environ.get("ANYPOOL_FUZZ_ONLY")
    if only:
        return [int(i) for i in only.split(",")]
    return list(range(int(os.environ.get("ANYPOOL_FUZZ_CASES", fuzzlib.DEFAULT_CASES))))


def test_fuzz() -> None:
    seed = _seed()
    report = fuzzlib.run(seed, _indices())
    print(report.summary())
    assert not report.failed(), report.format()
    assert not report.batch_problems, report.format()
    if not os.environ.get("ANYPOOL_FUZZ_ONLY"):  # a replay draws too few cases to say
        assert not report.fixed_entries(), report.format()
    if any(result.case.start_method != "fork" for result in report.results):
        # the tracker check ran: spawn and forkserver start one in their batches
        assert 0 in report.tracker_exits, report.tracker_exits


def test_every_cell_has_an_expected_outcome() -> None:
    for point in fuzzlib.POINTS:
        for kind in fuzzlib.kinds_at(point):
            for api in fuzzlib.APIS:
                variant = "KeyboardInterrupt" if kind == "base_exception" else ""
                case = Case(0, 0, "fork", api, point, kind, variant, 1)
                expected = fuzzlib.expected(case)
                assert expected.error, case


def _all_cells() -> list[str]:
    return [
        f"{point}/{kind}/{api}/{method}/{lock}/{chunk}"
        for point in fuzzlib.POINTS
        for kind in fuzzlib.kinds_at(point)
        for api in fuzzlib.APIS
        for method in fuzzlib.START_METHODS
        for lock in ("lock", "nolock")
        for chunk in ("chunk1", "chunk3")
    ]


def test_expected_broken_names_real_cells() -> None:
    cells = _all_cells()
    for bug in fuzzlib.EXPECTED_BROKEN:
        assert fnmatch.filter(cells, fuzzlib.full_pattern(bug.cells)), bug
        re.compile(bug.problem)


def test_the_draw_is_repeatable_and_covers_the_space() -> None:
    cases = [fuzzlib.draw(7, i) for i in range(600)]
    assert cases == [fuzzlib.draw(7, i) for i in range(600)]
    assert {c.start_method for c in cases} == set(fuzzlib.START_METHODS)
    assert {c.api for c in cases} == set(fuzzlib.APIS)
    assert {c.point for c in cases} == set(fuzzlib.POINTS)
    assert {c.kind for c in cases} == set(fuzzlib.KINDS)
    assert {c.kind for c in cases if c.point in fuzzlib.IN_PARENT} == set(fuzzlib.KINDS[:3])
    options = [(c.workers, c.lock, c.chunksize, c.max_tasks, c.retries, c.neighbour) for c in cases]
    assert [set(values) for values in zip(*options)] == [
        {1, 2},
        {False, True},
        {1, 3},
        {None, 1},
        {0, 1},
        {False, True},
    ]
    assert all(c.api.startswith("map") for c in cases if c.chunksize > 1)
    if fuzzlib.disabled("fork+neighbour"):
        assert not [c for c in cases if c.neighbour and c.start_method == "fork"]


def test_the_fuzzer_reports_a_hang_and_leaks() -> None:
    """Its checks can fail: a task that outlives every bound is a hang, a descriptor the
    case leaves open in the parent is a leak, and neither stops the rest of the batch; a
    registration a worker leaves with the resource tracker fails the batch."""
    hang = {"point": "selftest_hang", "kind": "exception", "api": "submit", "start_method": "fork"}
    leak = {**hang, "point": "selftest_leak"}
    bounds = {"future_bound_s": 1.0, "case_bound_s": 6.0, "leak_grace_s": 0.5}
    report = fuzzlib.run(1, [0], extra={"override": hang, **bounds})
    assert [p for p in report.results[0].problems if "hang" in p], report.format()
    report = fuzzlib.run(1, [0, 1], extra={"override": leak, **bounds})
    assert len(report.results) == 2, report.format()
    for result in report.results:
        assert [p for p in result.problems if p.startswith("leak: file descriptors")], result
    tracker = {**hang, "point": "selftest_tracker", "start_method": "spawn"}
    report = fuzzlib.run(1, [0], extra={"override": tracker, **bounds})
    assert [p for p in report.batch_problems if "resource tracker" in p], report.format()


def test_a_case_that_hangs_its_interpreter_is_blamed_and_the_batch_goes_on() -> None:
    """A map that never ends: the case's watchdog dumps the stacks and ends the child; the
    driver blames that case and runs the next one in a new child."""
    hang = {"point": "selftest_hang", "kind": "exception", "api": "map_ordered"}
    bounds = {"future_bound_s": 2.0, "case_bound_s": 2.5}  # the task sleeps 3 x 2 s
    report = fuzzlib.run(1, [0, 1], extra={"override": {**hang, "start_method": "fork"}, **bounds})
    assert [r.case.index for r in report.results] == [0, 1], report.format()
    for result in report.results:
        assert result.problems[0].startswith("hang or death of the child"), result.problems
        assert "Timeout (0:00:02" in result.problems[0]  # faulthandler's dump is in it


def test_a_known_bug_that_stops_showing_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    bug = fuzzlib.KnownBug("task/exception/submit/*", r"^wrong error", "a test entry")
    monkeypatch.setattr(fuzzlib, "EXPECTED_BROKEN", [bug])
    case = Case(0, 0, "fork", "submit", "task", "exception", "", 1)
    broken = fuzzlib.Result(case, ["wrong error: ValueError"], 0.1)
    assert broken.known
    assert not fuzzlib.Result(case, ["hang: shutdown(wait=True) took 5.0 s"], 0.1).known
    clean = fuzzlib.Result(case, [], 0.1)
    report = fuzzlib.Report(0, results=[clean] * fuzzlib.FIXED_AFTER)
    assert report.fixed_entries() == ["task/exception/submit/*: a test entry"]
    report.results.append(broken)
    assert report.fixed_entries() == []
