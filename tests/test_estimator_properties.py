"""Invariants of the estimator over random models and layouts (hypothesis), and the layout search."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flopcast.estimator.arrays import HardwareArrays, LayoutArrays, ModelArrays, Workload
from flopcast.estimator.core import evaluate
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.hardware import load_catalog
from flopcast.layout import Layout, LayoutQuery, check_layout
from flopcast.models import ModelSpec
from flopcast.request import priced_hardware
from flopcast.search import enumerate_layouts, search_layouts

CATALOG = load_catalog()
PROFILES = [CATALOG.get(i) for i in ("a100-80gb", "h100-80gb", "v100-32gb", "a100-40gb")]

models = st.builds(
    lambda layers, heads, head_dim, ffn_mult, gated, vocab, seq: ModelSpec(
        layers=layers,
        d_model=heads * head_dim,
        heads=heads,
        ffn=heads * head_dim * ffn_mult,
        gated_ffn=gated,
        vocab=vocab,
        seq_len=seq,
    ),
    layers=st.sampled_from([2, 4, 12, 24, 32, 48]),
    heads=st.sampled_from([4, 8, 16, 32, 64]),
    head_dim=st.sampled_from([64, 128]),
    ffn_mult=st.sampled_from([2, 3, 4]),
    gated=st.booleans(),
    vocab=st.sampled_from([32000, 50257, 128256]),
    seq=st.sampled_from([512, 2048, 4096]),
)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sweep(model, devices, profile, tokens=1e11, price=2.0):
    cands = enumerate_layouts(model, devices, devices_per_node=profile.devices_per_node)
    hw = HardwareArrays.from_profiles([profile], price_per_hour=price)
    return cands, hw, evaluate(ModelArrays.from_specs([model]), hw, cands, Workload(tokens=tokens))


@SETTINGS
@given(model=models, devices=st.sampled_from([1, 8, 64, 256]), hw=st.sampled_from(PROFILES))
def test_time_at_least_flops_over_peak(model, devices, hw):
    """No layout beats the compute roof: wall-clock ≥ training ≥ hardware FLOPs / (devices · peak)."""
    _, hwa, est = _sweep(model, devices, hw)
    floor = est.hardware_flops_total / (devices * hwa.peak_flops_per_s)
    assert np.all(est.training_seconds >= floor * (1 - 1e-12))
    assert np.all(est.wall_clock_seconds >= est.training_seconds)


@SETTINGS
@given(
    model=models,
    devices=st.sampled_from([8, 64]),
    hw=st.sampled_from(PROFILES),
    price=st.floats(min_value=0.1, max_value=20),
)
def test_cost_is_device_hours_times_price(model, devices, hw, price):
    _, _, est = _sweep(model, devices, hw, price=price)
    assert np.allclose(est.cost_usd, est.device_hours * price, rtol=1e-12)
    assert np.allclose(est.device_hours, est.wall_clock_seconds * devices / 3600, rtol=1e-12)
    assert np.all(est.cost_usd_p10 <= est.cost_usd) & np.all(est.cost_usd <= est.cost_usd_p90)


@SETTINGS
@given(model=models, devices=st.sampled_from([8, 24, 64, 256]))
def test_enumerated_layouts_are_valid(model, devices):
    cands = enumerate_layouts(model, devices, devices_per_node=8, query=LayoutQuery(global_batch=512))
    tp, pp, dp, mb, gb = cands.tp, cands.pp, cands.dp, cands.micro_batch, cands.global_batch
    for i in range(0, len(tp), max(1, len(tp) // 50)):  # every enumerated layout passes the one validity check
        check_layout(model, devices, Layout.from_arrays(cands, i))
    assert np.all(tp * cands.cp * pp * dp == devices)
    assert np.all(model.heads % tp == 0) and np.all(pp <= model.layers)  # uneven stages allowed
    fullest = np.ceil(model.layers / pp)
    assert np.all((cands.interleave == 1) | (np.fmod(fullest, cands.interleave) == 0))  # chunks of the fullest stage
    assert np.all(tp <= 8)
    assert np.all(gb % (dp * mb) == 0)


def test_search_picks_the_fastest_layout_that_fits():
    """The chosen row fits and no fitting row is faster by more than the 0.1% tie band."""
    a100 = CATALOG.get("a100-80gb")
    model = ModelSpec(
        layers=80, d_model=8192, heads=64, kv_heads=8, ffn=28672, gated_ffn=True, vocab=32000, seq_len=4096
    )
    params = EfficiencyParams.load()
    hw = priced_hardware(a100, precision="bf16", params=params)
    res = search_layouts(model, hw, 512, Workload(tokens=2e12), params=params)
    assert res.fits and res.automatic
    # a second method: evaluate every candidate here and find the fastest that fits
    cands = enumerate_layouts(model, 512, devices_per_node=8)
    est = evaluate(ModelArrays.from_specs([model]), hw.arrays, cands, Workload(tokens=2e12), params)
    fastest = est.wall_clock_seconds[est.fits].min()
    assert res.candidates_evaluated == len(cands.tp)
    assert fastest <= res.estimates.wall_clock_seconds[0] <= fastest * (1 + 2e-3)


def test_search_respects_fixed_options():
    a100 = CATALOG.get("a100-80gb")
    model = ModelSpec(layers=32, d_model=4096, heads=32, vocab=32000, seq_len=2048)
    params = EfficiencyParams.load()
    hw = priced_hardware(a100, precision="bf16", params=params)
    query = LayoutQuery(tp=2, recompute="selective", global_batch=256)
    res = search_layouts(model, hw, 64, Workload(tokens=1e11), query=query, params=params)
    assert res.layout.tp == 2 and res.layout.global_batch == 256 and res.layout.recompute == "selective"


def test_one_million_layouts_evaluate_in_one_call():
    """The planner's shape: one model, 10^6 rows mixing two hardware profiles and many layouts."""
    n = 1_000_000
    rng = np.random.default_rng(0)
    model = ModelArrays.from_specs([ModelSpec(layers=32, d_model=4096, heads=32, vocab=32000, seq_len=2048)])
    hw = HardwareArrays.from_profiles(PROFILES[:2], rng.integers(0, 2, n))
    lay = LayoutArrays.of(
        tp=rng.choice([1, 2, 4, 8], n),
        pp=rng.choice([1, 2, 4], n),
        dp=8,
        micro_batch=rng.choice([1, 2, 4], n),
        global_batch=512,
        zero=rng.integers(0, 4, n),
        recompute=rng.integers(0, 3, n),
    )
    est = evaluate(model, hw, lay, Workload(tokens=1e11))
    assert est.step_seconds.shape == (n,) and np.all(np.isfinite(est.step_seconds))
