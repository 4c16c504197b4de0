"""Backend registry: names map to private modules imported only when first asked for.

Each module ends in ``backend_class = ...`` (anyio's convention). A backend whose
engine is missing raises :class:`~anypool.BackendUnavailable` naming the extra.
"""

from __future__ import annotations

import importlib
import importlib.util

from .._errors._exceptions import BackendUnavailable

# A spawned process worker imports this package on its way to ``_process._child``: keep
# the registry's own imports out of that path (abc, _runtime and typing cost it ~35 ms
# per start), so typing-only names are imported for the type checker alone.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..abc import Backend

__all__ = ["BACKENDS", "available_backends", "load_backend"]


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


def _module_exists(entry: _Entry) -> bool:
    return importlib.util.find_spec(entry.module, __name__) is not None


def available_backends() -> dict[str, bool]:
    """Every known backend name and whether it can be used here."""
    from .._runtime import engine_installed

    return {
        name: _module_exists(entry) and (entry.engine is None or engine_installed(entry.engine))
        for name, entry in BACKENDS.items()
    }


def load_backend(name: str) -> type[Backend]:
    """The backend class called ``name``; clear errors for unknown or uninstalled ones."""
    entry = BACKENDS.get(name)
    if entry is None or not _module_exists(entry):
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
