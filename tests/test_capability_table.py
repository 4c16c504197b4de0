"""docs/laptop-to-cluster.md's capability table is generated from the backends' flags.

Regenerate it with ``python tests/test_capability_table.py`` and paste the output between
the markers; this test fails whenever the page and the code disagree.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from anypool._backends import BACKENDS, available_backends, load_backend
from anypool.abc import Capabilities

DOC = Path(__file__).parent.parent / "docs" / "laptop-to-cluster.md"
START, END = "<!-- capability-table:start -->", "<!-- capability-table:end -->"


def render_table() -> str:
    names = list(BACKENDS)
    flags = [f.name for f in dataclasses.fields(Capabilities)]
    lines = [
        "| capability | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    caps = {name: load_backend(name).capabilities for name in names}
    for flag in flags:
        cells = ["yes" if getattr(caps[n], flag) else "no" for n in names]
        lines.append(f"| `{flag}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_docs_table_matches_the_capability_flags() -> None:
    missing = [name for name, ok in available_backends().items() if not ok]
    if missing:
        pytest.skip(f"backends not installed here, table cannot be checked: {missing}")
    text = DOC.read_text()
    table = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == render_table(), "regenerate with: python tests/test_capability_table.py"


if __name__ == "__main__":
    sys.stdout.write(render_table() + "\n")
