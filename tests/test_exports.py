"""The public namespace (trio's test_exports): complete, unique, resolvable, and light to import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types

import pytest

import anypool
import anypool.abc

HEAVY_MODULES = [
    "multiprocessing",
    "concurrent.futures.process",
    "dask",
    "distributed",
    "ray",
    "tqdm",
    "matplotlib",
    "psutil",
]


@pytest.mark.parametrize("module", [anypool, anypool.abc], ids=lambda m: m.__name__)
def test_all_has_no_duplicates(module):
    assert len(module.__all__) == len(set(module.__all__))


@pytest.mark.parametrize("module", [anypool, anypool.abc], ids=lambda m: m.__name__)
def test_every_name_in_all_resolves(module):
    for name in module.__all__:
        assert getattr(module, name) is not None, name


@pytest.mark.parametrize("module", [anypool, anypool.abc], ids=lambda m: m.__name__)
def test_every_public_anypool_object_is_in_all(module):
    # names the package defines (not typing helpers or submodules) must be exported
    missing = [
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
        and getattr(getattr(module, name), "__module__", "").startswith("anypool")
        and name not in module.__all__
    ]
    assert not missing, f"public but not in {module.__name__}.__all__: {missing}"


def test_dir_lists_the_lazy_names():
    assert set(anypool.__all__) <= set(dir(anypool))


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        anypool.no_such_name  # noqa: B018


def _imported_after(code: str) -> list[str]:
    script = (
        f"import sys, json\n{code}\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules "
        "if any(m == h or m.startswith(h + '.') for h in heavy))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_import_anypool_is_light():
    assert _imported_after("import anypool") == []


def test_import_anypool_abc_is_light():
    assert _imported_after("import anypool.abc") == []


def test_creating_a_thread_pool_stays_light():
    code = "import anypool\nwith anypool.Pool('thread', 2) as p: p.submit(abs, -1).result()"
    assert _imported_after(code) == []


def test_process_flavoured_names_load_on_first_use():
    # BrokenProcessPool's stdlib base lives in concurrent.futures.process: resolved lazily
    imported = _imported_after("import anypool\nanypool.BrokenProcessPool")
    assert "concurrent.futures.process" in imported


def _anypool_modules_after(statement: str) -> list[str]:
    script = (
        f"import sys, json\n{statement}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('anypool'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_import_anypool_loads_only_the_exceptions():
    # every other public name resolves on first use (see _LAZY in anypool/__init__.py);
    # a spawned worker and `anypool --help` import the package without paying for the rest
    assert _anypool_modules_after("import anypool") == [
        "anypool",
        "anypool._errors",
        "anypool._errors._exceptions",
        "anypool._version",
    ]


def _stdlib_modules_after(statement: str, names: tuple[str, ...]) -> list[str]:
    found = f"sorted(set({names!r}) & set(sys.modules))"
    script = f"import sys, json\n{statement}\nprint(json.dumps({found}))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_a_process_worker_runs_a_task_without_dataclasses_or_inspect():
    # what a worker imports to run its first task (anypool._task: Task, ChunkResult,
    # run_chunk): dataclasses and inspect (with ast, dis) cost a spawned worker ~8 ms at
    # every start, where concurrent.futures' worker imports none of them
    statement = "import anypool._backends._process._child, anypool._task"
    assert _stdlib_modules_after(statement, ("ast", "dataclasses", "dis", "inspect")) == []


def test_a_lazy_name_is_the_same_object_as_in_its_module():
    from anypool._core._pool import Pool

    assert anypool.Pool is Pool
    assert "Pool" in vars(anypool)  # cached after the first lookup


def test_a_process_worker_starts_without_the_pool_machinery():
    # a spawned worker is a fresh interpreter: every module on this path is paid for at
    # each worker start, so the entry point reaches only the stdlib and the exceptions
    assert _anypool_modules_after("import anypool._backends._process._child") == [
        "anypool",
        "anypool._backends",
        "anypool._backends._process",
        "anypool._backends._process._child",
        "anypool._backends._process._protocol",
        "anypool._errors",
        "anypool._errors._exceptions",
        "anypool._version",
        # the wire format, and large buffers out of band: every result passes through them
        "anypool._wire",
        "anypool._wire._shm",
    ]


def test_the_api_table_lists_exactly_the_public_names():
    # docs/api.md is the one page with every public name; a name added to __all__ without a
    # row (or a row left behind by a rename) fails here
    from pathlib import Path

    table = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    rows = set(re.findall(r"^\| `anypool\.(\w+)` \|", table, re.M))
    abc_rows = set(re.findall(r"^\| `anypool\.abc\.(\w+)` \|", table, re.M))
    assert rows == set(anypool.__all__)
    assert abc_rows == set(anypool.abc.__all__)


def test_renamed_names_say_where_they_went():
    for old, new in [
        ("pool", "named_pool"),
        ("wait", "join_named"),
        ("wait_all", "join_all_named"),
    ]:
        with pytest.raises(AttributeError, match=f"renamed anypool.{new}"):
            getattr(anypool, old)
