"""Quickstart: submit and map, the same code on threads, processes and inline.

Run it: ``python examples/basics_quickstart.py``
"""

from __future__ import annotations

import concurrent.futures as cf

import anypool


def square(x: int) -> int:
    return x * x


def check_positive(x: int) -> int:
    if x < 0:
        raise ValueError(f"{x} is negative")
    return x


def main() -> None:
    for backend in ("thread", "process", "inline"):
        with anypool.Pool(backend=backend, workers=2) as pool:
            future = pool.submit(square, 7)  # a plain concurrent.futures.Future
            assert isinstance(future, cf.Future)
            assert future.result() == 49

            squares = list(pool.map(square, range(10)))  # lazy; results in input order
            assert squares == [x * x for x in range(10)]

            sums = list(pool.map(pow, [2, 3, 4], [5, 2]))  # several iterables: zip, shortest wins
            assert sums == [32, 9]

            unordered = sorted(pool.map(square, range(10), ordered=False))  # completion order
            assert unordered == squares

            # a task's exception comes back as itself, raised when its item is reached
            try:
                list(pool.map(check_positive, [1, 2, -3, 4]))
            except ValueError as exc:
                error = exc
            assert str(error) == "-3 is negative"
            print(f"{backend:>7}: submit -> {future.result()}, map -> {squares[:5]}..., {error!r}")

    # lambdas and closures travel to worker processes too (cloudpickle)
    offset = 100
    with anypool.Pool(backend="process", workers=2) as pool:
        shifted = list(pool.map(lambda x: x + offset, range(3)))
    assert shifted == [100, 101, 102]
    print(f"process: a closure over offset={offset} -> {shifted}")


if __name__ == "__main__":
    main()
