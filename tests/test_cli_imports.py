"""Only the CLI imports typer and rich (DESIGN §1), and only the table renderer needs rich.

Each check runs a fresh interpreter, so modules imported by other tests in this process cannot hide an
import. The CLI runs write the modules loaded at exit to a file; the command's own output is not checked
here (the command tests do that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

CLI_ONLY = ("typer", "rich", "click")

# run flopcast's console entry point with argv, then (at exit, after sys.exit) list the modules loaded
WRAPPER = textwrap.dedent(
    """
    import atexit, json, os, sys

    def _dump():
        with open(os.environ["MODULES_FILE"], "w") as f:
            json.dump(sorted(sys.modules), f)

    atexit.register(_dump)
    from flopcast.cli import main
    main(sys.argv[1:])
    """
)


def _modules_after(tmp_path, *argv: str) -> set[str]:
    out = tmp_path / "modules.json"
    env = {**os.environ, "MODULES_FILE": str(out), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(out.read_text()))


def _top(modules: set[str]) -> set[str]:
    return {m.partition(".")[0] for m in modules}


def test_the_library_never_imports_typer_rich_or_click():
    code = (
        "import sys, json\n"
        "import flopcast.estimator.core, flopcast.layout, flopcast.api, flopcast.planner\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = _top(set(json.loads(proc.stdout)))
    assert not loaded & set(CLI_ONLY), sorted(loaded & set(CLI_ONLY))


def test_estimate_json_never_imports_rich(tmp_path):
    argv = ("estimate", "--model", "llama-2-7b", "--tokens", "1T", "--hardware", "a100-80gb", "--devices", "64",
            "--format", "json")  # fmt: skip
    loaded = _modules_after(tmp_path, *argv)
    assert "rich" not in _top(loaded)
    # the lazy loader imported estimate's module only
    assert "flopcast.cli.estimate_cmd" in loaded
    assert not {"flopcast.cli.plan_cmd", "flopcast.cli.serve_cmd", "flopcast.cli.bench_cmd"} & loaded


WORKLOAD = ("--model", "llama-2-7b", "--tokens", "1T")


@pytest.mark.parametrize(
    ("argv", "module"),
    [
        (("estimate", *WORKLOAD, "-n", "64", "--format", "csv"), "estimate_cmd"),
        (("estimate", *WORKLOAD, "--sweep", "devices=8..16", "--format", "markdown"), "estimate_cmd"),
        (("compare", *WORKLOAD, "-n", "64", "-H", "a100-80gb,h100-80gb", "--format", "json"), "compare_cmd"),
        (("plan", *WORKLOAD, "-H", "a100-80gb", "--max-devices", "64", "--format", "csv"), "plan_cmd"),
        (("size", "--flops", "1e21", "-H", "a100-80gb", "-n", "8", "--format", "markdown"), "size_cmd"),
        (("serve", "--model", "llama-2-7b", "--hardware", "a100-80gb", "--format", "csv"), "serve_cmd"),
    ],
    ids=lambda x: " ".join(x[:1]) + " " + x[-1] if isinstance(x, tuple) else x,
)
def test_json_csv_and_markdown_never_import_rich(tmp_path, argv, module):
    loaded = _modules_after(tmp_path, *argv)
    assert "rich" not in _top(loaded)
    commands = {m for m in loaded if m.startswith("flopcast.cli.") and m.endswith("_cmd")}
    assert commands == {f"flopcast.cli.{module}"}, "the lazy loader imports only the invoked command's module"
