"""Polling for a condition in tests, with a deadline (one helper for every test module).

Importable as ``polling`` from any test: the root conftest's folder is on ``sys.path``
(pytest's default "prepend" import mode).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> bool:
    """True as soon as ``predicate()`` is true; False if it is still false after
    ``timeout`` seconds (checked once more at the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
