"""The one fixture the contract suite hangs on: ``backend``, parametrized over every backend.

Every test in ``tests/contract/`` that takes ``backend`` runs once per backend
(anyio's pattern), so a new backend gets the whole suite by being listed here.

- The built-in local backends: ``thread``, ``process``, ``inline``.
- More come from the environment, comma-separated, so the cluster engineer can
  run this suite unchanged against Dask or Ray::

      ANYPOOL_EXTRA_BACKENDS=dask,ray pytest tests/contract

A backend that cannot be used here is *skipped* with the reason only when
nobody asked for it; a backend named in ``ANYPOOL_EXTRA_BACKENDS`` that turns out
to be unavailable *fails*, because a silent skip would hide exactly the breakage
the run was meant to catch.
"""

from __future__ import annotations

import os

import pytest

from anypool._backends import BACKENDS, available_backends

BUILTIN_BACKENDS = ["thread", "process", "inline"]
EXTRA_ENV = "ANYPOOL_EXTRA_BACKENDS"


def _requested() -> list[str]:
    names = [name.strip() for name in os.environ.get(EXTRA_ENV, "").split(",")]
    return [name for name in names if name]


def _all_backends() -> list[str]:
    return BUILTIN_BACKENDS + [n for n in dict.fromkeys(_requested()) if n not in BUILTIN_BACKENDS]


@pytest.fixture(params=_all_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """A backend name; pools are made with ``make_pool(backend, workers)``."""
    name: str = request.param
    if available_backends().get(name, False):
        return name
    if name not in BACKENDS:
        why = f"{name!r} is not a known backend (known: {', '.join(BACKENDS)})"
    else:
        why = f"the {name!r} backend is not available here (its module or engine is missing)"
    if name in _requested():
        pytest.fail(f"{why}, but {EXTRA_ENV} asked for it")
    pytest.skip(why)
