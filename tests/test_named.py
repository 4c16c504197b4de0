"""Named pools, the task decorators, wait / wait_all, shutdown at exit, and typing (mypy)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

import anypool
from anypool._frontends import _named


@pytest.fixture(autouse=True)
def _forget_named_pools():
    yield
    _named.shutdown_all()


def square(x: int) -> int:
    return x * x


def whoami() -> int:
    return os.getpid()


@anypool.task(pool="procs")
def cube(x: int) -> tuple[int, int]:
    # decorated at module level: the module's name `cube` is the TaskFunction, so the
    # plain function must reach the worker by value, not be looked up (and re-submitted)
    return x * x * x, whoami()


# -- anypool.named_pool ---------------------------------------------------------------------------
def test_pool_creates_then_returns_the_same_pool():
    net = anypool.named_pool("net", backend="thread", workers=5)
    assert net.backend == "thread"
    assert net.workers == 5
    assert anypool.named_pool("net") is net
    assert anypool.named_pool("net", workers=5) is net
    assert anypool.named_pool("net", backend="thread", workers=5) is net
    assert anypool.named_pool("other") is not net


def test_pool_with_conflicting_options_is_an_error():
    anypool.named_pool("net", workers=2)
    with pytest.raises(ValueError, match=r"pool 'net' already exists.*workers=3 \(it has 2\)"):
        anypool.named_pool("net", workers=3)
    with pytest.raises(ValueError, match="backend='inline'"):
        anypool.named_pool("net", backend="inline")
    with pytest.raises(ValueError, match="max_pending=4"):
        anypool.named_pool("net", max_pending=4)


def test_resize_then_ask_with_the_new_size():
    net = anypool.named_pool("net", workers=2)
    net.resize(4)
    assert anypool.named_pool("net", workers=4) is net


def test_resize_then_ask_again_with_the_creating_options():
    # the code that made it asks again with its own options, after a resize elsewhere
    net = anypool.named_pool("net", workers=2)
    net.resize(4)
    assert anypool.named_pool("net", workers=2) is net
    with pytest.raises(ValueError, match=r"workers=3 \(it has 4\)"):
        anypool.named_pool("net", workers=3)


def test_shut_down_named_pool_is_created_afresh_with_its_options():
    first = anypool.named_pool("net", workers=3)
    first.shutdown()
    second = anypool.named_pool("net")
    assert second is not first
    assert second.workers == 3
    assert second.submit(square, 3).result(timeout=10) == 9


def test_a_named_pools_own_decorator_follows_the_name_after_a_shutdown():
    # vthread's recipe: net = named_pool("net"), then @net.task; closing the group and
    # calling again made PoolClosed, where @anypool.task(pool="net") made it afresh
    net = anypool.named_pool("net", workers=2)
    squared = net.task(square)
    assert squared(3).result(timeout=10) == 9
    net.shutdown()
    assert squared(4).result(timeout=10) == 16
    assert squared.pool is anypool.named_pool("net") is not net
    assert squared.pool.workers == 2


@pytest.mark.parametrize("bad", ["", None, 3])
def test_bad_pool_names(bad):
    with pytest.raises(TypeError, match="a pool name must be a non-empty str"):
        anypool.named_pool(bad)


# -- decorators -----------------------------------------------------------------------------------
def test_task_with_a_named_pool_returns_futures():
    anypool.named_pool("net", workers=3)

    @anypool.task(pool="net")
    def fetch(url: str, timeout: float = 1.0) -> tuple[str, float, str]:
        return url, timeout, threading.current_thread().name

    future = fetch("a", timeout=2.5)  # the function's own timeout= reaches the function
    assert isinstance(future, Future)
    url, timeout, thread = future.result(timeout=10)
    assert (url, timeout) == ("a", 2.5)
    assert thread != threading.current_thread().name
    assert fetch.__name__ == "fetch"
    assert fetch.__wrapped__("b")[0] == "b"  # the plain function is still there
    assert fetch.pool is anypool.named_pool("net")


def test_bare_task_uses_the_default_pool():
    @anypool.task
    def double(x: int) -> int:
        return 2 * x

    assert double(21).result(timeout=10) == 42
    assert double.pool is anypool.named_pool("default")
    assert double.pool.backend == "thread"


def test_plain_call_and_pool_object():
    pool = anypool.named_pool("cpu", backend="inline")
    sq = anypool.task(square, pool=pool)
    assert sq(5).result() == 25
    sq_named = anypool.task(square, pool="cpu")
    assert sq_named(6).result() == 36


def test_pool_task_method_bare_and_with_options(make_pool):
    pool = make_pool("thread", 2, order="priority")

    @pool.task
    def inc(x: int) -> int:
        return x + 1

    seen = []

    @pool.task(priority=1, callback=lambda r, e: seen.append(r))
    def dec(x: int) -> int:
        return x - 1

    assert inc(1).result(timeout=10) == 2
    assert dec(1).result(timeout=10) == 0
    assert pool.join(timeout=10)
    assert seen == [0]
    assert "dec" in repr(dec)


def test_task_map():
    anypool.named_pool("net", workers=2)
    sq = anypool.task(square, pool="net")
    assert list(sq.map(range(6))) == [0, 1, 4, 9, 16, 25]
    assert sorted(sq.map(range(4), ordered=False)) == [0, 1, 4, 9]


def test_task_options_apply_to_calls_and_map(make_pool):
    pool = make_pool("thread", 1, order="priority")
    seen = []
    sq = anypool.task(square, pool=pool, priority=3, callback=lambda r, e: seen.append(r))
    assert list(sq.map([1, 2])) == [1, 4]
    assert seen == [1, 4]
    with pytest.raises(ValueError, match="order='priority'"):
        anypool.task(square, pool=make_pool("thread", 1), priority=3)(2)


def test_task_on_a_process_pool_runs_in_another_process():
    anypool.named_pool("procs", backend="process", workers=2)
    who = anypool.task(whoami, pool="procs")
    pids = {f.result(timeout=30) for f in [who() for _ in range(4)]}
    assert os.getpid() not in pids
    assert list(anypool.task(square, pool="procs").map(range(5))) == [0, 1, 4, 9, 16]


def test_module_level_decorated_function_on_processes():
    anypool.named_pool("procs", backend="process", workers=2)
    value, pid = cube(3).result(timeout=30)
    assert value == 27
    assert pid != os.getpid()
    assert [v for v, _ in cube.map([1, 2])] == [1, 8]


def test_task_bad_input():
    with pytest.raises(TypeError, match="task\\(\\) needs a callable"):
        anypool.task(42)
    with pytest.raises(TypeError, match=r"pool must be a pool name or an anypool\.Pool"):
        anypool.task(square, pool=3.5)
    with pytest.raises(TypeError, match="callback must be callable"):
        anypool.task(square, callback=1)


# -- wait / wait_all ------------------------------------------------------------------------------
def test_wait_and_wait_all():
    anypool.named_pool("a", workers=1)
    anypool.named_pool("b", workers=1)
    gate = threading.Event()
    slow = anypool.task(gate.wait, pool="a")
    quick = anypool.task(time.sleep, pool="b")
    pending = slow(10)
    quick(0.05)
    assert anypool.join_named("b", timeout=10)
    assert anypool.join_named("a", timeout=0.1) is False
    assert anypool.join_all_named(timeout=0.1) is False
    gate.set()
    assert anypool.join_all_named(timeout=10)
    assert pending.result() is True


def test_wait_unknown_name():
    anypool.named_pool("known")
    with pytest.raises(ValueError, match="there is no pool named 'nope'; named pools: 'known'"):
        anypool.join_named("nope")


# -- interpreter exit -----------------------------------------------------------------------------
@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", ["thread", "process"])
def test_named_pools_finish_pending_work_and_shut_down_at_exit(tmp_path, backend):
    script = tmp_path / "script.py"
    out = tmp_path / "out"
    script.write_text(
        textwrap.dedent(
            f"""
            import time, anypool

            def write(path, i):
                time.sleep(0.05)
                with open(path, "a") as f:
                    f.write(f"{{i}}\\n")

            if __name__ == "__main__":  # worker processes import this file too
                anypool.named_pool("bg", backend={backend!r}, workers=2)
                job = anypool.task(write, pool="bg")
                for i in range(6):
                    job({str(out)!r}, i)
                print("main done", flush=True)
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "main done" in proc.stdout
    assert proc.stderr == ""
    assert sorted(int(x) for x in out.read_text().split()) == list(range(6))


# -- typing ---------------------------------------------------------------------------------------
MYPY_SNIPPET = """
import anypool
from concurrent.futures import Future

@anypool.task(pool="net")
def fetch(url: str, retries: int = 3) -> bytes:
    return b""

@anypool.task
def bare(x: float) -> str:
    return str(x)

def plain(a: int, b: int) -> int:
    return a + b

called = anypool.task(plain, pool="net")
pool = anypool.Pool("thread", 2)

@pool.task
def method(n: int) -> list[int]:
    return [n]

@pool.task(timeout=5)
def with_options(n: int) -> int:
    return n

reveal_type(fetch)
reveal_type(fetch("u"))
reveal_type(bare(1.0))
reveal_type(called(1, 2))
reveal_type(method(3))
reveal_type(with_options(3))
reveal_type(fetch.map(["a", "b"]))
ok: Future[bytes] = fetch("u", retries=2)
fetch(1)  # E1
called(1, "2")  # E2
method()  # E3
fetch("u", tries=2)  # E4
"""


@pytest.mark.timeout(300)
def test_decorated_functions_keep_their_signatures_for_mypy(tmp_path):
    snippet = tmp_path / "snippet.py"
    snippet.write_text(MYPY_SNIPPET)
    src = Path(anypool.__file__).resolve().parent.parent
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--hide-error-context",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--config-file",
            os.devnull,
            str(snippet),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(src)},
    )
    out = proc.stdout.replace("builtins.", "")  # older mypy spells builtins out
    revealed = [
        line.split("Revealed type is ")[1] for line in out.splitlines() if "Revealed" in line
    ]
    assert revealed == [
        '"anypool._core._decorators.TaskFunction[[url: str, retries: int =], bytes]"',
        '"concurrent.futures._base.Future[bytes]"',
        '"concurrent.futures._base.Future[str]"',
        '"concurrent.futures._base.Future[int]"',
        '"concurrent.futures._base.Future[list[int]]"',
        '"concurrent.futures._base.Future[int]"',
        '"anypool._core._map.MapIterator[bytes]"',
    ], out
    errors = [line for line in out.splitlines() if ": error:" in line]
    lines = MYPY_SNIPPET.splitlines()
    by_marker = {
        marker: next(i + 1 for i, text in enumerate(lines) if text.endswith(marker))
        for marker in ("# E1", "# E2", "# E3", "# E4")
    }
    for marker, line in by_marker.items():
        assert any(f"snippet.py:{line}:" in e for e in errors), (marker, out)
    # exactly the four deliberate mistakes, nothing else
    assert len(errors) == 4, out
    assert 'incompatible type "int"; expected "str"' in out
    assert 'Unexpected keyword argument "tries"' in out
