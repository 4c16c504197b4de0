"""Backend registry: names map to backend classes, each imported only when first asked for.

::

    built-in names (BACKENDS) ─► private module, ``backend_class = ...`` (anyio's convention)
    register_backend(name, cls) ─► _REGISTERED[name] = cls            (checked at once)
    entry points, group "anypool.backends" ─► loaded on first use of their name, checked,
                                              then registered (importlib.metadata is read
                                              once, lazily: never at ``import anypool``)

A backend whose engine is missing raises :class:`~anypool.BackendUnavailable` naming the
extra. ``"auto"`` is not in the registry: it is the router over it (``anypool._auto``).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading

from .._errors._exceptions import BackendUnavailable

# A spawned process worker imports this package on its way to ``_process._child``: keep
# the registry's own imports out of that path (abc, _runtime and typing cost it ~35 ms
# per start), so typing-only names are imported for the type checker alone.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ..abc import Backend

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "available_backends",
    "is_available",
    "load_backend",
    "register_backend",
]

ENTRY_POINT_GROUP = "anypool.backends"


class _Entry:
    __slots__ = ("engine", "extra", "module")

    def __init__(self, module: str, engine: str | None, extra: str | None) -> None:
        self.module = module
        self.engine = engine  # importable module the backend needs, None for stdlib-only
        self.extra = extra  # pip extra that installs the engine


BACKENDS: dict[str, _Entry] = {
    "thread": _Entry("._thread", None, None),
    "process": _Entry("._process._dispatcher", None, None),
    "inline": _Entry("._inline", None, None),
    "asyncio": _Entry("._asyncio", None, None),
    "dask": _Entry("._dask", "distributed", "dask"),
    "ray": _Entry("._ray", "ray", "ray"),
}


_lock = threading.Lock()
_REGISTERED: dict[str, type[Backend]] = {}  # register_backend() and loaded entry points
_entry_points: dict[str, EntryPoint] | None = None  # read on first need


def register_backend(name: str, cls: type[Backend]) -> None:
    """Make ``Pool(backend=name)`` build ``cls``: a subclass of :class:`anypool.abc.Backend`
    whose ``name`` is ``name`` and whose ``capabilities`` are declared. It then shows in
    ``available_backends()`` and ``anypool info``; ``backend="auto"`` keeps choosing among
    its built-in candidates only. A name already taken, built-in or registered, is refused.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"a backend name must be a non-empty str without spaces, got {name!r}")
    _check_class(name, cls)
    with _lock:
        if name in BACKENDS or name in _REGISTERED or name == "auto":
            taken = _REGISTERED.get(name)
            by = f"by {taken.__module__}.{taken.__qualname__}" if taken else "by a built-in backend"
            raise ValueError(f"the backend name {name!r} is already taken ({by})")
        _REGISTERED[name] = cls


def _check_class(name: str, cls: object) -> None:
    from ..abc import Backend, Capabilities

    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"backend {name!r}: {cls!r} is not a subclass of anypool.abc.Backend")
    capabilities = getattr(cls, "capabilities", None)
    if not isinstance(capabilities, Capabilities):
        raise TypeError(
            f"backend {name!r}: {cls.__qualname__} must declare capabilities = "
            f"anypool.abc.Capabilities(...), got {capabilities!r}"
        )
    if getattr(cls, "name", None) != name:
        raise ValueError(
            f"backend {name!r}: {cls.__qualname__}.name must be {name!r}, "
            f"got {getattr(cls, 'name', None)!r}"
        )
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise TypeError(f"backend {name!r}: {cls.__qualname__} does not implement {missing}")


def _plugins() -> dict[str, EntryPoint]:
    """The ``anypool.backends`` entry points installed, by name; read once. One whose name
    is taken by a built-in backend is left out, with a warning."""
    global _entry_points
    if _entry_points is None:
        from importlib.metadata import entry_points

        found: dict[str, EntryPoint] = {}
        for point in entry_points(group=ENTRY_POINT_GROUP):
            if point.name in BACKENDS or point.name == "auto":
                import warnings

                warnings.warn(
                    f"the {ENTRY_POINT_GROUP!r} entry point {point.name!r} ({point.value}) "
                    "is ignored: a built-in backend has that name",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            found.setdefault(point.name, point)
        _entry_points = found
    return _entry_points


def _load_plugin(name: str) -> type[Backend] | None:
    """The class behind entry point ``name``, loaded, checked and registered; None if no
    entry point has that name."""
    point = _plugins().get(name)
    if point is None:
        return None
    try:
        cls = point.load()
    except ImportError as exc:
        raise BackendUnavailable(
            f"the {name!r} backend ({ENTRY_POINT_GROUP} entry point {point.value}) "
            f"cannot be imported: {exc}"
        ) from exc
    _check_class(name, cls)
    with _lock:
        loaded: type[Backend] = _REGISTERED.setdefault(name, cls)
    return loaded


def _module_exists(entry: _Entry) -> bool:
    return importlib.util.find_spec(entry.module, __name__) is not None


def available_backends() -> dict[str, bool]:
    """Every known backend name and whether it can be used here: the built-in ones, then
    those registered or installed as entry points (listed without importing them)."""
    from .._runtime import engine_installed

    found = {
        name: _module_exists(entry) and (entry.engine is None or engine_installed(entry.engine))
        for name, entry in BACKENDS.items()
    }
    found.update(dict.fromkeys(_REGISTERED, True))
    found.update({name: True for name in _plugins() if name not in found})
    return found


def is_available(name: str) -> bool:
    """Whether the built-in backend ``name`` can be used here, without reading entry
    points (``backend="auto"`` checks its candidates with this on every pool)."""
    from .._runtime import engine_installed

    entry = BACKENDS.get(name)
    if entry is None:
        return False
    return _module_exists(entry) and (entry.engine is None or engine_installed(entry.engine))


def load_backend(name: str) -> type[Backend]:
    """The backend class called ``name``; clear errors for unknown or uninstalled ones."""
    if not isinstance(name, str):
        raise TypeError(
            f"backend must be a backend's name, got {name!r}; a Backend class is used by "
            "name once registered: anypool.register_backend(name, cls)"
        )
    entry = BACKENDS.get(name)
    if entry is None or not _module_exists(entry):
        found = _REGISTERED.get(name) or _load_plugin(name)
        if found is not None:
            return found
        known = ", ".join(repr(n) for n, ok in available_backends().items() if ok)
        raise ValueError(f"unknown backend {name!r}; available backends: {known}, 'auto'")
    from .._runtime import engine_installed

    if entry.engine is not None and not engine_installed(entry.engine):
        raise BackendUnavailable(
            f"the {name!r} backend needs {entry.engine!r}, which is not installed; "
            f"install it with: pip install 'anypool[{entry.extra}]'"
        )
    module = importlib.import_module(entry.module, __name__)
    backend_class: type[Backend] = module.backend_class
    return backend_class
