"""Run CPython's own ``test.test_concurrent_futures`` against anypool's executors.

Usage (Python 3.13, which ships the suite)::

    python tests/cpython_suite/run.py                 # every module, anypool's executors
    python tests/cpython_suite/run.py test_deadlock   # some modules only
    python tests/cpython_suite/run.py --stdlib        # the stdlib's executors (the baseline)

Every test class in the suite whose ``executor_type`` is the stdlib's
``ThreadPoolExecutor`` or ``ProcessPoolExecutor`` gets a subclass with
``executor_type`` swapped for anypool's. The suite already builds one class per
start method (its ``ProcessPoolFork/Forkserver/SpawnMixin``), so the process
tests run on fork, forkserver and spawn. Tests that start a fresh interpreter
with ``-c`` code import the executor by name from ``concurrent.futures``; that
code is prefixed with a line that makes the name resolve to anypool's class.

::

    parent (this script, no tests in it)
      └─ one child interpreter per module ── runs the tests one by one, writes one
         JSON line per event to a file; before each test (and before module
         teardown and exit) it arms faulthandler.dump_traceback_later(exit=True)
      a child that dies mid-test (the watchdog fired, or it crashed) has that test
      recorded as a failure; a fresh child carries on with the tests after it

A hang thus becomes a failure with every thread's stack on stderr, and the run
goes on. Tests listed in ``skips.txt`` (those that read stdlib-private
attributes) are skipped with the reason given there. The exit status is 1 if
any test failed or errored, or a module's set-up or teardown failed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SKIPS = HERE / "skips.txt"
PACKAGE = "test.test_concurrent_futures"
MODULES = (
    "test_as_completed",
    "test_deadlock",
    "test_future",
    "test_init",
    "test_process_pool",
    "test_shutdown",
    "test_thread_pool",
    "test_wait",
)
PREFIX = "Anypool"
# Prepended to the ``-c`` code of tests that start a fresh interpreter: the code imports
# the executor by its name from concurrent.futures, and must get anypool's.
# (multiprocessing too: test_hang_gh83386's script uses it unimported in the branch that the
# stdlib skips for its own ProcessPoolExecutor, which hangs there; anypool's runs it.)
PRELUDE = (
    "import anypool, multiprocessing, concurrent.futures as _cf; "
    "_cf.ThreadPoolExecutor = anypool.ThreadPoolExecutor; "
    "_cf.ProcessPoolExecutor = anypool.ProcessPoolExecutor\n"
)
DEFAULT_WATCHDOG_S = 60.0


# -- the skip list ---------------------------------------------------------------------------
def read_skips(path: Path = SKIPS) -> list[tuple[str, str]]:
    """(pattern, reason) per line ``Class.test_name: reason``; ``*`` matches in the class part
    (the class is the stdlib's name, without anypool's prefix)."""
    skips = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, sep, reason = line.partition(":")
        if not sep or not reason.strip() or "." not in pattern:
            raise SystemExit(f"{path}:{number}: expected 'Class.test_name: reason', got {raw!r}")
        skips.append((pattern.strip(), reason.strip()))
    return skips


def skip_reason(class_name: str, method: str, skips: list[tuple[str, str]]) -> str | None:
    for pattern, reason in skips:
        class_pattern, _, method_pattern = pattern.rpartition(".")
        if fnmatch.fnmatchcase(class_name, class_pattern) and method == method_pattern:
            return reason
    return None


# -- building the suite (child side) ---------------------------------------------------------
def _stdlib_types() -> dict[type, type]:
    from concurrent import futures

    import anypool

    return {
        futures.ThreadPoolExecutor: anypool.ThreadPoolExecutor,
        futures.ProcessPoolExecutor: anypool.ProcessPoolExecutor,
    }


def _executor_classes(module: Any) -> list[type]:
    import unittest

    types = _stdlib_types()
    return [
        cls
        for name, cls in sorted(vars(module).items())
        if isinstance(cls, type)
        and issubclass(cls, unittest.TestCase)
        and cls.__module__ == module.__name__
        and getattr(cls, "executor_type", None) in types
        and not name.startswith(PREFIX)
    ]


def _patch_scripts(module: Any) -> None:
    """Tests that run ``-c`` code in a fresh interpreter get anypool's executors there."""
    original = getattr(module, "assert_python_ok", None)
    if original is None or getattr(original, "_anypool", False):
        return

    def assert_python_ok(*args: Any, **kwargs: Any) -> Any:
        if len(args) >= 2 and args[0] == "-c":
            args = ("-c", PRELUDE + args[1], *args[2:])
        return original(*args, **kwargs)

    assert_python_ok._anypool = True  # type: ignore[attr-defined]
    module.assert_python_ok = assert_python_ok


def _anypool_classes(module: Any) -> dict[type, type]:
    """Stdlib test class -> its anypool subclass, also set in the module (pickling by name)."""
    types = _stdlib_types()
    made = {}
    for cls in _executor_classes(module):
        name = PREFIX + cls.__name__
        sub = type(name, (cls,), {"executor_type": types[cls.executor_type]})
        sub.__module__ = module.__name__
        sub.__qualname__ = name
        setattr(module, name, sub)
        made[cls] = sub
    _adapt_resources_test(module, made)
    return made


def _adapt_resources_test(module: Any, made: dict[type, type]) -> None:
    """test_init's FailingInitializerResourcesTest runs the stdlib's failing-initializer
    classes by name: give it an anypool twin that runs anypool's instead."""
    base = getattr(module, "FailingInitializerResourcesTest", None)
    if base is None:
        return

    def _test(self: Any, test_class: type) -> Any:
        return base._test(self, made.get(test_class, test_class))

    name = PREFIX + base.__name__
    sub = type(name, (base,), {"_test": _test})
    sub.__module__ = module.__name__
    sub.__qualname__ = name
    setattr(module, name, sub)
    made[base] = sub


def build_suite(module_name: str, stdlib: bool, skips: list[tuple[str, str]]) -> Any:
    import importlib
    import unittest

    module = importlib.import_module(f"{PACKAGE}.{module_name}")
    if stdlib:
        classes = {cls: cls for cls in _executor_classes(module)}
        resources = getattr(module, "FailingInitializerResourcesTest", None)
        if resources is not None:
            classes[resources] = resources
    else:
        _patch_scripts(module)
        classes = _anypool_classes(module)
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for base, cls in classes.items():
        for method in loader.getTestCaseNames(cls):
            test = cls(method)
            reason = skip_reason(base.__name__, method, skips)
            if reason is not None:
                # on this instance only: FailingInitializerResourcesTest runs the class's
                # own test_initializer, which must stay intact
                setattr(test, method, unittest.skip(reason)(getattr(test, method)))
            suite.addTest(test)
    return suite


# -- running one module (child side) ---------------------------------------------------------
def _event(out: Any, **fields: Any) -> None:
    out.write(json.dumps(fields) + "\n")
    out.flush()


def run_child(module_name: str, stdlib: bool, watchdog: float, events: str, after: str) -> int:
    import faulthandler
    import unittest

    skips = read_skips()
    tests = list(build_suite(module_name, stdlib, skips))
    if after:
        ids = [t.id() for t in tests]
        tests = tests[ids.index(after) + 1 :] if after in ids else []
    suite = unittest.TestSuite(tests)
    # only the suite may hold the tests: it drops each one once run, as unittest's own
    # runner does, and a test that lives on keeps its executor's initargs alive
    # (FailingInitializerResourcesTest counts their resource-tracker registrations)
    del tests
    out = open(events, "a")  # noqa: SIM115 (open for the whole run)

    def arm(what: str) -> None:
        _event(out, event="phase", what=what)
        faulthandler.dump_traceback_later(watchdog, exit=True)

    class Result(unittest.TextTestResult):
        def startTest(self, test: Any) -> None:
            arm(test.id())
            _event(out, event="start", test=test.id())
            super().startTest(test)

        def stopTest(self, test: Any) -> None:
            super().stopTest(test)
            arm(f"after {test.id()} (class or module teardown, or the next set-up)")

        def _record(self, test: Any, outcome: str, detail: str = "") -> None:
            _event(out, event="outcome", test=test.id(), outcome=outcome, detail=detail)

        def addSuccess(self, test: Any) -> None:
            super().addSuccess(test)
            self._record(test, "pass")

        def addFailure(self, test: Any, err: Any) -> None:
            super().addFailure(test, err)
            self._record(test, "fail", self.failures[-1][1])

        def addError(self, test: Any, err: Any) -> None:
            super().addError(test, err)
            self._record(test, "error", self.errors[-1][1])

        def addSkip(self, test: Any, reason: str) -> None:
            super().addSkip(test, reason)
            self._record(test, "skip", reason)

        def addExpectedFailure(self, test: Any, err: Any) -> None:
            super().addExpectedFailure(test, err)
            self._record(test, "pass")

        def addUnexpectedSuccess(self, test: Any) -> None:
            super().addUnexpectedSuccess(test)
            self._record(test, "fail", "unexpected success")

    arm("module set-up")
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Result, stream=sys.stderr)
    runner.run(suite)
    arm("interpreter exit")
    _event(out, event="done")
    out.close()
    return 0


# -- the parent ------------------------------------------------------------------------------
class Tally:
    def __init__(self) -> None:
        self.outcomes: dict[str, tuple[str, str]] = {}  # test id -> (outcome, detail)
        self.other: list[str] = []  # failures outside any test (set-up, teardown, exit)

    def bad(self) -> list[str]:
        tests = [f"{t}: {o}" for t, (o, _) in self.outcomes.items() if o in ("fail", "error")]
        return tests + self.other


def _read_events(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_module(module_name: str, args: argparse.Namespace, tally: Tally) -> None:
    after = ""
    while True:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            events_path = f.name
        command = [sys.executable, __file__, "--child", module_name, "--events", events_path]
        command += ["--watchdog", str(args.watchdog), "--after", after]
        command += ["--stdlib"] if args.stdlib else []
        rc = subprocess.call(command)
        events = _read_events(events_path)
        os.unlink(events_path)
        after = _tally_child(module_name, events, rc, tally, args.watchdog)
        if not after:
            return


def _tally_child(
    module_name: str, events: list[dict[str, Any]], rc: int, tally: Tally, watchdog: float
) -> str:
    """Record a child's outcomes; the id of the test it died in (to resume after), or ''."""
    phase, current, done = "start-up", "", False
    for event in events:
        if event["event"] == "phase":
            phase = event["what"]
        elif event["event"] == "start":
            current = event["test"]
        elif event["event"] == "outcome":
            tally.outcomes[event["test"]] = (event["outcome"], event["detail"])
            if event["test"] == current and event["outcome"] in ("pass", "skip"):
                pass
        elif event["event"] == "done":
            done = True
    if done and rc == 0:
        return ""
    cause = f"the watchdog fired ({watchdog:g} s) or the interpreter died, exit status {rc}"
    in_test = current and phase == current and current not in tally.outcomes
    if in_test:
        tally.outcomes[current] = ("error", f"hang or crash: {cause}; stacks on stderr above")
        return current
    tally.other.append(f"{module_name}: {phase}: {cause}")
    return ""


def _summary(tally: Tally, started: float) -> int:
    counts: dict[str, int] = {}
    for outcome, _ in tally.outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    ran = len(tally.outcomes) - counts.get("skip", 0)
    print("\n==== CPython test.test_concurrent_futures against anypool ====", file=sys.stderr)
    skipped = [(t, d) for t, (o, d) in sorted(tally.outcomes.items()) if o == "skip"]
    for test, reason in skipped:
        print(f"skipped {test}: {reason}", file=sys.stderr)
    for test, (outcome, detail) in sorted(tally.outcomes.items()):
        if outcome in ("fail", "error"):
            print(f"\n---- {outcome.upper()}: {test}\n{detail}", file=sys.stderr)
    for other in tally.other:
        print(f"\n---- FAILED OUTSIDE A TEST: {other}", file=sys.stderr)
    print(
        f"\n{counts.get('pass', 0)}/{ran} passed, {len(skipped)} skipped, "
        f"{len(tally.other)} set-up/teardown failures, in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    return 1 if tally.bad() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules of {PACKAGE} (default: all)")
    parser.add_argument("--stdlib", action="store_true", help="run the stdlib's executors")
    parser.add_argument("--watchdog", type=float, default=DEFAULT_WATCHDOG_S)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--events", help=argparse.SUPPRESS)
    parser.add_argument("--after", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args.child, args.stdlib, args.watchdog, args.events, args.after)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    started = time.monotonic()
    tally = Tally()
    for module_name in args.modules or MODULES:
        run_module(module_name, args, tally)
    return _summary(tally, started)


if __name__ == "__main__":
    sys.exit(main())
