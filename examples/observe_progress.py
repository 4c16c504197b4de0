"""map(progress=True): a tqdm bar that counts items, also when they travel in chunks.

The bar is silent when the output is not a terminal (a log file, CI), unless you
pass where it should go: ``progress={"file": sys.stderr}``. Here it is written to
a string so that the example can check what it showed.

    python examples/observe_progress.py          # needs: pip install 'anypool[progress]'
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import anypool


def square(x: int) -> int:
    return x * x


def numbers(n: int) -> Iterator[int]:  # no length: the bar counts up without a total
    yield from range(n)


def main() -> None:
    shown = io.StringIO()
    with anypool.Pool("process", 2) as pool:
        # 1000 items in chunks of 50: the bar still moves item by item
        options = {"file": shown, "desc": "squares", "mininterval": 0}
        total = sum(pool.map(square, range(1000), chunksize=50, progress=options))
    assert total == sum(x * x for x in range(1000))
    final = shown.getvalue().split("\r")[-1].strip()
    print(final)
    assert re.search(r"squares: 100%.*1000/1000", final), final

    shown = io.StringIO()
    results = list(anypool.map(square, numbers(300), backend="thread", progress={"file": shown}))
    final = shown.getvalue().split("\r")[-1].strip()
    print(final)
    assert len(results) == 300
    assert final.startswith("300item"), final
    print("ok")


if __name__ == "__main__":
    main()
