"""The README's command reference is generated from --help; it must not drift from the real help text.

Fix a failure by running `python scripts/gen_cli_reference.py` and committing README.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_cli_reference.py"


def test_readme_command_reference_matches_help():
    if not SCRIPT.exists():  # an sdist without scripts/
        pytest.skip("scripts/gen_cli_reference.py is not here")
    # a fresh interpreter: the order of commands in `flopcast --help` is their registration order
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_reference_block_has_every_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index("<!-- cli-reference:start"), readme.index("<!-- cli-reference:end -->")
    block = readme[start:end]
    for name in ("estimate", "compare", "plan", "size", "serve", "validate", "bench", "report", "schema",
                 "hardware list", "hardware show", "models list", "models show"):  # fmt: skip
        assert f"<code>flopcast {name}</code>" in block, name
    assert "```text\nUsage: flopcast estimate [OPTIONS]" in block


def test_check_fails_on_a_stale_reference(tmp_path):
    if not SCRIPT.exists():
        pytest.skip("scripts/gen_cli_reference.py is not here")
    stale = tmp_path / "README.md"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale.write_text(readme.replace("Usage: flopcast estimate [OPTIONS]", "Usage: flopcast estimate [OLD]"))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--readme", str(stale)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1 and "out of date" in result.stdout
    assert subprocess.run([sys.executable, str(SCRIPT), "--readme", str(stale)], timeout=120).returncode == 0
    assert stale.read_text(encoding="utf-8") == readme
