"""Narrow terminals (issue 19 item 3): at 60 and 80 columns no number is cropped from any table.

Each command runs three times in-process: as JSON, as a table at 200 columns and as a table at the narrow width.
Every word holding a digit (``1555``, ``5.07``, ``a100-40gb``) in the wide table must appear whole in the narrow
one (box characters stripped), and the ids and names of the JSON must appear in both: wrapping at spaces, folded
headers or a vertical layout are all fine, a cropped number is not.
"""

from __future__ import annotations

import json
import re

import pytest

BOX = re.compile(r"[\u2500-\u257f|+]")
RUNS_JSON = "{saved estimate}"
BENCH_JSON = "{saved bench}"

COMMANDS = {
    "estimate": ["estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "8"],
    "plan": ["plan", "-m", "7B", "-t", "1T", "-H", "a100-80gb,h100-80gb", "--max-devices", "64"],
    "compare": ["compare", "-m", "llama-2-7b", "-t", "2T", "-n", "64"],
    "size": ["size", "--budget", "$1M", "-H", "a100-80gb", "-n", "64"],
    "serve": ["serve", "-m", "llama-2-70b", "-H", "a100-80gb"],
    "hardware list": ["hardware", "list"],
    "hardware show": ["hardware", "show", "a100-80gb"],
    "models list": ["models", "list"],
    "models show": ["models", "show", "llama-2-70b"],
    "validate": ["validate"],
    "report": ["report", RUNS_JSON],
    "bench report": ["report", BENCH_JSON],
}


def _words(text: str) -> set[str]:
    text = re.sub(r"in [\d.]+ s \([\d.]+ M layouts/s\)", "", " ".join(text.split()))  # plan's timing varies
    return {w.strip(".,;:()") for w in BOX.sub(" ", text).split() if any(c.isdigit() for c in w)}


def _json_names(node) -> set[str]:
    """Ids and names in a JSON document (the ``id``/``hardware``/``name`` fields) that hold a digit."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("id", "hardware_id", "name") and isinstance(value, str) and " " not in value:
                found |= {value} if any(c.isdigit() for c in value) else set()
            found |= _json_names(value)
    elif isinstance(node, list):
        for value in node:
            found |= _json_names(value)
    return found


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, str]:
    """An estimate and a (tiny) bench report saved as JSON, for `flopcast report` to draw."""
    from typer.testing import CliRunner

    from flopcast.cli import app

    folder = tmp_path_factory.mktemp("narrow")
    paths = {RUNS_JSON: folder / "est.json", BENCH_JSON: folder / "bench.json"}
    tiny_bench = ["bench", "--quick", "--size-scale", "0.01", "--threads", "1", "--no-verify"]
    for key, args in ((RUNS_JSON, COMMANDS["estimate"]), (BENCH_JSON, tiny_bench)):
        result = CliRunner().invoke(app, [*args, "-f", "json", "-o", str(paths[key]), "-q"])
        assert result.exit_code == 0, result.stderr
    return {key: str(path) for key, path in paths.items()}


@pytest.mark.parametrize("columns", [60, 80])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_number_is_cropped_on_a_narrow_terminal(cli, name, columns, saved):
    args = [saved.get(a, a) for a in COMMANDS[name]]
    wide = cli(*args, env={"COLUMNS": "200", "NO_COLOR": "1"})
    narrow = cli(*args, env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert wide.exit_code in (0, 1) and narrow.exit_code == wide.exit_code, narrow.stderr  # validate may gate
    lines = narrow.stdout.splitlines()
    if name == "validate":  # its summary lines under the table are plain text (validate_cmd), not a table
        lines = [line for line in lines if line[:1] in " ┌│└├┏┃┗┡"]
    assert max(map(len, lines)) <= columns, max(lines, key=len)
    # a word longer than the terminal (a path, a URL) has to fold; a number never is
    missing = {w for w in _words(wide.stdout) - _words(narrow.stdout) if len(w) < columns // 2}
    assert not missing, f"cropped at {columns} columns: {sorted(missing)[:10]}"
    if not name.endswith("report"):
        data = json.loads(cli(*args, "-f", "json").stdout)
        absent = {n for n in _json_names(data) if n not in _words(narrow.stdout)}
        assert not absent, sorted(absent)[:10]


def test_plain_output_follows_the_terminal_width_not_120_columns(cli):
    """NO_COLOR / TERM=dumb used to force 120 columns even on a narrow terminal."""
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        out = cli("hardware", "list", env={**env, "COLUMNS": "60"}).stdout
        assert max(map(len, out.splitlines())) <= 60
        assert "1555" in _words(out) and "5.07" in _words(out)
        assert {"a100-40gb", "a100-80gb"} <= _words(out)


def test_a_pipe_without_columns_keeps_the_plain_width(cli):
    out = cli("hardware", "list", env={"COLUMNS": ""}).stdout
    assert max(map(len, out.splitlines())) > 80  # PLAIN_WIDTH (120): piped output does not follow the window


def test_a_real_narrow_terminal_with_no_color(tmp_path):
    """A pseudo-terminal 60 columns wide, NO_COLOR=1 and no $COLUMNS: the table follows the terminal."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 60, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flopcast", "hardware", "list"], stdout=follower, stderr=subprocess.PIPE,
        env={**env, "NO_COLOR": "1"},
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the follower side closed
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    out = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    assert proc.returncode == 0
    assert "\x1b[" not in out  # NO_COLOR: plain
    assert max(map(len, out.splitlines())) <= 60
    assert {"1555", "5.07", "a100-40gb", "a100-80gb"} <= _words(out)
