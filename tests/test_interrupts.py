"""Hardening (issue 8): Ctrl-C anywhere exits 130 with one line on stderr and never leaves a partial file.

In-process, KeyboardInterrupt is raised from inside the work (the planner's search, the estimator core, a bench
measurement, the file write itself). Then real processes get a real SIGINT while they are inside the search or
the measurement: a small wrapper marks the moment (prints READY and waits) so the signal lands there every time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention (DESIGN §7 via flopcast.errors)
TINY_BENCH = ["bench", "--quick", "--size-scale", "0.01", "--threads", "1", "--dtype", "float64"]


def invoke(*args):
    from flopcast.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_interrupted(result, out: Path) -> str:
    assert result.exit_code == EXIT_INTERRUPTED, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no temporary file beside it
    return lines[0]


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder / "result.json"


def _raise(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_in_the_plan_search(monkeypatch, out):
    import flopcast.planner

    monkeypatch.setattr(flopcast.planner, "search", _raise)
    line = assert_interrupted(invoke("plan", "-m", "7B", "-t", "1T", "-H", "a100-80gb", "-o", out), out)
    assert "nothing was written" in line


@pytest.mark.parametrize(
    "args",
    [
        ["estimate", "-m", "7B", "-t", "1T", "-n", "8"],
        ["compare", "-m", "7B", "-t", "1T", "-n", "8", "-H", "a100-80gb,h100-80gb"],
        ["plan", "-m", "7B", "-t", "1T", "-H", "a100-80gb"],
        ["size", "--flops", "1e22", "-H", "a100-80gb", "-n", "8"],
        ["estimate", "-m", "7B", "-t", "1T", "--sweep", "devices=8..64"],
    ],
    ids=["estimate", "compare", "plan", "size", "sweep"],
)
def test_ctrl_c_in_the_estimator_core(monkeypatch, out, args):
    import flopcast.estimator.core

    monkeypatch.setattr(flopcast.estimator.core, "evaluate", _raise)
    assert_interrupted(invoke(*args, "-o", out), out)


def test_ctrl_c_in_serve(monkeypatch, out):
    import flopcast.serving

    monkeypatch.setattr(flopcast.serving, "serving_grid", _raise)
    assert_interrupted(invoke("serve", "-m", "llama-2-7b", "--hardware", "a100-80gb", "-o", out), out)


@pytest.mark.parametrize("where", ["measure", "_gemm_check", "verify_run"])
def test_ctrl_c_in_each_bench_phase(monkeypatch, out, where, tmp_path):
    """Sweep points, the GEMM check, or the training check: 130, one line, no profile saved; what was measured
    is kept in --output, marked partial (issue 19: Ctrl-C used to lose the measurements)."""
    import json

    import flopcast.bench.run as bench_run

    monkeypatch.setenv("FLOPCAST_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setattr(bench_run, where, _raise)
    result = invoke(*TINY_BENCH, "--format", "json", "-o", out, "--save-profile", "never")
    assert result.exit_code == EXIT_INTERRUPTED, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "profile not saved" in lines[0], result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert not (tmp_path / "cfg" / "profiles" / "never.yaml").exists()
    if where == "measure":  # the first point: nothing measured, nothing written
        assert "nothing measured" in lines[0] and not out.exists()
    else:
        assert f"partial result written to {out}" in lines[0]
        doc = json.loads(out.read_text())
        assert doc["partial"] is True and doc["points"]
    assert [p.name for p in out.parent.iterdir()] in ([], [out.name])  # no temporary file beside it


def test_ctrl_c_while_the_file_is_written(monkeypatch, out):
    """The atomic write removes its temporary file when interrupted between write and rename."""
    import flopcast.io

    monkeypatch.setattr(flopcast.io.os, "fsync", _raise)
    assert_interrupted(invoke("hardware", "list", "--format", "json", "-o", out), out)


# --- real processes, real SIGINT ---------------------------------------------------------------------------------

WRAPPER = textwrap.dedent(
    """
    import sys, time
    import {module} as target

    def hold(*args, **kwargs):
        print("READY", file=sys.stderr, flush=True)
        time.sleep(60)  # SIGINT arrives here

    target.{name} = hold
    from flopcast.cli import main
    main(sys.argv[1:])
    """
)


def _interrupt_real_process(module: str, name: str, args: list[str], env: dict | None = None):
    code = WRAPPER.format(module=module, name=name)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )
    try:
        first = proc.stderr.readline()
        assert first.strip() == "READY", first + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stdout, stderr


def test_sigint_during_a_real_plan(out):
    code, stdout, stderr = _interrupt_real_process(
        "flopcast.planner", "search", ["plan", "-m", "7B", "-t", "1T", "-H", "a100-80gb", "-o", str(out)]
    )
    assert code == EXIT_INTERRUPTED, stderr
    assert stdout == "" and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "nothing was written" in lines[0]
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_sigint_during_a_real_bench(out, tmp_path):
    code, stdout, stderr = _interrupt_real_process(
        "flopcast.bench.run",
        "_sweep_dtype",
        [*TINY_BENCH, "--format", "json", "-o", str(out)],
        env={"FLOPCAST_CONFIG_DIR": str(tmp_path / "cfg")},
    )
    assert code == EXIT_INTERRUPTED, stderr
    assert stdout == "" and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted after 0 of" in lines[0]
    assert not out.exists() and list(out.parent.iterdir()) == []
