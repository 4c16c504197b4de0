"""Everyday mistakes get one clear error that names the fix.

- A script without ``if __name__ == "__main__":`` that starts a process pool: workers
  started by spawn or forkserver import the script and stop at once; the parent says
  what is missing in one line, instead of pages of tracebacks from every worker.
- An open file (or socket) passed to a process task: refused, with advice to pass the path,
  instead of arriving as an ``io.StringIO`` copy of the file.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import anypool
from anypool import SerializationError

START_METHODS = ["fork", "forkserver", "spawn"]
SCRIPT_TIMEOUT_S = 60
GUARD = 'if __name__ == "__main__":'
# The parent's own traceback, about a dozen lines; the issue saw 69 to 205 lines.
MAX_STDERR_LINES = 25

UNGUARDED = textwrap.dedent(
    """
    import sys
    import anypool

    def double(x):
        return 2 * x

    pool = anypool.Pool("process", workers=2, start_method=sys.argv[1])
    if sys.argv[2] == "queue":
        queue = pool.Queue()
        queue.put(1)
    print("result", pool.submit(double, 21).result())
    pool.shutdown()
    """
)


def run_unguarded(tmp_path: Path, method: str, shape: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    return subprocess.run(
        [sys.executable, str(script), method, shape],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
        cwd=tmp_path,
    )


def assert_one_clear_error(done: subprocess.CompletedProcess[str], error: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0, done.stdout
    assert len(lines) <= MAX_STDERR_LINES, done.stderr
    assert done.stderr.count("Traceback") == 1, done.stderr  # the parent's, none from workers
    assert lines[-1].startswith(error), done.stderr
    assert GUARD in lines[-1]


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_missing_main_guard_is_one_clear_error(tmp_path: Path, method: str) -> None:
    done = run_unguarded(tmp_path, method, "task")
    # WorkersCannotStart is a BrokenProcessPool
    assert_one_clear_error(done, "anypool._errors._process.WorkersCannotStart: the main script")


def test_fork_workers_do_not_import_the_script_so_need_no_guard(tmp_path: Path) -> None:
    done = run_unguarded(tmp_path, "fork", "task")  # as with multiprocessing
    assert done.returncode == 0, done.stderr
    assert "result 42" in done.stdout


@pytest.mark.parametrize("method", START_METHODS)
def test_a_missing_main_guard_with_a_queue_is_one_clear_error(tmp_path: Path, method: str) -> None:
    """pool.Queue() starts a manager process (spawn or forkserver even for fork pools), which
    imports the script: a bare EOFError before."""
    done = run_unguarded(tmp_path, method, "queue")
    assert_one_clear_error(done, "RuntimeError: the main script")


# -- open files --------------------------------------------------------------------------------
def echo(value: object) -> object:
    return value


@pytest.fixture
def process_pool(make_pool: Callable[..., anypool.Pool]) -> anypool.Pool:
    return make_pool("process", workers=1, start_method="fork")


@pytest.mark.parametrize("mode", ["r", "rb", "w", "ab", "r+"])
def test_an_open_file_is_refused_with_advice(
    process_pool: anypool.Pool, tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "data.txt"
    path.write_text("line\n" * 10)
    with (
        open(path, mode) as handle,
        pytest.raises(SerializationError, match="pass its path") as caught,
    ):
        process_pool.submit(echo, handle).result()
    assert "positional argument 0" in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_file_inside_an_argument_is_refused(process_pool: anypool.Pool, tmp_path: Path) -> None:
    with tempfile.TemporaryFile(dir=tmp_path) as handle:
        with pytest.raises(SerializationError, match="open file"):
            process_pool.submit(echo, {"out": [handle]}).result()
        with pytest.raises(SerializationError, match=r"keyword argument 'sink'.*open file"):
            process_pool.submit(dict, sink=handle).result()


def test_a_file_in_a_map_item_fails_only_that_item(
    process_pool: anypool.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "data.txt"
    path.write_text("x")
    with open(path) as handle:
        outcomes = process_pool.map(echo, [1, handle, 3], return_exceptions=True)
        first, bad, last = list(outcomes)
    assert (first, last) == (1, 3)
    assert isinstance(bad, SerializationError)
    assert "pass its path" in str(bad)


def test_an_open_socket_is_refused(process_pool: anypool.Pool) -> None:
    with socket.socket() as sock, pytest.raises(SerializationError, match="open socket"):
        process_pool.submit(echo, sock).result()


def test_in_memory_files_and_paths_still_travel(process_pool: anypool.Pool, tmp_path: Path) -> None:
    import io

    assert process_pool.submit(echo, tmp_path).result() == tmp_path
    buffer = io.BytesIO(b"abc")
    assert process_pool.submit(echo, buffer).result().getvalue() == b"abc"
    # beside something only cloudpickle handles, the in-memory file is still not refused
    assert process_pool.submit(echo, [buffer, lambda: 1]).result()[0].getvalue() == b"abc"
