"""The work bench_payload.py runs. A real module (not ``__main__``), so that every library
can pickle these functions by reference under any start method."""

from __future__ import annotations

from typing import Any

ARRAY_ITEMS = 8 * 1024 * 1024  # float64: 64 MiB


def length(data: Any) -> int:
    return len(data)


def nbytes(array: Any) -> int:
    return int(array.nbytes)


def make_array(index: int) -> Any:
    import numpy

    return numpy.full(ARRAY_ITEMS, float(index))
