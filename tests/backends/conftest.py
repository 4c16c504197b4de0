"""Session-scoped clusters for the Dask and Ray backend tests.

``dask_address``: ``ANYPOOL_DASK_ADDRESS`` when CI provides a cluster (``.ci/dask-cluster.sh``),
else a real scheduler and two single-threaded workers started here as separate processes
with Dask's own command-line tools, on 127.0.0.1, stopped at the end of the session.
``ray_session`` (in tests/conftest.py): one local ``ray.init`` for the session.

Both register their processes with the leak check: a Dask nanny that restarts a killed
worker, or Ray growing its worker pool, is the cluster at work, not a leak.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Starting a cluster on a loaded 2-core machine can take a while; give up well before CI does.
START_TIMEOUT_S = 60.0


def _dask_cli() -> str:
    beside = Path(sys.executable).with_name("dask")
    found = str(beside) if beside.exists() else shutil.which("dask")
    if found is None:
        pytest.fail("the 'dask' command-line tool is missing: pip install 'anypool[dask]'")
    return found


def _worker_env() -> dict[str, str]:
    # workers import the test modules by name when they unpickle test functions
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists() or not path.read_text().strip():
        if proc.poll() is not None:
            pytest.fail(f"dask scheduler exited with {proc.returncode} before it started")
        if time.monotonic() > deadline:
            pytest.fail("dask scheduler did not start in time")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group (graceful Dask shutdown), then SIGKILL what is left."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _start_dask_cluster(tmp: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    dask = _dask_cli()
    scheduler_file = tmp / "scheduler.json"
    logs = tmp / "dask.log"
    with logs.open("ab") as log:  # the children keep their own copy of the descriptor
        common: dict[str, Any] = {
            "env": _worker_env(),
            "start_new_session": True,
            "stdout": log,
            "stderr": subprocess.STDOUT,
        }
        scheduler = subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--dashboard-address", "127.0.0.1:0",
             "--scheduler-file", str(scheduler_file)],
            **common,
        )  # fmt: skip
        _wait_for_file(scheduler_file, scheduler)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = subprocess.Popen(
            [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
             "--no-dashboard", "--death-timeout", "60"],
            **common,
        )  # fmt: skip
    return address, [workers, scheduler]


def _wait_for_workers(address: str, n: int) -> None:
    import distributed

    with distributed.Client(address, timeout=START_TIMEOUT_S, set_as_default=False) as client:
        client.wait_for_workers(n, timeout=START_TIMEOUT_S)


@pytest.fixture(scope="session")
def dask_address(
    tmp_path_factory: pytest.TempPathFactory, session_process_roots: set[int]
) -> Iterator[str]:
    pytest.importorskip("distributed", reason="dask is not installed: pip install 'anypool[dask]'")
    given = os.environ.get("ANYPOOL_DASK_ADDRESS")
    if given:
        _wait_for_workers(given, 2)
        yield given
        return
    address, procs = _start_dask_cluster(tmp_path_factory.mktemp("dask"))
    session_process_roots.update(p.pid for p in procs)
    try:
        _wait_for_workers(address, 2)
        yield address
    finally:
        for proc in procs:
            _stop(proc)


@pytest.fixture
def dask_client(dask_address: str) -> Iterator[Any]:
    """A client of the session cluster that waits for both workers (a test may have killed one)."""
    import distributed

    with distributed.Client(dask_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield client


@pytest.fixture
def listening_sockets() -> Any:
    """``listening_sockets(pids)``: the addresses each process listens on."""
    return _listening_sockets


@pytest.fixture
def is_loopback() -> Any:
    """``is_loopback(ip)``: a loopback address, IPv4, IPv6 or IPv4-mapped."""
    return _is_loopback


def _listening_sockets(pids: set[int]) -> dict[int, list[str]]:
    """The TCP/UDP addresses each of ``pids`` listens on (processes gone meanwhile skipped)."""
    import psutil

    found: dict[int, list[str]] = {}
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found[pid] = [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN or c.type == 2]
    return found


def _is_loopback(ip: str) -> bool:
    import ipaddress

    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback
