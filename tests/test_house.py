"""The house: one layout record, one validity check, one search and winner rule, one request layer.

What these tests pin down is agreement between front doors that used to disagree, with expected values that
come from a second path (a direct estimate, an independent enumeration) rather than from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

import flopcast
from flopcast.errors import InvalidLayout, InvalidValue, flag_style
from flopcast.estimator.arrays import LAYOUT_FIELDS, LayoutArrays
from flopcast.layout import LAYOUT_SPECS, Layout, LayoutQuery, check_layout
from flopcast.model_resolve import resolve_model
from flopcast.planner import search
from flopcast.reports.layout import LayoutInfo, LayoutQueryInfo
from flopcast.request import price_for, resolve_hardware, resolve_hardware_list

# --- one layout record ------------------------------------------------------------------------------------------


def test_every_form_of_the_layout_has_the_same_fields_in_the_same_order():
    record = Layout._fields
    assert record == LAYOUT_FIELDS == tuple(s.name for s in LAYOUT_SPECS) == LayoutArrays._fields
    assert tuple(LayoutInfo.model_fields) == record
    assert tuple(LayoutQueryInfo.model_fields) == record
    assert set(record) <= set(LayoutQuery._fields)


def test_layout_round_trips_through_arrays_and_flags(cli):
    layout = Layout(tp=2, pp=4, dp=8, micro_batch=2, global_batch=512, zero=1, recompute="selective", interleave=2)
    assert Layout.from_arrays(layout.arrays()) == layout
    assert "--interleave 2" in layout.flags() and "--cp" not in layout.flags()  # slots at 1 stay out of the flags
    # the flags reproduce the layout through the CLI
    result = cli("estimate", "--model", "llama-2-7b", "--tokens", "1T", "--hardware", "a100-80gb", "--devices", "64",
                 *layout.flags().split(), "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    import json

    p = json.loads(result.stdout)["parallelism"]
    assert Layout(**{k: p[k] for k in LAYOUT_FIELDS}) == layout


# --- one validity check -----------------------------------------------------------------------------------------

SPEC = resolve_model("llama-2-7b")  # 32 layers, 32 heads


@pytest.mark.parametrize(
    ("query", "devices", "fragment"),
    [
        (LayoutQuery(tp=3), 64, "does not divide the 32 attention heads"),
        (LayoutQuery(pp=33), 64, "more pipeline stages than the model's 32 layers"),
        (LayoutQuery(pp=3, interleave=2), 64, "the 11 layers of the fullest pipeline stage"),
        (LayoutQuery(tp=8, pp=4, dp=3), 64, "= 96 but"),
        (LayoutQuery(tp=8, pp=16), 64, "does not divide"),
        (LayoutQuery(dp=8, micro_batch=4, global_batch=100), 64, "not divisible by dp × micro-batch"),
        (LayoutQuery(interleave=2, pp=1), 64, "needs pipeline parallelism"),
        (LayoutQuery(interleave=3, pp=4), 64, "does not divide the 8 layers of the fullest pipeline stage"),
        (LayoutQuery(tp=8, pp=4, dp=2, micro_batch=1, global_batch=6, interleave=2), 64, "micro-batches per step"),
        (LayoutQuery(zero=4), 64, "not a ZeRO stage"),
        (LayoutQuery(recompute="most"), 64, "not a recompute mode"),
        (LayoutQuery(cp=3), 64, "does not split into 2·cp = 6 equal chunks"),  # llama-2-7b: 4096 tokens
        (LayoutQuery(ep=2), 64, "needs a mixture-of-experts model"),
        (LayoutQuery(tp=2, cp=2, pp=2, dp=4), 64, "= 32 but"),
    ],
)
def test_check_layout_refuses_with_one_reason(query, devices, fragment):
    with pytest.raises(InvalidLayout, match=fragment):
        check_layout(SPEC, devices, query)


def test_library_messages_name_keywords_and_the_cli_names_flags():
    with pytest.raises(InvalidLayout) as info:
        flopcast.estimate(model="llama-2-7b", tokens="1T", devices=64, tp=3)
    assert "--" not in str(info.value) and "tp 3" in str(info.value)
    assert info.value.one_line(flag_style).startswith("--tp 3 does not divide")
    with pytest.raises(InvalidValue) as info:
        flopcast.estimate(model="llama-2-7b", tokens="1T", devices=64, micro_batch="x")
    assert str(info.value).startswith("micro_batch: ") and info.value.one_line(flag_style).startswith("--micro-batch: ")


# --- one search, one winner rule -------------------------------------------------------------------------------


def _plan_winner(spec, hardware: str, devices: int):
    result = search(spec, resolve_hardware_list(hardware), 2e12, max_devices=devices, objective="time")
    pts = result.points
    (i,) = np.flatnonzero(pts.devices == devices)
    return Layout.from_arrays(pts.layouts, int(i)), float(pts.values["wall_clock_seconds"][i])


@pytest.mark.parametrize(
    ("model", "hardware", "devices"),
    [("llama-2-7b", "a100-80gb", 64), ("llama-2-13b", "h100-80gb", 128), ("llama-2-70b", "a100-40gb", 256)],
)
def test_estimate_and_plan_choose_the_same_layout_at_the_same_device_count(model, hardware, devices):
    spec = resolve_model(model)
    layout, wall = _plan_winner(spec, hardware, devices)
    r = flopcast.estimate(model=model, tokens="2T", hardware=hardware, devices=devices)
    assert Layout(**{k: getattr(r.parallelism, k) for k in LAYOUT_FIELDS}) == layout
    assert r.time.wall_clock_seconds == pytest.approx(wall, rel=1e-12)


@pytest.fixture(scope="module")
def gpt3_time_plan():
    """The case the plan bug showed (the best block lost its interleave: +64% wall-clock on re-estimate)."""
    return flopcast.plan(model="gpt3-175b", tokens="300B", hardware="a100-80gb", objective="time", max_devices=4096)


def test_plan_best_re_estimates_to_the_same_wall_clock_for_an_interleaved_pipeline(gpt3_time_plan):
    best = gpt3_time_plan.best_point
    assert best.layout.pp > 1 and best.layout.interleave > 1  # the case that broke: a pipelined, interleaved winner
    again = flopcast.estimate(
        model="gpt3-175b", tokens="300B", hardware="a100-80gb", devices=best.devices, **best.layout.model_dump()
    )
    assert again.time.wall_clock_seconds == pytest.approx(best.wall_clock_seconds, rel=1e-3)
    assert gpt3_time_plan.best.time.wall_clock_seconds == pytest.approx(best.wall_clock_seconds, rel=1e-3)
    assert gpt3_time_plan.best.parallelism.interleave == best.layout.interleave


def test_plan_best_re_estimates_for_a_pipelined_winner_without_interleave():
    report = flopcast.plan(model="gpt3-175b", tokens="300B", hardware="a100-80gb", objective="time", max_devices=512)
    best = report.best_point
    fixed = {**best.layout.model_dump(), "interleave": 1}
    again = flopcast.estimate(model="gpt3-175b", tokens="300B", hardware="a100-80gb", devices=best.devices, **fixed)
    if best.layout.interleave == 1:
        assert again.time.wall_clock_seconds == pytest.approx(best.wall_clock_seconds, rel=1e-3)
    else:  # interleaving was chosen because it is faster: dropping it cannot be faster
        assert again.time.wall_clock_seconds >= best.wall_clock_seconds * (1 - 1e-3)


def test_sweep_rows_are_the_plan_winners():
    from flopcast.sweep import sweep_estimate

    spec = resolve_model("llama-2-7b")
    sweep = sweep_estimate(sweep="devices=8..64", model="llama-2-7b", tokens="2T", hardware="h100-80gb")
    for row in sweep.rows:
        layout, wall = _plan_winner(spec, "h100-80gb", row.devices)
        assert Layout(**row.layout.model_dump()) == layout
        assert row.wall_clock_seconds == pytest.approx(wall, rel=1e-12)


# --- one price rule -------------------------------------------------------------------------------------------


def test_one_price_rule_for_every_front_door():
    """estimate, plan, compare and the rule itself cost the same hardware at the same price."""
    a100 = resolve_hardware("a100-80gb")
    on_demand = a100.prices_usd_per_device_hour["on-demand"].usd_per_device_hour  # the profile's own figure
    assert price_for(a100).usd_per_device_hour == on_demand
    est = flopcast.estimate(model="llama-2-7b", tokens="1T", hardware="a100-80gb", devices=64)
    cmp = flopcast.compare(model="llama-2-7b", tokens="1T", hardware="a100-80gb", devices=64)
    plan = flopcast.plan(model="llama-2-7b", tokens="1T", hardware="a100-80gb", max_devices=64, objective="time")
    assert est.cost.usd_per_device_hour == cmp.rows[0].usd_per_device_hour == on_demand
    assert plan.best.cost.usd_per_device_hour == on_demand
    assert est.cost.total_usd == pytest.approx(est.time.device_hours * on_demand, rel=1e-12)


def test_a_profile_without_on_demand_is_costed_at_its_cheapest_tier_with_a_warning():
    a100 = resolve_hardware("a100-80gb")
    listed = a100.prices_usd_per_device_hour["on-demand"]
    tiers = {"spot": listed.model_copy(update={"usd_per_device_hour": 1.25}), "reserved": listed}
    profile = a100.model_copy(update={"prices_usd_per_device_hour": tiers})
    price = price_for(profile)
    assert (price.usd_per_device_hour, price.tier) == (1.25, "spot")
    assert "lists no on-demand price; costed at its spot tier" in price.warnings[0]
    assert price_for(profile.model_copy(update={"prices_usd_per_device_hour": {}})).usd_per_device_hour is None


def test_an_unlisted_tier_is_an_error_naming_the_listed_ones():
    with pytest.raises(InvalidValue, match="tiers listed: on-demand"):
        price_for(resolve_hardware("a100-80gb"), "reserved")


# --- monotonicity ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["peak_flops_per_s", "memory_bandwidth_bytes_per_s",
                                   "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s"])  # fmt: skip
def test_more_peak_or_bandwidth_is_never_slower(field):
    """Every layout of a 13B model on 256 A100s, with one hardware figure raised 1.5× and 4×."""
    from flopcast.estimator.arrays import HardwareArrays, ModelArrays, Workload
    from flopcast.estimator.core import evaluate
    from flopcast.search import enumerate_layouts

    spec = resolve_model("llama-2-13b")
    cands = enumerate_layouts(spec, 256, devices_per_node=8)
    hw = HardwareArrays.from_profiles([resolve_hardware("a100-80gb")])
    marr, work = ModelArrays.from_specs([spec]), Workload(tokens=1e12)
    base = evaluate(marr, hw, cands, work).step_seconds
    for scale in (1.5, 4.0):
        faster = evaluate(marr, hw._replace(**{field: getattr(hw, field) * scale}), cands, work).step_seconds
        assert np.all(faster <= base * (1 + 1e-12))
    assert np.any(faster < base * (1 - 1e-6))  # the figure matters for some layout (the test can fail)


def test_the_cli_layout_flags_come_from_the_record():
    """estimate's layout flags are the record's fields with the record's help (cp and ep included)."""
    import typer.main

    from flopcast.cli import app
    from flopcast.layout_fields import LAYOUT_SPECS

    estimate = typer.main.get_command(app).commands["estimate"]
    helps = {opt: p.help for p in estimate.params for opt in getattr(p, "opts", [])}
    for spec in LAYOUT_SPECS:
        flag = "--" + spec.name.replace("_", "-")
        assert helps[flag].lower().startswith(spec.help.lower()) and spec.when_open in helps[flag]


def _winner_by_hand(wall, memory, fits, devices):
    """The winner rule written out row by row (search.py's docstring), as a second method."""
    rows = range(len(wall))
    if any(fits):
        best = min(round(np.log(wall[i]) / 1e-3) for i in rows if fits[i])
        tied = [i for i in rows if fits[i] and round(np.log(wall[i]) / 1e-3) == best]
        return min(tied, key=lambda i: (memory[i], devices[i], i))
    least = min(memory)
    return min((i for i in rows if memory[i] == least), key=lambda i: (round(np.log(wall[i]) / 1e-3), devices[i], i))


def test_the_winner_rule_matches_its_statement_row_by_row():
    from flopcast.search import winners

    rng = np.random.default_rng(7)
    for _ in range(200):
        sizes = rng.integers(1, 12, size=rng.integers(1, 6))
        n = int(sizes.sum())
        wall = rng.choice([1.0, 1.0002, 1.5, 2.0, 3.0], size=n) * 1e5  # ties inside and across the 0.1% band
        memory = rng.choice([10.0, 20.0, 30.0], size=n)
        fits = rng.random(n) < 0.5
        devices = rng.choice([8.0, 16.0], size=n)
        groups = np.repeat(np.arange(len(sizes)), sizes)
        got = winners(wall, memory, fits, devices, groups, len(sizes))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        want = [s + _winner_by_hand(wall[s:s + k], memory[s:s + k], fits[s:s + k], devices[s:s + k])
                for s, k in zip(starts, sizes, strict=True)]  # fmt: skip
        assert got.tolist() == want


NEW_FIELD_PROGRAM = r"""
import json
import flopcast.layout_fields as lf

# the one line a new parallel dimension adds to the layout record (here a made-up "xp", default 1)
lf.LAYOUT_SPECS = (*lf.LAYOUT_SPECS, lf.FieldSpec("xp", 1, "test-only parallel degree", "1"))
lf.SPEC_BY_NAME = {s.name: s for s in lf.LAYOUT_SPECS}
lf.LAYOUT_FIELDS = tuple(s.name for s in lf.LAYOUT_SPECS)
lf.CLI_LAYOUT_FIELDS = tuple(s.name for s in lf.LAYOUT_SPECS if s.cli)

from typer.testing import CliRunner
from flopcast.cli import load_commands
from flopcast.estimator.arrays import LayoutArrays
from flopcast.layout import Layout, LayoutQuery
from flopcast.reports.layout import LayoutInfo

app = load_commands(["estimate"])
result = CliRunner().invoke(app, ["estimate", "--model", "llama-2-7b", "--tokens", "1T", "--devices", "8",
                                  "--xp", "1", "--format", "json"])
doc = json.loads(result.stdout)
print(json.dumps({
    "layout": "xp" in Layout._fields, "query": "xp" in LayoutQuery._fields, "arrays": "xp" in LayoutArrays._fields,
    "report": "xp" in LayoutInfo.model_fields, "inputs": doc["inputs"].get("xp"),
    "parallelism": doc["parallelism"]["xp"],
}))
"""


def test_a_new_layout_field_is_one_declaration():
    """Declared once in flopcast.layout_fields, a new field reaches the record, the query, the core's arrays,
    the report, the library keywords and the CLI flag (its physics, rule and enumeration are the rest)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", NEW_FIELD_PROGRAM], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {
        "layout": True, "query": True, "arrays": True, "report": True, "inputs": 1, "parallelism": 1,
    }  # fmt: skip
