"""The backend registry and the closed backend contract (issue #11).

- ``anypool.register_backend`` and the ``anypool.backends`` entry-point group: a third
  party's backend works in ``Pool(backend=...)``, ``available_backends()`` and
  ``anypool info``, with clear errors for a bad registration;
- the options every backend receives are checked in one place from its capability
  flags: an option it cannot honour raises CapabilityError, an unknown one TypeError.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool import _backends
from anypool._backends._options import FIELD_FLAGS
from anypool._scheduler._select import AUTO_CANDIDATES
from anypool.abc import Backend, Capabilities


def _load_thirdparty() -> Any:
    """tests/contract/thirdparty_backend.py, importable (by plugins too) under one name."""
    path = Path(__file__).parent.parent / "contract" / "thirdparty_backend.py"
    spec = importlib.util.spec_from_file_location("anypool_test_thirdparty", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ThirdPartyBackend = _load_thirdparty().ThirdPartyBackend
LOCAL = [name for name in _backends.BACKENDS if _backends.BACKENDS[name].extra is None]
# A value for each per-worker option that a backend honouring it would accept.
PER_WORKER = {
    "initializer": print,
    "start_method": "spawn",
    "max_tasks_per_worker": 3,
    "max_worker_memory": 2**30,
    "thread_name_prefix": "named",
}


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry of this test's own: registrations and entry points read are undone."""
    monkeypatch.setattr(_backends, "_REGISTERED", dict(_backends._REGISTERED))
    monkeypatch.setattr(_backends, "_entry_points", None)


def _subclass(name: str, **attrs: Any) -> type[Backend]:
    return type(f"Backend_{name}", (ThirdPartyBackend,), {"name": name, **attrs})


# -- register_backend -----------------------------------------------------------------------
@pytest.mark.usefixtures("registry")
def test_a_registered_backend_runs_pools_and_is_listed(make_pool: Any) -> None:
    anypool.register_backend("mine", _subclass("mine"))
    assert _backends.available_backends()["mine"] is True
    pool = make_pool("mine", 2)
    assert pool.backend == "mine"
    assert pool.submit(pow, 2, 5).result(timeout=10) == 32
    assert list(pool.map(abs, [-1, -2, -3])) == [1, 2, 3]
    assert pool.explain().backend == "mine"
    with pytest.raises(ValueError, match=r"unknown backend 'nope'.*'mine'"):
        anypool.Pool("nope")


def test_a_class_instead_of_a_name_says_how_to_register_it() -> None:
    with pytest.raises(TypeError, match=r"register_backend\(name, cls\)"):
        anypool.Pool(ThirdPartyBackend)


@pytest.mark.usefixtures("registry")
def test_auto_keeps_its_built_in_candidates() -> None:
    from anypool._auto._router import take_snapshot

    anypool.register_backend("mine", _subclass("mine"))
    names = [c.name for c in take_snapshot().candidates]
    assert names
    assert set(names) <= set(AUTO_CANDIDATES)


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize("name", ["thread", "process", "auto"])
def test_a_taken_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"backend name '{name}' is already taken"):
        anypool.register_backend(name, _subclass(name))


@pytest.mark.usefixtures("registry")
def test_registering_a_name_twice_is_refused() -> None:
    anypool.register_backend("mine", _subclass("mine"))
    with pytest.raises(ValueError, match=r"'mine' is already taken \(by .*Backend_mine\)"):
        anypool.register_backend("mine", _subclass("mine"))


class NotABackend:
    name = "plain"
    capabilities = ThirdPartyBackend.capabilities


class Abstract(Backend):
    name = "abstract"
    capabilities = ThirdPartyBackend.capabilities


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize(
    ("name", "cls", "error", "match"),
    [
        ("plain", NotABackend, TypeError, "not a subclass of anypool.abc.Backend"),
        ("plain", ThirdPartyBackend(anypool.abc.BackendConfig(1)), TypeError, "not a subclass"),
        ("bare", _subclass("bare", capabilities=None), TypeError, "must declare capabilities"),
        ("dict", _subclass("dict", capabilities={}), TypeError, "must declare capabilities"),
        ("other", _subclass("mine"), ValueError, r"\.name must be 'other', got 'mine'"),
        ("abstract", Abstract, TypeError, r"does not implement \['shutdown', 'submit'"),
        ("", _subclass(""), ValueError, "non-empty str"),
        (" x", _subclass(" x"), ValueError, "without spaces"),
    ],
    ids=["class", "instance", "no-caps", "dict-caps", "name", "abstract", "empty", "space"],
)
def test_a_bad_registration_is_refused_clearly(
    name: str, cls: Any, error: type[Exception], match: str
) -> None:
    try:
        with pytest.raises(error, match=match):
            anypool.register_backend(name, cls)
        assert name not in _backends.available_backends()
    finally:
        if isinstance(cls, ThirdPartyBackend):
            cls.shutdown(wait=True, cancel_pending=True, kill_running=False)


# -- entry points ---------------------------------------------------------------------------
def _install_plugin(root: Path, name: str, target: str, body: str) -> None:
    """A distribution installed in ``root`` (a sys.path entry) declaring one entry point in
    the ``anypool.backends`` group: what ``pip install`` of a plugin leaves behind."""
    module = target.split(":")[0]
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[anypool.backends]\n{name} = {target}\n")


PLUGIN = """
    from anypool_test_thirdparty import ThirdPartyBackend

    class PluginBackend(ThirdPartyBackend):
        name = "plugged"
"""


@pytest.mark.usefixtures("registry")
def test_an_entry_point_backend_is_found_and_loaded_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_pool: Any
) -> None:
    _install_plugin(tmp_path, "plugged", "anypool_demo_plugin:PluginBackend", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _backends.available_backends()["plugged"] is True
    assert "anypool_demo_plugin" not in sys.modules  # listed without importing it
    pool = make_pool("plugged", 1)
    assert pool.submit(abs, -4).result(timeout=10) == 4
    assert type(pool._backend).__module__ == "anypool_demo_plugin"
    with pytest.raises(ValueError, match="already taken"):
        anypool.register_backend("plugged", _subclass("plugged"))
    monkeypatch.delitem(sys.modules, "anypool_demo_plugin")


@pytest.mark.usefixtures("registry")
def test_a_broken_entry_point_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(tmp_path, "broken", "anypool_broken_plugin:Missing", "import no_such_mod\n")
    _install_plugin(tmp_path, "wrong", "anypool_wrong_plugin:Wrong", "class Wrong: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(anypool.BackendUnavailable, match=r"'broken'.*no_such_mod"):
        anypool.Pool("broken")
    with pytest.raises(TypeError, match=r"backend 'wrong'.*not a subclass"):
        anypool.Pool("wrong")


@pytest.mark.usefixtures("registry")
def test_an_entry_point_may_not_shadow_a_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_plugin(tmp_path, "thread", "anypool_shadow_plugin:X", "X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="entry point 'thread'.*ignored"):
        names = _backends.available_backends()
    assert _backends.load_backend("thread").__module__ == "anypool._backends._thread"
    assert list(names).count("thread") == 1


def test_anypool_info_lists_entry_point_backends_and_import_reads_none(tmp_path: Path) -> None:
    _install_plugin(tmp_path, "plugged", "anypool_demo_plugin:PluginBackend", PLUGIN)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # listing does not import the plugin
    info = subprocess.run(
        [sys.executable, "-m", "anypool", "info"], capture_output=True, text=True, env=env
    )
    assert info.returncode == 0, info.stderr
    backends = next(line for line in info.stdout.splitlines() if line.startswith("Backends:"))
    assert "plugged" in backends
    code = "import sys, anypool; print('importlib.metadata' in sys.modules)"
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert light.stdout.strip() == "False", light.stderr


# -- options checked from the capability flags ------------------------------------------------
def _refused(name: str) -> list[str]:
    caps = _backends.load_backend(name).capabilities if name != "auto" else None
    if caps is None:
        from anypool._auto._router import AutoBackend

        caps = AutoBackend.capabilities
    return [field for field, flag in FIELD_FLAGS.items() if not getattr(caps, flag)]


@pytest.mark.parametrize("name", [*LOCAL, "auto"])
def test_an_option_a_backend_cannot_honour_is_refused(name: str) -> None:
    refused = _refused(name)
    for field in refused:
        with pytest.raises(anypool.CapabilityError, match=f"'{name}' backend.*{field}="):
            anypool.Pool(name, 1, **{field: PER_WORKER[field]})
    if name in ("thread", "inline", "asyncio"):  # issue #11: these ignored them before
        assert {"start_method", "max_tasks_per_worker", "max_worker_memory"} <= set(refused)


@pytest.mark.parametrize("name", [*LOCAL, "auto"])
def test_an_unknown_backend_option_is_a_type_error_naming_it(name: str) -> None:
    with pytest.raises(TypeError, match=f"unknown option.*'{name}' backend: colour"):
        anypool.Pool(name, 1, colour="blue")


def test_the_honoured_options_reach_the_backend(make_pool: Any) -> None:
    make_pool("asyncio", 1, thread_name_prefix="loop-of-mine")
    assert "loop-of-mine" in {t.name for t in threading.enumerate()}


def test_auto_accepts_what_its_candidates_accept() -> None:
    """Auto passes the options on to the backend it picks: it accepts their union."""
    from anypool._auto._router import AutoBackend

    candidates = [_backends.load_backend(name) for name in AUTO_CANDIDATES]
    assert AutoBackend.accepted_options == frozenset().union(
        *(c.accepted_options for c in candidates)
    )
    for flag in FIELD_FLAGS.values():
        assert getattr(AutoBackend.capabilities, flag) == any(
            getattr(c.capabilities, flag) for c in candidates
        ), flag


def test_new_flags_default_to_refusing() -> None:
    """A backend that says nothing about a per-worker option does not get it."""
    minimal = Capabilities(
        kills_running_tasks=False,
        shares_memory=True,
        needs_pickling=False,
        isolates_crashes=False,
        parallel_cpu=False,
    )
    defaults = dataclasses.asdict(minimal)
    assert not any(defaults[flag] for flag in FIELD_FLAGS.values())
