"""Coordination primitives (locks, events, queues, values...) per backend family.

- ``_base``: the Protocols every family's objects satisfy, the thread family, and the
  argument checks all families share;
- ``_process``: native semaphores and manager proxies that work between worker processes;
- ``_dask``: Dask's distributed primitives.

``primitives_for`` picks the family a backend's workers can share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors._exceptions import CapabilityError
from ._base import Primitives, ThreadPrimitives

if TYPE_CHECKING:
    from ..abc import Backend

__all__ = ["primitives_for"]


def primitives_for(backend: Backend) -> Primitives:
    """The primitives that work between this backend's workers, chosen by capability flags."""
    made: Primitives | None = backend.primitives()  # None: the family its flags imply
    if made is not None:
        return made
    caps = backend.capabilities
    if caps.shares_memory:
        return ThreadPrimitives()
    if caps.needs_pickling and not caps.remote:
        from ._process import ProcessPrimitives

        return ProcessPrimitives(backend.config.start_method)
    raise CapabilityError(f"the {backend.name!r} backend has no coordination primitives")
