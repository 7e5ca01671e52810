"""Hardening (issue 8): stdout that goes away (`flopcast ... | head -1`), is closed (`>&-`) or is full (/dev/full).

Real processes only: the point is what a shell user sees. Documented behaviour (README "Errors and exit codes"):
- the reader left (broken pipe): nothing on stderr, no traceback, exit 1 (Python's own convention for EPIPE);
  a reader that leaves after the output was already handed to the pipe may leave exit 0;
- stdout closed (`>&-`): one line saying the result could not be printed, exit 1 (with --output: exit 0);
- a full device (`> /dev/full`): one line, exit 1, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LONG_OUTPUTS = [
    ["hardware", "list", "--format", "json"],
    ["models", "list"],
    ["models", "list", "--format", "json"],
    ["schema", "--format", "json"],  # ~190 kB: more than a pipe holds
    ["estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "8"],
]
ENV = {**os.environ, "NO_COLOR": "1"}


def _flopcast(*args: str) -> list[str]:
    return [sys.executable, "-m", "flopcast", *args]


@pytest.mark.parametrize("args", LONG_OUTPUTS, ids=lambda a: " ".join(a[:2]))
def test_reader_gone_before_the_first_byte(args):
    """The read end is closed before the child starts: its first write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            _flopcast(*args), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, env=ENV
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""  # not a traceback, not "Exception ignored ... BrokenPipeError"


def test_head_dash_1_on_a_long_listing():
    """`flopcast schema --format json | head -1`: the reader takes one line and leaves mid-stream."""
    proc = subprocess.Popen(
        _flopcast("schema", "--format", "json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = proc.wait(timeout=60)
    assert first.strip() == b"{"
    assert err == "" and code in (0, 1)


def test_shell_pipeline_into_head():
    proc = subprocess.run(
        [
            "bash", "-o", "pipefail", "-c",
            f"'{sys.executable}' -m flopcast hardware list --format json | head -1",
        ],
        capture_output=True, text=True, timeout=60, env=ENV,
    )  # fmt: skip
    assert proc.stdout.strip() == "["
    assert "Traceback" not in proc.stderr and "Exception" not in proc.stderr
    assert proc.returncode in (0, 1)


def _with_fd1(args: list[str], shell_redirect: str) -> subprocess.CompletedProcess:
    command = " ".join(f"'{a}'" for a in _flopcast(*args))
    return subprocess.run(
        ["bash", "-c", f"{command} {shell_redirect}"], capture_output=True, text=True, timeout=60, env=ENV
    )


def test_stdout_closed():
    proc = _with_fd1(["hardware", "list"], ">&-")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "standard output is closed" in lines[0] and "--output" in lines[0], proc.stderr


def test_stdout_closed_with_output_file_still_works(tmp_path: Path):
    out = tmp_path / "hw.json"
    proc = _with_fd1(["hardware", "list", "--format", "json", "-o", str(out)], ">&-")
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("[")


def test_stderr_closed_keeps_the_exit_code():
    proc = _with_fd1(["estimate", "-t", "7Q", "-n", "8", "-m", "7B"], "2>&-")
    assert proc.returncode == 2


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["hardware", "list"], ["--version"]], ids=["long", "short"])
def test_full_device(args):
    proc = _with_fd1(args, "> /dev/full")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in proc.stderr
