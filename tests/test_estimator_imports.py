"""The estimator core stands alone (DESIGN §1): calibration sits beside it and calls it, never the reverse,
and the core loads neither the CLI stack nor the report builder, the catalogue or the layout search."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import flopcast.estimator

CORE_DIR = Path(flopcast.estimator.__file__).parent
CORE_MODULES = sorted(f"flopcast.estimator.{m.name}" for m in pkgutil.iter_modules([str(CORE_DIR)]))
# Loaded by importing any core module: none of these may be (sys.modules after a fresh import).
NOT_LOADED = ("flopcast.calibration", "flopcast.reports", "typer", "rich", "click")
# Named in an import statement of a core module (at top level or inside a function): none of these may be.
NOT_IMPORTED = ("flopcast.calibration", "flopcast.layout", "flopcast.reports", "flopcast.hardware", "flopcast.models")


def test_the_core_modules_are_found():
    assert {"flopcast.estimator.core", "flopcast.estimator.efficiency", "flopcast.estimator.timing"} <= set(
        CORE_MODULES
    )
    assert "flopcast.estimator.calibration" not in CORE_MODULES and "flopcast.estimator.fit" not in CORE_MODULES


@pytest.mark.parametrize("module", CORE_MODULES)
def test_importing_a_core_module_loads_no_calibration_reports_or_cli(module):
    code = (
        f"import sys, {module}\n"
        f"bad = sorted(k for k in sys.modules if any(k == n or k.startswith(n + '.') for n in {NOT_LOADED!r}))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"{module} loads {done.stdout.strip()}"


def _imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("path", sorted(CORE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_core_module_imports_calibration_layout_reports_catalogue_or_models(path):
    bad = [n for n in _imported_names(path) if any(n == b or n.startswith(b + ".") for b in NOT_IMPORTED)]
    assert bad == [], f"{path.name} imports {bad}"


def test_the_import_check_sees_a_lazy_import(tmp_path):
    """The static check would catch an import inside a function (how calibration used to reach layout)."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from flopcast.layout import Layout\n    import flopcast.reports.validate\n")
    assert _imported_names(sample) == ["flopcast.layout", "flopcast.layout.Layout", "flopcast.reports.validate"]
