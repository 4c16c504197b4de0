"""Functions of the main script run in the worker's ``__main__``, as with multiprocessing.

Each test writes a real script to ``tmp_path`` and runs it with ``sys.executable`` under
every start method: how a script's functions travel depends on how its worker imports the
script (inherited under fork, re-imported as ``__mp_main__`` under spawn and forkserver),
which no in-process test can reproduce.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from anypool._wire import _pickle as _serialization

START_METHODS = ["fork", "forkserver", "spawn"]
SCRIPT_TIMEOUT_S = 60

SCRIPT = textwrap.dedent(
    """
    import functools, json, sys, traceback
    import anypool

    MODEL = None
    CACHE = {}

    def load(name):
        global MODEL
        MODEL = name

    def predict(x):
        return f"{MODEL}:{x}"

    def remember(key):
        CACHE[key] = True

    def recall(_):
        return sorted(CACHE)

    @functools.lru_cache(maxsize=None)
    def cached_predict(x):  # the name holds the cache's wrapper; tasks may get the function
        return f"{MODEL}:{x}"

    def fails(x):
        raise ValueError(f"bad {x}")  # the line a traceback must show

    def remote_text(error):
        return str(error.__cause__)

    if __name__ == "__main__":
        method = sys.argv[1]
        out = {}

        def nested_fails(x):  # defined under the guard: only a copy can reach the worker
            raise KeyError(f"nested {x}")  # this line too

        kw = dict(workers=1, start_method=method, initializer=load, initargs=("m1",))
        with anypool.Pool("process", **kw) as pool:
            out["pool"] = list(pool.map(predict, [1, 2]))
            pool.submit(remember, "a").result()
            out["cache"] = pool.submit(recall, None).result()
            out["lambda"] = pool.submit(lambda x: x * 2, 21).result()
            out["wrapped"] = pool.submit(cached_predict.__wrapped__, 4).result()
            for name, fn in (("by_reference", fails), ("by_value", nested_fails)):
                try:
                    pool.submit(fn, 7).result()
                except Exception as error:
                    out[name] = remote_text(error)
        ctx_kw = dict(initializer=load, initargs=("m2",))
        import multiprocessing
        ctx = multiprocessing.get_context(method)
        with anypool.ProcessPoolExecutor(1, mp_context=ctx, **ctx_kw) as executor:
            out["executor"] = list(executor.map(predict, [3]))
        print(json.dumps(out))
    """
)


def run_script(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "user_script.py"
    script.write_text(source)
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        cwd=tmp_path,
    )


@pytest.mark.parametrize("method", START_METHODS)
def test_main_functions_share_the_workers_main_module(tmp_path: Path, method: str) -> None:
    done = run_script(tmp_path, SCRIPT, method)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # the initializer's global is the one the tasks read (it was None on every method)
    assert out["pool"] == ["m1:1", "m1:2"]
    assert out["executor"] == ["m2:3"]
    # a module-level cache filled by one task function is seen by another
    assert out["cache"] == ["a"]
    assert out["lambda"] == 42
    assert out["wrapped"] == "m1:4"  # reached through the decorator's __wrapped__
    script = str(tmp_path / "user_script.py")
    # tracebacks name the script and show its lines, by reference and by value alike
    # (they showed File "<dynamic-code>" and no source)
    assert f'File "{script}"' in out["by_reference"], out["by_reference"]
    assert "the line a traceback must show" in out["by_reference"]
    assert f'File "{script}"' in out["by_value"], out["by_value"]
    assert "this line too" in out["by_value"]
    assert "<dynamic-code>" not in out["by_reference"] + out["by_value"]


SESSION_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, threading
    import anypool

    SESSION = None

    class Session:  # as a real client: a lock (and sockets) that never pickle
        def __init__(self):
            self.lock = threading.Lock()

    async def fetch(i):
        global SESSION
        if SESSION is None:
            SESSION = Session()  # made on first use, in whichever process runs it
        return i

    def lookup(i):
        return i if SESSION is None or SESSION.lock else -1

    async def main(method):
        await fetch(-1)  # the parent's warm-up call fills its own SESSION
        async with anypool.Pool("process", 1, start_method=method) as pool:
            return [await pool.submit(fetch, 1), pool.submit(lookup, 2).result()]

    if __name__ == "__main__":
        LOCK = threading.Lock()

        def under_guard(x):  # only a copy could reach the worker, and it cannot be made
            with LOCK:
                return x

        out = {"values": asyncio.run(main(sys.argv[1]))}
        with anypool.Pool("process", 1, start_method=sys.argv[1]) as pool:
            try:
                out["guarded"] = pool.submit(under_guard, 3).result()
            except Exception as error:
                out["error"] = f"{type(error).__name__}: {error}"
        print(json.dumps(out))
    """
)


@pytest.mark.parametrize("method", START_METHODS)
def test_a_global_the_parent_filled_does_not_stop_a_main_function(tmp_path: Path, method: str):
    """A main-script function travels by reference; its copy by value (used only where the
    worker's __main__ lacks it) took the parent's globals, and a client made on first use in
    the parent (a lock inside) failed every submit with "cannot pickle '_thread.lock'"."""
    done = run_script(tmp_path, SESSION_SCRIPT, method)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["values"] == [1, 2]
    if method == "fork":  # the worker inherited the parent's __main__, under_guard included
        assert out["guarded"] == 3
        return
    # a function the worker cannot find, whose copy cannot be made, says both
    assert "has no under_guard" in out["error"], out["error"]
    assert "cannot pickle '_thread.lock'" in out["error"], out["error"]


def test_code_without_a_file_travels_by_value(tmp_path: Path) -> None:
    """``python -c`` code has no file a worker could import: its functions go by value."""
    code = textwrap.dedent(
        """
        import anypool
        OFFSET = 5
        def add(x):
            return x + OFFSET
        with anypool.Pool("process", workers=1, start_method="spawn") as pool:
            print(pool.submit(add, 1).result())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6"


# -- the reference and its fallback, in this process ------------------------------------------
def _main_function(source: str, name: str) -> Any:
    """Define a function as if in ``__main__`` (this test process's main module)."""
    main = sys.modules["__main__"]
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, "<test-main>", "exec"), namespace)
    fn = namespace[name]
    setattr(main, name, fn)
    return fn


def test_a_redefined_main_function_is_not_confused_with_the_old_one() -> None:
    """The worker takes its own ``__main__`` function only if it has the same code: a notebook
    that redefined it after the worker started gets the new code (from the copy)."""
    main = sys.modules["__main__"]
    name = "_anypool_test_redefined"
    try:
        fn = _main_function("def _anypool_test_redefined():\n    return 'old'\n", name)
        blob = _serialization.cloudpickle_dumps(fn)
        assert pickle.loads(blob) is fn  # same code here: the very function, by reference
        _main_function("def _anypool_test_redefined():\n    return 'new ' * 2\n", name)
        copy = pickle.loads(blob)
        assert copy is not fn
        assert copy() == "old"
        delattr(main, name)
        assert pickle.loads(blob)() == "old"  # missing from the worker's __main__: the copy
    finally:
        if hasattr(main, name):
            delattr(main, name)


LOGGING_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    import anypool

    def work(i):
        logging.getLogger("app").info("info from the worker %s", i)
        logging.getLogger("app.db").debug("debug from the worker %s", i)

    if __name__ == "__main__":
        logging.basicConfig(level=logging.INFO, format="%(levelname)s|%(name)s|%(message)s")
        logging.getLogger("app.db").setLevel(logging.DEBUG)
        to_file = logging.FileHandler(sys.argv[2])
        to_file.setFormatter(logging.Formatter("{name}:{message}", style="{"))
        logging.getLogger().addHandler(to_file)
        with anypool.Pool("process", workers=1, start_method=sys.argv[1]) as pool:
            pool.submit(work, 1).result()
    """
)


@pytest.mark.parametrize("method", START_METHODS)
def test_workers_log_as_the_parent_set_logging_up(tmp_path: Path, method: str) -> None:
    """Under forkserver and spawn, workers start with no logging setup: their INFO records
    were lost. They get the parent's (levels, stream and file handlers, formats)."""
    log_file = tmp_path / "app.log"
    done = run_script(tmp_path, LOGGING_SCRIPT, method, str(log_file))
    assert done.returncode == 0, done.stderr
    assert "INFO|app|info from the worker 1" in done.stderr
    assert "DEBUG|app.db|debug from the worker 1" in done.stderr
    assert log_file.read_text().splitlines() == [
        "app:info from the worker 1",
        "app.db:debug from the worker 1",
    ]
