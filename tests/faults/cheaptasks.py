"""Tasks in a module that costs nothing to import: a fresh worker runs its first task at
once instead of spending tens of milliseconds importing (see the exactly-once test)."""

from __future__ import annotations

import os


def square(x: int) -> int:
    return x * x


def getpid(_: object = None) -> int:
    return os.getpid()
