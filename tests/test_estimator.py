"""Estimator formulas against published figures and hand calculations (each derivation written out)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flopcast.estimator import costs, reliability
from flopcast.estimator.arrays import (
    RECOMPUTE_FULL,
    RECOMPUTE_NONE,
    RECOMPUTE_SELECTIVE,
    HardwareArrays,
    LayoutArrays,
    ModelArrays,
    Workload,
)
from flopcast.estimator.core import evaluate
from flopcast.estimator.flops import hardware_flops_per_token, model_flops_per_token
from flopcast.estimator.memory import memory_per_device, stored_activation_bytes_per_token_per_layer
from flopcast.hardware import load_catalog
from flopcast.models import ModelSpec

# GPT-3 175B (Brown et al. 2020, Table 2.1): 96 layers, d_model 12288, 96 heads, context 2048, BPE 50257.
GPT3 = ModelSpec(
    name="gpt3-175b",
    layers=96,
    d_model=12288,
    heads=96,
    vocab=50257,
    seq_len=2048,
    tied_embeddings=True,
    learned_positions=True,
    biases=True,
    layernorm_bias=True,
    dropout=True,
)
GPT3_TOKENS = 300e9


def _one(model: ModelSpec) -> ModelArrays:
    return ModelArrays.from_specs([model])


@pytest.fixture(scope="module")
def a100():
    return load_catalog().get("a100-80gb")


# --- FLOPs -----------------------------------------------------------------------------------------------
def test_gpt3_parameter_term_matches_brown_table_d1():
    """Brown et al. 2020, Table D.1: GPT-3 175B trained on 300B tokens used 3.14e23 FLOPs, counted as
    6·N·D (their footnote: "ignores attention"). Our parameter term 6·N·D is within 2% of that."""
    m = _one(GPT3)
    parameter_term = 6 * float(m.matmul_params[0]) * GPT3_TOKENS
    assert parameter_term == pytest.approx(3.14e23, rel=0.02)


def test_gpt3_attention_term_is_12_L_d_s_by_hand():
    """PaLM App. B: the attention adds 12·L·(H·Q)·T per token. GPT-3: H·Q = 96·128 = 12288 = d, so
    12 · 96 · 12288 · 2048 = 28,991,029,248 FLOPs per token; × 300e9 tokens = 8.697e21 FLOPs."""
    m = _one(GPT3)
    total = float(model_flops_per_token(m)[0]) * GPT3_TOKENS
    parameter_term = 6 * float(m.matmul_params[0]) * GPT3_TOKENS
    by_hand = 12 * 96 * 12288 * 2048 * GPT3_TOKENS
    assert 12 * 96 * 12288 * 2048 == 28_991_029_248
    assert total - parameter_term == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(8.697e21, rel=1e-3)


def test_recompute_adds_the_forward_pass():
    """Full recomputation repeats the layer forward: +2·N_layers + 4·L·d·s; selective repeats the attention
    core only: +4·L·d·s (DESIGN §4; Korthikanti et al. 2022). The head is not recomputed."""
    m = _one(GPT3)
    base = float(model_flops_per_token(m)[0])
    layers_n = 96 * float(m.layer_matmul_params_active[0])
    attention = 4 * 96 * 12288 * 2048
    assert hardware_flops_per_token(m, np.array(RECOMPUTE_NONE))[0] == base
    assert hardware_flops_per_token(m, np.array(RECOMPUTE_SELECTIVE))[0] == pytest.approx(base + attention)
    assert hardware_flops_per_token(m, np.array(RECOMPUTE_FULL))[0] == pytest.approx(base + 2 * layers_n + attention)


# --- memory ----------------------------------------------------------------------------------------------
def _synthetic(params: float) -> ModelArrays:
    """A model whose parameters all sit in one layer (no embeddings), for model-state arithmetic."""
    one = np.array([1.0])
    zero = np.array([0.0])
    return ModelArrays(
        layers=one,
        d_model=one * 4096,
        heads=one * 32,
        kv_heads=one * 32,
        attn_width=one * 4096,
        kv_width=one * 4096,
        kv_v_width=one * 4096,
        v_width=one * 4096,
        latent_width=zero,
        attention_context_fraction=one,
        ffn=one * 16384,
        gated=zero,
        vocab=one,
        seq_len=one * 2048,
        active_experts=one,
        experts=one,
        moe_fraction=zero,
        mlp_units=one,
        mlp_width=one * 16384,
        layer_expert_params=zero,
        params=one * params,
        layer_params=one * params,
        layer_matmul_params_active=one * params,
        input_embedding_params=zero,
        head_params=zero,
        tied=zero,
        final_params=zero,
        matmul_params=one * params,
        dropout=zero,
    )


@pytest.mark.parametrize(
    ("zero", "expected_gb"),
    [
        # Rajbhandari et al. 2020 (ZeRO), Figure 1: Ψ = 7.5B parameters, N_d = 64, K = 12.
        (0, 120.0),  # (2 + 2 + K)·Ψ = 16 · 7.5e9 = 120 GB
        (1, 31.4),  # 2Ψ + 2Ψ + KΨ/N_d = 30 GB + 1.41 GB
        (2, 16.6),  # 2Ψ + (2 + K)Ψ/N_d = 15 GB + 1.64 GB
        (3, 1.9),  # (2 + 2 + K)Ψ/N_d = 1.875 GB
    ],
)
def test_model_states_match_zero_paper_figure_1(zero, expected_gb):
    m = _synthetic(7.5e9)
    mem = memory_per_device(
        m,
        tp=np.array(1.0),
        pp=np.array(1.0),
        dp=np.array(64.0),
        micro_batch=np.array(1.0),
        micro_batches=np.array(2.0),  # gradients accumulate: they are allocated at the peak
        zero=np.array(float(zero)),
        recompute=np.array(0.0),
        interleave=np.array(1.0),
        fused_attention=np.array(1.0),
        precision="fp16",  # the paper's setting: fp16 weights and gradients
        grad_dtype="fp16",
    )
    states = (mem.weights_bytes + mem.gradients_bytes + mem.optimizer_bytes)[0]
    assert states / 1e9 == pytest.approx(expected_gb, abs=0.05)


def test_mixed_precision_adam_is_16_bytes_per_parameter():
    """ZeRO paper Sec. 3.1: 2 (fp16 weights) + 2 (fp16 gradients) + 12 (fp32 master, momentum, variance)."""
    mem = memory_per_device(
        _synthetic(1e9),
        tp=np.array(1.0),
        pp=np.array(1.0),
        dp=np.array(1.0),
        micro_batch=np.array(1.0),
        micro_batches=np.array(2.0),
        zero=np.array(0.0),
        recompute=np.array(0.0),
        interleave=np.array(1.0),
        fused_attention=np.array(1.0),
        precision="bf16",
        grad_dtype="bf16",
    )
    assert (mem.weights_bytes + mem.gradients_bytes + mem.optimizer_bytes)[0] == pytest.approx(16e9)


def test_megatron_fp32_main_grads_are_18_bytes_per_parameter():
    """Megatron-LM's distributed-optimizer docs: bf16 parameters with fp32 main grads hold 2 + 4 + 12 = 18 bytes
    per parameter without a distributed optimizer, 6 + 12/d with one (d = data-parallel size)."""
    kw = dict(
        tp=np.array(1.0),
        pp=np.array(1.0),
        micro_batch=np.array(1.0),
        micro_batches=np.array(1.0),
        recompute=np.array(0.0),
        interleave=np.array(1.0),
        fused_attention=np.array(1.0),
        precision="bf16",
    )
    plain = memory_per_device(_synthetic(1e9), dp=np.array(1.0), zero=np.array(0.0), **kw)
    sharded = memory_per_device(_synthetic(1e9), dp=np.array(8.0), zero=np.array(1.0), **kw)
    states = lambda mem: (mem.weights_bytes + mem.gradients_bytes + mem.optimizer_bytes)[0]  # noqa: E731
    assert states(plain) == pytest.approx(18e9)
    assert states(sharded) == pytest.approx((6 + 12 / 8) * 1e9)


def test_activation_memory_matches_korthikanti_gpt3_by_hand():
    """Korthikanti et al. 2022, Sec. 4 / Table 2 setting: GPT-3 175B, s = 2048, b = 1, h = 12288, a = 96,
    t = 8 with tensor + sequence parallelism. Per layer:
        no recompute   s·b·h·(34 + 5·a·s/h)/t = 2048·12288·(34 + 80)/8 = 358,612,992 bytes
        selective      s·b·h·34/t             = 2048·12288·34/8        = 106,954,752 bytes
        full           2·s·b·h/t              = 2·2048·12288/8         =   6,291,456 bytes
    (5·a·s/h = 5·96·2048/12288 = 80.) Unfused attention, as in the paper."""
    m = _one(GPT3)
    tokens = 2048 * 1
    tp = np.array(8.0)
    unfused = np.array(0.0)
    per_layer = {
        r: float(stored_activation_bytes_per_token_per_layer(m, np.array(float(r)), unfused, tp, 2.0)[0]) * tokens
        for r in (RECOMPUTE_NONE, RECOMPUTE_SELECTIVE, RECOMPUTE_FULL)
    }
    assert 2048 * 12288 * (34 + 80) // 8 == 358_612_992
    assert per_layer[RECOMPUTE_NONE] == pytest.approx(358_612_992)
    assert per_layer[RECOMPUTE_SELECTIVE] == pytest.approx(106_954_752)
    assert per_layer[RECOMPUTE_FULL] == pytest.approx(6_291_456)
    # FlashAttention keeps no score matrix: the same as selective recomputation (DESIGN §4).
    fused = float(stored_activation_bytes_per_token_per_layer(m, np.array(0.0), np.array(1.0), tp, 2.0)[0])
    assert fused * tokens == pytest.approx(106_954_752)


def test_first_pipeline_stage_holds_p_micro_batches(a100):
    """1F1B: the first stage keeps min(p, m) micro-batches in flight (Korthikanti et al. Sec. 4.2.3), so with
    p = 4 stages and m ≥ 4 micro-batches it holds 4× the activations of one micro-batch."""
    m = _one(GPT3)
    kw = dict(
        tp=np.array(8.0),
        dp=np.array(1.0),
        micro_batch=np.array(1.0),
        zero=np.array(0.0),
        recompute=np.array(1.0),
        interleave=np.array(1.0),
        fused_attention=np.array(1.0),
        precision="bf16",
    )
    many = memory_per_device(m, pp=np.array(4.0), micro_batches=np.array(16.0), **kw)
    one = memory_per_device(m, pp=np.array(4.0), micro_batches=np.array(1.0), **kw)
    assert (many.activations_bytes / one.activations_bytes)[0] == pytest.approx(4.0)


# --- time ------------------------------------------------------------------------------------------------
def test_narayanan_eq4_gpt3_on_1024_a100_takes_34_days(a100):
    """Narayanan et al. 2021, eq. 4: training time ≈ 8·T·P/(n·X). GPT-3: T = 300e9 tokens, P = 175e9,
    n = 1024 A100, X = 140 TFLOP/s → 8·300e9·175e9/(1024·140e12) = 2.93e6 s = 33.9 days (their "34 days").
    Their 8 counts recomputation (hardware FLOPs); model FLOPs are 6 per parameter, so 140 TFLOP/s of
    hardware FLOPs is an MFU of 140/312 · 6/8. Our model FLOPs also count attention (+4.7% for GPT-3),
    so the forced estimate is 34 days × 1.047 ≈ 35.5 days: within 5% of theirs."""
    by_hand_seconds = 8 * 300e9 * 175e9 / (1024 * 140e12)
    assert by_hand_seconds / 86400 == pytest.approx(33.9, abs=0.05)
    mfu = 140e12 / 312e12 * 6 / 8
    layout = LayoutArrays.of(tp=[8], pp=[8], dp=[16], micro_batch=[1], global_batch=[1536], zero=[0], recompute=[2])
    est = evaluate(_one(GPT3), HardwareArrays.from_profiles([a100]), layout, Workload(tokens=300e9, mfu_override=mfu))
    assert float(est.training_seconds[0]) == pytest.approx(by_hand_seconds, rel=0.05)
    # the step time is exactly the forced one: model FLOPs per step / (devices · peak · MFU)
    step = float(est.model_flops_per_token[0]) * 1536 * 2048 / (1024 * 312e12 * mfu)
    assert float(est.step_seconds[0]) == pytest.approx(step, rel=1e-9)


def test_time_is_never_below_the_flops_bound(a100):
    """Roofline floor: no layout finishes faster than hardware FLOPs / (devices · peak)."""
    from flopcast.search import enumerate_layouts

    cands = enumerate_layouts(GPT3, 1024, devices_per_node=8)
    est = evaluate(_one(GPT3), HardwareArrays.from_profiles([a100]), cands, Workload(tokens=300e9))
    floor = est.hardware_flops_total / (1024 * 312e12)
    assert np.all(est.training_seconds >= floor)


# --- reliability, cost, energy -----------------------------------------------------------------------------
def test_interruption_rate_is_llama3s():
    """Dubey et al. 2024: 466 interruptions in 54 days on 16,384 GPUs → 5.27e-4 per GPU-day."""
    per_day = reliability.INTERRUPTIONS_PER_DEVICE_SECOND * 86400
    assert per_day == pytest.approx(466 / (54 * 16384))
    assert per_day == pytest.approx(5.267e-4, rel=1e-3)
    # a 16,384-GPU job loses rate · N · (restart + interval/2) = 466/54 per day × 1000 s ≈ 10%: Llama 3's
    # "higher than 90% effective training time"
    assert reliability.effective_fraction(np.array([16384.0]))[0] == pytest.approx(0.9, abs=0.005)


def test_llama_65b_energy_and_co2_match_touvron_table_15():
    """Touvron et al. 2023 (LLaMA), Table 15: 65B took 1,022,362 A100-hours at 400 W, PUE 1.1:
    1,022,362 · 0.4 kW · 1.1 = 449,839 kWh ≈ 449 MWh, and 449.8 MWh · 0.385 t/MWh = 173 tCO2eq."""
    kwh = costs.energy_kwh(np.array([1_022_362.0]), np.array([400.0]))[0]
    assert kwh == pytest.approx(1_022_362 * 0.4 * 1.1)
    assert kwh / 1000 == pytest.approx(449, abs=1)
    assert costs.co2_kg(np.array([kwh]))[0] / 1000 == pytest.approx(173, abs=0.5)


def test_single_rows_equal_the_vectorised_sweep(a100):
    """One implementation: evaluating rows one at a time gives the same numbers as the sweep."""
    from flopcast.search import enumerate_layouts

    model = ModelSpec(layers=32, d_model=4096, heads=32, ffn=11008, gated_ffn=True, vocab=32000, seq_len=4096)
    cands = enumerate_layouts(model, 64, devices_per_node=8)
    hw = HardwareArrays.from_profiles([a100])
    sweep = evaluate(_one(model), hw, cands, Workload(tokens=1e12))
    for i in np.linspace(0, len(cands.tp) - 1, 7).astype(int):
        alone = evaluate(_one(model), hw, cands.take([i]), Workload(tokens=1e12))
        assert float(alone.step_seconds[0]) == float(sweep.step_seconds[i])
        assert float(alone.memory_bytes[0]) == float(sweep.memory_bytes[i])


def test_rows_can_mix_hardware(a100):
    """HardwareArrays from several profiles and an index array: each row uses its own device."""
    h100 = load_catalog().get("h100-80gb")
    model = _one(ModelSpec(layers=32, d_model=4096, heads=32, vocab=32000, seq_len=2048))
    layout = LayoutArrays.of(
        tp=[1, 1], pp=[1, 1], dp=[8, 8], micro_batch=[4, 4], global_batch=[64, 64], zero=[1, 1], recompute=[0, 0]
    )
    mixed = evaluate(model, HardwareArrays.from_profiles([a100, h100], np.array([0, 1])), layout, Workload(tokens=1e9))
    only_h100 = evaluate(model, HardwareArrays.from_profiles([h100]), layout.take([1]), Workload(tokens=1e9))
    assert float(mixed.step_seconds[1]) == float(only_h100.step_seconds[0])
    assert mixed.step_seconds[1] < mixed.step_seconds[0]  # 3.2× the peak, 1.6× the bandwidth
    assert math.isfinite(float(mixed.cost_usd[0]))
