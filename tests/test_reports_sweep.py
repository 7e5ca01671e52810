"""`flopcast estimate --sweep devices=LOW..HIGH`: the device counts, agreement with `estimate`, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flopcast.cli import app
from flopcast.sweep import parse_sweep, power_of_two_counts

JOB = ["estimate", "-m", "llama-2-7b", "-t", "2T"]
SECONDS_PER_HOUR = 3600.0


def run(*args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def doc(result) -> dict:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("text", "counts"),
    [
        ("devices=8..4096", [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]),  # 2^3 .. 2^12
        ("devices=10..100", [16, 32, 64]),  # the powers of two inside the range only
        ("devices=1..1", [1]),
        ("devices = 4 .. 4k", [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]),  # 4k = 4000 < 4096
    ],
)
def test_sweep_counts_are_the_powers_of_two_in_the_range(text, counts):
    name, lo, hi = parse_sweep(text)
    assert name == "devices" and power_of_two_counts(lo, hi) == counts


@pytest.fixture(scope="module")
def sweep():
    return doc(run(*JOB, "--sweep", "devices=8..128", "--format", "json"))


def test_every_row_is_what_estimate_says_for_that_count(sweep):
    """One vectorised pass must pick the same layout and give the same figures as `estimate --devices N`."""
    assert [r["devices"] for r in sweep["rows"]] == [8, 16, 32, 64, 128]
    for row in sweep["rows"]:
        single = doc(run(*JOB, "--devices", row["devices"], "--format", "json"))
        p = single["parallelism"]
        assert row["layout"] == {k: p[k] for k in row["layout"]}
        assert row["wall_clock_seconds"] == pytest.approx(single["time"]["wall_clock_seconds"], rel=1e-12)
        assert row["wall_clock_seconds_p90"] == pytest.approx(single["time"]["wall_clock_seconds_p90"], rel=1e-12)
        assert row["cost_usd"] == pytest.approx(single["cost"]["total_usd"], rel=1e-12)
        assert row["memory_per_device_bytes"] == pytest.approx(single["memory"]["per_device_bytes"], rel=1e-12)


def test_rows_obey_the_definitions(sweep):
    """device-hours = wall-clock × devices / 3600; cost = device-hours × price; P10 ≤ value ≤ P90."""
    price = sweep["usd_per_device_hour"]
    assert sweep["price_tier"] == "on-demand" and price > 0
    for r in sweep["rows"]:
        assert r["device_hours"] == pytest.approx(r["wall_clock_seconds"] * r["devices"] / SECONDS_PER_HOUR, rel=1e-9)
        assert r["cost_usd"] == pytest.approx(r["device_hours"] * price, rel=1e-9)
        assert r["wall_clock_seconds_p10"] <= r["wall_clock_seconds"] <= r["wall_clock_seconds_p90"]
        assert r["cost_usd_p10"] <= r["cost_usd"] <= r["cost_usd_p90"]
    first = sweep["rows"][0]
    assert first["scaling_efficiency"] == pytest.approx(1.0)  # relative to itself (it fits)


def test_price_per_hour_is_used(sweep):
    custom = doc(run(*JOB, "--sweep", "devices=8..16", "--price-per-hour", "2", "-f", "json"))
    assert custom["usd_per_device_hour"] == 2.0 and custom["price_tier"] == "custom"
    for r in custom["rows"]:
        assert r["cost_usd"] == pytest.approx(2.0 * r["device_hours"], rel=1e-9)


def test_counts_a_fixed_layout_cannot_use_are_skipped_with_the_reason():
    result = doc(run(*JOB, "--sweep", "devices=4..32", "--tp", "8", "-f", "json"))
    assert [r["devices"] for r in result["rows"]] == [8, 16, 32]
    assert all(r["layout"]["tp"] == 8 for r in result["rows"])
    assert [s["devices"] for s in result["skipped"]] == [4] and "tp = 8" in result["skipped"][0]["reason"]


def test_fixed_interleave_applies_at_every_count():
    result = doc(run("estimate", "-m", "gpt3-175b", "-t", "300B", "--sweep", "devices=256..1024", "--pp", "8",
                     "--interleave", "2", "-f", "json"))  # fmt: skip
    assert [(r["layout"]["pp"], r["layout"]["interleave"]) for r in result["rows"]] == [(8, 2)] * 3
    assert result["inputs"]["interleave"] == 2


def test_a_model_that_does_not_fit_on_few_devices_is_marked():
    result = doc(run("estimate", "-m", "llama-2-70b", "-t", "2T", "--sweep", "devices=1..16", "-f", "json"))
    fits = {r["devices"]: r["fits"] for r in result["rows"]}
    # 70B parameters in bf16 weights alone are 138 GB: one or two 80 GB devices cannot hold them; ZeRO-3's
    # 16 B/param over 16 devices is 69 GB, inside 16 × 72 GB usable
    assert fits[1] is False and fits[2] is False and fits[16] is True
    assert any("does not fit on 1, 2" in w for w in result["warnings"])


def test_table_is_one_line_per_count_and_fits_120_columns():
    result = run(*JOB, "--sweep", "devices=8..4096")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    counts = [line.split()[0] for line in lines if line.strip() and line.split()[0].isdigit()]
    assert counts == ["8", "16", "32", "64", "128", "256", "512", "1024", "2048", "4096"]
    assert max(len(line) for line in lines) <= 120


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--sweep", "devices=8..64", "--devices", "8"], "--devices"),
        (["--sweep", "devices=8..64", "--dp", "8"], "--dp"),
        (["--sweep", "devices=5..7"], "no power of two"),
        (["--sweep", "devices=64..8"], "above the high end"),
        (["--sweep", "devices=8-64"], "NAME=LOW..HIGH"),
        (["--sweep", "tokens=1..2"], "cannot sweep"),
        (["--sweep", "devices=eight..64"], "--sweep"),
        (["--sweep", "devices=8..64", "--tp", "3"], "--tp 3"),
    ],
)
def test_bad_sweeps_are_one_line_and_exit_2(args, needle, one_line_error):
    result = run(*JOB, *args)
    one_line_error(result, 2, needle)
    assert result.stdout == ""
