"""The built wheel ships every profile under flopcast/hardware_profiles/ and finds them when installed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROFILES = sorted(p.name for p in (REPO / "hardware_profiles").glob("*.yaml"))


def _build_wheel(out: Path) -> Path:
    """Build non-editably; without isolation when hatchling is importable here, else pip fetches it."""
    cmd = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-w", str(out), "--quiet"]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.append("--no-build-isolation")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        offline = ("Could not find a version", "No matching distribution", "Failed to establish a new connection")
        if any(text in proc.stdout + proc.stderr for text in offline):
            pytest.skip("hatchling is not installed and the package index cannot be reached")
        pytest.fail(f"wheel build failed:\n{proc.stdout}\n{proc.stderr}")
    (wheel,) = out.glob("flopcast-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_ships_and_finds_every_profile(tmp_path):
    assert len(PROFILES) >= 11
    wheel = _build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in PROFILES:
        assert f"flopcast/hardware_profiles/{name}" in names, name

    # unpacked as site-packages would hold it, the package finds its own profiles (not the repo's)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import flopcast, flopcast.hardware as h; "
        "print(flopcast.__file__); print(h.shipped_profiles_dir()); print(len(h.load_catalog().ids()))"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "FLOPCAST_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("FLOPCAST_PROFILES", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    module_file, profiles_dir, count = proc.stdout.split()
    assert Path(module_file).is_relative_to(site)
    assert Path(profiles_dir) == site / "flopcast" / "hardware_profiles"
    assert int(count) == len(PROFILES)
