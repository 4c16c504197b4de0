"""``python -m anypool``: the same command as ``anypool``."""

from __future__ import annotations

# Guarded: spawn/forkserver workers may import the parent's __main__ module, and
# must not run the command again when they do.
if __name__ == "__main__":
    from ._cli._main import main

    raise SystemExit(main())
