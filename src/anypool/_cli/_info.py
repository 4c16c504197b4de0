"""What ``anypool info`` reports: a frozen snapshot of the interpreter, the machine and extras.

Nothing here imports an optional engine: package versions come from
:mod:`importlib.metadata` and backend availability from import specs, so the
snapshot is cheap and cannot be broken by a half-installed Dask or Ray.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

from .. import _runtime
from .._backends import BACKENDS, available_backends

__all__ = ["OPTIONAL_PACKAGES", "RuntimeInfo", "collect_info"]

# Distributions worth a version line: the hard dependencies, then the optional extras.
OPTIONAL_PACKAGES = ("cloudpickle", "psutil", "tqdm", "matplotlib", "dask", "distributed", "ray")


@dataclass(frozen=True)
class RuntimeInfo:
    """The interpreter, CPUs and installed backends, as ``anypool info`` shows them."""

    anypool_version: str
    python_version: str
    implementation: str
    build: str
    platform: str
    free_threaded_build: bool
    gil_enabled: bool
    usable_cpus: int
    os_cpu_count: int | None
    affinity_cpus: int | None
    cgroup_cpu_limit: float | None
    default_start_method: str
    backends: dict[str, bool]
    backend_extras: dict[str, str]
    packages: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _affinity_cpus() -> int | None:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return None


def _version_of(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def collect_info() -> RuntimeInfo:
    """Snapshot this interpreter and machine; imports no optional engine."""
    from .._version import __version__

    return RuntimeInfo(
        anypool_version=__version__,
        python_version=platform.python_version(),
        implementation=platform.python_implementation(),
        build=sys.version.replace("\n", " "),
        platform=platform.platform(terse=True),
        free_threaded_build=_runtime.free_threaded_build(),
        gil_enabled=_runtime.gil_enabled(),
        usable_cpus=_runtime.usable_cpus(),
        os_cpu_count=os.cpu_count(),
        affinity_cpus=_affinity_cpus(),
        cgroup_cpu_limit=_runtime._cgroup_cpu_limit(),
        default_start_method=_runtime.default_start_method(),
        backends=available_backends(),
        backend_extras={name: e.extra for name, e in BACKENDS.items() if e.extra is not None},
        packages={name: _version_of(name) for name in OPTIONAL_PACKAGES},
    )
