"""Facts about the running interpreter and machine that pool sizing and ``auto`` read, and
what a worker process needs to know about its parent at start: whether it is still importing
the main script (a missing main guard), and the parent's logging setup."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # typing stays unimported at run time (import cost)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MAIN_GUARD_EXIT",
    "MAIN_GUARD_MESSAGE",
    "apply_logging",
    "check_main_guard",
    "default_start_method",
    "engine_installed",
    "free_threaded_build",
    "gil_enabled",
    "logging_snapshot",
    "usable_cpus",
]


def gil_enabled() -> bool:
    """True unless this is a free-threaded build running with the GIL disabled."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def free_threaded_build() -> bool:
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPU quota from cgroup v2 (``cpu.max``) or v1 (``cfs_quota_us``), or None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 else quota_us / period_us


@functools.cache
def usable_cpus() -> int:
    """CPUs this process may use: affinity mask, then cgroup quota (containers), at least 1."""
    if hasattr(os, "process_cpu_count"):  # 3.13+: affinity-aware
        count = os.process_cpu_count() or 1
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, int(limit + 0.5)))
    return max(1, count)


def default_start_method() -> str:
    """anypool's default: forkserver on Linux (fork is unsafe once threads exist), else spawn."""
    # macOS lacks a safe fork and Windows has only spawn; 3.14 made the same choice
    return "forkserver" if sys.platform.startswith("linux") else "spawn"


def engine_installed(module: str) -> bool:
    """Whether an optional engine (``distributed``, ``ray``) is importable; imports nothing."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# -- the missing ``if __name__ == "__main__":`` guard ----------------------------------------
# A worker started by spawn or forkserver imports the main script (as __mp_main__) before it
# runs anything. A script that starts a process pool at its top level, unguarded, would start
# one in every worker, each of which would import the script again. The worker stops at the
# pool's creation with this exit code, and the parent turns it into one clear error.
MAIN_GUARD_EXIT = 79
MAIN_GUARD_MESSAGE = (
    "the main script starts a process pool when it is imported, and worker processes "
    "import it: put the code that creates pools under "
    '`if __name__ == "__main__":`'
)
# Processes whose parent reports MAIN_GUARD_EXIT itself: they stay silent.
_REPORTED_BY_PARENT = ("anypool-", "_AnypoolManager-")


def check_main_guard() -> None:
    """Stop this process if it is a worker still importing the main script (the guard is
    missing); a no-op everywhere else. Called wherever anypool is about to start processes."""
    from multiprocessing import process

    current = process.current_process()
    if not getattr(current, "_inheriting", False):
        return  # multiprocessing sets _inheriting while a new process imports __main__
    if not current.name.startswith(_REPORTED_BY_PARENT):
        print(f"anypool: {MAIN_GUARD_MESSAGE}", file=sys.stderr, flush=True)
    # os._exit: raising would print the whole import's traceback, and the script's own code
    # after this line must not run in the worker either
    os._exit(MAIN_GUARD_EXIT)


# -- logging in spawned and forkserver workers ---------------------------------------------
# A forked worker inherits the parent's logging setup; one started by spawn or forkserver
# starts with none, so its INFO records vanish and WARNING ones print bare. Workers get a
# copy of the parent's setup instead: the root level, explicit logger levels, and the
# handlers that can be rebuilt elsewhere (streams to stderr/stdout, files), formats included.
def logging_snapshot() -> dict[str, Any] | None:
    """The parent's logging setup, or None if it has none worth copying (or no logging)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return None  # nothing imported logging, so nothing configured it
    root = logging.getLogger()
    handlers = [h for h in map(_describe_handler, root.handlers) if h is not None]
    levels = {
        name: logger.level
        for name, logger in list(root.manager.loggerDict.items())
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
    }
    if not handlers and not levels and root.level == logging.WARNING:
        return None  # logging's defaults: the worker has them already
    return {"root": root.level, "levels": levels, "handlers": handlers}


def _describe_handler(handler: Any) -> dict[str, Any] | None:
    import logging

    formatter = handler.formatter
    described: dict[str, Any] = {"level": handler.level}
    if type(formatter) is logging.Formatter:
        style = {"StrFormatStyle": "{", "StringTemplateStyle": "$"}.get(
            type(formatter._style).__name__, "%"
        )
        described.update(fmt=formatter._fmt, datefmt=formatter.datefmt, style=style)
    if isinstance(handler, logging.FileHandler):
        described.update(kind="file", path=handler.baseFilename)
    elif type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout):
        described.update(
            kind="stream", stream="stderr" if handler.stream is sys.stderr else "stdout"
        )
    else:
        return None  # sockets, queues, custom handlers: not rebuilt (see docs/design.md)
    return described


def apply_logging(snapshot: dict[str, Any]) -> None:
    """In a worker: set logging up as the parent had it, unless the worker's own import of
    the main script already did."""
    import logging

    root = logging.getLogger()
    for name, level in snapshot["levels"].items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)
    if root.handlers:
        return  # configured at import (a basicConfig at the top of the script)
    root.setLevel(snapshot["root"])
    for described in snapshot["handlers"]:
        handler: logging.Handler
        if described["kind"] == "file":
            handler = logging.FileHandler(described["path"], mode="a", delay=True)
        else:
            handler = logging.StreamHandler(getattr(sys, described["stream"]))
        handler.setLevel(described["level"])
        if "fmt" in described:
            handler.setFormatter(
                logging.Formatter(described["fmt"], described["datefmt"], described["style"])
            )
        root.addHandler(handler)
