"""``backend="auto"``: a router over the backend registry, not a backend inside it.

- ``_measure``: runs sample tasks and measures them (CPU share, GIL, payload size);
- ``_router``: ``AutoBackend``, which queues tasks while a probe decides, then forwards
  each function's tasks to the backend chosen for it.

``load_backend`` is the one place a backend name becomes a class: the registry's
names, plus ``"auto"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._backends import load_backend as _load_registered
from ._router import steer_options as steer_options

if TYPE_CHECKING:
    from ..abc import Backend

__all__ = ["load_backend", "steer_options"]


def load_backend(name: str) -> type[Backend]:
    """The backend class called ``name``: ``"auto"`` or one in the registry."""
    if name == "auto":
        from ._router import AutoBackend

        return AutoBackend
    return _load_registered(name)
