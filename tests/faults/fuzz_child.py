"""One batch of fuzz cases, run in a child interpreter of its own (see fuzzlib).

::

    main ─► warm up (forkserver, resource tracker) ─► baseline: threads, fds, registrations
      └─► per case: watchdog armed ─► fresh pool ─► healthy, faulty, healthy calls
            ─► outcome of each ─► probe (is the pool usable / broken?) ─► shutdown (timed)
            ─► leak check against the baseline ─► one JSON line
      └─► at the end: stop the forkserver and the resource tracker; its exit status

A hung case never returns: ``faulthandler`` dumps every thread's stack to stderr and
exits, and the driver blames the case it was running.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FuturesTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from typing import Any

import fuzz_tasks
import fuzzlib
import psutil
from faultlib import worker_pids
from fuzzlib import FD_GRACE_S, FUTURE_BOUND_S, LEAK_GRACE_S, SHUTDOWN_BOUND_S, Case, Expected

import anypool
from anypool import SerializationError
from anypool._errors._process import BrokenProcessPool, WorkerCrashed

Outcome = tuple[str, Any]  # (how, what): value | error | raised | hang | skipped
PROBE = ("ok", 99, "", "", None)
CLASSES: dict[str, type[BaseException]] = {
    "SerializationError": SerializationError,
    "BrokenProcessPool": BrokenProcessPool,
    "WorkerCrashed": WorkerCrashed,
    "FuzzError": fuzz_tasks.FuzzError,
    "SystemExit": SystemExit,
    **fuzz_tasks.BASE_EXCEPTIONS,
}


@dataclass
class Observed:
    fault: Outcome = ("skipped", None)
    others: list[Outcome] = field(default_factory=list)
    pool: str = "n/a"
    problems: list[str] = field(default_factory=list)
    exitcode: int | None = None  # anypool.Process.exitcode once it ended

    def __str__(self) -> str:
        how, what = self.fault
        shown = f"{type(what).__name__}: {what}" if isinstance(what, BaseException) else repr(what)
        return f"faulty call: {how} {shown[:300]}; pool after: {self.pool}"


# -- the calls ----------------------------------------------------------------------------------
def items(case: Case) -> list[tuple[str, int, str, str, Any]]:
    """A healthy call, the faulty one, a healthy one."""
    kind, variant = case.kind, case.variant
    faulty = {
        "call_pickle": ("ok", 1, kind, variant, fuzz_tasks.FaultOnPickle(kind, variant)),
        "call_unpickle": ("ok", 1, kind, variant, fuzz_tasks.FaultOnUnpickle(kind, variant)),
        "task": ("task", 1, kind, variant, None),
        "result_pickle": ("result_pickle", 1, kind, variant, None),
        "result_unpickle": ("result_unpickle", 1, kind, variant, os.getpid()),
        "initializer": ("ok", 1, "", "", None),
        # the fuzzer's self-tests: a hang and a leak it must report
        "selftest_hang": ("sleep", 1, "", "", 3 * FUTURE_BOUND_S),
        "selftest_leak": ("result_unpickle", 1, "leak_fd", "", os.getpid()),
        "selftest_tracker": ("register", 1, "", "", None),
    }[case.point]
    return [("ok", 0, "", "", None), faulty, ("ok", 2, "", "", None)]


def pool_options(case: Case) -> dict[str, Any]:
    """The initializer, for the initializer point, or a healthy one holding a lock."""
    if case.point != "initializer" and not case.lock:
        return {}
    fault = (case.kind, case.variant) if case.point == "initializer" else ("", "")
    lock = multiprocessing.get_context(case.start_method).Lock() if case.lock else None
    return {"initializer": fuzz_tasks.initializer, "initargs": (*fault, lock)}


def wait(future: Future[Any]) -> Outcome:
    try:
        error = future.exception(timeout=FUTURE_BOUND_S)
    except FuturesTimeout:
        return ("hang", None)
    except CancelledError as exc:
        return ("error", exc)
    return ("error", error) if error is not None else ("value", future.result())


def submit_all(submit: Callable[..., Future[Any]], calls: list[Any]) -> list[Outcome]:
    pending: list[Any] = []
    for item in calls:
        try:
            pending.append(submit(fuzz_tasks.call, item))
        except BaseException as exc:  # KeyboardInterrupt too: that is what we look for
            pending.append(exc)
    return [("raised", p) if isinstance(p, BaseException) else wait(p) for p in pending]


def assign(outcomes: list[Outcome], ordered: bool) -> tuple[Outcome, list[Outcome]]:
    """(the faulty call's outcome, the healthy calls' outcomes)."""
    raised = [o for o in outcomes if o[0] == "raised"]
    rest = [o for o in outcomes if o[0] != "raised"]
    if raised:
        return raised[0], (rest + [("skipped", None)] * 2)[:2]
    if ordered and len(rest) == 3:
        return rest[1], [rest[0], rest[2]]
    healthy = [o for o in rest if o[0] == "value" and o[1] in (("ok", 0), ("ok", 2))]
    others = [o for o in rest if o not in healthy]
    fault = others.pop(0) if others else ("skipped", None)
    return fault, (healthy + others + [("skipped", None)] * 2)[:2]


def probe(submit: Callable[..., Future[Any]]) -> str:
    """Is the pool usable after the fault, broken, or something else?"""
    try:
        how, what = wait(submit(fuzz_tasks.call, PROBE))
    except BaseException as exc:
        how, what = "raised", exc
    if how == "value" and what == ("ok", 99):
        return "usable"
    if isinstance(what, BrokenProcessPool) and not isinstance(what, WorkerCrashed):
        return "broken"
    return f"{how} {what!r}"


def shut_down(shutdown: Callable[[], None], observed: Observed) -> None:
    start = time.monotonic()
    with _workers_dump_stacks_after(SHUTDOWN_BOUND_S - 1):
        shutdown()
    took = time.monotonic() - start
    if took > SHUTDOWN_BOUND_S:
        observed.problems.append(f"hang: shutdown(wait=True) took {took:.1f} s")


# -- one runner per API path -------------------------------------------------------------------
def run_pool_submit(case: Case) -> Observed:
    observed = Observed()
    pool = _pool(case)
    try:
        observed.fault, observed.others = assign(submit_all(pool.submit, items(case)), True)
        observed.pool = probe(pool.submit)
    finally:
        shut_down(pool.shutdown, observed)
    return observed


def run_pool_map(case: Case) -> Observed:
    observed = Observed()
    ordered = case.api == "map_ordered"
    pool = _pool(case)
    outcomes: list[Outcome] = []
    try:
        try:
            mapped = pool.map(
                fuzz_tasks.call,
                items(case),
                ordered=ordered,
                chunksize=case.chunksize,
                return_exceptions=True,
            )
            for value in mapped:
                outcomes.append(("error" if isinstance(value, BaseException) else "value", value))
        except BaseException as exc:
            outcomes.append(("raised", exc))
        observed.fault, observed.others = assign(outcomes, ordered)
        observed.pool = probe(pool.submit)
    finally:
        shut_down(pool.shutdown, observed)
    return observed


def _pool(case: Case) -> anypool.Pool:
    options = pool_options(case)
    return anypool.Pool(
        "process",
        case.workers,
        start_method=case.start_method,
        max_tasks_per_worker=case.max_tasks,
        retries=case.retries,
        **options,
    )


def _executor(case: Case) -> anypool.ProcessPoolExecutor:
    context = multiprocessing.get_context(case.start_method)
    return anypool.ProcessPoolExecutor(
        case.workers, mp_context=context, max_tasks_per_child=case.max_tasks, **pool_options(case)
    )


def run_executor_submit(case: Case) -> Observed:
    observed = Observed()
    executor = _executor(case)
    try:
        observed.fault, observed.others = assign(submit_all(executor.submit, items(case)), True)
        observed.pool = probe(executor.submit)
    finally:
        shut_down(executor.shutdown, observed)
    return observed


def run_executor_map(case: Case) -> Observed:
    """The stdlib contract: map() submits every call at once (so it raises what submitting
    raises) and raises a failed call's exception when iteration reaches it."""
    observed = Observed()
    executor = _executor(case)
    try:
        outcomes = _executor_map_outcomes(executor, items(case))
        observed.fault = outcomes[-1] if outcomes[-1][0] != "value" else ("skipped", None)
        healthy = [o for o in outcomes if o[0] == "value"]
        observed.others = (healthy + [("skipped", None)] * 2)[:2]
        observed.pool = probe(executor.submit)
    finally:
        shut_down(executor.shutdown, observed)
    return observed


def _executor_map_outcomes(
    executor: anypool.ProcessPoolExecutor, calls: list[Any]
) -> list[Outcome]:
    try:
        mapped = executor.map(fuzz_tasks.call, calls, timeout=FUTURE_BOUND_S)
    except BaseException as exc:
        return [("raised", exc)]
    outcomes: list[Outcome] = []
    try:
        for value in mapped:
            outcomes.append(("value", value))
    except FuturesTimeout:
        outcomes.append(("hang", None))
    except BaseException as exc:
        outcomes.append(("error", exc))
    return outcomes


def run_process(case: Case) -> Observed:
    observed = Observed()
    process = anypool.Process(
        target=fuzz_tasks.call,
        args=(items(case)[1],),
        start_method=case.start_method,
        **pool_options(case),
    )
    try:
        process.start()
    except BaseException as exc:
        observed.fault = ("raised", exc)
        return observed
    process.join(FUTURE_BOUND_S)
    if process.is_alive():
        observed.fault = ("hang", None)
        process.kill()
    else:
        error = process.exception(timeout=0)
        observed.fault = ("error", error) if error is not None else ("value", process.result(0))
        observed.exitcode = process.exitcode
    shut_down(process.close, observed)
    return observed


RUNNERS: dict[str, Callable[[Case], Observed]] = {
    "submit": run_pool_submit,
    "map_ordered": run_pool_map,
    "map_unordered": run_pool_map,
    "executor_submit": run_executor_submit,
    "executor_map": run_executor_map,
    "process": run_process,
}


# -- checking an outcome against the table -----------------------------------------------------
def check(case: Case, observed: Observed, exp: Expected) -> list[str]:
    problems = list(observed.problems)
    problems += check_fault(observed.fault, exp)
    problems += check_others(case, observed, exp)
    if case.api != "process" and observed.pool != exp.pool:
        problems.append(f"pool after the case: {observed.pool}, expected {exp.pool}")
    if case.api == "process" and observed.fault[0] == "error" and exp.pool == "usable":
        problems += check_exitcode(observed.exitcode, exp)
    return problems


def check_exitcode(exitcode: int | None, exp: Expected) -> list[str]:
    """anypool.Process.exitcode reads as multiprocessing's: the crash's code or signal,
    the SystemExit code, 1 for an exception."""
    wanted = exp.exitcode if exp.exitcode is not None else 1
    if exitcode != wanted:
        return [f"Process.exitcode is {exitcode!r}, expected {wanted}"]
    return []


def check_fault(fault: Outcome, exp: Expected) -> list[str]:
    how, what = fault
    wanted = " and ".join(exp.error)
    if how == "hang":
        return [f"hang: the faulty call had no outcome within {FUTURE_BOUND_S} s"]
    if how in ("value", "skipped"):
        return [f"the faulty call gave {how} {what!r}, expected {wanted}"]
    if not all(isinstance(what, CLASSES[name]) for name in exp.error):
        name = f"{type(what).__module__}.{type(what).__qualname__}"
        return [f"wrong error: {name}: {what} (expected {wanted})"]
    problems = []
    if exp.raised is not None and exp.raised != (how == "raised"):
        where = "the submitting call" if exp.raised else "its future (or the map item)"
        problems.append(f"the error came as {how!r}; expected it from {where}")
    if exp.exitcode is not None and _code(what) != exp.exitcode:
        problems.append(f"exit code {_code(what)!r}, expected {exp.exitcode}")
    if exp.message is not None and not re.search(exp.message, str(what)):
        problems.append(f"message {str(what)!r} does not contain {exp.message!r}")
    return [f"{p} (expected {wanted})" for p in problems]


def _code(error: BaseException) -> Any:
    return error.code if isinstance(error, SystemExit) else getattr(error, "exitcode", None)


def check_others(case: Case, observed: Observed, exp: Expected) -> list[str]:
    problems = []
    ended = observed.fault[0] == "raised" or case.api == "executor_map"
    for how, what in observed.others:
        if how == "skipped" and ended:
            continue  # the map ended at the fault, as a lazy iterator does
        if exp.others_complete and (how != "value" or what not in (("ok", 0), ("ok", 2))):
            problems.append(f"a healthy call did not complete: {how} {what!r}")
        broken = isinstance(what, BrokenProcessPool) and not isinstance(what, WorkerCrashed)
        if exp.pool == "broken" and not broken:
            problems.append(f"a call on a broken pool gave {how} {what!r}")
        shared = how == "error" and all(isinstance(what, CLASSES[n]) for n in exp.error)
        if exp.others_fail and not shared:
            problems.append(f"a call in the faulty call's chunk gave {how} {what!r}")
    return problems


# -- leaks ---------------------------------------------------------------------------------------
@dataclass
class Baseline:
    threads: set[int]
    fds: set[str]


_registered: set[tuple[str, str]] = set()


def watch_registrations() -> None:
    """Count this process's resource-tracker registrations (semaphores, shared memory)."""
    register, unregister = resource_tracker.register, resource_tracker.unregister

    def counting_register(name: str, rtype: str) -> None:
        _registered.add((name, rtype))
        register(name, rtype)

    def counting_unregister(name: str, rtype: str) -> None:
        _registered.discard((name, rtype))
        unregister(name, rtype)

    resource_tracker.register = counting_register  # type: ignore[assignment]
    resource_tracker.unregister = counting_unregister  # type: ignore[assignment]


def baseline() -> Baseline:
    return Baseline({t.ident or 0 for t in threading.enumerate()}, _fds())


def _fds() -> set[str]:
    """Open descriptors as "fd -> target"; the one listdir() itself used is closed by
    the time readlink() runs, so it drops out."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            pass
    return found


def leaks_now(base: Baseline) -> list[str]:
    return _thread_and_process_leaks(base) + _descriptor_leaks(base)


def _thread_and_process_leaks(base: Baseline) -> list[str]:
    found = []
    threads = [t.name for t in threading.enumerate() if t.ident not in base.threads]
    if threads:
        found.append(f"leak: threads still alive: {threads}")
    workers = sorted(worker_pids())
    if workers:
        found.append(f"leak: child processes still alive: {workers}")
    zombies = [c.pid for c in psutil.Process().children() if _zombie(c)]
    if zombies:
        found.append(f"leak: child processes never reaped: {zombies}")
    return found


def _descriptor_leaks(base: Baseline) -> list[str]:
    found = []
    fds = sorted(_fds() - base.fds)
    if fds:
        found.append(f"leak: file descriptors left open: {fds}")
    if _registered:
        found.append(f"leak: resource-tracker registrations left: {sorted(_registered)}")
    return found


def _zombie(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _settle(check: Callable[[], list[str]], grace: float) -> list[str]:
    """Poll ``check`` until it finds nothing or ``grace`` seconds pass; its last finding."""
    deadline = time.monotonic() + grace
    found = check()
    while found and time.monotonic() < deadline:
        time.sleep(0.01)
        found = check()
    return found


def leaks(base: Baseline) -> list[str]:
    # threads and processes may take a moment to end after shutdown() returns; once they
    # have, what they held is released at once, unless a reference cycle holds it
    _settle(lambda: _thread_and_process_leaks(base), LEAK_GRACE_S)
    found = _settle(lambda: leaks_now(base), FD_GRACE_S)
    if found:  # say whether only the cyclic garbage collector would have freed them
        gc.collect()
        if not leaks_now(base):
            found = [f"{leak} (freed by gc.collect(), not before)" for leak in found]
    return found


# -- the batch -----------------------------------------------------------------------------------
def run_case(case: Case, base: Baseline) -> str:
    faulthandler.dump_traceback_later(fuzzlib.CASE_BOUND_S, exit=True)
    start, stderr_start = time.monotonic(), _stderr_offset()
    with neighbour(case) as neighbour_errors, _workers_dump_stacks_if_hung(case):
        observed = RUNNERS[case.api](case)
    problems = check(case, observed, fuzzlib.expected(case))
    problems += [f"a call of the neighbour pool failed: {e!r}" for e in neighbour_errors]
    shown = str(observed)
    _forget_runner_frames(observed)
    del observed  # nothing of the case may stay alive but what the pool itself keeps
    problems += leaks(base)
    faulthandler.cancel_dump_traceback_later()
    stderr = _stderr_since(stderr_start) if problems else ""
    return fuzzlib.result_line(case, problems, time.monotonic() - start, shown, stderr)


@contextmanager
def _workers_dump_stacks_if_hung(case: Case) -> Iterator[None]:
    """Shortly before the watchdog ends a hung case, have its workers write their stacks
    to stderr: a worker that never answers shows where it is stuck."""
    with _workers_dump_stacks_after(max(0.1, fuzzlib.CASE_BOUND_S - 3)):
        yield


@contextmanager
def _workers_dump_stacks_after(seconds: float) -> Iterator[None]:
    timer = threading.Timer(seconds, _dump_worker_stacks)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()


def _dump_worker_stacks() -> None:
    """Fork workers inherit this process's faulthandler registration for SIGUSR1; to
    others (spawn, forkserver) SIGUSR1 would be fatal, so they are left alone."""
    me = os.getpid()
    for pid in worker_pids():
        try:
            if psutil.Process(pid).ppid() == me and _forked(pid):
                os.kill(pid, signal.SIGUSR1)
        except (ProcessLookupError, psutil.Error):
            pass


def _forked(pid: int) -> bool:
    """A fork worker runs this interpreter's command line; a spawned one does not."""
    return bool(psutil.Process(pid).cmdline() == psutil.Process().cmdline())


@contextmanager
def neighbour(case: Case) -> Iterator[list[BaseException]]:
    """Another process pool of this process, kept busy from a thread while the case runs:
    the case's faults must not reach it, and its locks, held at any moment, must not
    reach the case's workers (a forked worker inherits them)."""
    errors: list[BaseException] = []
    if not case.neighbour:
        yield errors
        return
    pool = anypool.Pool("process", 1, start_method=case.start_method)
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.wait(0.002):
            try:
                if pool.submit(fuzz_tasks.call, PROBE).result(FUTURE_BOUND_S) != PROBE[:2]:
                    raise AssertionError("a wrong result")
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=keep_busy, name="fuzz-neighbour")
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join()
        pool.shutdown()


def _stderr_offset() -> int:
    """Where stderr (a file the driver reads, shared with the workers) stands now."""
    try:
        return os.lseek(2, 0, os.SEEK_CUR)
    except OSError:
        return -1


def _stderr_since(offset: int) -> str:
    """What this case's processes (a worker's traceback, say) wrote to stderr."""
    end = _stderr_offset()
    if offset < 0 or end <= offset:
        return ""
    start = max(offset, end - 8000)
    try:
        return os.pread(2, end - start, start).decode(errors="replace")
    except OSError:
        return ""


def _forget_runner_frames(observed: Observed) -> None:
    """An exception caught in a runner holds the runner's frame in its traceback, and the
    frame holds ``observed``: a cycle of ours that only the garbage collector would free,
    along with the pool it reaches. The pool's own references (an error's ``__cause__``)
    are left alone: those are the pool's to release."""
    for _, what in [observed.fault, *observed.others]:
        if isinstance(what, BaseException):
            what.__traceback__ = None


def warm_up(methods: set[fuzzlib.StartMethod]) -> None:
    """Start what lives as long as this interpreter (forkserver, resource tracker) and
    import what the cases use, before the baseline is taken."""
    for method in sorted(methods):
        with anypool.Pool("process", 1, start_method=method) as pool:
            pool.submit(fuzz_tasks.call, PROBE).result(timeout=60)
    import cloudpickle  # noqa: F401


def stop_helpers() -> int | None:
    """Stop the forkserver (it holds the tracker's pipe), then the resource tracker; the
    tracker's exit status (non-zero on 3.13 when registrations were left), or None."""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # type: ignore[attr-defined]
    tracker: Any = resource_tracker._resource_tracker
    with tracker._lock:
        if tracker._fd is None or tracker._pid is None:
            return None
        os.close(tracker._fd)
        tracker._fd = None
        pid, tracker._pid = tracker._pid, None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    return -999  # still running: reported as a leak


def main(argv: list[str]) -> None:
    config = json.loads(argv[0])
    global FUTURE_BOUND_S, LEAK_GRACE_S
    fuzzlib.CASE_BOUND_S = config.get("case_bound_s", fuzzlib.CASE_BOUND_S)
    FUTURE_BOUND_S = config.get("future_bound_s", FUTURE_BOUND_S)
    LEAK_GRACE_S = config.get("leak_grace_s", LEAK_GRACE_S)
    # fork() in a process with threads (the dispatcher) warns on 3.12+; asked for here
    warnings.simplefilter("ignore", DeprecationWarning)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # fork workers inherit it
    cases = [fuzzlib.case_for(config["seed"], i, config.get("override")) for i in config["indices"]]
    watch_registrations()
    warm_up({case.start_method for case in cases})
    with open(config["out"], "a") as out:
        base = baseline()  # with the output file open
        out.write(json.dumps({"started": True}) + "\n")
        out.flush()
        for case in cases:
            out.write(run_case(case, base) + "\n")
            out.flush()
        out.write(json.dumps({"tracker_exitcode": stop_helpers()}) + "\n")
    sys.stdout.flush()
