"""`flopcast compare` (flopcast.comparison.compare): one workload on several hardware profiles."""

from __future__ import annotations

import json
import math

import pytest

from flopcast.api import estimate
from flopcast.comparison import compare
from flopcast.hardware import load_catalog
from flopcast.planner import device_counts

WORK_7B = {"model": "llama-2-7b", "tokens": "2T"}
VALUE_FIELD = {"cost": "cost_usd", "time": "wall_clock_seconds", "energy": "energy_kwh"}


@pytest.mark.parametrize("objective", ["cost", "time", "energy"])
def test_ordering_follows_the_objective(objective):
    report = compare(**WORK_7B, devices="64", objective=objective)
    rows = report.rows
    assert [r.rank for r in rows] == list(range(1, len(rows) + 1))
    ok = [r for r in rows if r.ok]
    assert len(ok) >= 3
    values = [getattr(r, VALUE_FIELD[objective]) for r in ok]
    assert values == sorted(values)
    # every row that is not ok comes after the ok ones and says why
    first_bad = next((k for k, r in enumerate(rows) if not r.ok), len(rows))
    assert all(not r.ok and r.reason for r in rows[first_bad:])
    # every shipped profile is there: none disappears
    assert {r.hardware for r in rows} == set(load_catalog().ids())


def test_rows_are_what_estimate_predicts_for_that_hardware():
    report = compare(**WORK_7B, hardware="a100-80gb,h100-80gb", devices="128")
    for row in report.rows:
        again = estimate(model="llama-2-7b", tokens="2T", hardware=row.hardware, devices=128)
        assert row.wall_clock_seconds == pytest.approx(again.time.wall_clock_seconds, rel=1e-12)
        assert row.cost_usd == pytest.approx(again.cost.total_usd, rel=1e-12)
        assert (row.layout.tp, row.layout.pp, row.layout.dp, row.layout.zero) == (
            again.parallelism.tp,
            again.parallelism.pp,
            again.parallelism.dp,
            again.parallelism.zero,
        )


def test_cost_per_tier_is_device_hours_times_each_listed_price():
    report = compare(**WORK_7B, hardware="h100-80gb", devices="64")
    row = report.rows[0]
    prices = load_catalog().get("h100-80gb").prices_usd_per_device_hour
    assert set(row.cost_by_tier_usd) == set(prices)
    for tier, price in prices.items():
        assert row.cost_by_tier_usd[tier] == pytest.approx(row.device_hours * price.usd_per_device_hour, rel=1e-12)


def test_device_that_cannot_fit_says_why_instead_of_disappearing():
    # Llama-2-70B holds 69e9 · 16 B ≈ 1.1 TB of model states: 8 V100-16GB (128 GB) cannot hold them.
    report = compare(model="llama-2-70b", tokens="2T", hardware="v100-16gb,h200-141gb", devices="8")
    v100 = next(r for r in report.rows if r.hardware == "v100-16gb")
    assert v100.fits is False and v100.ok is False
    assert "does not fit" in v100.reason
    assert report.rows[-1].hardware == "v100-16gb"


def test_missing_price_tier_is_a_reason_not_an_error():
    report = compare(**WORK_7B, hardware="a100-80gb,h100-80gb", devices="64", price_tier="spot")
    by_id = {r.hardware: r for r in report.rows}
    assert by_id["a100-80gb"].cost_usd is None and "no spot price" in by_id["a100-80gb"].reason
    spot = load_catalog().get("h100-80gb").prices_usd_per_device_hour["spot"].usd_per_device_hour
    h100 = by_id["h100-80gb"]
    assert h100.ok and h100.price_tier == "spot"
    assert h100.cost_usd == pytest.approx(h100.device_hours * spot, rel=1e-12)
    assert [r.hardware for r in report.rows] == ["h100-80gb", "a100-80gb"]


def test_hardware_without_the_precision_is_listed_with_the_reason():
    report = compare(**WORK_7B, hardware="epyc-9654,a100-80gb", devices="8")
    epyc = next(r for r in report.rows if r.hardware == "epyc-9654")
    assert not epyc.ok and "bf16" in epyc.reason and epyc.wall_clock_seconds is None


def test_deadline_gives_the_fewest_devices_that_meet_it():
    deadline = 30 * 86400
    report = compare(**WORK_7B, hardware="a100-80gb,h100-80gb", deadline="30d")
    for row in report.rows:
        assert row.ok and row.wall_clock_seconds <= deadline
        # the next smaller count of the grid misses the deadline (or does not fit)
        grid = device_counts(8, 4096)
        smaller = grid[grid.index(row.devices) - 1]
        before = estimate(model="llama-2-7b", tokens="2T", hardware=row.hardware, devices=smaller)
        assert before.time.wall_clock_seconds > deadline or not before.memory.fits


def test_deadline_that_cannot_be_met_is_explained():
    report = compare(**WORK_7B, hardware="v100-16gb", deadline="1h", max_devices="64")
    row = report.rows[0]
    assert not row.ok
    assert "misses the 60 min deadline on up to 64 devices" in row.reason  # 1 h is written 60 min
    assert row.devices == 64 and row.wall_clock_seconds > 3600  # the fastest it can do, shown for reference


# --- the CLI ------------------------------------------------------------------------------------------------------


def test_compare_json_and_csv(cli):
    args = ["compare", "--model", "llama-2-7b", "--tokens", "2T", "--devices", "64", "--hardware", "a100-80gb,h100"]
    doc = json.loads(cli(*args, "--format", "json").stdout)
    assert doc["report"] == "compare" and [r["rank"] for r in doc["rows"]] == [1, 2]
    assert doc["rows"][0]["hardware"] == "h100-80gb"  # the alias resolved; cheaper at 64 devices
    csv = cli(*args, "--format", "csv")
    assert csv.exit_code == 0, csv.stderr
    lines = csv.stdout.strip().splitlines()
    assert lines[0].startswith("rank,hardware,ok,devices") and len(lines) == 3
    table = cli(*args)
    assert table.exit_code == 0 and "h100-80gb" in table.stdout and "a100-80gb" in table.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--devices", "8", "--hardware", "a100-80gb,h10O-80gb"], ["unknown hardware", "did you mean"]),
        (["--devices", "8", "--deadline", "30d"], ["--devices together with --deadline"]),
        ([], ["--devices N or --deadline"]),
        (["--deadline", "30 fortnights"], ["--deadline", "cannot read"]),
        (["--devices", "8", "--objective", "money"], ["--objective"]),
        (["--deadline", "30d", "--max-devices", "0"], ["--max-devices", "zero"]),
    ],
)
def test_compare_bad_input_is_one_line_exit_2(cli, one_line_error, args, fragments):
    result = cli("compare", "--model", "llama-2-7b", "--tokens", "2T", *args)
    one_line_error(result, 2, *fragments)


def test_no_nan_in_json(cli):
    result = cli("compare", "--model", "llama-2-7b", "--tokens", "2T", "--devices", "16", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    for row in doc["rows"]:
        for value in row.values():
            assert not (isinstance(value, float) and math.isnan(value))
