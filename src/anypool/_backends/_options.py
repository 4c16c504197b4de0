"""The one place a pool's options are checked against what its backend honours.

::

    Pool(backend, initializer=..., start_method=..., **backend_options)
        │ check_options(backend_class, backend_options, fields)   (before the backend is built)
        ├─ a per-worker field that is set, whose Capabilities flag is false ─► CapabilityError
        └─ a backend_options name not in backend_class.accepted_options ────► TypeError
        ▼
    backend_class(BackendConfig(...))          sees only options it declared it honours

Every backend goes through it, built-in or registered, so none can silently ignore an
option: the flags in :class:`~anypool.abc.Capabilities` are the only source of truth.
The values of a backend's own options (``address=`` a str...) stay the backend's to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors._exceptions import CapabilityError

if TYPE_CHECKING:
    from ..abc import Backend

__all__ = ["FIELD_FLAGS", "check_options"]

# BackendConfig field -> the Capabilities flag a backend needs to accept it when set.
FIELD_FLAGS = {
    "initializer": "runs_initializer",
    "start_method": "has_start_methods",
    "max_tasks_per_worker": "recycles_workers",
    "max_worker_memory": "limits_worker_memory",
    "thread_name_prefix": "names_threads",
}


def check_options(
    backend_class: type[Backend], options: Mapping[str, Any], fields: Mapping[str, Any]
) -> None:
    """Refuse what ``backend_class`` cannot honour: a set field of :data:`FIELD_FLAGS`
    (not None or "") whose flag is false, or an unknown backend option."""
    caps = backend_class.capabilities
    for field, flag in FIELD_FLAGS.items():
        if fields.get(field) not in (None, "") and not getattr(caps, flag):
            raise CapabilityError(
                f"the {backend_class.name!r} backend does not support {field}= "
                f"(its capabilities.{flag} is false)"
            )
    unknown = sorted(set(options) - backend_class.accepted_options)
    if unknown:
        accepted = ", ".join(sorted(backend_class.accepted_options)) or "none"
        hints = "".join(
            f"; for {name}= use {_STDLIB_NAMES[name]}=" for name in unknown if name in _STDLIB_NAMES
        )
        raise TypeError(
            f"unknown option(s) for the {backend_class.name!r} backend: "
            f"{', '.join(unknown)}; it accepts {accepted}{hints}"
        )


# The names users bring from concurrent.futures, multiprocessing and mpire, and Pool's own
# spelling of each (docs/api.md): a stdlib habit gets told where its option went.
_STDLIB_NAMES = {
    "max_workers": "workers",
    "processes": "workers",
    "n_jobs": "workers",
    "n_workers": "workers",
    "max_tasks_per_child": "max_tasks_per_worker",
    "maxtasksperchild": "max_tasks_per_worker",
    "max_task_per_child": "max_tasks_per_worker",
    "worker_lifespan": "max_tasks_per_worker",
    "task_timeout": "timeout",
}
