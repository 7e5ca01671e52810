"""Every command and option explains itself: walk the click command tree typer builds and check the help."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from flopcast.cli import COMMAND_MODULES, app

HELP_ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}


def walk(cmd, path):
    yield path, cmd
    for name in cmd.list_commands(None) if hasattr(cmd, "list_commands") else []:
        yield from walk(cmd.commands[name], [*path, name])


def tree():
    return list(walk(typer.main.get_command(app), []))


def test_the_tree_has_every_registered_command():
    names = {path[0] for path, _ in tree() if len(path) == 1}
    assert set(COMMAND_MODULES) <= names
    assert {"report", "schema"} <= names


@pytest.mark.parametrize(("path", "cmd"), tree(), ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_every_command_and_option_has_help(path, cmd):
    assert (cmd.help or "").strip(), f"`flopcast {' '.join(path)}` has no help text"
    missing = []
    for param in cmd.params:
        if getattr(param, "hidden", False):
            continue
        # options: click's `help`; arguments: typer's TyperArgument keeps its `help` too
        if not (getattr(param, "help", None) or "").strip():
            missing.append("/".join(param.opts))
    assert not missing, f"`flopcast {' '.join(path)}`: no help for {', '.join(missing)}"


@pytest.mark.parametrize("path", [p for p, _ in tree()], ids=lambda p: " ".join(p) or "flopcast")
def test_help_prints_and_exits_0(path):
    result = CliRunner().invoke(app, [*path, "--help"], env=HELP_ENV)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"Usage: {' '.join(['flopcast', *path])} ")
    assert max(len(line) for line in result.stdout.splitlines()) <= 80  # click wraps at 78 with COLUMNS ≥ 80


def test_root_help_offers_shell_completion():
    out = CliRunner().invoke(app, ["--help"], env=HELP_ENV).stdout
    assert "--install-completion" in out and "--show-completion" in out


def test_show_completion_prints_a_script():
    result = CliRunner().invoke(app, ["--show-completion", "bash"], env=HELP_ENV)
    assert result.exit_code == 0
    assert "_flopcast_completion" in result.stdout and "complete " in result.stdout
