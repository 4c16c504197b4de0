"""The Dask backend against a real cluster: a scheduler and two workers started with Dask's
own CLI (or ``ANYPOOL_DASK_ADDRESS``), plus the no-address local cluster and ``client=`` modes.

Task functions live at module level: the workers import this module to unpickle them.
"""

from __future__ import annotations

import itertools
import os
import queue as stdlib_queue
import signal
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest

import anypool
from polling import wait_until

distributed = pytest.importorskip("distributed", reason="pip install 'anypool[dask]'")
dask_config = pytest.importorskip("dask.config")

pytestmark = [pytest.mark.dask, pytest.mark.timeout(180)]


# -- task functions (run on the workers) ------------------------------------------------------
def inc(x: int) -> int:
    return x + 1


def add(a: int, b: int) -> int:
    return a + b


class CustomError(Exception):
    pass


def fail_with(x: int) -> int:
    if x % 3 == 0:
        raise CustomError(f"bad item {x}")
    return x


class UnpicklableError(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickles, but cannot be rebuilt from args
        super().__init__(a)


def raise_unpicklable() -> None:
    raise UnpicklableError(1, 2)


def return_lock() -> Any:
    return threading.Lock()


def wait_for(event: Any, value: Any) -> Any:
    if not event.wait(timeout=60):
        raise TimeoutError("the test never set the event")
    return value


def record_and_sleep(path: str, seconds: float) -> int:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return os.getpid()


def kill_own_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def put_after(event: Any, queue: Any, value: int) -> None:
    event.wait(timeout=60)
    queue.put(value)


def append_after(gate: str, path: str, value: int) -> None:
    deadline = time.monotonic() + 60  # bounded: a failed test must not leave it running
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(path, "a") as f:
        f.write(f"{value}\n")


def locked_increments(lock: Any, name: str, n: int) -> None:
    counter = distributed.Variable(name)
    for _ in range(n):
        with lock:
            value = counter.get()
            time.sleep(0.001)  # widen the race window an unlocked read-modify-write would lose
            counter.set(value + 1)


_initialized: list[str] = []


def remember(tag: str) -> None:
    _initialized.append(tag)


def initialized() -> list[str]:
    return list(_initialized)


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def pool(make_pool: Any, dask_client: Any, dask_address: str) -> anypool.Pool:
    return make_pool("dask", 2, address=dask_address)


@pytest.fixture
def no_configured_address() -> Any:
    with dask_config.set({"scheduler-address": None}):
        yield


def _wait_until(predicate: Any, timeout: float = 30.0) -> None:
    assert wait_until(predicate, timeout), "condition not reached in time"


# -- the Pool contract on a real cluster ---------------------------------------------------
def test_submit_returns_stdlib_future(pool: anypool.Pool) -> None:
    import concurrent.futures

    future = pool.submit(add, 2, b=3)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=30) == 5


def test_map_ordered_unordered_and_several_iterables(pool: anypool.Pool) -> None:
    assert list(pool.map(inc, range(100))) == list(range(1, 101))
    assert sorted(pool.map(inc, range(100), ordered=False)) == list(range(1, 101))
    assert list(pool.map(add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    assert list(pool.map(inc, [])) == []


def test_map_is_lazy_over_an_endless_iterator(pool: anypool.Pool) -> None:
    consumed = itertools.count()
    source = (next(consumed) for _ in itertools.count())
    with pool.map(inc, source) as results:
        first = list(itertools.islice(results, 50))
    assert first == list(range(1, 51))
    assert next(consumed) < 5000  # bounded read-ahead, not the whole (endless) input


def test_exception_keeps_type_and_remote_traceback(pool: anypool.Pool) -> None:
    with pytest.raises(CustomError, match="bad item 3") as info:
        pool.submit(fail_with, 3).result(timeout=30)
    cause = info.value.__cause__
    assert type(cause).__name__ == "RemoteTraceback"
    assert "fail_with" in str(cause)
    assert "raise CustomError" in str(cause)


def test_map_item_exception_surfaces_at_that_item(pool: anypool.Pool) -> None:
    results = pool.map(fail_with, [1, 2, 3, 4])
    assert next(results) == 1
    assert next(results) == 2
    with pytest.raises(CustomError) as info:
        next(results)
    assert "fail_with" in str(info.value.__cause__)
    outcomes = list(pool.map(fail_with, [1, 3, 4], return_exceptions=True))
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], CustomError)
    assert outcomes[2] == 4


def test_exception_that_cannot_cross_is_a_serialization_error(pool: anypool.Pool) -> None:
    with pytest.raises(anypool.SerializationError, match="UnpicklableError"):
        pool.submit(raise_unpicklable).result(timeout=30)


def test_unpicklable_argument_fails_that_future_at_once(pool: anypool.Pool) -> None:
    future = pool.submit(inc, (i for i in range(3)))
    with pytest.raises(anypool.SerializationError, match="argument 0 \\(generator\\)"):
        future.result(timeout=1)
    assert pool.submit(inc, 1).result(timeout=30) == 2  # the pool is fine


def test_unpicklable_result_is_a_serialization_error(pool: anypool.Pool) -> None:
    with pytest.raises(anypool.SerializationError, match="result \\(lock\\)"):
        pool.submit(return_lock).result(timeout=30)


def test_lambdas_and_closures_travel(pool: anypool.Pool) -> None:
    offset = 10
    assert pool.submit(lambda x: x + offset, 1).result(timeout=30) == 11


def test_automatic_chunking_batches_tiny_tasks(pool: anypool.Pool) -> None:
    submitted = []
    backend = pool._backend
    real_submit = backend.submit

    def counting_submit(task: Any) -> None:
        submitted.append(task.n_items)
        real_submit(task)

    backend.submit = counting_submit  # type: ignore[method-assign]
    assert sum(pool.map(inc, range(20_000))) == sum(range(1, 20_001))
    assert sum(submitted) == 20_000
    assert len(submitted) < 500, f"{len(submitted)} Dask tasks for 20 000 tiny items"


def test_future_runs_when_the_worker_starts_it_and_queued_ones_cancel(
    pool: anypool.Pool,
) -> None:
    gate = pool.Event()
    blockers = [pool.submit(wait_for, gate, i) for i in range(2)]
    _wait_until(lambda: all(f.running() for f in blockers))
    queued = pool.submit(inc, 1)
    time.sleep(0.3)
    assert not queued.running()
    assert not queued.done()
    assert queued.cancel()
    assert not blockers[0].cancel()  # the stdlib rule: a running future cannot be cancelled
    gate.set()
    assert [f.result(timeout=30) for f in blockers] == [0, 1]
    assert queued.cancelled()


def test_shutdown_cancel_pending_lets_running_tasks_finish(
    make_pool: Any, dask_client: Any, dask_address: str
) -> None:
    pool = make_pool("dask", 2, address=dask_address)
    gate = pool.Event()
    running = [pool.submit(wait_for, gate, i) for i in range(2)]
    _wait_until(lambda: all(f.running() for f in running))
    queued = [pool.submit(inc, i) for i in range(5)]
    threading.Timer(0.5, gate.set).start()
    pool.shutdown(wait=True, cancel_pending=True)
    assert [f.result(timeout=0) for f in running] == [0, 1]
    assert all(f.cancelled() for f in queued)
    with pytest.raises(anypool.PoolClosed):
        pool.submit(inc, 1)


def test_timeouts_are_refused_with_capability_error(dask_address: str, make_pool: Any) -> None:
    with pytest.raises(anypool.CapabilityError, match="timeout"):
        anypool.Pool("dask", timeout=1, address=dask_address)
    pool = make_pool("dask", 2, address=dask_address)
    with pytest.raises(anypool.CapabilityError, match="timeout"):
        pool.submit(inc, 1, timeout=1)
    with pytest.raises(anypool.CapabilityError, match="timeout"):
        pool.map(inc, [1], timeout=1)


def test_capabilities_say_what_dask_can_do(pool: anypool.Pool) -> None:
    caps = pool.capabilities
    assert caps.remote
    assert caps.needs_pickling
    assert caps.isolates_crashes
    assert caps.parallel_cpu
    assert not caps.kills_running_tasks
    assert not caps.supports_timeouts
    assert not caps.shares_memory
    assert caps.supports_retries
    assert caps.supports_priority
    assert pool.workers == 2
    assert pool._backend.workers_alive() == 2


# -- options ------------------------------------------------------------------------------------
def test_unknown_and_conflicting_options_are_clear_errors(dask_address: str) -> None:
    with pytest.raises(TypeError, match=r"unknown option.*adress.*accepts address, client"):
        anypool.Pool("dask", adress=dask_address)
    with pytest.raises(ValueError, match="not both"):
        anypool.Pool("dask", address=dask_address, client=object())
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        anypool.Pool("dask", client="tcp://nowhere")
    with pytest.raises(anypool.CapabilityError, match="start_method"):
        anypool.Pool("dask", start_method="spawn", address=dask_address)
    with pytest.raises(
        anypool.CapabilityError, match=r"'dask' backend does not support thread_name_prefix"
    ):
        anypool.Pool("dask", thread_name_prefix="net", address=dask_address)


def test_retries_and_priority_reach_dask(pool: anypool.Pool) -> None:
    seen: list[dict[str, Any]] = []
    client = pool._backend.client
    real = client.map  # tasks reach Dask in batches, through Client.map

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    client.map = spy
    try:
        assert pool.submit(inc, 1, retries=2).result(timeout=30) == 2
    finally:
        del client.map
    assert seen[0]["retries"] == 2


def test_priority_orders_queued_tasks(
    make_pool: Any, no_configured_address: None, tmp_path: Path
) -> None:
    # One worker thread, and no work sent ahead to it (saturation 1.0): Dask's scheduler queue
    # decides the order. Dask queues a task only once its group outnumbers 2x the cluster's
    # threads ("root-ish"); until then it hands tasks to workers at once, so the first task
    # after the blocker (the decoy) runs next whatever its priority, unless it reached
    # anypool's dispatcher together with the others: then anypool's own priority queue
    # orders it among them, last.
    with dask_config.set({"distributed.scheduler.worker-saturation": 1.0}):
        pool = make_pool("dask", 1, order="priority")
    gate, log = str(tmp_path / "gate"), tmp_path / "order"
    blocker = pool.submit(append_after, gate, str(log), -1)
    _wait_until(blocker.running)
    decoy = pool.submit(append_after, gate, str(log), 0, priority=99)
    futures = [pool.submit(append_after, gate, str(log), p, priority=p) for p in (5, 1, 4, 2, 3)]
    time.sleep(0.3)
    Path(gate).touch()
    for f in [blocker, decoy, *futures]:
        f.result(timeout=60)
    order = [int(line) for line in log.read_text().split()]
    assert order in ([-1, 0, 1, 2, 3, 4, 5], [-1, 1, 2, 3, 4, 5, 0]), order


# -- cluster modes ----------------------------------------------------------------------------
def test_local_cluster_when_no_address(make_pool: Any, no_configured_address: None) -> None:
    pool = make_pool("dask", 2)
    assert pool._backend._cluster is not None
    assert sum(pool.map(inc, range(1000))) == sum(range(1, 1001))
    assert pool._backend.workers_alive() == 2
    pool.shutdown(wait=True)
    assert pool._backend._cluster.status.name == "closed"
    # and the autouse leak check verifies that every worker process is gone


def test_client_mode_uses_and_keeps_the_callers_client(make_pool: Any, dask_client: Any) -> None:
    pool = make_pool("dask", 2, client=dask_client)
    assert pool.submit(inc, 41).result(timeout=30) == 42
    pool.shutdown(wait=True)
    assert dask_client.submit(inc, 1, pure=False).result(timeout=30) == 2  # still open


def test_workers_caps_a_pool_on_a_shared_cluster(make_pool: Any, dask_address: str) -> None:
    pool = make_pool("dask", 1, address=dask_address)  # the cluster has 2 worker threads
    gate = pool.Event()
    first = pool.submit(wait_for, gate, 1)
    _wait_until(first.running)
    second = pool.submit(inc, 1)
    time.sleep(0.5)
    assert not second.running()  # held in anypool's queue, though a Dask thread is idle
    assert pool._backend.pending() == 1
    gate.set()
    assert second.result(timeout=30) == 2
    assert first.result(timeout=30) == 1


def test_without_workers_a_pool_takes_the_clusters_size(make_pool: Any, dask_address: str) -> None:
    pool = make_pool("dask", address=dask_address)
    assert pool.workers == 2
    assert pool._backend._slots is None  # no cap: everything goes to Dask as it comes
    assert sum(pool.map(inc, range(100))) == sum(range(1, 101))


def test_dask_scheduler_address_setting_is_honoured(make_pool: Any, dask_address: str) -> None:
    with dask_config.set({"scheduler-address": dask_address}):
        pool = make_pool("dask", 2)
    assert pool._backend._cluster is None
    assert pool._backend.client.scheduler.address == dask_address
    assert pool.submit(inc, 1).result(timeout=30) == 2


def test_initializer_runs_on_every_worker(
    make_pool: Any, dask_address: str, dask_client: Any
) -> None:
    tag = f"init-{time.monotonic_ns()}"
    pool = make_pool("dask", 2, address=dask_address, initializer=remember, initargs=(tag,))
    on_workers = dask_client.run(initialized)
    assert len(on_workers) == 2
    assert all(tag in tags for tags in on_workers.values())
    assert pool.submit(inc, 1).result(timeout=30) == 2


def test_failing_initializer_breaks_the_pool(make_pool: Any, dask_address: str) -> None:
    pool = make_pool("dask", 2, address=dask_address, initializer=fail_with, initargs=(3,))
    with pytest.raises(anypool.BrokenPool, match="initializer failed"):
        pool.submit(inc, 1)


def test_missing_engine_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import anypool._backends as registry
    import anypool._runtime as runtime

    monkeypatch.setattr(runtime, "engine_installed", lambda module: False)
    with pytest.raises(anypool.BackendUnavailable, match=r"pip install 'anypool\[dask\]'"):
        anypool.Pool("dask")
    assert registry.available_backends()["dask"] is False


# -- faults ---------------------------------------------------------------------------------------
def test_worker_sigkilled_mid_task_is_rescheduled(
    pool: anypool.Pool, dask_client: Any, tmp_path: Path
) -> None:
    log = tmp_path / "pids"
    future = pool.submit(record_and_sleep, str(log), 2.0)
    _wait_until(lambda: log.exists() and log.read_text().strip())
    victim = int(log.read_text().split()[0])
    assert victim in dask_client.run(os.getpid).values()
    os.kill(victim, signal.SIGKILL)
    survivor = future.result(timeout=90)
    assert survivor != victim
    assert [int(p) for p in log.read_text().split()] == [victim, survivor]
    assert pool.submit(inc, 1).result(timeout=60) == 2


def test_task_that_keeps_killing_workers_fails_clearly(
    make_pool: Any, no_configured_address: None
) -> None:
    with dask_config.set({"distributed.scheduler.allowed-failures": 0}):
        pool = make_pool("dask", 1)
    with pytest.raises(anypool.WorkerCrashed, match="kept dying") as info:
        pool.submit(kill_own_worker).result(timeout=90)
    assert isinstance(info.value.__cause__, distributed.KilledWorker)
    _wait_until(lambda: pool._backend.workers_alive() == 1, timeout=60)
    assert pool.submit(inc, 1).result(timeout=60) == 2  # the nanny restarted the worker


# -- coordination ---------------------------------------------------------------------------------
def test_event_and_queue_coordinate_tasks_across_workers(pool: anypool.Pool) -> None:
    event = pool.Event()
    queue = pool.Queue()
    futures = [pool.submit(put_after, event, queue, i) for i in range(2)]
    time.sleep(0.3)
    assert queue.qsize() == 0
    event.set()
    assert sorted(queue.get(timeout=30) for _ in range(2)) == [0, 1]
    for f in futures:
        f.result(timeout=30)


def test_lock_makes_read_modify_write_exact(pool: anypool.Pool, dask_client: Any) -> None:
    lock = pool.Lock()
    name = f"counter-{time.monotonic_ns()}"
    distributed.Variable(name, client=dask_client).set(0)
    futures = [pool.submit(locked_increments, lock, name, 15) for _ in range(2)]
    for f in futures:
        f.result(timeout=60)
    assert distributed.Variable(name, client=dask_client).get() == 30


def test_semaphore_and_unknown_primitive(pool: anypool.Pool) -> None:
    sem = pool.Semaphore(1)
    assert sem.acquire(timeout=5)
    assert not sem.acquire(timeout=0.2)
    sem.release()
    with sem:
        assert sem.acquire(blocking=False) is False
    with pytest.raises(anypool.CapabilityError, match="no Barrier"):
        pool.Barrier(2)
    with pytest.raises(anypool.CapabilityError, match="no RLock"):
        pool.RLock()
    with pytest.raises(anypool.CapabilityError, match="lifo Queue"):
        pool.Queue(order="lifo")
    q = pool.Queue(maxsize=1)
    q.put_nowait(1)
    assert q.full()
    with pytest.raises(stdlib_queue.Full):
        q.put_nowait(2)
    assert q.get_nowait() == 1
    with pytest.raises(stdlib_queue.Empty):
        q.get(timeout=0.2)


def test_cancelled_future_is_not_delivered(pool: anypool.Pool) -> None:
    gate = pool.Event()
    blockers = [pool.submit(wait_for, gate, i) for i in range(2)]
    _wait_until(lambda: all(f.running() for f in blockers))
    queued = pool.submit(inc, 1)
    queued.cancel()
    gate.set()
    with pytest.raises(CancelledError):
        queued.result(timeout=5)


# -- issue 10, item 12: workers= is tasks at once; a local cluster stays on loopback ---------
def test_tasks_queued_together_reach_dask_in_one_batch(make_pool: Any, dask_address: str) -> None:
    # one graph update per batch, not per task: Dask's cost per task is mostly per update.
    # No workers=: a pool capped on a shared cluster hands over one task per free slot.
    pool = make_pool("dask", address=dask_address)
    sizes: list[int] = []
    client = pool._backend.client
    real = client.map

    def spy(fn: Any, *iterables: Any, **kwargs: Any) -> Any:
        sizes.append(len(iterables[0]))
        if len(sizes) == 1:
            time.sleep(0.3)  # a slow first hand-off: the rest queue up meanwhile
        return real(fn, *iterables, **kwargs)

    client.map = spy
    try:
        futures = [pool.submit(inc, i) for i in range(300)]
        assert [f.result(timeout=60) for f in futures] == list(range(1, 301))
    finally:
        del client.map
    assert sum(sizes) == 300
    assert max(sizes) > 100, sizes  # batched: the dispatcher took what had queued up
    with pytest.raises(anypool.SerializationError):  # a bad call still fails only itself
        pool.submit(inc, (i for i in range(3))).result(timeout=30)
    assert pool.submit(inc, 1, retries=1).result(timeout=30) == 2  # a batch of its own


def test_local_cluster_is_a_process_per_cpu_with_threads_on_loopback(
    make_pool: Any, no_configured_address: None, listening_sockets: Any, is_loopback: Any
) -> None:
    import psutil

    from anypool._runtime import usable_cpus

    me = psutil.Process()
    own_before = set(listening_sockets({me.pid})[me.pid])
    children_before = {c.pid for c in me.children(recursive=True)}
    pool = make_pool("dask", 20)
    assert sum(pool.map(inc, range(100))) == sum(range(1, 101))
    nthreads = pool._backend.client.nthreads()
    assert len(nthreads) == min(20, usable_cpus())  # one process per usable CPU at most
    assert sum(nthreads.values()) >= 20  # and threads for the rest: 20 tasks at once
    started = {c.pid for c in me.children(recursive=True)} - children_before
    assert started, "the local cluster started no worker processes"
    sockets = listening_sockets(started)
    own_new = set(listening_sockets({me.pid})[me.pid]) - own_before  # the scheduler's
    addresses = [ip for ips in sockets.values() for ip in ips] + sorted(own_new)
    assert addresses, "no listening socket found"
    assert all(is_loopback(ip) for ip in addresses), sockets


def test_resizing_a_local_cluster_counts_tasks_at_once(
    make_pool: Any, no_configured_address: None
) -> None:
    from anypool._runtime import usable_cpus

    pool = make_pool("dask", 2 * usable_cpus())  # a process per CPU, 2 threads each
    assert set(pool._backend.client.nthreads().values()) == {2}
    pool._backend.resize(4 * usable_cpus())  # more processes of the same 2 threads
    pool._backend.client.wait_for_workers(2 * usable_cpus(), timeout=60)
    assert pool.workers == 4 * usable_cpus()
    assert pool._backend.workers_alive() == 4 * usable_cpus()
    assert sum(pool.map(inc, range(50))) == sum(range(1, 51))
