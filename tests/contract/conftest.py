"""The one fixture the contract suite hangs on: ``backend``, parametrized over every backend.

Every test in ``tests/contract/`` that takes ``backend`` runs once per backend
(anyio's pattern), so a backend gets the whole suite by being in the registry.

- Every registered backend that needs no extra engine: the built-in local ones
  (``thread``, ``process``, ``inline``, ``asyncio``), those registered with
  :func:`anypool.register_backend` or an entry point, and ``auto``. This includes
  ``thirdparty``, a backend written against ``anypool.abc`` alone
  (``thirdparty_backend.py``), registered here.
- Backends whose engine is an extra (Dask, Ray) come from the environment,
  comma-separated, so the cluster engineer can run this suite unchanged against them::

      ANYPOOL_EXTRA_BACKENDS=dask,ray pytest tests/contract

A backend that cannot be used here is *skipped* with the reason only when
nobody asked for it; a backend named in ``ANYPOOL_EXTRA_BACKENDS`` that turns out
to be unavailable *fails*, because a silent skip would hide exactly the breakage
the run was meant to catch.
"""

from __future__ import annotations

import os

import pytest

import anypool
from anypool._backends import BACKENDS, available_backends

from .thirdparty_backend import NAME as THIRDPARTY
from .thirdparty_backend import ThirdPartyBackend

EXTRA_ENV = "ANYPOOL_EXTRA_BACKENDS"

if THIRDPARTY not in available_backends():  # conftest may be imported again (pytest -p)
    anypool.register_backend(THIRDPARTY, ThirdPartyBackend)


def _requested() -> list[str]:
    names = [name.strip() for name in os.environ.get(EXTRA_ENV, "").split(",")]
    return [name for name in names if name]


def _needs_extra(name: str) -> bool:
    entry = BACKENDS.get(name)
    return entry is not None and entry.extra is not None


def _all_backends() -> list[str]:
    """The registry's backends (those needing an extra only when asked for), then auto."""
    registered = [name for name in available_backends() if not _needs_extra(name)]
    requested = [n for n in dict.fromkeys(_requested()) if n not in registered]
    return [*registered, "auto", *(n for n in requested if n != "auto")]


@pytest.fixture(params=_all_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """A backend name; pools are made with ``make_pool(backend, workers)``."""
    name: str = request.param
    if name == "auto" or available_backends().get(name, False):
        return name
    if name not in BACKENDS:
        why = f"{name!r} is not a known backend (known: {', '.join(available_backends())})"
    else:
        why = f"the {name!r} backend is not available here (its module or engine is missing)"
    if name in _requested():
        pytest.fail(f"{why}, but {EXTRA_ENV} asked for it")
    pytest.skip(why)
