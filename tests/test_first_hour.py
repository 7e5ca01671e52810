"""A newcomer's first hour (issue 19): defaults, suffixes, completion and the other things a new user meets."""

from __future__ import annotations

import json

# --- item 10: help text and defaults that agree -------------------------------------------------------------------


def test_serve_defaults_the_hardware_like_estimate_and_says_so(cli):
    result = cli("serve", "-m", "llama-2-7b", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["inputs"]["hardware"] == "a100-80gb"
    said = {
        "estimate": "--hardware ID Hardware profile id or alias. [default: a100-80gb]",
        # serve's --hardware also takes a list with --plan, whose default is every priced GPU profile
        "serve": "--hardware ID[,ID] Hardware profile id or alias (default a100-80gb); with --plan",
    }
    for command, text in said.items():
        help_text = " ".join(cli(command, "--help", env={"COLUMNS": "200"}).stdout.split())
        assert text in help_text, command


def test_lower_case_count_suffixes_are_accepted(cli):
    lower = json.loads(cli("estimate", "-m", "llama-2-7b", "-t", "2t", "-n", "8", "-f", "json").stdout)
    upper = json.loads(cli("estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "8", "-f", "json").stdout)
    assert lower["inputs"]["tokens"] == upper["inputs"]["tokens"] == 2e12
    assert json.loads(cli("size", "--budget", "$1m", "-H", "a100-80gb", "-n", "64", "-f", "json").stdout)


# --- item 6: shell completion -------------------------------------------------------------------------------------


def _complete(line: str) -> list[str]:
    """What zsh would be offered for ``line`` (typer's zsh protocol, run in a real process)."""
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "_FLOPCAST_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": f"flopcast {line}"}
    proc = subprocess.run(
        [sys.executable, "-c", "from flopcast.cli import main; main()"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return re.findall(r'"([^"]+)"', proc.stdout.replace('\\"', '"'))


def test_fixed_choices_complete():
    assert _complete("estimate --recompute ") == ["none", "selective", "op", "attention", "full"]
    assert _complete("plan --objective e") == ["energy"]
    assert _complete("serve --weights ") == ["16", "8", "4"]
    assert _complete("schema p") == ["plan"]
    assert "bf16" in _complete("estimate --precision ")


def test_hardware_ids_and_model_presets_complete():
    assert _complete("estimate -H a100") == ["a100-40gb", "a100-80gb"]  # ids first; aliases only if no id
    assert _complete("plan -H a100-80gb,h200") == ["a100-80gb,h200-141gb"]
    assert _complete("estimate -m llama-2") == ["llama-2-7b", "llama-2-13b", "llama-2-70b"]
    assert _complete("hardware show h200") == ["h200-141gb"]
    assert _complete("models show llama-2-7") == ["llama-2-7b", "llama-2-70b"]


def test_show_completion_honours_the_shell_named():
    import os
    import subprocess
    import sys

    def show(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "flopcast", *args], capture_output=True, text=True, timeout=60,
            env={**os.environ, "SHELL": "/bin/bash"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert show("--show-completion", "zsh").startswith("#compdef flopcast")
    assert "complete --command flopcast" in show("--show-completion=fish")
    assert "COMPREPLY" in show("--show-completion", "bash")


# --- item 12: README says what --format json does with warnings -----------------------------------------------------


def test_json_keeps_warnings_in_the_report_and_off_stderr(cli):
    for args in (["estimate", "-m", "7B", "-t", "1T", "-n", "8"], ["plan", "-m", "7B", "-t", "1T", "-H", "a100-80gb"]):
        result = cli(*args, "-f", "json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["warnings"], args  # these runs do warn
        assert result.stderr == "", result.stderr
