"""A newcomer's first hour (issue 19): defaults, suffixes, completion and the other things a new user meets."""

from __future__ import annotations

import json

# --- item 10: help text and defaults that agree -------------------------------------------------------------------


def test_serve_defaults_the_hardware_like_estimate_and_says_so(cli):
    result = cli("serve", "-m", "llama-2-7b", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["inputs"]["hardware"] == "a100-80gb"
    for command in ("serve", "estimate"):
        help_text = " ".join(cli(command, "--help", env={"COLUMNS": "200"}).stdout.split())
        assert "--hardware ID Hardware profile id or alias. [default: a100-80gb]" in help_text, command


def test_lower_case_count_suffixes_are_accepted(cli):
    lower = json.loads(cli("estimate", "-m", "llama-2-7b", "-t", "2t", "-n", "8", "-f", "json").stdout)
    upper = json.loads(cli("estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "8", "-f", "json").stdout)
    assert lower["inputs"]["tokens"] == upper["inputs"]["tokens"] == 2e12
    assert json.loads(cli("size", "--budget", "$1m", "-H", "a100-80gb", "-n", "64", "-f", "json").stdout)
