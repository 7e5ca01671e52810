"""README's example transcripts are generated from real runs (scripts/gen_readme_transcripts.py); they must
not drift from what flopcast prints. Fix a failure by running the script and committing README.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_readme_transcripts.py"


def _script(*args: str) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():  # an sdist without scripts/
        pytest.skip("scripts/gen_readme_transcripts.py is not here")
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_readme_transcripts_match_real_runs():
    result = _script("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_has_transcripts_of_a_table_and_of_errors():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- transcript: flopcast estimate --model llama-2-7b --tokens 2T" in readme
    assert readme.count("<!-- transcript: ") >= 4
    assert "$ flopcast hardware show a100\nflopcast: error: hardware 'a100' is ambiguous" in readme


def test_check_fails_on_a_stale_transcript(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = tmp_path / "README.md"
    stale.write_text(readme.replace("is ambiguous: it could be", "is unknown: it could be"), encoding="utf-8")
    result = _script("--check", "--readme", str(stale))
    assert result.returncode == 1 and "out of date" in result.stdout
    assert _script("--readme", str(stale)).returncode == 0
    assert stale.read_text(encoding="utf-8") == readme
