"""The fault fuzzer's case space, its expected-outcome table, and its driver.

::

    test_fuzz ─► run(seed, indices) ─► a few child interpreters at a time, each running a
                     ▲                  batch of cases (fuzz_child.main): one fresh pool per
                     │                  case, its outcome checked against expected(case), its
                     │                  leaks counted; one JSON line per case to a file
                     └── a child that dies or hangs (its watchdog dumps every thread's stack
                         and exits) loses only the case it was running: the rest of its
                         batch goes to a new child

A case is drawn from (seed, index) alone, so any case replays on its own
(``ANYPOOL_FUZZ_SEED=s ANYPOOL_FUZZ_ONLY=i``). The table below is the one in
docs/failure-model.md ("Fault fuzzer: expected outcome per cell"); change both together.
"""

from __future__ import annotations

import fnmatch
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from fuzz_tasks import EXIT_CODE, SYS_EXIT_CODE

StartMethod = Literal["fork", "forkserver", "spawn"]
START_METHODS: tuple[StartMethod, ...] = ("fork", "forkserver", "spawn")
# The API paths, with how often each is drawn (the executor's two count as one path).
APIS = {
    "submit": 2,
    "map_ordered": 2,
    "map_unordered": 2,
    "executor_submit": 1,
    "executor_map": 1,
    "process": 2,
}
POINTS = ("call_pickle", "call_unpickle", "task", "result_pickle", "result_unpickle", "initializer")
KINDS = ("exception", "base_exception", "sys_exit", "os_exit", "sigkill", "segfault")
BASE_VARIANTS = ("KeyboardInterrupt", "GeneratorExit", "FuzzBaseError")
# Faults that end the process they fire in, with the exit code the pool must report.
DEATHS = {"os_exit": EXIT_CODE, "sigkill": -9, "segfault": -11}
# Points in the caller's own process: a death there ends the caller, which no pool can
# contain, so only the exception kinds are drawn for them.
IN_PARENT = ("call_pickle", "result_unpickle")

# Bounds (seconds) every case is held to; see docs/failure-model.md.
FUTURE_BOUND_S = 20.0  # each call's outcome arrives within this of waiting for it
# shutdown(wait=True) of the case's pool returns within this: below the backend's 5 s exit
# grace, so a worker that does not exit when asked (and is killed) is caught
SHUTDOWN_BOUND_S = 4.0
CASE_BOUND_S = 45.0  # the whole case; past it the child dumps every stack and exits
LEAK_GRACE_S = 5.0  # threads and processes get this long to end after shutdown() returns
FD_GRACE_S = 0.25  # and then descriptors and registrations this long to be released

DEFAULT_CASES = 300
BATCH = 40  # cases per child interpreter: its start and warm-up cost about 1 s
PARALLEL = 2  # children at a time (most of a case is waiting on processes)


@dataclass(frozen=True)
class Case:
    seed: int
    index: int
    start_method: StartMethod
    api: str
    point: str
    kind: str
    variant: str
    workers: int
    lock: bool = False  # initargs carry a multiprocessing lock (a tracker registration)
    chunksize: int = 1  # Pool.map: 3 puts the three calls in one chunk
    max_tasks: int | None = None  # 1: every worker is replaced after each task
    retries: int = 0  # Pool's retries=: a call whose worker dies is run again
    neighbour: bool = False  # another process pool of this process is busy meanwhile

    @property
    def cell(self) -> str:
        return f"{self.point}/{self.kind}/{self.api}/{self.start_method}"

    def __str__(self) -> str:
        variant = f"({self.variant})" if self.variant else ""
        lock = " initargs=lock" if self.lock else ""
        chunk = f" chunksize={self.chunksize}" if self.chunksize > 1 else ""
        recycle = f" max_tasks={self.max_tasks}" if self.max_tasks else ""
        retries = f" retries={self.retries}" if self.retries else ""
        neighbour = " +neighbour" if self.neighbour else ""
        options = f"workers={self.workers}{lock}{chunk}{recycle}{retries}{neighbour}"
        return f"case {self.index}: {self.cell}{variant} {options}"


def case_for(seed: int, index: int, override: dict[str, Any] | None = None) -> Case:
    """The drawn case, with some fields replaced (the fuzzer's self-tests)."""
    case = draw(seed, index)
    return Case(**{**asdict(case), **override}) if override else case


def kinds_at(point: str) -> tuple[str, ...]:
    return KINDS[:3] if point in IN_PARENT else KINDS


def draw(seed: int, index: int) -> Case:
    """Case ``index`` of run ``seed``: depends on nothing else, so it replays alone."""
    rng = random.Random(f"anypool-fuzz:{seed}:{index}")
    point = rng.choice(POINTS)
    kind = rng.choice(kinds_at(point))
    variant = rng.choice(BASE_VARIANTS) if kind == "base_exception" else ""
    api = rng.choices(list(APIS), weights=list(APIS.values()))[0]
    workers = 1 if rng.random() < 0.7 else 2
    method = rng.choice(START_METHODS)
    lock = rng.random() < 0.3
    chunksize = 3 if api.startswith("map") and rng.random() < 0.3 else 1
    max_tasks = 1 if api != "process" and rng.random() < 0.15 else None
    retries = 1 if api in ("submit", "map_ordered", "map_unordered") and rng.random() < 0.15 else 0
    neighbour = rng.random() < 0.2 and not (method == "fork" and disabled("fork+neighbour"))
    fields = (workers, lock, chunksize, max_tasks, retries, neighbour)
    return Case(seed, index, method, api, point, kind, variant, *fields)


# -- the expected-outcome table -------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    """What the caller must see for the faulty call, and what becomes of the pool.

    ``error`` names classes the error must be an instance of (each of them);
    ``raised``: True if the submitting call itself raises it (``submit``, ``start``, or
    iterating a lazy ``Pool.map``), False if the call's future fails (or, in
    ``Executor.map``, iterating raises it at the item), None if either will do.
    """

    error: tuple[str, ...]
    exitcode: int | None = None  # WorkerCrashed.exitcode, or SystemExit.code
    message: str | None = None  # a pattern the message must contain
    raised: bool | None = False
    others_complete: bool = True  # the healthy calls around it return their values
    others_fail: bool = False  # they fail with the same error (they share its chunk)
    pool: str = "usable"  # after the case: "usable" (a new call works) or "broken"


OWN_TYPE = {"exception": "FuzzError", "sys_exit": "SystemExit"}


def expected(case: Case) -> Expected:
    """The table: one rule per (point, kind); the API path changes only the error class
    where the drop-in executor must look like the stdlib's (issue 9, group 2). In a map
    chunk of several calls, what cannot be pinned on one item fails the chunk: a worker
    death, or an answer the parent cannot unpickle (its items ran; none runs twice)."""
    row = _row(case)
    whole_chunk = case.kind in DEATHS or case.point == "result_unpickle"
    if case.chunksize > 1 and whole_chunk and case.point != "initializer":
        return replace(row, others_complete=False, others_fail=True)
    return row


def _row(case: Case) -> Expected:
    executor = case.api.startswith("executor")
    if case.point == "initializer":
        return _initializer_row(case.kind)
    if case.kind in DEATHS:  # with retries=1 it ran twice, and says so
        retried = r"\(attempt 2 of 2\)" if case.retries else None
        return Expected(("WorkerCrashed",), exitcode=DEATHS[case.kind], message=retried)
    own = OWN_TYPE.get(case.kind, case.variant)
    code = SYS_EXIT_CODE if case.kind == "sys_exit" else None
    serialization = ("BrokenProcessPool",) if executor else ("SerializationError",)
    if case.point == "call_pickle":
        if case.kind == "exception":
            return Expected(("SerializationError",))
        # a BaseException in the caller's own thread is the caller's (Ctrl-C, sys.exit);
        # calls submitted one by one go on, a map ends where it raised
        one_by_one = case.api in ("submit", "executor_submit")
        return Expected((own,), exitcode=code, raised=True, others_complete=one_by_one)
    if case.point in ("call_unpickle", "result_unpickle"):
        return Expected(serialization)
    if case.point == "result_pickle" and case.kind == "exception":
        return Expected(("SerializationError",))
    return Expected((own,), exitcode=code)  # the task raises it, or the result's pickling


def _initializer_row(kind: str) -> Expected:
    message = {
        "os_exit": f"code {EXIT_CODE}",
        "sigkill": "signal 9",
        "segfault": "signal 11",
    }.get(kind, "initializer")
    return Expected(
        ("BrokenProcessPool",), message=message, raised=None, others_complete=False, pool="broken"
    )


# Temporary: known bugs, each with the issue group or finding it belongs to. A case whose
# every problem is explained by a known bug of its cell is reported but does not fail the
# run; a strict entry drawn FIXED_AFTER times in a run without showing its problem fails
# the run, so that the entry is removed when the bug is fixed (non-strict: rare races).
@dataclass(frozen=True)
class KnownBug:
    cells: str  # fnmatch patterns over the parts full_pattern() names
    problem: str  # a regex that each problem it explains matches
    why: str
    strict: bool = True


EXPECTED_BROKEN: list[KnownBug] = []  # none left: every earlier entry was fixed


# Temporary, like EXPECTED_BROKEN: combinations not drawn while their bug, a hang (each
# costs a case its whole bound), is being fixed. ANYPOOL_FUZZ_ALL=1 draws them anyway.
DISABLED_UNTIL_FIXED: dict[str, str] = {}  # e.g. "fork+neighbour": "finding 6: ..."


def disabled(combination: str) -> bool:
    return combination in DISABLED_UNTIL_FIXED and not os.environ.get("ANYPOOL_FUZZ_ALL")


# A strict entry counts as fixed once drawn this often without its problem showing (a
# garbage collection that happens to run mid-case can hide a leak once, not three times).
FIXED_AFTER = 3


def known_bugs(case: Case) -> list[KnownBug]:
    cell = f"{case.cell}/{'lock' if case.lock else 'nolock'}/chunk{case.chunksize}"
    return [bug for bug in EXPECTED_BROKEN if fnmatch.fnmatchcase(cell, full_pattern(bug.cells))]


def full_pattern(pattern: str) -> str:
    """point/kind/api/start_method[/lock|nolock[/chunk1|chunk3]], the missing parts "*"."""
    return pattern + "/*" * (5 - pattern.count("/"))


def explained(case: Case, problem: str) -> KnownBug | None:
    return next((b for b in known_bugs(case) if re.search(b.problem, problem)), None)


# -- results ----------------------------------------------------------------------------------
@dataclass
class Result:
    case: Case
    problems: list[str]
    seconds: float
    observed: str = ""
    stderr: str = ""  # what the case's processes wrote to stderr, for a failed case

    @property
    def known(self) -> bool:
        """Every problem is a known bug of this cell."""
        return all(explained(self.case, p) for p in self.problems)


@dataclass
class Report:
    seed: int
    results: list[Result] = field(default_factory=list)
    batch_problems: list[str] = field(default_factory=list)
    tracker_exits: list[int | None] = field(default_factory=list)  # one per finished batch
    wall_s: float = 0.0

    def failed(self) -> list[Result]:
        return [r for r in self.results if r.problems and not r.known]

    def hangs(self) -> list[Result]:
        return [r for r in self.results if any(p.startswith("hang") for p in r.problems)]

    def leaks(self) -> list[Result]:
        return [r for r in self.results if any(p.startswith("leak") for p in r.problems)]

    def fixed_entries(self) -> list[str]:
        """Strict EXPECTED_BROKEN entries drawn at least FIXED_AFTER times in this run
        whose problem never showed."""
        drawn = Counter(bug for r in self.results for bug in known_bugs(r.case) if bug.strict)
        shown = {explained(r.case, p) for r in self.results for p in r.problems}
        fixed = [bug for bug, n in drawn.items() if n >= FIXED_AFTER and bug not in shown]
        return sorted(f"{bug.cells}: {bug.why}" for bug in fixed)

    def known_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.results:
            for bug in {explained(result.case, p) for p in result.problems} - {None}:
                assert bug is not None
                counts[bug.why] = counts.get(bug.why, 0) + 1
        return counts

    def summary(self) -> str:
        known = [r for r in self.results if r.problems and r.known]
        return (
            f"seed {self.seed}: {len(self.results)} cases in {self.wall_s:.1f} s, "
            f"{len(self.failed())} failed, {len(known)} in EXPECTED_BROKEN cells, "
            f"{len(self.hangs())} hangs, {len(self.leaks())} leaks, "
            f"{len(self.batch_problems)} batch problems"
        )

    def format(self) -> str:
        lines = [self.summary()]
        for result in self.failed():
            lines.append(f"{result.case}: {result.observed}")
            lines += [f"    {problem}" for problem in result.problems]
            if result.stderr:
                lines.append("    stderr during the case:\n" + result.stderr[-3000:])
            lines.append(
                f"    replay: ANYPOOL_FUZZ_SEED={self.seed} ANYPOOL_FUZZ_ONLY={result.case.index}"
            )
        lines += [f"batch: {problem}" for problem in self.batch_problems]
        lines += [f"known bug, {n} cases: {why}" for why, n in self.known_counts().items()]
        fixed = self.fixed_entries()
        if fixed:
            lines.append(f"EXPECTED_BROKEN entries that now pass (remove them): {fixed}")
        return "\n".join(lines)


# -- the driver ---------------------------------------------------------------------------------
HERE = os.path.dirname(os.path.abspath(__file__))
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); import fuzz_child; fuzz_child.main(sys.argv[2:])"
)
# the resource tracker's own warnings, printed when it finds registrations left at exit
_TRACKER_WARNING = re.compile(r"resource_tracker: .*(?:leaked|died).*")


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    indices: list[int]
    out_path: str
    err: Any
    marker: str
    started: float
    override: dict[str, Any] | None


def run(
    seed: int,
    indices: list[int],
    *,
    parallel: int = PARALLEL,
    batch: int = BATCH,
    extra: dict[str, Any] | None = None,
) -> Report:
    """Run the cases in child interpreters, ``parallel`` at a time."""
    report = Report(seed)
    start = time.monotonic()
    todo = deque(indices[i : i + batch] for i in range(0, len(indices), batch))
    running: list[_Child] = []
    with tempfile.TemporaryDirectory(prefix="anypool-fuzz-") as tmp:
        while todo or running:
            while todo and len(running) < parallel:
                running.append(_start_child(seed, todo.popleft(), tmp, extra))
            time.sleep(0.05)
            for child in [c for c in running if _finished(c)]:
                running.remove(child)
                rest = _collect(child, report)
                if rest:
                    todo.appendleft(rest)
    report.results.sort(key=lambda r: r.case.index)
    report.wall_s = time.monotonic() - start
    return report


def _start_child(seed: int, indices: list[int], tmp: str, extra: dict[str, Any] | None) -> _Child:
    marker = uuid.uuid4().hex
    out_path = os.path.join(tmp, f"{marker}.jsonl")
    # files, not pipes: a leaked process may hold them; closed in _read_err
    err = tempfile.TemporaryFile("w+")  # noqa: SIM115
    config = {"seed": seed, "indices": indices, "out": out_path, **(extra or {})}
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, HERE, json.dumps(config)],
        stdout=subprocess.DEVNULL,
        stderr=err,
        env={**os.environ, "ANYPOOL_FAULT_MARK": marker},
    )
    override = (extra or {}).get("override")
    return _Child(process, indices, out_path, err, marker, time.monotonic(), override)


def _finished(child: _Child) -> bool:
    if child.process.poll() is not None:
        return True
    # the child's own watchdog ends a hung case; this is the backstop if it cannot
    if time.monotonic() - child.started > CASE_BOUND_S * (len(child.indices) + 2):
        child.process.kill()
        child.process.wait()
        return True
    return False


def _collect(child: _Child, report: Report) -> list[int]:
    """Record the child's results; returns the indices it did not get to."""
    done = _read_lines(child.out_path)
    stderr = _read_err(child)
    for line in done:
        if "index" in line:
            report.results.append(_result(report.seed, line, child.override))
        elif "tracker_exitcode" in line:
            report.tracker_exits.append(line["tracker_exitcode"])
            if line["tracker_exitcode"] not in (0, None):
                report.batch_problems.append(f"leak: the resource tracker exited with {line}")
    for warning in _TRACKER_WARNING.findall(stderr):
        report.batch_problems.append(f"leak: the resource tracker warned: {warning}")
    _check_left_behind(child, report)
    finished = {line["index"] for line in done if "index" in line}
    rest = [i for i in child.indices if i not in finished]
    if child.process.returncode == 0 and not rest:
        return []
    if not any("started" in line for line in done):  # not a case's fault: do not go on
        report.batch_problems.append(f"a child failed to start: {stderr[-3000:]}")
        return []
    if rest:  # the first case it did not finish is the one that hung or killed it
        case = case_for(report.seed, rest[0], child.override)
        why = f"hang or death of the child (exit status {child.process.returncode})"
        report.results.append(Result(case, [f"{why}; its stderr ends:\n{stderr[-6000:]}"], 0.0))
        return rest[1:]
    report.batch_problems.append(f"child exited {child.process.returncode}: {stderr[-3000:]}")
    return []


def _read_lines(path: str) -> list[dict[str, Any]]:
    try:
        with open(path) as out:
            return [json.loads(line) for line in out if line.strip()]
    except FileNotFoundError:
        return []


def _read_err(child: _Child) -> str:
    child.err.seek(0)
    text: str = child.err.read()
    child.err.close()
    return text


def _check_left_behind(child: _Child, report: Report) -> None:
    """No process the child started (workers, forkserver, tracker) outlives it."""
    from faultlib import processes_with_marker

    deadline = time.monotonic() + LEAK_GRACE_S
    while processes_with_marker(child.marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    for proc in processes_with_marker(child.marker):
        report.batch_problems.append(f"leak: process left behind: {proc.cmdline()}")
        proc.kill()


def _result(seed: int, line: dict[str, Any], override: dict[str, Any] | None) -> Result:
    case = case_for(seed, line["index"], override)
    return Result(case, line["problems"], line["seconds"], line["observed"], line["stderr"])


def result_line(case: Case, problems: list[str], seconds: float, observed: str, stderr: str) -> str:
    line = {"index": case.index, "problems": problems, "seconds": seconds}
    return json.dumps({**line, "observed": observed, "stderr": stderr})
