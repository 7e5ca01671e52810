"""`flopcast size` (flopcast.sizing): compute-optimal parameters and tokens for a budget."""

from __future__ import annotations

import json
import math

import pytest

from flopcast.api import estimate
from flopcast.model_sizes import shape_for_size
from flopcast.sizing import compute_optimal
from flopcast.sizing import size as size_report


def test_flop_budget_by_hand_matches_chinchilla():
    # Chinchilla (Hoffmann et al. 2022): 5.76e23 FLOPs → 70B parameters on 1.4T tokens.
    # By hand: N = sqrt(C / (6·20)) = sqrt(5.76e23 / 120) = sqrt(4.8e21) = 6.9282e10; D = 20·N = 1.38564e12.
    n, d = compute_optimal(5.76e23)
    assert n == pytest.approx(6.9282e10, rel=1e-4)
    assert d == pytest.approx(1.38564e12, rel=1e-4)
    assert d / n == pytest.approx(20.0, rel=1e-12)
    assert 6 * n * d == pytest.approx(5.76e23, rel=1e-12)
    assert n == pytest.approx(70e9, rel=0.02) and d == pytest.approx(1.4e12, rel=0.02)


def test_size_report_for_flops_shapes_the_model():
    r = size_report(flops="5.76e23")
    assert r.compute_optimal.params == pytest.approx(6.9282e10, rel=1e-4)
    assert r.compute_optimal.flops == pytest.approx(5.76e23, rel=1e-12)
    assert r.model.params == pytest.approx(r.compute_optimal.params, rel=0.02)  # the size rule's 2%
    assert r.estimate is None and r.budget_used_fraction == pytest.approx(1.0)


def test_flop_budget_on_given_hardware_estimates_that_model():
    r = size_report(flops="1e22", hardware="a100-80gb", devices="64")
    n = math.sqrt(1e22 / 120)  # 9.13e9
    assert r.compute_optimal.params == pytest.approx(n, rel=1e-12)
    assert r.estimate.inputs.tokens == pytest.approx(20 * n, rel=1e-12)
    assert r.estimate.hardware.id == "a100-80gb" and r.estimate.inputs.devices == 64


def test_dollar_budget_on_given_hardware_stays_within_it():
    r = size_report(budget="$2M", hardware="h100-80gb", devices="256")
    cost = r.estimate.cost.total_usd
    assert cost <= 2e6
    assert cost >= 0.9 * 2e6  # the search spends most of it
    # independently: estimate the same model on the same tokens and devices
    spec = shape_for_size(r.compute_optimal.params)
    again = estimate(model=spec, tokens=r.compute_optimal.tokens, hardware="h100-80gb", devices=256)
    assert again.cost.total_usd == pytest.approx(cost, rel=1e-9) and again.cost.total_usd <= 2e6
    assert r.compute_optimal.tokens == pytest.approx(20 * r.compute_optimal.params, rel=1e-12)
    # the search stepped over sizes both within and beyond the budget
    assert any(s.within_budget for s in r.steps) and any(not s.within_budget for s in r.steps)


def test_a_bigger_dollar_budget_buys_a_bigger_model():
    small = size_report(budget="$200k", hardware="a100-80gb", devices="64")
    big = size_report(budget="$2M", hardware="a100-80gb", devices="64")
    assert big.compute_optimal.params > small.compute_optimal.params
    # cost ∝ N·D = 20·N², so 10× the money buys about sqrt(10) ≈ 3.2× the parameters
    assert big.compute_optimal.params / small.compute_optimal.params == pytest.approx(math.sqrt(10), rel=0.25)


def test_dollar_budget_with_the_planner_stays_within_it():
    r = size_report(budget="$500k", hardware="h100-80gb", max_devices="512")
    assert r.inputs.placement == "planner"
    assert r.estimate.cost.total_usd <= 5e5
    assert r.estimate.cost.total_usd >= 0.9 * 5e5


def test_deadline_and_device_hours_budgets():
    r = size_report(deadline="30d", hardware="h100-80gb", devices="512")
    assert r.estimate.time.wall_clock_seconds <= 30 * 86400
    assert r.budget_used_fraction > 0.9
    d = size_report(device_hours="100k", hardware="a100-80gb", devices="64")
    assert d.estimate.time.device_hours <= 100e3 and d.budget_used_fraction > 0.9


def test_size_json(cli):
    result = cli("size", "--flops", "5.76e23", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["report"] == "size" and doc["rule"]["tokens_per_param"] == 20
    assert doc["compute_optimal"]["params"] == pytest.approx(6.9282e10, rel=1e-4)
    table = cli("size", "--budget", "$1M", "--hardware", "a100-80gb", "--devices", "128")
    assert table.exit_code == 0, table.stderr
    assert "Compute-optimal size" in table.stdout
    csv = cli("size", "--budget", "$1M", "--hardware", "a100-80gb", "--devices", "128", "--format", "csv")
    assert csv.exit_code == 0 and csv.stdout.startswith("budget_kind,budget,params")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        ([], ["needs a budget"]),
        (["--flops", "1e24", "--budget", "$2M"], ["two budgets", "--flops and --budget"]),
        (["--budget", "two million"], ["--budget", "cannot read"]),
        (["--deadline", "30d"], ["--deadline needs --hardware"]),
        (["--device-hours", "100k", "--hardware", "a100-80gb"], ["--device-hours needs"]),
        (["--flops", "-1e24"], ["--flops", "negative"]),
        (["--budget", "$2M", "--hardware", "a100-80gb,h100-80gb", "--devices", "8"], ["exactly one --hardware"]),
        (["--budget", "$2M", "--hardware", "a100-80gbx", "--devices", "8"], ["unknown hardware", "did you mean"]),
    ],
)
def test_size_bad_input_is_one_line_exit_2(cli, one_line_error, args, fragments):
    one_line_error(cli("size", *args), 2, *fragments)
