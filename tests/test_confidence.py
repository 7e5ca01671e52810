"""``confidence=`` / ``--confidence`` on plan, compare and size: deadlines and budgets met at a percentile."""

from __future__ import annotations

import json

import pytest

import flopcast
from flopcast.errors import InvalidValue

WORK = dict(model="llama-2-7b", tokens="2T", hardware="h100-80gb")


def test_plan_at_p90_meets_the_deadline_at_p90_and_p50_is_the_default():
    base = flopcast.plan(**WORK, deadline="30d")
    p50 = flopcast.plan(**WORK, deadline="30d", confidence="p50")
    p90 = flopcast.plan(**WORK, deadline="30d", confidence="p90")
    assert base.inputs.confidence == "p50" and p90.inputs.confidence == "p90"
    assert base.best_point == p50.best_point
    assert base.best_point.wall_clock_seconds <= 30 * 86400
    assert p90.best_point.wall_clock_seconds_p90 <= 30 * 86400
    assert base.best_point.wall_clock_seconds_p90 > 30 * 86400  # the p50 plan would miss it at P90
    assert p90.best_point.devices > base.best_point.devices


def test_plan_p80_lies_between():
    p80 = flopcast.plan(**WORK, deadline="30d", confidence="p80").best_point
    assert p80.wall_clock_seconds < p80.wall_clock_seconds_p80 <= 30 * 86400
    assert p80.wall_clock_seconds_p80 < p80.wall_clock_seconds_p90


def test_plan_budget_at_p90():
    p50 = flopcast.plan(**WORK, budget="$500k")
    assert p50.feasible and p50.best_point.cost_usd_p90 > 500e3
    p90 = flopcast.plan(**WORK, budget="$500k", confidence="p90")
    assert not p90.feasible and "at P90" in p90.infeasible_reason  # met at P50, not at P90
    assert flopcast.plan(**WORK, budget="$800k", confidence="p90").best_point.cost_usd_p90 <= 800e3


def test_compare_deadline_at_p90_ranks_by_cost_or_devices():
    rep = flopcast.compare(
        model="llama-2-7b", tokens="2T", hardware="h100-80gb,a100-80gb", deadline="30d", confidence="p90"
    )
    ok = [r for r in rep.rows if r.ok]
    assert ok and all(r.wall_clock_seconds_p90 <= 30 * 86400 for r in ok)
    assert [r.cost_usd_p90 for r in ok] == sorted(r.cost_usd_p90 for r in ok)
    by_devices = flopcast.compare(
        model="llama-2-7b", tokens="2T", hardware="h100-80gb,a100-80gb", deadline="30d", objective="time"
    )
    ok = [r for r in by_devices.rows if r.ok]
    assert [r.devices for r in ok] == sorted(r.devices for r in ok)


def test_size_budget_met_at_p90():
    rep = flopcast.size(budget="$1M", hardware="h100-80gb", devices=256, confidence="p90")
    assert rep.inputs.confidence == "p90"
    assert rep.estimate.cost.total_usd_p90 <= 1e6
    assert rep.budget_used == pytest.approx(rep.estimate.cost.total_usd_p90)
    p50 = flopcast.size(budget="$1M", hardware="h100-80gb", devices=256)
    assert rep.compute_optimal.params < p50.compute_optimal.params


@pytest.mark.parametrize("bad", ["p95", "high", "0.9"])
def test_bad_confidence_is_an_invalid_value_naming_the_choices(bad):
    with pytest.raises(InvalidValue, match="p50, p80, p90"):
        flopcast.plan(**WORK, deadline="30d", confidence=bad)


def test_cli_confidence_in_table_and_json(cli, one_line_error):
    table = cli("plan", "--model", "llama-2-7b", "--tokens", "2T", "--hardware", "h100-80gb", "--deadline", "30d",
                "--confidence", "p90")  # fmt: skip
    assert table.exit_code == 0 and "met at P90" in table.stdout and "P90" in table.stdout
    doc = json.loads(cli("compare", "--model", "llama-2-7b", "--tokens", "2T", "--hardware", "h100-80gb",
                         "--deadline", "30d", "--confidence", "p80", "--format", "json").stdout)  # fmt: skip
    assert doc["inputs"]["confidence"] == "p80"
    size = cli("size", "--budget", "$1M", "--hardware", "h100-80gb", "--devices", "256", "--confidence", "p90")
    assert size.exit_code == 0 and "at P90" in size.stdout
    bad = cli("plan", "--model", "llama-2-7b", "--tokens", "2T", "--deadline", "30d", "--confidence", "p99")
    one_line_error(bad, 2, "--confidence")
    assert "p50, p80, p90" in bad.stderr
