"""scripts/refit_efficiency.py: the command line of flopcast.calibration.fit (the fit itself is tested in
test_calibration_runs.py; a full refit takes minutes)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "refit_efficiency.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_help_names_write_and_runs():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    assert "--write" in done.stdout and "--runs" in done.stdout and "--no-logo" in done.stdout


def test_write_without_the_held_out_check_is_refused():
    """--write stores the P10–P90 band, which only the leave-one-group-out check measures."""
    done = _run("--write", "--no-logo")
    assert done.returncode == 2 and "--no-logo" in done.stderr


def test_the_old_module_entry_point_is_gone():
    assert importlib.util.find_spec("flopcast.estimator.fit") is None
    assert importlib.util.find_spec("flopcast.calibration.fit") is not None
