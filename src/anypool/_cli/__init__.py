"""The ``anypool`` command (``anypool bench``, ``anypool info``).

- ``_main``: argument parsing and dispatch;
- ``_bench``: the bench experiment, ``_verdict``: its conclusion, ``_plot``: its chart;
- ``_info``: the runtime snapshot ``anypool info`` prints; ``_format``: text output.
"""

from __future__ import annotations

from ._main import main as main

__all__ = ["main"]
