"""The Ray backend on a local ``ray.init`` (one per session: Ray takes seconds to start).

Task functions live at module level: Ray's workers import this module to unpickle them.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import psutil
import pytest

import anypool
from polling import wait_until

ray = pytest.importorskip(
    "ray", reason="ray has no wheel for this Python/platform: pip install 'anypool[ray]'"
)

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(180)]


def inc(x: int) -> int:
    return x + 1


class CustomError(Exception):
    pass


def fail_with(x: int) -> int:
    if x % 3 == 0:
        raise CustomError(f"bad item {x}")
    return x


def sleep_and_report(path: str, seconds: float) -> int:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return os.getpid()


def die_once(marker: str) -> int:
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def append_after(gate: str, path: str, value: int) -> None:
    deadline = time.monotonic() + 60  # bounded: a failed test must not leave it running
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(path, "a") as f:
        f.write(f"{value}\n")


@pytest.fixture
def pool(make_pool: Any, ray_session: None) -> anypool.Pool:
    return make_pool("ray", 2)


def _exited(pid: int) -> bool:
    # one psutil call: pid_exists() then Process() races with the process's exit
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_until(predicate: Any, timeout: float = 30.0) -> None:
    assert wait_until(predicate, timeout), "condition not reached in time"


def _first_pid(path: Path) -> int:
    _wait_until(lambda: path.exists() and path.read_text().strip())
    return int(path.read_text().split()[0])


def test_submit_map_and_exceptions(pool: anypool.Pool) -> None:
    assert pool.submit(inc, 1).result(timeout=60) == 2
    assert list(pool.map(inc, range(50))) == list(range(1, 51))
    assert sorted(pool.map(inc, range(50), ordered=False)) == list(range(1, 51))
    with pytest.raises(CustomError, match="bad item 3") as info:
        pool.submit(fail_with, 3).result(timeout=60)
    assert "raise CustomError" in str(info.value.__cause__)
    outcomes = list(pool.map(fail_with, [1, 3], return_exceptions=True))
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], CustomError)


def test_lazy_map_and_chunking(pool: anypool.Pool) -> None:
    sizes: list[int] = []
    backend = pool._backend
    real_submit = backend.submit

    def counting_submit(task: Any) -> None:
        sizes.append(task.n_items)
        real_submit(task)

    backend.submit = counting_submit  # type: ignore[method-assign]
    with pool.map(inc, itertools.count()) as endless:
        assert list(itertools.islice(endless, 20)) == list(range(1, 21))
    sizes.clear()
    assert sum(pool.map(inc, range(20_000))) == sum(range(1, 20_001))
    assert len(sizes) < 500, f"{len(sizes)} Ray tasks for 20 000 tiny items"


def test_timeout_stops_the_task(pool: anypool.Pool, tmp_path: Path) -> None:
    log = tmp_path / "pids"
    future = pool.submit(sleep_and_report, str(log), 60, timeout=1.0)
    pid = _first_pid(log)
    with pytest.raises(anypool.TaskTimeout):
        future.result(timeout=30)
    _wait_until(lambda: _exited(pid))
    assert pool.submit(inc, 1).result(timeout=60) == 2


def test_kill_stops_a_running_task(pool: anypool.Pool, tmp_path: Path) -> None:
    log = tmp_path / "pids"
    future = pool.submit(sleep_and_report, str(log), 60)
    pid = _first_pid(log)
    assert future.running()
    assert pool.kill(future)
    with pytest.raises(CancelledError):
        future.result(timeout=10)
    _wait_until(lambda: _exited(pid))


def test_queued_tasks_cancel_and_priorities_order(
    make_pool: Any, ray_session: None, tmp_path: Path
) -> None:
    pool = make_pool("ray", 1, order="priority")
    gate, log = str(tmp_path / "gate"), tmp_path / "order"
    blocker = pool.submit(append_after, gate, str(log), -1)
    _wait_until(blocker.running)  # handed to Ray with a free slot: it is running
    futures = [pool.submit(append_after, gate, str(log), p, priority=p) for p in (5, 1, 4, 2, 3)]
    assert not futures[0].running()
    assert futures[0].cancel()  # still in anypool's queue
    Path(gate).touch()
    for f in [blocker, *futures[1:]]:
        f.result(timeout=60)
    assert [int(line) for line in log.read_text().split()] == [-1, 1, 2, 3, 4]


def test_worker_death_is_retried_or_fails_clearly(pool: anypool.Pool, tmp_path: Path) -> None:
    assert pool.submit(die_once, str(tmp_path / "a"), retries=1).result(timeout=90) > 0
    with pytest.raises(anypool.WorkerCrashed, match="Ray worker running this task died"):
        pool.submit(die_once, str(tmp_path / "b")).result(timeout=90)


def test_shutdown_waits_for_running_work(make_pool: Any, ray_session: None) -> None:
    pool = make_pool("ray", 2)
    futures = [pool.submit(time.sleep, 0.2) for _ in range(4)]
    pool.shutdown(wait=True)
    assert all(f.done() and f.exception() is None for f in futures)


def test_unpicklable_argument_fails_that_future(pool: anypool.Pool) -> None:
    with pytest.raises(anypool.SerializationError, match="argument 0"):
        pool.submit(inc, (i for i in range(3))).result(timeout=1)


def test_options_and_capabilities(ray_session: None, make_pool: Any) -> None:
    with pytest.raises(TypeError, match=r"unknown option.*client.*accepts address"):
        anypool.Pool("ray", client=object())
    with pytest.raises(
        anypool.CapabilityError, match=r"'ray' backend does not support initializer"
    ):
        anypool.Pool("ray", initializer=print)
    pool = make_pool("ray", 1, max_tasks_per_worker=1, remote_options={"num_cpus": 0.5})
    pids = [pool.submit(os.getpid).result(timeout=60) for _ in range(3)]
    assert len(set(pids)) == 3  # max_tasks_per_worker=1 -> Ray's max_calls: a fresh worker each
    caps = pool.capabilities
    assert caps.kills_running_tasks
    assert caps.supports_timeouts
    assert caps.remote
    assert not caps.shares_memory
    assert pool._backend.workers_alive() == 2  # the session's Ray has 2 CPUs


def test_pool_starts_and_stops_its_own_ray_when_none_is_running(tmp_path: Path) -> None:
    """In a fresh interpreter: no ray.init by the program, so the pool owns Ray's lifetime."""
    import subprocess
    import sys

    script = tmp_path / "own_ray.py"
    script.write_text(
        "import anypool, ray\n"
        "with anypool.Pool('ray', 1, init_kwargs={'log_to_driver': False}) as pool:\n"
        "    assert pool.submit(abs, -3).result(timeout=60) == 3\n"
        "    assert ray.is_initialized()\n"
        "assert not ray.is_initialized()\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=150, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


# -- issue 10, item 12: workers= is tasks at once; a local Ray stays on loopback -------------
def where_am_i(seconds: float) -> tuple[int, int]:
    time.sleep(seconds)
    return os.getpid(), threading.get_ident()


def test_cpus_per_task_is_checked(ray_session: None) -> None:
    for bad in (0, -1, "half", True):
        with pytest.raises(ValueError, match="cpus_per_task= must be a number of CPUs > 0"):
            anypool.Pool("ray", 2, cpus_per_task=bad)


def test_waiting_tasks_share_a_cpu_on_threaded_actors(make_pool: Any, ray_session: None) -> None:
    # the session's Ray has 2 CPUs: 40 tasks at once need 1/20 of a CPU each
    pool = make_pool("ray", 40)
    assert pool._backend._cpus_per_task == pytest.approx(2 / 40)
    groups: list[int] = []
    start_group = pool._backend._start_group

    def spy(group: list[Any]) -> None:
        groups.append(len(group))
        start_group(group)

    pool._backend._start_group = spy
    places = list(pool.map(where_am_i, [0.2] * 80, chunksize=1))
    assert sum(groups) == 80
    assert max(groups) > 1, groups  # tasks queued together went in one actor call
    pids = {pid for pid, _ in places}
    assert len(pids) <= 2, places  # one actor process per CPU, not a process per task
    assert len(set(places)) > 2 * len(pids)  # many threads in each
    # a task with a timeout stays a plain Ray task, so the timeout can stop it
    with pytest.raises(anypool.TaskTimeout):
        pool.submit(where_am_i, 30, timeout=0.5).result(timeout=60)


async def async_inc(x: int) -> int:
    import asyncio

    await asyncio.sleep(0.01)
    return x + 1


def test_coroutine_functions_run_on_threaded_actors(make_pool: Any, ray_session: None) -> None:
    pool = make_pool("ray", 40)
    assert pool._backend._actors  # below a CPU per task
    assert list(pool.map(async_inc, range(30), chunksize=1)) == list(range(1, 31))
    assert pool.submit(async_inc, 1).result(timeout=60) == 2


def crash_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_task_that_kills_its_actor_fails_clearly(make_pool: Any, ray_session: None) -> None:
    pool = make_pool("ray", 40)  # below a CPU per task: threaded actors
    with pytest.raises(anypool.WorkerCrashed, match="Ray worker running this task died"):
        pool.submit(crash_worker).result(timeout=60)
    # the actor is restarted (or the other one takes the work): the pool carries on
    assert list(pool.map(inc, range(20), chunksize=1)) == list(range(1, 21))


def test_work_sent_while_ray_restarts_a_crashed_actor_runs(
    make_pool: Any, ray_session: None
) -> None:
    """Tasks submitted the moment a crash is reported go to live actors, not to the dead
    process that Ray is restarting (CI saw them fail with ActorUnavailableError under
    load). Several rounds, each a burst large enough to reach every actor."""
    pool = make_pool("ray", 40)
    for _ in range(3):
        with pytest.raises(anypool.WorkerCrashed):
            pool.submit(crash_worker).result(timeout=60)
        futures = [pool.submit(inc, k) for k in range(60)]
        assert [f.result(timeout=60) for f in futures] == list(range(1, 61))


_LOOPBACK_SCRIPT = """
import json, os, threading, time, psutil, anypool, ray
def where(seconds):
    time.sleep(seconds)
    return os.getpid(), threading.get_ident()
me = psutil.Process()
with anypool.Pool("ray", 30, init_kwargs={"log_to_driver": False}) as pool:
    places = list(pool.map(where, [0.1] * 60, chunksize=1))
    listening = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        listening[proc.pid] = [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN]
    cpus = ray.cluster_resources()["CPU"]
print(json.dumps({"listening": listening, "pids": len({p for p, _ in places}),
                  "threads": len(set(map(tuple, places))), "cpus": cpus}))
"""


def test_local_ray_started_by_anypool_listens_on_loopback_only(
    tmp_path: Path, is_loopback: Any
) -> None:
    """In a fresh interpreter, so that the pool starts Ray itself."""
    import json
    import subprocess
    import sys

    from anypool._runtime import usable_cpus

    out = subprocess.run(
        [sys.executable, "-c", _LOOPBACK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    addresses = [ip for ips in report["listening"].values() for ip in ips]
    assert len(addresses) >= 3, report  # the GCS, the raylet, the driver at least
    assert all(is_loopback(ip) for ip in addresses), report
    assert report["cpus"] == usable_cpus()  # not one Ray CPU per requested worker
    assert report["pids"] <= usable_cpus()
    assert report["threads"] > report["pids"]
