"""Coordination primitives from the pool, on threads, inline and across processes.

The functions below are module-level so that they pickle by reference into
process workers; the primitives travel as ordinary task arguments.
"""

from __future__ import annotations

import os
import pickle
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import anypool

BACKENDS = ["thread", "process"]


# -- task functions -------------------------------------------------------------------------------
def add_under_lock(lock, path, times):
    """Non-atomic read-modify-write of a counter in a file: exact only if the lock works."""
    fd = os.open(path, os.O_RDWR)
    try:
        for _ in range(times):
            with lock:
                value = int.from_bytes(os.pread(fd, 8, 0), "little")
                os.pwrite(fd, (value + 1).to_bytes(8, "little"), 0)
    finally:
        os.close(fd)
    return times


def nested(rlock, depth):
    if depth == 0:
        return "bottom"
    with rlock:
        return nested(rlock, depth - 1)


def try_acquire(lock):
    got = lock.acquire(timeout=0.05)
    if got:
        lock.release()
    return got


def concurrency_probe(semaphore, active, peak_lock, path, hold):
    """Count how many tasks are inside the semaphore at once (kept in a file for processes)."""
    with semaphore:
        with peak_lock:
            now, peak = _read2(path)
            _write2(path, now + 1, max(peak, now + 1))
        time.sleep(hold)
        with peak_lock:
            now, peak = _read2(path)
            _write2(path, now - 1, peak)
    return True


def _read2(path):
    with open(path, "rb") as f:
        data = f.read()
    return int.from_bytes(data[:8], "little"), int.from_bytes(data[8:16], "little")


def _write2(path, a, b):
    with open(path, "wb") as f:
        f.write(a.to_bytes(8, "little") + b.to_bytes(8, "little"))


def wait_then_report(event, timeout):
    return event.wait(timeout)


def cross_barrier(barrier):
    return barrier.wait()


def consumer(jobs, results):
    while True:
        item = jobs.get()
        if item is None:
            jobs.task_done()
            return
        results.put((os.getpid(), item * item))
        jobs.task_done()


def producer(jobs, start, count):
    for i in range(start, start + count):
        jobs.put(i)
    return count


def wait_for_turn(cond, box, index):
    with cond:
        cond.wait_for(lambda: box.qsize() == index, timeout=20)
        box.put(index)
        cond.notify_all()
    return index


def release(lock: Any) -> None:
    lock.release()


def is_locked(lock: Any) -> bool:
    return bool(lock.locked())


def drain(q):
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


@pytest.fixture
def counter_file(tmp_path):
    path = tmp_path / "counter.bin"
    path.write_bytes(bytes(16))
    return str(path)


# -- locks ----------------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_four_process_workers_count_exactly_under_pool_lock(make_pool, counter_file):
    pool = make_pool("process", 4)
    lock = pool.Lock()
    futures = [pool.submit(add_under_lock, lock, counter_file, 10_000) for _ in range(4)]
    assert [f.result(timeout=100) for f in futures] == [10_000] * 4
    with open(counter_file, "rb") as f:
        assert int.from_bytes(f.read(8), "little") == 40_000


def test_thread_workers_count_exactly_under_pool_lock(make_pool, counter_file):
    pool = make_pool("thread", 4)
    lock = pool.Lock()
    assert isinstance(lock, type(threading.Lock()))
    futures = [pool.submit(add_under_lock, lock, counter_file, 2_000) for _ in range(4)]
    assert sum(f.result(timeout=60) for f in futures) == 8_000
    with open(counter_file, "rb") as f:
        assert int.from_bytes(f.read(8), "little") == 8_000


@pytest.mark.parametrize("backend", [*BACKENDS, "inline"])
def test_rlock_is_reentrant(make_pool, backend):
    pool = make_pool(backend, 2)
    rlock = pool.RLock()
    assert pool.submit(nested, rlock, 5).result(timeout=30) == "bottom"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_lock_held_here_is_seen_held_by_workers(make_pool, backend):
    pool = make_pool(backend, 1)
    lock = pool.Lock()
    with lock:
        assert pool.submit(try_acquire, lock).result(timeout=30) is False
    assert pool.submit(try_acquire, lock).result(timeout=30) is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_lock_locked_as_threading(make_pool: Callable[..., anypool.Pool], backend: str) -> None:
    pool = make_pool(backend, 1)
    lock: Any = pool.Lock()
    assert lock.locked() is False
    with lock:
        assert lock.locked() is True
        assert pool.submit(is_locked, lock).result(timeout=30) is True
    assert pool.submit(is_locked, lock).result(timeout=30) is False


# -- semaphores -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_semaphore_limits_concurrency(make_pool, backend, counter_file):
    pool = make_pool(backend, 4)
    semaphore, peak_lock = pool.Semaphore(2), pool.Lock()
    futures = [
        pool.submit(concurrency_probe, semaphore, None, peak_lock, counter_file, 0.15)
        for _ in range(6)
    ]
    assert all(f.result(timeout=60) for f in futures)
    now, peak = _read2(counter_file)
    assert now == 0
    assert peak == 2  # 4 workers wanted in; the semaphore let exactly 2 at a time


@pytest.mark.parametrize("backend", BACKENDS)
def test_bounded_semaphore_refuses_extra_release(make_pool, backend):
    pool = make_pool(backend, 1)
    bounded = pool.BoundedSemaphore(1)
    with pytest.raises(ValueError, match=r"^Semaphore released too many times$"):
        bounded.release()
    plain = pool.Semaphore(0)
    plain.release(2)  # an unbounded semaphore may grow
    assert plain.acquire(timeout=1)
    assert plain.acquire(timeout=1)
    assert plain.acquire(blocking=False) is False


# -- event, condition, barrier --------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_event_releases_waiting_workers(make_pool, backend):
    pool = make_pool(backend, 3)
    event = pool.Event()
    waiting = [pool.submit(wait_then_report, event, 20) for _ in range(3)]
    time.sleep(0.2)
    assert not any(f.done() for f in waiting)
    assert not event.is_set()
    event.set()
    assert [f.result(timeout=30) for f in waiting] == [True] * 3
    event.clear()
    assert pool.submit(wait_then_report, event, 0.05).result(timeout=30) is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_condition_orders_workers(make_pool, backend):
    pool = make_pool(backend, 4)
    cond, box = pool.Condition(), pool.Queue()
    # submitted in reverse, the tasks must still enter one by one in index order
    futures = [pool.submit(wait_for_turn, cond, box, i) for i in reversed(range(4))]
    assert sorted(f.result(timeout=60) for f in futures) == [0, 1, 2, 3]
    assert drain(box) == [0, 1, 2, 3]


@pytest.mark.parametrize("backend", BACKENDS)
def test_condition_accepts_the_pools_own_lock(make_pool, backend):
    pool = make_pool(backend, 1)
    lock = pool.RLock()
    cond = pool.Condition(lock)
    with cond:
        cond.notify_all()
        assert cond.wait(timeout=0.01) is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_barrier_releases_all_parties_together(make_pool, backend):
    pool = make_pool(backend, 3)
    barrier = pool.Barrier(3, timeout=20)
    assert barrier.parties == 3
    assert barrier.n_waiting == 0
    assert not barrier.broken
    futures = [pool.submit(cross_barrier, barrier) for _ in range(3)]
    assert sorted(f.result(timeout=30) for f in futures) == [0, 1, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_tasks_waiting_for_each_other_each_get_a_worker(make_pool, backend):
    # submitted a few ms apart, while workers are still starting: none of them may be sent
    # ahead into a busy worker's pipe (it would wait behind a task that waits for it)
    pool = make_pool(backend, 4)
    barrier = pool.Barrier(4, timeout=10)
    futures = []
    for _ in range(4):
        futures.append(pool.submit(cross_barrier, barrier))
        time.sleep(0.003)
    assert sorted(f.result(timeout=30) for f in futures) == [0, 1, 2, 3]


# -- queues ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [*BACKENDS, "inline"])
@pytest.mark.parametrize(
    ("order", "expected"),
    [("fifo", [3, 1, 2]), ("lifo", [2, 1, 3]), ("priority", [1, 2, 3])],
)
def test_queue_orders(make_pool, backend, order, expected):
    pool = make_pool(backend, 1)
    q = pool.Queue(order=order)
    for item in (3, 1, 2):
        q.put(item)
    assert q.qsize() == 3
    assert [q.get(timeout=5) for _ in range(3)] == expected
    assert q.empty()


@pytest.mark.parametrize("backend", BACKENDS)
def test_queue_maxsize_put_nowait_and_get_timeout(make_pool, backend):
    pool = make_pool(backend, 1)
    q = pool.Queue(maxsize=1)
    q.put_nowait("a")
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait("b")
    with pytest.raises(queue.Full):
        q.put("b", timeout=0.05)
    assert q.get_nowait() == "a"
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", BACKENDS)
def test_producer_consumer_loses_and_duplicates_nothing(make_pool, backend):
    consumers, producers, per_producer = 3, 3, 200
    pool = make_pool(backend, consumers + producers)
    jobs, results = pool.Queue(maxsize=10), pool.Queue()
    consuming = [pool.submit(consumer, jobs, results) for _ in range(consumers)]
    produced = [
        pool.submit(producer, jobs, p * per_producer, per_producer) for p in range(producers)
    ]
    assert sum(f.result(timeout=100) for f in produced) == producers * per_producer
    jobs.join()  # every item taken has been marked done
    for _ in range(consumers):
        jobs.put(None)
    for future in consuming:
        future.result(timeout=30)
    jobs.join()
    got = drain(results)
    squares = sorted(square for _, square in got)
    assert squares == [i * i for i in range(producers * per_producer)]
    if backend == "process":
        assert os.getpid() not in {pid for pid, _ in got}


def test_thread_backend_gives_threading_and_queue_objects(make_pool):
    pool = make_pool("thread", 1)
    assert isinstance(pool.Condition(), threading.Condition)
    assert isinstance(pool.Semaphore(2), threading.Semaphore)
    assert isinstance(pool.BoundedSemaphore(2), threading.BoundedSemaphore)
    assert isinstance(pool.Event(), threading.Event)
    assert isinstance(pool.Barrier(2), threading.Barrier)
    assert type(pool.Queue()) is queue.Queue
    assert type(pool.Queue(order="lifo")) is queue.LifoQueue
    assert type(pool.Queue(order="priority")) is queue.PriorityQueue


def test_process_primitives_pickle_at_any_time(make_pool):
    pool = make_pool("process", 1)
    for make in (pool.Lock, pool.RLock, pool.Semaphore, pool.Event, pool.Condition, pool.Queue):
        primitive = make()
        copy = pickle.loads(pickle.dumps(primitive))
        assert type(copy) is type(primitive)
    lock = pool.Lock()
    copy = pickle.loads(pickle.dumps(lock))
    with copy:  # the copy is the same semaphore
        assert lock.acquire(blocking=False) is False
    assert lock.acquire(blocking=False) is True
    lock.release()


# -- misuse ---------------------------------------------------------------------------------------
UNLOCKED = r"^release unlocked lock$"  # threading.Lock's words
UNACQUIRED = r"^cannot release un-acquired lock$"  # threading.RLock's


@pytest.mark.parametrize("backend", BACKENDS)
def test_releasing_a_lock_not_held_raises_threadings_runtime_error(
    make_pool: Callable[..., anypool.Pool], backend: str
) -> None:
    pool = make_pool(backend, 1)
    lock, rlock = pool.Lock(), pool.RLock()
    with pytest.raises(RuntimeError, match=UNLOCKED):
        lock.release()
    with pytest.raises(RuntimeError, match=UNLOCKED), lock:
        lock.release()  # so the with block's exit releases an unlocked lock
    with pytest.raises(RuntimeError, match=UNACQUIRED):
        rlock.release()
    with rlock:  # held here: a worker may not release it
        error = pool.submit(release, rlock).exception(timeout=30)
    assert type(error) is RuntimeError
    assert str(error) == "cannot release un-acquired lock"


WAIT, NOTIFY = r"^cannot wait on un-acquired lock$", r"^cannot notify on un-acquired lock$"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("use", "over_rlock", "over_lock"),
    [
        (lambda c: c.wait(0.01), WAIT, WAIT),
        (lambda c: c.wait_for(lambda: False, 0.01), WAIT, WAIT),
        (lambda c: c.notify(), NOTIFY, NOTIFY),
        (lambda c: c.notify_all(), NOTIFY, NOTIFY),
        (lambda c: c.release(), UNACQUIRED, UNLOCKED),
    ],
    ids=["wait", "wait_for", "notify", "notify_all", "release"],
)
def test_a_condition_used_without_its_lock_raises_threadings_runtime_error(
    make_pool: Callable[..., anypool.Pool],
    backend: str,
    use: Callable[[Any], object],
    over_rlock: str,
    over_lock: str,
) -> None:
    pool = make_pool(backend, 1)
    with pytest.raises(RuntimeError, match=over_rlock):
        use(pool.Condition())  # over an RLock, as threading's
    with pytest.raises(RuntimeError, match=over_lock):
        use(pool.Condition(pool.Lock()))


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (threading.Lock, "Lock"),
        (threading.RLock, "RLock"),
        (threading.Event, "Event"),
        (threading.Condition, "Condition"),
        (lambda: threading.Semaphore(1), "Semaphore"),
        (queue.Queue, "Queue"),
    ],
)
def test_thread_primitive_sent_to_process_workers_is_a_clear_error(make_pool, make, name):
    thread_pool = make_pool("thread", 1)
    process_pool = make_pool("process", 1)
    primitive = thread_pool.Lock() if name == "Lock" else make()
    with pytest.raises(
        anypool.SerializationError, match=rf"argument 0 is a .*{name}.*pool\.{name}\(\)"
    ):
        process_pool.submit(try_acquire, primitive)
    with pytest.raises(anypool.SerializationError, match="keyword argument 'lock'"):
        process_pool.submit(try_acquire, lock=primitive)
    with pytest.raises(anypool.SerializationError, match=name):
        process_pool.submit_after(5, try_acquire, primitive)


def test_process_queue_after_its_pool_shut_down_is_a_clear_error(make_pool):
    pool = make_pool("process", 1)
    q = pool.Queue()
    q.put(1)
    pool.shutdown()
    with pytest.raises(anypool.PoolClosed, match="shut down"):
        q.get(timeout=1)
    with pytest.raises(anypool.PoolClosed):
        pool.Queue()


def test_condition_with_a_foreign_lock_on_processes(make_pool):
    pool = make_pool("process", 1)
    with pytest.raises(TypeError, match=r"pool\.Lock\(\)"):
        pool.Condition(threading.Lock())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p: p.Semaphore(-1), ValueError, "Semaphore value must be >= 0"),
        (lambda p: p.BoundedSemaphore(1.5), TypeError, "Semaphore value must be an int"),
        (lambda p: p.Barrier(0), ValueError, "Barrier parties must be >= 1"),
        (lambda p: p.Barrier(2, action=3), TypeError, "Barrier action must be callable"),
        (lambda p: p.Barrier(2, timeout=-1), ValueError, "Barrier timeout"),
        (lambda p: p.Queue(maxsize=-1), ValueError, "Queue maxsize must be >= 0"),
        (lambda p: p.Queue(order="random"), ValueError, "Queue order must be one of"),
    ],
)
def test_bad_primitive_arguments(make_pool, call, error, match):
    with pytest.raises(error, match=match):
        call(make_pool("thread", 1))


def test_a_process_barrier_action_that_cannot_pickle_is_named(make_pool):
    # it runs in the manager process: pickle's "Can't pickle local object" said nothing
    # about why it must pickle or what to do
    pool = make_pool("process", 1)
    with pytest.raises(anypool.SerializationError, match="use a function defined at module"):
        pool.Barrier(2, action=lambda: None)


def test_no_primitives_after_shutdown(make_pool):
    pool = make_pool("thread", 1)
    pool.shutdown()
    with pytest.raises(anypool.PoolClosed):
        pool.Lock()


def test_manager_is_started_lazily_and_stopped_with_the_pool(make_pool):
    import psutil

    me = psutil.Process()
    pool = make_pool("process", 1)
    before = {p.pid for p in me.children(recursive=True)}
    pool.Lock()  # semaphore-based: no manager needed
    q = pool.Queue()
    q.put(1)
    manager = pool._coordination._primitives._manager._process  # the one process a queue needs
    assert manager.pid not in before
    assert manager.is_alive()
    pool.shutdown()
    assert not manager.is_alive()


@pytest.mark.timeout(60)
def test_manager_exits_when_the_parent_is_killed(tmp_path):
    import signal
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "import os, signal, anypool\n"
        "if __name__ == '__main__':\n"
        "    pool = anypool.Pool('process', 1)\n"
        "    pool.Queue().put(1)\n"
        "    print(pool._coordination._primitives._manager._process.pid, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == -signal.SIGKILL
    manager_pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 5
    while not (gone := _exited(manager_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone, "the manager outlived its killed parent"


def _exited(pid: int) -> bool:
    import psutil

    try:  # one psutil call: pid_exists() then Process() races with the exit
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_primitives_work_with_every_start_method(make_pool, counter_file, method):
    pool = make_pool("process", 2, start_method=method)
    lock, jobs, results, gate = pool.Lock(), pool.Queue(), pool.Queue(), pool.Event()
    counting = [pool.submit(add_under_lock, lock, counter_file, 500) for _ in range(2)]
    assert [f.result(timeout=60) for f in counting] == [500, 500]
    with open(counter_file, "rb") as f:
        assert int.from_bytes(f.read(8), "little") == 1_000
    waiter = pool.submit(wait_then_report, gate, 30)
    gate.set()
    assert waiter.result(timeout=60) is True
    consuming = pool.submit(consumer, jobs, results)
    for i in range(20):
        jobs.put(i)
    jobs.put(None)
    consuming.result(timeout=60)
    assert sorted(square for _, square in drain(results)) == [i * i for i in range(20)]
