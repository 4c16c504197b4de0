"""Every ```python block in README.md runs as a script, as a reader would paste it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_python_examples():
    # guards against the parametrized test below passing vacuously
    assert python_blocks(), "README.md has no ```python blocks to run"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("index", range(len(python_blocks())), ids=lambda i: f"block{i + 1}")
def test_readme_block_runs(index, run_python, tmp_path):
    script = tmp_path / f"readme_block_{index + 1}.py"
    script.write_text(python_blocks()[index], encoding="utf-8")
    proc = run_python(str(script), cwd=REPO, timeout=60)
    assert proc.returncode == 0, f"README block {index + 1} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
