"""Tasks in a module that costs nothing to import: a fresh worker runs its first task at
once instead of spending tens of milliseconds importing (see the exactly-once test)."""

from __future__ import annotations

import os
import time


def square(x: int) -> int:
    return x * x


def getpid(_: object = None) -> int:
    return os.getpid()


def square_after_a_moment(x: int) -> int:
    """Takes 1 ms, so 5000 calls on 2 workers take seconds: time for the killer to act."""
    time.sleep(0.001)
    return x * x
