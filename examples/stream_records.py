"""pool.stream(): a worker reads a large file and yields its records as it goes.

The caller gets the records while the worker is still reading, with at most
``buffer`` records in flight: the worker pauses when the caller falls behind, so
memory stays flat however big the file is. Stopping early (``break``) stops the
generator in the worker, where its ``finally`` runs.

    python examples/stream_records.py
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Iterator

import anypool


def write_log(path: str, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            level = "ERROR" if i % 97 == 0 else "INFO"
            f.write(json.dumps({"id": i, "level": level, "msg": f"event {i}"}) + "\n")


def read_records(path: str, level: str) -> Iterator[dict[str, object]]:
    """Runs in a worker process: parses the file line by line, yields what matches."""
    with open(path, encoding="utf-8") as f:  # closed even when the caller stops early
        for line in f:
            record = json.loads(line)
            if record["level"] == level:
                yield record


async def first_errors(pool: anypool.Pool, path: str, n: int) -> list[object]:
    found = []
    async for record in pool.stream(read_records, path, "ERROR"):
        found.append(record["id"])
        if len(found) == n:
            break  # the worker's generator gets GeneratorExit and closes the file
    return found


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "app.log")
        write_log(path, 200_000)
        with anypool.Pool("process", workers=2) as pool:
            # every ERROR record, as the worker finds them, at most 256 in flight
            errors = pool.stream(read_records, path, "ERROR", buffer=256)
            count = sum(1 for _ in errors)
            print(f"{count} ERROR records streamed from a 200,000-line file")
            assert count == len(range(0, 200_000, 97))
            assert errors.future.result() == count  # the task's outcome: items produced

            # stop early: only the first three
            ids = asyncio.run(first_errors(pool, path, 3))
            print(f"the first three, with async for: {ids}")
            assert ids == [0, 97, 194]


if __name__ == "__main__":
    main()
