"""Fixtures shared by every test file (keep them generic).

- Every test runs with its own empty user config dir and no ``$FLOPCAST_PROFILES`` (autouse), so the real
  ``~/.config/flopcast`` is never read or written.
- ``cli`` runs the typer app in-process, the way the README says to test commands.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner


@pytest.fixture(autouse=True)
def isolated_user_config(tmp_path_factory, monkeypatch):
    """Point every config location at a fresh temporary directory for the test."""
    config = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("FLOPCAST_CONFIG_DIR", str(config))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config / "xdg"))
    monkeypatch.delenv("FLOPCAST_PROFILES", raising=False)
    monkeypatch.delenv("FLOPCAST_DEBUG", raising=False)
    return config


@pytest.fixture
def cli() -> Callable:
    """``cli("hardware", "list")`` → click's Result (``.exit_code``, ``.stdout``, ``.stderr``)."""
    from flopcast.cli import app

    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None):
        return runner.invoke(app, [str(a) for a in args], env=env)

    return invoke


def assert_one_line_error(result, exit_code: int = 2, *fragments: str) -> str:
    """The house rule for bad input: exit code, exactly one line on stderr, no traceback. Returns the line."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def one_line_error() -> Callable:
    """The checker above as a fixture, so test files need not import from conftest."""
    return assert_one_line_error
