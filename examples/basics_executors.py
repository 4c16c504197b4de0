"""Drop-in executors: code written for concurrent.futures runs unchanged on anypool.

The same function is run with the stdlib's classes and with anypool's, and must
give the same answers.

Run it: ``python examples/basics_executors.py``
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import Any

import anypool


def cube(x: int) -> int:
    return x**3


def stdlib_style_code(executor_class: Any) -> dict[str, Any]:
    """Ordinary concurrent.futures code, parametrized only by the executor class."""
    out: dict[str, Any] = {}
    with executor_class(max_workers=2) as executor:
        futures = {executor.submit(cube, n): n for n in range(5)}
        out["as_completed"] = sorted((futures[f], f.result()) for f in cf.as_completed(futures))
        out["map"] = list(executor.map(cube, range(6), chunksize=2))
        try:
            list(executor.map(time.sleep, [0.5], timeout=0.05))
        except cf.TimeoutError:
            out["timeout"] = "TimeoutError"
        try:
            executor.submit(divmod, 1, 0).result()
        except ZeroDivisionError as exc:
            out["error"] = type(exc).__name__
    try:
        executor.submit(cube, 1)
    except RuntimeError:
        out["after shutdown"] = "RuntimeError"
    return out


def main() -> None:
    pairs = [
        (cf.ThreadPoolExecutor, anypool.ThreadPoolExecutor),
        (cf.ProcessPoolExecutor, anypool.ProcessPoolExecutor),
    ]
    for stdlib_class, anypool_class in pairs:
        expected = stdlib_style_code(stdlib_class)
        got = stdlib_style_code(anypool_class)
        assert got == expected, (got, expected)
        assert issubclass(anypool_class, cf.Executor)
        print(f"anypool.{anypool_class.__name__} behaves like the stdlib's: {got}")


if __name__ == "__main__":
    main()
