"""Library errors name keyword arguments; the CLI's one line names flags (DESIGN §1).

Each case calls the library as a program would, with one bad value, and checks both renderings of the one
exception: ``str(exc)`` (and the hint) speak of the keyword, ``exc.one_line(flag_style)`` (what the CLI prints)
of the flag.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import flopcast
from flopcast.bench.plan import parse_dtypes
from flopcast.errors import FlopcastError, flag_style
from flopcast.models import resolve_model
from flopcast.sweep import parse_sweep

JOB = {"model": "7B", "tokens": "1T", "hardware": "a100-80gb"}

CASES = [
    # (call, the keyword str(exc) starts with, the flag the CLI line starts with)
    (lambda: flopcast.estimate(**JOB, devices="x"), "devices: cannot read 'x'", "--devices: cannot read 'x'"),
    (lambda: flopcast.estimate(**JOB, devices=8, precision="fp7"), "precision: unknown", "--precision: unknown"),
    (
        lambda: flopcast.serve(model="llama-2-7b", hardware="a100-80gb", weights="3"),
        "weights 3: unsupported",
        "--weights 3: unsupported",
    ),
    (
        lambda: flopcast.serve(model="llama-2-7b", hardware="a100-80gb", price_per_hour="-1"),
        "price_per_hour: '-1' is negative",
        "--price-per-hour: '-1' is negative",
    ),
    (lambda: flopcast.size(budget="two million"), "budget: cannot read", "--budget: cannot read"),
    (lambda: flopcast.size(flops="1e24", budget="$2M"), "two budgets: flops and budget", "two budgets: --flops and"),
    (lambda: flopcast.size(device_hours="100k"), "device_hours needs hardware H", "--device-hours needs --hardware H"),
    (lambda: flopcast.plan(model="7B", tokens="1T", objective="fast"), "objective: 'fast'", "--objective: 'fast'"),
    (lambda: resolve_model("1e30"), "model 1e+18T: larger than", "--model 1e+18T: larger than"),
    (lambda: resolve_model("7Q"), "model: cannot read '7Q'", "--model: cannot read '7Q'"),
    (lambda: resolve_model("7B", d_model=4096), "model 7B together with d_model", "--model 7B together with --d-model"),
    (lambda: parse_sweep("devices=64..8"), "sweep 'devices=64..8'", "--sweep 'devices=64..8'"),
    (lambda: parse_dtypes("float16", "cpu"), "dtype: 'float16'", "--dtype: 'float16'"),
]


@pytest.mark.parametrize(("call", "keyword", "flag"), CASES)
def test_the_library_names_keywords_and_the_cli_line_names_flags(call, keyword, flag):
    with pytest.raises(FlopcastError) as info:
        call()
    exc = info.value
    assert str(exc).startswith(keyword) and "--" not in str(exc)
    assert "--" not in (exc.hint or "") and "--" not in exc.one_line()
    assert exc.one_line(flag_style).startswith(flag)


def test_a_hint_names_the_keyword_too():
    with pytest.raises(FlopcastError) as info:
        flopcast.size()
    assert info.value.hint == "give one of flops 1e24, budget $2M, device_hours 100k or deadline 30d"
    assert info.value.one_line(flag_style) == (
        "size needs a budget (give one of --flops 1e24, --budget $2M, --device-hours 100k or --deadline 30d)"
    )


# The library modules whose messages name options through opt() only. A literal such as "--model" inside a
# raise statement there is a CLI flag spelt by the library. (io.py still speaks of --output: the CLI rewrites
# that message for --plot; hardware.py, bench/profile.py and the estimator's calibration modules are converted
# separately.)
SCANNED = [
    "api.py", "comparison.py", "layout.py", "model_sizes.py", "models.py", "planner.py", "plotting.py",
    "presets.py", "request.py", "search.py", "serving.py", "sizing.py", "sweep.py", "units.py",
    "estimator/arrays.py", "bench/gpu.py", "bench/plan.py",
]  # fmt: skip
_FLAG = re.compile(r"(?<![\w-])--[a-z]")


@pytest.mark.parametrize("module", SCANNED)
def test_no_raise_spells_a_cli_flag(module):
    path = Path(flopcast.__file__).parent / module
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [
        f"{module}:{node.lineno}: {text!r}"
        for raise_ in ast.walk(tree)
        if isinstance(raise_, ast.Raise) and raise_.exc is not None
        for node in ast.walk(raise_.exc)
        if isinstance(node, ast.Constant) and isinstance(text := node.value, str) and _FLAG.search(text)
    ]
    assert not found, found


def test_an_infeasible_plan_report_carries_readable_text():
    """The reason is report text (CLI syntax, like the warnings), with no option marker left in it."""
    report = flopcast.plan(model="7B", tokens="2T", deadline="1h", max_devices=16, hardware="a100-80gb")
    assert not report.feasible
    assert report.infeasible_reason.startswith("no plan meets --deadline 60 min on up to 16 devices")
    assert "\x1f" not in report.model_dump_json()
