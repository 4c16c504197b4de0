"""Every ```python block in docs/ (migration guides included) runs as a script, as pasted.

A reader copies a block into a file and runs it, so each block is a whole program: its
imports, stand-in functions, and the ``if __name__ == "__main__":`` guard that process
workers need. Each runs here in a fresh interpreter, in an empty directory.

Two kinds of block are not run as they are, and both say so where the reader sees them:

* a block whose fence reads ```` ```python norun ```` (code of a library anypool's tests do
  not install, shown for comparison) must open with a ``# Not run`` comment saying why;
* a block that imports one of the peer libraries of the migration guides runs only where
  that library is installed (they are not in the ``test`` extra).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([*(REPO / "docs").glob("*.md"), *(REPO / "docs" / "migration").glob("*.md")])
_FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
# The migration guides' "before" halves use these; pip install them to run those blocks too.
PEERS = ("joblib", "pebble", "mpire", "vthread", "threadpool")
_PEER_IMPORT = re.compile(rf"^\s*(?:import|from)\s+({'|'.join(PEERS)})\b", re.MULTILINE)
# Blocks of pages this suite does not own that cannot run as pasted, with the reason.
# A test below fails when an entry no longer matches, so the list cannot go stale.
NOT_RUNNABLE: dict[tuple[str, int], str] = {}


def _name(page: Path) -> str:
    return page.relative_to(REPO / "docs").as_posix()


def fenced_blocks(page: Path) -> list[tuple[str, str]]:
    """(info after ``python``, code) of every python block of ``page``, in order."""
    return [(info.strip(), code) for info, code in _FENCE.findall(page.read_text("utf-8"))]


def runnable_blocks() -> list[tuple[str, int, str]]:
    out = []
    for page in DOCS:
        for index, (info, code) in enumerate(fenced_blocks(page), 1):
            if info != "norun" and (_name(page), index) not in NOT_RUNNABLE:
                out.append((_name(page), index, code))
    return out


def test_docs_have_python_blocks_to_run():
    # guards against the parametrized test below passing vacuously
    pages = {page for page, _, _ in runnable_blocks()}
    assert {"coordination.md", "observability.md"} <= pages
    assert any(page.startswith("migration/") for page in pages)


def test_every_not_run_block_says_why():
    for page in DOCS:
        for index, (info, code) in enumerate(fenced_blocks(page), 1):
            assert info in ("", "norun"), f"{_name(page)} block {index}: unknown fence {info!r}"
            if info == "norun":
                first = code.lstrip().splitlines()[0]
                assert first.startswith("# Not run"), f"{_name(page)} block {index}: {first!r}"


def test_known_unrunnable_blocks_are_still_there():
    for (page, index), _reason in NOT_RUNNABLE.items():
        blocks = fenced_blocks(REPO / "docs" / page)
        assert len(blocks) >= index, f"{page} has no block {index}: drop it from NOT_RUNNABLE"
        assert blocks[index - 1][0] == "", f"{page} block {index} is marked now: drop the entry"


def test_migration_guides_links_resolve():
    checked = 0
    for page in (REPO / "docs" / "migration").glob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text("utf-8")):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{_name(page)} links {target}"
                checked += 1
    assert checked >= 16  # each guide links its example; the index links every guide


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("page", "index", "code"),
    runnable_blocks(),
    ids=[f"{page}:block{index}" for page, index, _ in runnable_blocks()],
)
def test_docs_block_runs(page, index, code, run_python, tmp_path):
    missing = [m for m in _PEER_IMPORT.findall(code) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"shows {missing[0]}, which is not installed (pip install {missing[0]})")
    script = tmp_path / f"block_{index}.py"
    script.write_text(code, encoding="utf-8")
    proc = run_python(str(script), cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, f"{page} block {index} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
