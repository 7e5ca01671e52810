"""The planner (flopcast.planner) and `flopcast plan`: the search, its constraints, the Pareto front."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flopcast.api import estimate
from flopcast.model_resolve import resolve_model
from flopcast.planner import (
    DEFAULT_MAX_DEVICES,
    device_counts,
    pareto_front,
    plan,
    search,
)
from flopcast.request import resolve_hardware_list
from flopcast.search import enumerate_layouts

SMALL = ["--model", "llama-2-7b", "--tokens", "2T", "--hardware", "a100-80gb,h100-80gb", "--max-devices", "256"]


def _dominates(a, b) -> bool:
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


# --- the Pareto front -------------------------------------------------------------------------------------------


def test_pareto_front_by_hand():
    # (time, cost): (3, 7) is beaten by (2, 5); the second (2, 5) duplicates the first; (5, 1) and (1, 10) are
    # the extremes; (4, 5) is beaten by (2, 5) on time at the same cost.
    time = [1, 2, 3, 2, 5, 4]
    cost = [10, 5, 7, 5, 1, 5]
    assert pareto_front(time, cost).tolist() == [0, 1, 4]


def test_pareto_front_ignores_nan_and_handles_empty():
    assert pareto_front([], []).tolist() == []
    assert pareto_front([1.0, np.nan, 3.0], [np.nan, 1.0, 2.0]).tolist() == [2]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=60))
def test_pareto_front_property_no_dominated_point_and_nothing_missing(cloud):
    t = np.array([p[0] for p in cloud], dtype=float)
    c = np.array([p[1] for p in cloud], dtype=float)
    front = pareto_front(t, c)
    chosen = {(t[i], c[i]) for i in front}
    # 1) no front point is dominated by any point of the cloud
    for i in front:
        assert not any(_dominates((t[j], c[j]), (t[i], c[i])) for j in range(len(t)))
    # 2) every other point is dominated by, or equal to, a front point
    for j in range(len(t)):
        if j in set(front.tolist()):
            continue
        assert (t[j], c[j]) in chosen or any(_dominates((t[i], c[i]), (t[j], c[j])) for i in front)
    # 3) fastest first, each point cheaper than the one before, no duplicates
    assert np.all(np.diff(t[front]) > 0) and np.all(np.diff(c[front]) < 0)


# --- the device-count grid -------------------------------------------------------------------------------------


def test_device_counts_are_powers_of_two_and_node_multiples():
    # 8-GPU nodes up to 64: powers of two 1..64 and multiples of 8 (24, 40, 48, 56 are not powers of two)
    assert device_counts(8, 64) == [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64]
    # a 1024-chip pod up to 4096: powers of two and 3072 = 3 pods
    assert device_counts(1024, 4096) == sorted([2**k for k in range(13)] + [3072])
    # above the dense limit only 2^k and 3·2^k (multiples of the node size), plus the cap itself
    big = device_counts(8, 20_000)
    assert {6144, 8192, 12288, 16384, 20_000} <= set(big)
    assert 4104 not in big and 4096 + 8 not in big
    assert device_counts(8, 64, above=32) == [40, 48, 56, 64]


# --- a real plan ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_plan():
    kwargs = {"hardware": "a100-80gb,h100-80gb", "max_devices": 256, "deadline": "60d"}
    report = plan(model="llama-2-7b", tokens="2T", **kwargs)
    spec = resolve_model("llama-2-7b")
    profiles = resolve_hardware_list(kwargs["hardware"])
    return report, search(spec, profiles, 2e12, max_devices=256, deadline_seconds=60 * 86400)


def test_best_fed_back_to_estimate_gives_the_same_time_and_cost(small_plan):
    report, _ = small_plan
    b = report.best_point
    again = estimate(
        model="llama-2-7b",
        tokens="2T",
        hardware=b.hardware,
        devices=b.devices,
        **b.layout.model_dump(),  # the whole layout record, interleave included
    )
    assert again.time.wall_clock_seconds == pytest.approx(b.wall_clock_seconds, rel=1e-9)
    assert again.cost.total_usd == pytest.approx(b.cost_usd, rel=1e-9)
    # plan.best is that estimate report, exactly
    assert report.best.model_dump() == again.model_dump()


def test_every_pareto_point_fits_and_meets_the_deadline(small_plan):
    report, _ = small_plan
    assert report.pareto
    for p in report.pareto:
        assert p.fits and p.memory_per_device_bytes <= p.capacity_bytes
        assert p.wall_clock_seconds <= 60 * 86400
        assert p.devices <= 256


def test_real_pareto_front_has_no_dominated_point(small_plan):
    _, result = small_plan
    v = result.points.values
    feasible = np.flatnonzero(result.feasible & np.isfinite(v["cost_usd"]))
    cloud = [(v["wall_clock_seconds"][j], v["cost_usd"][j]) for j in feasible]
    for i in result.pareto:
        point = (v["wall_clock_seconds"][i], v["cost_usd"][i])
        assert not any(_dominates(q, point) for q in cloud)
    # and the best by cost is the cheapest feasible point
    assert v["cost_usd"][result.best] == min(c for _, c in cloud)


def test_counts_match_an_independent_enumeration(small_plan):
    report, _ = small_plan
    spec = resolve_model("llama-2-7b")
    # both A100 and H100 come in 8-GPU nodes: powers of two 1..256 and the multiples of 8 up to 256
    counts = sorted({2**k for k in range(9)} | set(range(8, 257, 8)))
    per_hardware = sum(len(enumerate_layouts(spec, n, devices_per_node=8).tp) for n in counts)
    assert report.search.layouts_evaluated == 2 * per_hardware
    assert 0 < report.search.layouts_feasible <= report.search.layouts_evaluated
    assert report.search.device_counts == 2 * len(counts)
    assert report.search.seconds > 0


def test_a_looser_budget_never_gives_a_slower_optimum():
    spec = resolve_model("llama-2-7b")
    profiles = resolve_hardware_list("a100-80gb,h100-80gb")
    # Budgets as multiples of the cheapest plan's cost, so the check does not depend on fitted constants.
    cheapest = search(spec, profiles, 2e12, objective="cost", max_devices=512)
    floor = cheapest.points.values["cost_usd"][cheapest.best]
    walls = []
    for budget in (1.001 * floor, 1.05 * floor, 1.2 * floor, 1.7 * floor, 5 * floor):
        r = search(spec, profiles, 2e12, objective="time", budget_usd=budget, max_devices=512)
        assert r.best is not None
        assert r.points.values["cost_usd"][r.best] <= budget
        walls.append(r.points.values["wall_clock_seconds"][r.best])
    assert all(b <= a for a, b in zip(walls, walls[1:], strict=False))


def test_objective_time_picks_the_fastest_and_energy_the_least_energy():
    spec = resolve_model("llama-2-7b")
    profiles = resolve_hardware_list("a100-80gb,h100-80gb")
    fast = search(spec, profiles, 2e12, objective="time", max_devices=128)
    green = search(spec, profiles, 2e12, objective="energy", max_devices=128)
    v, ok = fast.points.values, fast.feasible
    assert v["wall_clock_seconds"][fast.best] == v["wall_clock_seconds"][ok].min()
    assert green.points.values["energy_kwh"][green.best] == green.points.values["energy_kwh"][green.feasible].min()


def test_deadline_extends_the_search_beyond_the_default_when_needed():
    # Llama-2-70B on 2T tokens: 6·69e9·2e12 ≈ 8.3e23 FLOPs. A V100 peaks at 125e12 FLOP/s (fp16), so even at
    # 50% MFU 30 days need 8.3e23 / (0.5 · 125e12 · 30 · 86400) ≈ 5,100 V100s: more than the default 4,096.
    spec = resolve_model("llama-2-70b")
    r = search(spec, resolve_hardware_list("v100-16gb"), 2e12, deadline_seconds=30 * 86400)
    assert r.max_devices > DEFAULT_MAX_DEVICES
    assert r.best is not None
    assert r.points.values["wall_clock_seconds"][r.best] <= 30 * 86400
    assert r.points.devices[r.best] > DEFAULT_MAX_DEVICES


def test_price_tier_leaves_out_hardware_without_it():
    spec = resolve_model("llama-2-7b")
    r = search(spec, resolve_hardware_list("a100-80gb,h100-80gb"), 2e12, price_tier="spot", max_devices=64)
    assert "a100-80gb" in r.skipped and "spot" in r.skipped["a100-80gb"]
    assert {h.profile.id for h in r.points.hardware} == {"h100-80gb"}


# --- the CLI ------------------------------------------------------------------------------------------------------


def test_plan_json_contract(cli):
    result = cli("plan", *SMALL, "--deadline", "60d", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["report"] == "plan" and doc["feasible"] is True
    assert doc["best"]["report"] == "estimate"
    for key in ("time", "cost", "memory", "parallelism", "flops", "energy", "warnings"):
        assert key in doc["best"]
    point = doc["pareto"][0]
    for key in ("hardware", "devices", "layout", "wall_clock_seconds", "cost_usd", "energy_kwh"):
        assert key in point
    s = doc["search"]
    assert s["layouts_evaluated"] >= s["layouts_feasible"] > 0 and s["seconds"] > 0


def test_plan_csv_has_one_row_per_pareto_point(cli):
    as_json = json.loads(cli("plan", *SMALL, "--deadline", "60d", "--format", "json").stdout)
    result = cli("plan", *SMALL, "--deadline", "60d", "--format", "csv", "--quiet")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("best,hardware,devices")
    assert len(lines) - 1 == len(as_json["pareto"])
    assert sum(line.startswith("true,") for line in lines[1:]) == 1


def test_plan_table_and_markdown(cli):
    table = cli("plan", *SMALL, "--deadline", "60d")
    assert table.exit_code == 0, table.stderr
    assert "Pareto front" in table.stdout and "layouts evaluated" in table.stdout and "best:" in table.stdout
    md = cli("plan", *SMALL, "--deadline", "60d", "--format", "markdown", "--quiet")
    assert md.exit_code == 0, md.stderr
    assert "| hardware |" in md.stdout and "Pareto front" in md.stdout


def test_infeasible_plan_exits_3_with_near_misses(cli, one_line_error):
    # 7B on 2T tokens in one hour: the fastest plan on 256 devices takes days
    result = cli("plan", *SMALL, "--deadline", "1h", "--format", "json")
    line = one_line_error(result, 3, "no plan meets --deadline", "closest")
    doc = json.loads(result.stdout)
    assert doc["feasible"] is False and doc["best"] is None
    assert 1 <= len(doc["near_misses"]) <= 3
    for miss in doc["near_misses"]:
        assert miss["misses"]["deadline"] > 0
        assert miss["point"]["wall_clock_seconds"] > 3600
        # "misses by" really is wall-clock / deadline − 1
        assert miss["misses"]["deadline"] == pytest.approx(miss["point"]["wall_clock_seconds"] / 3600 - 1)
    assert doc["near_misses"][0]["point"]["hardware"] in line


def test_energy_objective_without_any_power_figure_exits_3(cli, one_line_error):
    # the TPU v5p profile publishes no TDP: no plan has an energy figure to minimise
    result = cli(
        "plan",
        "--model",
        "llama-2-7b",
        "--tokens",
        "2T",
        "--hardware",
        "tpu-v5p",
        "--max-devices",
        "64",
        "--objective",
        "energy",
        "--format",
        "json",
    )
    one_line_error(result, 3, "power figure", "--objective energy")
    assert json.loads(result.stdout)["best"] is None


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--hardware", "a100-80gb,h100-80gbb"], ["unknown hardware", "did you mean"]),
        (["--max-devices", "0"], ["--max-devices", "zero"]),
        (["--max-devices", "-8"], ["--max-devices", "negative"]),
        (["--deadline", "thirty days"], ["--deadline", "cannot read"]),
        (["--budget", "$2Mx"], ["--budget", "cannot read"]),
        (["--objective", "speed"], ["--objective", "cost, time or energy"]),
        (["--price-tier", "bogus"], ["--price-tier bogus", "no selected hardware lists it"]),
        ([], ["--tokens"]),
    ],
)
def test_plan_bad_input_is_one_line_exit_2(cli, one_line_error, args, fragments):
    tokens = [] if args == [] else ["--tokens", "2T"]
    result = cli("plan", "--model", "llama-2-7b", *tokens, *args)
    one_line_error(result, 2, *fragments)
    assert result.stdout == ""


def test_output_is_atomic_and_refuses_overwrite(cli, tmp_path, one_line_error):
    out = tmp_path / "plan.json"
    result = cli("plan", *SMALL, "--deadline", "60d", "--format", "json", "--output", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and json.loads(out.read_text())["report"] == "plan"
    out.write_text("keep me")
    again = cli("plan", *SMALL, "--format", "json", "--output", str(out))
    one_line_error(again, 2, "exists", "--force")
    assert out.read_text() == "keep me"
    forced = cli("plan", *SMALL, "--deadline", "60d", "--format", "json", "--output", str(out), "--force")
    assert forced.exit_code == 0 and json.loads(out.read_text())["report"] == "plan"


def test_ctrl_c_exits_130_without_partial_output(cli, tmp_path, monkeypatch, one_line_error):
    import flopcast.planner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(flopcast.planner, "search", interrupted)
    out = tmp_path / "plan.json"
    result = cli("plan", *SMALL, "--format", "json", "--output", str(out))
    one_line_error(result, 130, "interrupted")
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no temporary file either


def test_plan_in_a_real_subprocess(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "p.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flopcast",
            "plan",
            *SMALL,
            "--deadline",
            "60d",
            "--format",
            "csv",
            "-o",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("best,hardware,devices")
