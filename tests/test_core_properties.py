"""Hardening (issue 8): invariants of the one estimator core over random models, layouts, hardware and workloads.

Unlike tests/test_estimator_properties.py (realistic shapes, one price), these draw from the whole range
flopcast accepts: models up to 1e15 parameters, tokens up to 1e16, forced MFU, any price, any capacity,
and also go through the library entry point :func:`flopcast.api.estimate`.

The invariants (DESIGN §8 "tests"), each a fact that follows from the definitions, not from the code:
- no step beats the compute roof: wall-clock ≥ training time ≥ hardware FLOPs / (devices · peak);
- total FLOPs depend on the model, the tokens and the recomputation, never on how many devices share them;
- cost = device-hours × price per device-hour, device-hours = wall-clock · devices / 3600 s;
- the memory breakdown sums to the per-device total, and ``fits`` is exactly total ≤ capacity;
- more memory per device never turns ``fits`` from true to false;
- every number is finite for parameters up to 1e15 and tokens up to 1e16.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flopcast.estimator.arrays import HardwareArrays, ModelArrays, Workload
from flopcast.estimator.core import evaluate
from flopcast.hardware import load_catalog
from flopcast.models import ModelSpec
from flopcast.search import enumerate_layouts

SECONDS_PER_HOUR = 3600.0
MAX_PARAMS = 1e15  # the sanity bound flopcast accepts (models.MAX_MODEL_PARAMS), stated independently here
MAX_TOKENS = 1e16

CATALOG = load_catalog()
PROFILES = [CATALOG.get(i) for i in CATALOG.ids()]  # every shipped profile: GPUs, TPUs, a CPU
SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# From a 2-layer toy to a ~1e15-parameter giant (16384 layers × d 65536 ≈ 8.4e14 parameters).
models = st.builds(
    lambda layers, heads, head_dim, ffn_mult, gated, kv_div, vocab, seq, tied: ModelSpec(
        layers=layers,
        d_model=heads * head_dim,
        heads=heads,
        kv_heads=max(heads // kv_div, 1),
        ffn=heads * head_dim * ffn_mult,
        gated_ffn=gated,
        vocab=vocab,
        seq_len=seq,
        tied_embeddings=tied,
    ),
    layers=st.sampled_from([1, 2, 3, 12, 32, 96, 1024, 16384]),
    heads=st.sampled_from([1, 2, 8, 32, 96, 512]),
    head_dim=st.sampled_from([16, 64, 128]),
    ffn_mult=st.sampled_from([1, 2, 4]),
    gated=st.booleans(),
    kv_div=st.sampled_from([1, 8]),
    vocab=st.sampled_from([1, 256, 32000, 256000]),
    seq=st.sampled_from([1, 128, 2048, 32768]),
    tied=st.booleans(),
)
tokens = st.builds(lambda e, m: m * 10.0**e, st.integers(0, 15), st.floats(1.0, 9.99))
devices = st.sampled_from([1, 2, 8, 12, 64, 256, 1024])
mfu = st.one_of(st.none(), st.floats(0.01, 1.0))
price = st.floats(0.01, 1e4)


def _precision(profile) -> str:
    """Mixed precision where the device has a 16-bit peak, else fp32 (a CPU)."""
    return "bf16" if profile.peak_flops_per_s.bf16 or profile.peak_flops_per_s.fp16 else "fp32"


def _run(model, profile, n_devices, n_tokens, forced_mfu=None, usd=2.0, memory_scale=1.0):
    """Every valid layout of ``model`` on ``n_devices`` of ``profile``, evaluated by the core."""
    assume(model.params <= MAX_PARAMS)
    cands = enumerate_layouts(model, n_devices, devices_per_node=profile.devices_per_node)
    assume(len(cands.tp) > 0)
    precision = _precision(profile)
    hw = HardwareArrays.from_profiles([profile], precision=precision, price_per_hour=usd)
    if memory_scale != 1.0:
        hw = hw._replace(memory_bytes=hw.memory_bytes * memory_scale)
    work = Workload(tokens=n_tokens, precision=precision, mfu_override=forced_mfu)
    return cands, hw, evaluate(ModelArrays.from_specs([model]), hw, cands, work)


@SETTINGS
@given(model=models, profile=st.sampled_from(PROFILES), n=devices, t=tokens, m=mfu)
def test_no_layout_beats_the_compute_roof(model, profile, n, t, m):
    _, hw, est = _run(model, profile, n, t, forced_mfu=m)
    # The weight matmuls alone (6 FLOPs per weight per token: forward + two backward GEMMs, Kaplan et al. 2020)
    # cannot run faster than the peak. (The attention term is left out: the FLOP conventions count the full
    # s × s scores, while a causal fused kernel computes about half of them, so HFU may pass 1 at long s.)
    matmul_weights = ModelArrays.from_specs([model]).matmul_params[0]
    floor = 6.0 * matmul_weights * t / (n * hw.peak_flops_per_s)
    assert np.all(est.training_seconds >= floor * (1 - 1e-9))
    assert np.all(est.wall_clock_seconds >= est.training_seconds)
    assert np.all(est.hardware_flops_total >= est.model_flops_total * (1 - 1e-12))  # recomputation only adds
    if m is not None:
        assert np.all(est.hfu <= 1 + 1e-9)  # a forced --mfu never drives the hardware above its peak


@SETTINGS
@given(model=models, profile=st.sampled_from(PROFILES), n=devices, t=tokens, usd=price, m=mfu)
def test_cost_is_device_hours_times_price(model, profile, n, t, usd, m):
    _, _, est = _run(model, profile, n, t, forced_mfu=m, usd=usd)
    assert np.allclose(est.device_hours, est.wall_clock_seconds * n / SECONDS_PER_HOUR, rtol=1e-12)
    assert np.allclose(est.cost_usd, est.device_hours * usd, rtol=1e-12)
    assert np.all(est.cost_usd_p10 <= est.cost_usd) and np.all(est.cost_usd <= est.cost_usd_p90)


@SETTINGS
@given(
    model=models,
    profile=st.sampled_from(PROFILES),
    n=devices,
    t=tokens,
    scale=st.floats(1.0, 1e6),
)
def test_more_memory_never_turns_fits_false(model, profile, n, t, scale):
    _, _, small = _run(model, profile, n, t)
    _, _, large = _run(model, profile, n, t, memory_scale=scale)
    assert np.all(large.fits | ~small.fits)  # fits before ⇒ fits after
    assert np.array_equal(small.memory_bytes, large.memory_bytes)  # capacity does not change the need


@SETTINGS
@given(model=models, profile=st.sampled_from(PROFILES), n=devices, t=tokens, m=mfu, usd=price)
def test_every_number_is_finite_up_to_1e15_params_and_1e16_tokens(model, profile, n, t, m, usd):
    _, hw, est = _run(model, profile, n, min(t * 10, MAX_TOKENS), forced_mfu=m, usd=usd)
    has_power = bool(np.isfinite(hw.power_watts).all())
    for name, values in zip(est._fields, est, strict=True):
        if name in ("energy_kwh", "co2_kg") and not has_power:
            continue  # NaN by design: the profile publishes no power figure
        assert np.all(np.isfinite(np.asarray(values, dtype=float))), name


def test_the_largest_accepted_job_is_finite():
    """The corner the strategies above only approach: 1e15 parameters (the size rule) and 1e16 tokens."""
    import flopcast

    r = flopcast.estimate(model="1e15", tokens=MAX_TOKENS, hardware="h100-80gb", devices=4096)
    assert r.model.params == pytest.approx(MAX_PARAMS, rel=0.02)
    for value in (r.flops.total, r.time.wall_clock_seconds, r.time.device_hours, r.cost.total_usd, r.energy.kwh):
        assert math.isfinite(value) and value > 0
    # C = 6·N·D (Kaplan et al. 2020) is the model-FLOPs floor: ≈ 6e31 here
    assert r.flops.total >= 6 * r.model.params * MAX_TOKENS * 0.99


# --- the same invariants through the library entry point ----------------------------------------------------------

presets = st.sampled_from(["gpt3-125m", "llama-2-7b", "llama-2-70b", "mixtral-8x7b", "bert-large", "7B", "350M"])
shipped = st.sampled_from(["a100-80gb", "h100-80gb", "v100-32gb", "tpu-v4", "epyc-9654"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=presets, hw=shipped, n=st.sampled_from([1, 8, 64, 512]), t=tokens, usd=price)
def test_api_estimate_invariants(model, hw, n, t, usd):
    import flopcast

    precision = _precision(CATALOG.get(hw))
    r = flopcast.estimate(model=model, tokens=t, hardware=hw, devices=n, price_per_hour=usd, precision=precision)
    peak = r.hardware.peak_flops_per_s
    assert r.time.wall_clock_seconds >= r.flops.hardware_total / (n * peak) * (1 - 1e-9)
    assert r.flops.hardware_total >= r.flops.total * (1 - 1e-12)
    assert r.cost.total_usd == pytest.approx(r.time.device_hours * usd, rel=1e-12)
    assert r.time.device_hours == pytest.approx(r.time.wall_clock_seconds * n / SECONDS_PER_HOUR, rel=1e-12)
    b = r.memory.breakdown
    parts = (
        b.weights_bytes + b.gradients_bytes + b.optimizer_bytes + b.activations_bytes + b.logits_bytes
        + b.recompute_working_bytes + b.zero3_buffers_bytes
    )  # fmt: skip
    assert parts == pytest.approx(r.memory.allocated_bytes, rel=1e-12)
    assert r.memory.reserved_bytes >= r.memory.allocated_bytes
    parts += b.fragmentation_bytes + b.runtime_context_bytes + b.communicator_bytes
    assert parts == pytest.approx(r.memory.per_device_bytes, rel=1e-12)
    assert r.memory.fits == (r.memory.per_device_bytes <= r.memory.capacity_bytes)
    more = flopcast.estimate(model=model, tokens=t, hardware=hw, devices=2 * n, price_per_hour=usd, precision=precision)
    assert more.flops.total >= r.flops.total * (1 - 1e-12)
