"""Hardening (issue 8): a catalogue of bad inputs across every command.

Each case must end in exit 2 (bad usage or input; 1 for a runtime failure), exactly one line on stderr that
names the problem and carries the fix in parentheses, no traceback, nothing on stdout, and no file at the
``--output`` path (nor a temporary or probe file left beside it). Most cases run in-process through
CliRunner; a few run as real processes (``python -m flopcast``).

Decisions documented here (README "Errors and exit codes"):
- Every typed quantity must lie in [1e-9, 1e50] (flopcast.units MIN_POSITIVE_QUANTITY / MAX_QUANTITY): beyond
  that flopcast refuses with "too large" / "too small", so 1e400, 5e-324 and 1e308 never reach the estimator.
  Inside it the report is finite: 1e30 tokens gives a finite (absurdly long) estimate, not an error.
- Root passes permission checks, so "unreadable" uses /proc/self/mem (EIO for everyone) and "read-only output"
  uses /proc (no regular files can be created there); chmod cases run only when not root.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

VALID_PROFILE = """\
id: test-gpu
name: Test GPU
kind: gpu
peak_flops_per_s:
  bf16: 1.0e15
memory_bytes: 8.0e10
memory_bandwidth_bytes_per_s: 2.0e12
sources: ["test fixture"]
"""

# "billion laughs": each level nine aliases of the one above (9^9 strings if expanded)
YAML_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

BASE = ["-m", "llama-2-7b", "-t", "2T", "-n", "8"]  # a valid estimate that the cases below spoil
SERVE = ["-m", "llama-2-7b", "--hardware", "a100-80gb"]  # a valid serve


_SAVED: list[str] = []


def _estimate_json() -> str:
    """One valid saved estimate report (made once per test session)."""
    if not _SAVED:
        from typer.testing import CliRunner

        from flopcast.cli import app

        result = CliRunner().invoke(app, ["estimate", *BASE, "-f", "json"])
        assert result.exit_code == 0, result.stderr
        _SAVED.append(result.stdout)
    return _SAVED[0]


@pytest.fixture
def fx(tmp_path: Path) -> dict[str, str]:
    """Paths the cases refer to as {name}: an empty output folder and a few bad input files."""
    outdir = tmp_path / "out"
    outdir.mkdir()
    files = tmp_path / "files"
    files.mkdir()
    (files / "nope.json").write_text('{"report": "nope", "schema_version": "1.0"}')
    (files / "broken.json").write_text("{")
    (files / "deep.json").write_text("[" * 100_000)
    (files / "exists.json").write_text("keep me\n")
    (files / "plain.txt").write_text("not a folder\n")
    (files / "empty").mkdir()
    saved = _estimate_json()
    (files / "nan.json").write_text(re.sub(r'"mfu": [0-9.e+-]+', '"mfu": NaN', saved, count=1))
    (files / "inf.json").write_text(re.sub(r'"mfu": [0-9.e+-]+', '"mfu": 1e999', saved, count=1))
    for name, text in (
        ("badtype", VALID_PROFILE.replace("memory_bytes: 8.0e10", "memory_bytes: [80, GB]")),
        ("bomb", YAML_BOMB),
        ("subnormal", VALID_PROFILE.replace("bf16: 1.0e15", "bf16: 5.0e-324")),
        ("tab", VALID_PROFILE.replace("kind: gpu\n", "kind: gpu\n\tvendor: x\n")),
        ("vendorno", VALID_PROFILE + "vendor: no\n"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "p.yaml").write_text(text)
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "p.yaml").symlink_to("/proc/self/mem")  # EIO when read, even for root
    return {
        "out": str(outdir / "result.json"),
        "outdir": str(outdir),
        "files": str(files),
        "nope": str(files / "nope.json"),
        "nan": str(files / "nan.json"),
        "inf": str(files / "inf.json"),
        "broken": str(files / "broken.json"),
        "deep": str(files / "deep.json"),
        "exists": str(files / "exists.json"),
        "plain": str(files / "plain.txt"),
        "emptydir": str(files / "empty"),
        "badtype": str(tmp_path / "badtype"),
        "bomb": str(tmp_path / "bomb"),
        "subnormal": str(tmp_path / "subnormal"),
        "tab": str(tmp_path / "tab"),
        "vendorno": str(tmp_path / "vendorno"),
        "unreadable": str(tmp_path / "unreadable"),
        "longname": str(outdir / ("x" * 300 + ".json")),
    }


# (id, argv with {placeholders}, exit code, fragments the one line must contain)
CASES = [
    # --- estimate: unit typos, signs, non-finite, empty, huge and tiny values ---------------------------------
    ("unit-typo-7Q", ["estimate", *BASE, "-t", "7Q", "-o", "{out}"], 2, ["--tokens", "7Q", "7B"]),
    ("unit-typo-1..5T", ["estimate", *BASE, "-t", "1..5T", "-o", "{out}"], 2, ["--tokens", "1..5T"]),
    ("negative-tokens", ["estimate", *BASE, "-t", "-5T", "-o", "{out}"], 2, ["--tokens", "negative"]),
    ("zero-devices", ["estimate", *BASE, "-n", "0", "-o", "{out}"], 2, ["--devices", "zero"]),
    ("nan-tokens", ["estimate", *BASE, "-t", "nan", "-o", "{out}"], 2, ["--tokens", "finite"]),
    ("inf-tokens", ["estimate", *BASE, "-t", "inf", "-o", "{out}"], 2, ["--tokens", "finite"]),
    ("overflowing-1e400", ["estimate", *BASE, "-t", "1e400", "-o", "{out}"], 2, ["--tokens", "finite"]),
    ("empty-tokens", ["estimate", *BASE, "-t", "", "-o", "{out}"], 2, ["--tokens", "empty"]),
    ("huge-tokens-1e51", ["estimate", *BASE, "-t", "1e51", "-o", "{out}"], 2, ["--tokens", "too large"]),
    ("subnormal-tokens", ["estimate", *BASE, "-t", "5e-324", "-o", "{out}"], 2, ["--tokens", "too small"]),
    ("huge-devices", ["estimate", *BASE, "-n", "1e30"], 2, ["--devices", "too large"]),
    ("fractional-devices", ["estimate", *BASE, "-n", "2.5"], 2, ["--devices", "whole"]),
    ("unknown-hardware", ["estimate", *BASE, "-H", "h100-80g", "-o", "{out}"], 2, ["unknown hardware", "h100-80gb"]),
    ("unknown-model", ["estimate", *BASE, "-m", "llama-9-7b", "-o", "{out}"], 2, ["unknown model"]),
    ("empty-model", ["estimate", *BASE, "-m", ""], 2, ["--model", "empty"]),
    ("mfu-above-one", ["estimate", *BASE, "--mfu", "2"], 2, ["--mfu", "fraction"]),
    ("negative-price", ["estimate", *BASE, "--price-per-hour", "-1"], 2, ["--price-per-hour", "negative"]),
    ("overflowing-price", ["estimate", *BASE, "--price-per-hour", "1e308"], 2, ["--price-per-hour", "too large"]),
    ("unknown-price-tier", ["estimate", *BASE, "--price-tier", "gold"], 2, ["--price-tier gold"]),
    ("zero-stage-7", ["estimate", *BASE, "--zero", "7"], 2, ["--zero", "ZeRO stage"]),
    ("unknown-recompute", ["estimate", *BASE, "--recompute", "maybe"], 2, ["--recompute", "maybe"]),
    ("unknown-precision", ["estimate", *BASE, "--precision", "fp4"], 2, ["--precision", "fp4"]),
    ("conflicting-layout", ["estimate", *BASE, "--tp", "2", "--pp", "2", "--dp", "3"], 2, ["tp·pp·dp", "--devices"]),
    ("preset-and-layers", ["estimate", *BASE, "--layers", "4"], 2, ["--model llama-2-7b together with --layers"]),
    ("sweep-and-devices", ["estimate", *BASE, "--sweep", "devices=8..64"], 2, ["--devices", "--sweep"]),
    ("sweep-backwards", ["estimate", "-m", "7B", "-t", "1T", "--sweep", "devices=8..4"], 2, ["--sweep", "above"]),
    (
        "architecture-5B-layers",  # used to hang: divisors(5e9) in O(n)
        ["estimate", "--layers", "5B", "--d-model", "256", "--heads", "4", "-t", "1T", "-n", "8"],
        2,
        ["invalid model architecture", "parameters"],
    ),
    ("unknown-format", ["estimate", *BASE, "-f", "yaml"], 2, ["--format", "yaml"]),
    ("missing-profiles-dir", ["estimate", *BASE, "--profiles", "{files}/none"], 2, ["does not exist"]),
    ("profiles-is-a-file", ["estimate", *BASE, "--profiles", "{plain}"], 2, ["not a directory"]),
    ("profile-wrong-type", ["estimate", *BASE, "--profiles", "{badtype}"], 2, ["p.yaml:6", "memory_bytes"]),
    ("profile-yaml-bomb", ["estimate", *BASE, "--profiles", "{bomb}"], 2, ["p.yaml:2", "aliases"]),
    ("profile-subnormal-peak", ["estimate", *BASE, "--profiles", "{subnormal}"], 2, ["bf16", "sane range"]),
    ("profile-unreadable", ["estimate", *BASE, "--profiles", "{unreadable}"], 2, ["p.yaml", "cannot read"]),
    ("profile-yaml-tab", ["estimate", *BASE, "--profiles", "{tab}"], 2, ["p.yaml:4", "tab", "with spaces"]),
    ("profile-vendor-no", ["estimate", *BASE, "--profiles", "{vendorno}"], 2, ["p.yaml:9", "vendor", "quote"]),
    ("hardware-ambiguous-a100", ["estimate", *BASE, "-H", "a100"], 2, ["ambiguous", "a100-40gb or a100-80gb"]),
    ("model-100k-characters", ["estimate", *BASE, "-m", "x" * 100_000], 2, ["unknown model", "…'", "100,000"]),
    # --- --output: a directory, read-only, missing parent, existing, special, too long -------------------------
    ("output-is-a-directory", ["estimate", *BASE, "-o", "{outdir}"], 2, ["--output", "directory"]),
    ("output-read-only-proc", ["estimate", *BASE, "-o", "/proc/flopcast-out.json"], 2, ["--output", "/proc"]),
    ("output-missing-parent", ["estimate", *BASE, "-o", "{outdir}/no/x.json"], 2, ["--output", "does not exist"]),
    ("output-exists", ["estimate", *BASE, "-o", "{exists}"], 2, ["--output", "exists", "--force"]),
    ("output-dev-null-force", ["estimate", *BASE, "-o", "/dev/null", "--force"], 2, ["not a regular file"]),
    ("output-name-too-long", ["estimate", *BASE, "-o", "{longname}"], 2, ["--output", "too long"]),
    ("plot-unknown-type", ["estimate", *BASE, "--plot", "{outdir}/x.txt"], 2, ["--plot", ".txt"]),
    ("output-is-plot", ["estimate", *BASE, "-o", "{outdir}/x.png", "--plot", "{outdir}/x.png"], 2, ["--plot both"]),
    (
        "output-is-plot-force",  # --force must not let one silently replace the other
        ["estimate", *BASE, "-o", "{outdir}/x.png", "--plot", "{outdir}/./x.png", "--force"],
        2,
        ["--output and --plot both name"],
    ),
    # --- validate --------------------------------------------------------------------------------------------
    ("validate-directory", ["validate", "{files}", "-o", "{out}"], 2, ["is a directory"]),
    ("validate-unreadable", ["validate", "/proc/self/mem", "-o", "{out}"], 2, ["cannot read"]),
    ("validate-endless-file", ["validate", "/dev/zero", "-o", "{out}"], 2, ["/dev/zero", "larger than"]),
    ("validate-missing-file", ["validate", "{files}/runs.csv"], 2, ["does not exist"]),
    ("validate-not-csv", ["validate", "{broken}"], 2, ["no runs"]),
    # --- hardware / models -----------------------------------------------------------------------------------
    ("hardware-show-unknown", ["hardware", "show", "nope", "-o", "{out}"], 2, ["unknown hardware 'nope'"]),
    ("hardware-show-empty", ["hardware", "show", ""], 2, ["empty hardware id"]),
    ("hardware-list-output-dir", ["hardware", "list", "-f", "json", "-o", "{outdir}"], 2, ["--output"]),
    ("hardware-list-bomb", ["hardware", "list", "--profiles", "{bomb}", "-o", "{out}"], 2, ["aliases"]),
    ("models-show-typo", ["models", "show", "7Q", "-o", "{out}"], 2, ["7Q"]),
    ("models-show-huge", ["models", "show", "1e30"], 2, ["1e+15"]),
    ("models-list-format", ["models", "list", "-f", "xml"], 2, ["--format", "xml"]),
    # --- serve -----------------------------------------------------------------------------------------------
    ("serve-weights-3", ["serve", *SERVE, "--weights", "3"], 2, ["--weights 3"]),
    ("serve-batch-0", ["serve", *SERVE, "--batch", "0", "-o", "{out}"], 2, ["--batch", "zero"]),
    ("serve-prompt-nan", ["serve", *SERVE, "--prompt-tokens", "nan"], 2, ["--prompt-tokens", "finite"]),
    ("serve-efficiency-2", ["serve", *SERVE, "--matmul-efficiency", "2"], 2, ["--matmul-efficiency"]),
    ("serve-tiny-efficiency", ["serve", *SERVE, "--bandwidth-efficiency", "5e-324"], 2, ["too small"]),
    ("serve-unknown-hardware", ["serve", "-m", "llama-2-7b", "--hardware", "nope"], 2, ["unknown hardware"]),
    # --- compare / plan / size --------------------------------------------------------------------------------
    ("compare-devices-and-deadline", ["compare", *BASE, "--deadline", "30d"], 2, ["--devices", "--deadline"]),
    ("compare-empty-hardware", ["compare", *BASE, "-H", ",,,", "-o", "{out}"], 2, ["--hardware", "empty"]),
    ("compare-unknown-objective", ["compare", *BASE, "--objective", "speed"], 2, ["--objective", "speed"]),
    ("compare-subnormal-deadline", ["compare", "-m", "7B", "-t", "1T", "--deadline", "5e-324"], 2, ["too small"]),
    ("plan-deadline-typo", ["plan", "-m", "7B", "-t", "1T", "--deadline", "7Q", "-o", "{out}"], 2, ["--deadline"]),
    ("plan-budget-nan", ["plan", "-m", "7B", "-t", "1T", "--budget", "nan"], 2, ["--budget", "finite"]),
    ("plan-max-devices-0", ["plan", "-m", "7B", "-t", "1T", "--max-devices", "0"], 2, ["--max-devices", "zero"]),
    ("plan-subnormal-tokens", ["plan", "-m", "7B", "-t", "5e-324", "-H", "a100-80gb"], 2, ["--tokens", "too small"]),
    ("size-no-budget", ["size", "-o", "{out}"], 2, ["needs a budget"]),
    ("size-two-budgets", ["size", "--flops", "1e24", "--budget", "1M"], 2, ["--flops", "--budget"]),
    ("size-flops-too-large", ["size", "--flops", "1e40"], 2, ["--flops", "1e+15"]),
    ("size-needs-hardware", ["size", "--device-hours", "100k"], 2, ["--hardware", "--devices"]),
    # --- bench (refused before anything is measured) --------------------------------------------------------------
    ("bench-threads-0", ["bench", "--threads", "0", "-o", "{out}"], 2, ["--threads", "zero"]),
    ("bench-device-tpu", ["bench", "--device", "tpu"], 2, ["--device", "tpu"]),
    ("bench-dtype-float8", ["bench", "--dtype", "float8"], 2, ["--dtype", "float8"]),
    ("bench-cuda-and-threads", ["bench", "--device", "cuda", "--threads", "2"], 2, ["--threads", "cuda"]),
    ("bench-negative-size", ["bench", "--size", "-1"], 2, ["--size", "negative"]),
    # --- schema / report -------------------------------------------------------------------------------------
    ("schema-unknown-kind", ["schema", "nope", "-o", "{out}"], 2, ["unknown report kind 'nope'"]),
    ("schema-kind-as-csv", ["schema", "estimate", "-f", "csv"], 2, ["--format csv"]),
    ("report-unknown-kind", ["report", "{nope}", "-o", "{out}"], 2, ["unknown report kind 'nope'"]),
    ("report-not-json", ["report", "{broken}", "-o", "{out}"], 2, ["not JSON"]),
    ("report-directory", ["report", "{files}"], 2, ["is a directory"]),
    ("report-deep-json", ["report", "{deep}", "-o", "{out}"], 2, ["nested too deeply"]),
    ("report-special-file", ["report", "/dev/zero"], 2, ["not a regular file"]),
    ("report-missing-file", ["report", "{files}/gone.json"], 2, ["no such file"]),
    ("report-nan-field", ["report", "{nan}", "-o", "{out}"], 2, ["NaN", "finite"]),
    ("report-overflowing-field", ["report", "{inf}", "-o", "{out}"], 2, ["1e999", "finite"]),
    ("report-stdin-not-json", ["report", "-", "-o", "{out}"], 2, ["-: not JSON"]),
]


def _fill(args: list[str], fx: dict[str, str]) -> list[str]:
    return [a.format(**fx) for a in args]


def assert_clean_refusal(result, code: int, fragments: list[str], fx: dict[str, str]) -> str:
    """The house rule, checked in full. Returns the one stderr line."""
    assert result.exit_code == code, (result.exit_code, result.stdout[-500:], result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("flopcast: error:"), line
    assert line.rstrip().endswith(")"), f"no fix in parentheses: {line}"  # every refusal says how to fix it
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert result.stdout == ""
    assert not Path(fx["out"]).exists()
    assert sorted(os.listdir(fx["outdir"])) == []  # no partial file, no temporary or probe file left behind
    assert Path(fx["exists"]).read_text() == "keep me\n"
    return line


@pytest.mark.parametrize(("args", "code", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(cli, fx, args, code, fragments):
    assert_clean_refusal(cli(*_fill(args, fx)), code, fragments, fx)


def test_catalogue_covers_every_command():
    assert len(CASES) >= 30
    commands = {c[1][0] for c in CASES} | {" ".join(c[1][:2]) for c in CASES}
    for command in (
        "estimate", "validate", "hardware list", "hardware show", "models list", "models show", "serve",
        "compare", "plan", "size", "bench", "schema", "report",
    ):  # fmt: skip
        assert command in commands, command


@pytest.mark.skipif(IS_ROOT, reason="root ignores permission bits; covered by the /proc cases above")
def test_permission_denied_cases_as_a_normal_user(cli, fx, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    secret = tmp_path / "secret.csv"
    secret.write_text("x\n")
    secret.chmod(0)
    locked.chmod(0o555)
    try:
        line = assert_clean_refusal(cli("estimate", *BASE, "-o", str(locked / "x.json")), 2, ["--output"], fx)
        assert "writable" in line
        assert_clean_refusal(cli("validate", str(secret)), 2, ["cannot read"], fx)
    finally:
        locked.chmod(0o755)


# --- hardware validate reports every problem (one line per problem, then a count) ---------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("{emptydir}", "no .yaml or .yml profile in this folder"),
        ("/dev/zero", "larger than 1000000 bytes"),
        ("{badtype}/p.yaml", "memory_bytes: Input should be a valid number"),
        ("{bomb}/p.yaml", "YAML aliases (*name) are not allowed"),
        ("{subnormal}/p.yaml", "outside the sane range"),
        ("{unreadable}/p.yaml", "cannot read"),
    ],
)
def test_hardware_validate_names_each_problem(cli, fx, target, expected):
    result = cli("hardware", "validate", target.format(**fx))
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert any(expected in line for line in lines[:-1]), lines
    assert lines[-1].startswith("flopcast: ") and "problem(s)" in lines[-1]


# --- extreme values that are accepted: the report stays finite --------------------------------------------------


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"non-finite number {name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _numbers(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _numbers(value)
    elif isinstance(node, list):
        for value in node:
            yield from _numbers(value)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield node


@pytest.mark.parametrize(
    "args",
    [
        ["estimate", "-m", "llama-2-7b", "-t", "1e30", "-n", "8"],  # documented: finite, not refused
        ["estimate", "-m", "1e15", "-t", "1e16", "-n", "8"],
        ["estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "1e18"],
        ["estimate", "-m", "llama-2-7b", "-t", "2T", "-n", "8", "--price-per-hour", "1e49", "--mfu", "1e-9"],
        ["compare", "-m", "llama-2-7b", "-t", "1e30", "-n", "8", "-H", "a100-80gb,h100-80gb"],
        ["serve", "-m", "llama-2-7b", "--hardware", "a100-80gb", "--price-per-hour", "1e49"],
    ],
    ids=["tokens-1e30", "1e15-params-1e16-tokens", "devices-1e18", "price-1e49-mfu-1e-9", "compare", "serve"],
)
def test_extreme_but_accepted_values_give_a_finite_report(cli, args):
    result = cli(*args, "-f", "json", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # no numpy RuntimeWarning leaks onto stderr
    assert all(math.isfinite(x) for x in _numbers(_strict_json(result.stdout)))


def test_zero3_layout_that_does_not_fit_gets_suggestions_not_a_crash(cli):
    """Regression: fit suggestions with --zero 3 (no higher stage) crashed on an empty concatenate."""
    result = cli("estimate", "-m", "llama-2-70b", "-t", "2T", "-n", "8", "--zero", "3", "-H", "a100-40gb", "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = _strict_json(result.stdout)
    assert report["memory"]["fits"] is False and report["parallelism"]["zero"] == 3


# --- real processes -----------------------------------------------------------------------------------------------


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flopcast", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def test_real_process_refuses_with_one_line_and_no_file(tmp_path):
    out = tmp_path / "r.json"
    proc = _run("estimate", *BASE, "-t", "7Q", "-o", str(out))
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "--tokens" in proc.stderr and not out.exists() and os.listdir(tmp_path) == []


def test_real_process_writes_to_proc_is_refused_before_any_work():
    proc = _run("estimate", *BASE, "-o", "/proc/flopcast-out.json", "--force")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "/proc" in proc.stderr and "Traceback" not in proc.stderr


def test_debug_shows_the_full_traceback():
    """Developers: --debug (anywhere on the line) or FLOPCAST_DEBUG=1 let the exception through."""
    proc = _run("--debug", "estimate", *BASE, "-t", "7Q")
    assert proc.returncode == 1  # Python's own exit code for an uncaught exception
    assert "Traceback (most recent call last)" in proc.stderr and "InvalidValue" in proc.stderr
    proc = _run("estimate", *BASE, "-t", "7Q", env={"FLOPCAST_DEBUG": "1"})
    assert "Traceback (most recent call last)" in proc.stderr


def test_debug_in_process_raises_the_original_exception(cli):
    from flopcast.errors import InvalidValue, flag_style

    result = cli("estimate", *BASE, "-t", "7Q", "--debug")
    assert isinstance(result.exception, InvalidValue)
    # the library names the keyword; the CLI's one line names the flag
    assert "tokens: " in str(result.exception) and "--tokens" not in str(result.exception)
    assert result.exception.one_line(flag_style).startswith("--tokens: ")


def test_debug_shows_numpy_warnings_that_are_hidden_otherwise(cli, monkeypatch):
    """A stray RuntimeWarning is hidden from users (it would add lines to stderr) but not from developers."""
    import warnings

    import flopcast.api

    real = flopcast.api.estimate

    def noisy(*args, **kwargs):
        warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(flopcast.api, "estimate", noisy)
    quiet = cli("estimate", *BASE, "-f", "json")
    assert quiet.exit_code == 0 and "RuntimeWarning" not in quiet.stderr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loud = cli("--debug", "estimate", *BASE, "-f", "json")
    assert loud.exit_code == 0
    assert any("overflow" in str(w.message) for w in caught)


# --- odd environments (issue 19): a stdout that cannot encode UTF-8 ------------------------------------------------

ODD_ENCODINGS = {
    "PYTHONIOENCODING=ascii": {"PYTHONIOENCODING": "ascii"},
    "LC_ALL=POSIX PYTHONUTF8=0": {"LC_ALL": "POSIX", "LANG": "", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""},
}


@pytest.mark.parametrize("encoding", list(ODD_ENCODINGS))
@pytest.mark.parametrize(
    "args",
    [
        ["estimate", *BASE],
        ["plan", "-m", "7B", "-t", "1T", "-H", "a100-80gb", "--max-devices", "16"],
        ["serve", *SERVE],
    ],
    ids=["estimate", "plan", "serve"],
)
def test_a_stdout_that_cannot_encode_utf8_gets_ascii_equivalents(args, encoding):
    # an empty value removes the variable (so PYTHONIOENCODING from the outer shell cannot rescue the run)
    env = {k: v for k, v in {**os.environ, "NO_COLOR": "1", **ODD_ENCODINGS[encoding]}.items() if v != ""}
    proc = subprocess.run([sys.executable, "-m", "flopcast", *args], capture_output=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"UnicodeEncodeError" not in proc.stderr and b"Traceback" not in proc.stderr
    out = proc.stdout.decode("ascii")  # every byte is ASCII
    assert out.strip()
    if args[0] == "estimate":
        assert "8 x a100-80gb" in out and "P10-P90" in out  # × and – became x and -


def test_ascii_safe_spells_the_ascii_equivalents():
    import io

    from flopcast.cli.common import ascii_safe

    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert ascii_safe("8 × a100 – 3 m² 5 µs ≈ 2", stream) == "8 x a100 - 3 m^2 5 us ~ 2"
    assert ascii_safe("caf\u00e9 \u2603", stream) == "cafe ?"
    utf8 = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert ascii_safe("8 × a100", utf8) == "8 × a100"


# --- odd environments (issue 19): no HOME, an unreadable config dir ---------------------------------------------


def _homeless(monkeypatch):
    """HOME unset and a uid without a passwd entry (`docker run --user 4242`)."""
    import pwd

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for name in ("HOME", "FLOPCAST_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)


def test_no_home_and_no_passwd_entry_runs_without_a_user_config_dir(cli, monkeypatch):
    _homeless(monkeypatch)
    from flopcast.hardware import user_profiles_dir

    assert user_profiles_dir() is None
    for args in (["hardware", "list", "-f", "json"], ["estimate", *BASE, "-f", "json"], ["models", "list"]):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        assert "internal error" not in result.stderr and result.stderr == ""


def test_no_home_is_a_note_under_debug_and_save_profile_says_what_to_set(cli, monkeypatch):
    _homeless(monkeypatch)
    script = (
        "import pwd, sys\n"
        "def no_entry(uid): raise KeyError(uid)\n"
        "pwd.getpwuid = no_entry\n"
        "from flopcast.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "FLOPCAST_CONFIG_DIR", "XDG_CONFIG_HOME")}
    proc = subprocess.run(
        [sys.executable, "-c", script, "--debug", "hardware", "list", "-f", "csv"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "debug: no user config dir" in proc.stderr and "FLOPCAST_CONFIG_DIR" in proc.stderr
    quiet = subprocess.run(
        [sys.executable, "-c", script, "hardware", "list", "-f", "csv"], capture_output=True, text=True, timeout=60,
        env=env,
    )  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr == ""
    from flopcast.bench.profile import check_profile_target
    from flopcast.errors import InvalidValue

    with pytest.raises(InvalidValue, match="no user config dir") as caught:
        check_profile_target("mybox", force=False)
    assert "FLOPCAST_CONFIG_DIR" in caught.value.hint


def test_an_unreadable_config_dir_says_what_and_how_to_fix(cli, fx, tmp_path, monkeypatch):
    config = tmp_path / "cfg"
    (config / "profiles").mkdir(parents=True)
    monkeypatch.setenv("FLOPCAST_CONFIG_DIR", str(config))
    if IS_ROOT:  # root reads everything: make the folder refuse the way a chmod 000 one does
        import pathlib

        real = pathlib.Path.iterdir

        def refuse(self):
            if self == config / "profiles":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(pathlib.Path, "iterdir", refuse)
    else:
        (config / "profiles").chmod(0)
    try:
        for args in (["estimate", *BASE, "-o", "{out}"], ["hardware", "list"]):
            line = assert_clean_refusal(cli(*_fill(args, fx)), 2, ["cannot read profile directory"], fx)
            assert "Permission denied" in line and "user config" in line and "FLOPCAST_CONFIG_DIR" in line
            assert "free space" not in line and "--output" not in line
    finally:
        (config / "profiles").chmod(0o755)


def test_an_echoed_value_is_cut_to_about_sixty_characters(cli, one_line_error):
    line = one_line_error(cli("estimate", *BASE, "-m", "x" * 100_000), 2, "unknown model")
    assert len(line) < 400 and "x" * 61 not in line


def test_a_deadline_missed_by_far_reads_as_a_ratio_not_a_percentage(cli):
    args = ["plan", "-m", "70B", "-t", "2T", "--deadline", "1h", "-H", "a100-80gb", "--max-devices", "8"]
    result = cli(*args)
    assert result.exit_code == 3
    line = result.stderr.strip().splitlines()[-1]
    assert "× the 60 min deadline" in line and not re.search(r"\+\d{4,}%", line), line


def test_far_missed_deadline_reads_as_a_ratio():
    from flopcast.points import format_overshoot

    assert format_overshoot(0.37, "30 d deadline") == "+37% over the 30 d deadline"
    assert format_overshoot(52_257.66, "60 min deadline") == "52,000× the 60 min deadline"
    assert format_overshoot(1.5, "$1M budget") == "2.5× the $1M budget"


@pytest.mark.parametrize("force", [False, True])
def test_output_dev_stdout_writes_to_the_stream_and_keeps_the_link(force):
    link = Path("/dev/stdout")
    was_link = link.is_symlink()
    proc = _run("estimate", *BASE, "-f", "json", "-o", "/dev/stdout", *(["--force"] if force else []))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["hardware"]["id"] == "a100-80gb"
    assert "exists" not in proc.stderr
    assert link.is_symlink() == was_link  # not replaced by a regular file (root passes every permission check)


def test_output_dash_is_stdout(cli):
    result = cli("hardware", "list", "-f", "json", "-o", "-")
    assert result.exit_code == 0 and json.loads(result.stdout)
    assert not Path("-").exists()


def test_hardware_validate_gives_the_yaml_hints(cli, fx):
    out = cli("hardware", "validate", f"{fx['tab']}/p.yaml", f"{fx['vendorno']}/p.yaml").stderr
    assert "replace the tab on line 4 with spaces" in out
    assert 'YAML reads an unquoted no/false/off as false: quote the text (e.g. "no")' in out


# --- report reads standard input and pipes (issue 19) ---------------------------------------------------------


def test_report_reads_standard_input(cli):
    from typer.testing import CliRunner

    from flopcast.cli import app

    result = CliRunner().invoke(app, ["report", "-", "-f", "json"], input=_estimate_json())
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["hardware"]["id"] == "a100-80gb"


@pytest.mark.parametrize(
    "shell",
    ['"$FC" report - -f csv < "$F"', '"$FC" report <(cat "$F") -f csv', 'cat "$F" | "$FC" report /dev/stdin -f csv'],
)
def test_report_reads_pipes_in_a_real_shell(tmp_path, shell):
    saved = tmp_path / "e.json"
    saved.write_text(_estimate_json())
    flopcast = f"{sys.executable} -m flopcast"
    proc = subprocess.run(
        ["bash", "-c", shell.replace('"$FC"', flopcast)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "F": str(saved)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("model,params,hardware")
