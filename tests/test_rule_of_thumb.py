"""The 6·N·D / (0.4·peak) planning rule that validate compares flopcast with (issue 20)."""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from types import SimpleNamespace

import pytest

from flopcast.calibration.rule_of_thumb import rule_of_thumb_value


def _run(target, *, params=6.74e9, tokens=None, devices=None, global_batch=None, seq_len=4096, experts=1, active=None):
    model = SimpleNamespace(params=params, active_params=active or params, experts=experts, seq_len=seq_len)
    return SimpleNamespace(target=target, model=model, tokens=tokens, devices=devices, global_batch=global_batch)


A100_BF16_PEAK = 312e12  # NVIDIA A100 datasheet, dense bf16


def test_device_hours_by_hand():
    # 6 · 6.74e9 · 2e12 = 8.088e22 FLOPs; 0.4 · 312e12 = 1.248e14 FLOP/s; 8.088e22 / 1.248e14 = 6.4808e8 s = 180,022 h
    value = rule_of_thumb_value(_run("device_hours", tokens=2e12), A100_BF16_PEAK)
    assert value == pytest.approx(180_022, rel=1e-4)


def test_step_seconds_by_hand_and_moe_uses_active_parameters():
    # 1024 sequences of 4096 tokens = 4,194,304 tokens; 6 · 1e10 · 4,194,304 = 2.5166e17 FLOPs over 512 devices at
    # 1.248e14 FLOP/s each = 3.939 s
    value = rule_of_thumb_value(
        _run("step_seconds", params=1e11, active=1e10, experts=8, devices=512, global_batch=1024), A100_BF16_PEAK
    )
    assert value == pytest.approx(3.9385, rel=1e-3)
    assert rule_of_thumb_value(_run("step_seconds", devices=512), A100_BF16_PEAK) is None  # no batch published


def test_rates():
    assert rule_of_thumb_value(_run("mfu"), A100_BF16_PEAK) == 0.4
    assert rule_of_thumb_value(_run("tflops_per_device"), A100_BF16_PEAK) == pytest.approx(124.8)


def test_validate_reports_the_rule_on_the_same_whole_runs():
    out = subprocess.run(
        [sys.executable, "-m", "flopcast", "validate", "--format", "json"], capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    whole = [r for r in report["rows"] if r["target"] == "device_hours" and r["split"] == "holdout"]
    rule = report["rule_of_thumb"]
    assert rule["whole_runs"]["runs"] == len(whole) > 0
    # a second method: the rule from the CSV rows themselves (published parameter count, tokens, A100 peaks)
    from flopcast.calibration.runs import shipped_runs_paths

    peaks = {"a100-80gb": 312e12, "a100-40gb": 312e12}
    rows = {}
    for path in shipped_runs_paths():
        with open(path, encoding="utf-8", newline="") as handle:
            rows.update({r["run_id"]: r for r in csv.DictReader(handle)})
    errors = []
    for r in whole:
        src = rows[r["run_id"]]
        predicted = 6 * float(src["params"]) * float(src["tokens"]) / (0.4 * peaks[src["hardware"]]) / 3600
        errors.append(abs(predicted / float(src["target_value"]) - 1))
    median = statistics.median(errors)
    # the CSV's params are the published counts; the estimator's model count differs from them by < 1%
    assert rule["whole_runs"]["rule_median_abs_error"] == pytest.approx(median, abs=0.01)
