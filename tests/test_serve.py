"""`flopcast.serving`: deployment estimates against hand-derived figures.

Shapes (Touvron et al. 2023, Llama 2, Table 1 / the HF configs): Llama-2-7B has 32 layers, d = 4096, 32 heads
(MHA, head_dim 128), SwiGLU ffn 11008, vocab 32000, untied embeddings, 6,738,415,616 parameters;
Llama-2-70B has 80 layers, d = 8192, 64 heads, 8 KV heads, ffn 28672, 68,976,648,192 parameters.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flopcast.errors import InvalidLayout, InvalidValue, flag_style
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.hardware import HardwareProfile, load_catalog
from flopcast.models import ModelSpec
from flopcast.runtimes import RuntimeProfile
from flopcast.serving import ServeRequest, estimate_serving, serving_grid, tensor_parallel_degrees
from flopcast.serving_memory import bytes_per_quantized_weight, kv_cache_bytes, weight_bytes

# A bare test runtime: decode reaches 0.9 × 0.7 = 0.63 of the datasheet bandwidth at every weight format and a
# forward pass has no fixed cost, so the figures below are bytes / bandwidth and FLOPs / peak by hand. The shipped
# runtimes (flopcast/data/runtimes.yaml) are tested in tests/test_serve_runtimes.py.
BARE = RuntimeProfile(
    id="bare", name="test runtime", kind="gpu", bandwidth_fraction={16: 0.7, 8: 0.7, 4: 0.7}, kernels_per_layer=0,
    kernels_outside_layers=0, launch_seconds_per_kernel=0.0, gap_seconds_per_kernel=0.0, seconds_per_forward=0.0,
    stream_fraction=0.9,
)  # fmt: skip
Bare = functools.partial(ServeRequest, runtime=BARE)

LLAMA2_7B = ModelSpec(
    name="llama-2-7b", layers=32, d_model=4096, heads=32, ffn=11008, gated_ffn=True, vocab=32000, seq_len=4096
)
LLAMA2_70B = ModelSpec(
    name="llama-2-70b",
    layers=80,
    d_model=8192,
    heads=64,
    kv_heads=8,
    ffn=28672,
    gated_ffn=True,
    vocab=32000,
    seq_len=4096,
)
LLAMA2_7B_PARAMS = 6_738_415_616  # published (HF model card / safetensors index)
LLAMA2_70B_PARAMS = 68_976_648_192

# Llama-2-7B parts, by hand:
#   per layer matmuls: Q,K,V,O 4·4096² = 67,108,864; SwiGLU 3·4096·11008 = 135,266,304 → 202,375,168
#   quantizable (32 layers): 6,476,005,376; the rest (embeddings 2·32000·4096 = 262,144,000 + norms
#   32·2·4096 + 4096 = 266,240) stays 16-bit: 262,410,240
#   matmul weights read per token: 6,476,005,376 + LM head 32000·4096 = 131,072,000 → 6,607,077,376
QUANTIZED_7B = 6_476_005_376
KEPT_16BIT_7B = 262_410_240
READ_PER_TOKEN_7B = 6_607_077_376
KV_BYTES_PER_TOKEN_7B_FP16 = 2 * 32 * 32 * 128 * 2  # 2·L·kv_heads·head_dim·2 B = 524,288 B

A100_BANDWIDTH = 2039e9  # A100-80GB SXM datasheet
A100_PEAK_BF16 = 312e12


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def a100(catalog) -> HardwareProfile:
    return catalog.get("a100-80gb")


def _profile(**overrides) -> HardwareProfile:
    base = dict(
        id="test-gpu",
        name="Test GPU",
        kind="gpu",
        peak_flops_per_s={"bf16": 100e12},
        memory_bytes=40e9,
        memory_bandwidth_bytes_per_s=1e12,
        devices_per_node=8,
        intra_node_bandwidth_bytes_per_s=100e9,
        inter_node_bandwidth_bytes_per_s=10e9,
        sources=["test"],
        prices_usd_per_device_hour={
            "on-demand": {"usd_per_device_hour": 4.0, "date": "test", "source": "test"},
            "spot": {"usd_per_device_hour": 1.0, "date": "test", "source": "test"},
        },
    )
    base.update(overrides)
    return HardwareProfile.model_validate(base)


# --- memory --------------------------------------------------------------------------------------------
def test_presets_here_reproduce_published_parameter_counts():
    assert LLAMA2_7B.params == LLAMA2_7B_PARAMS
    assert LLAMA2_70B.params == LLAMA2_70B_PARAMS


def test_7b_in_16_bit_needs_about_14_gb_of_weights(a100):
    report = estimate_serving(LLAMA2_7B, a100, Bare())
    # 6,738,415,616 parameters × 2 bytes = 13,476,831,232 B ≈ 13.5 GB ("~14 GB")
    assert report.memory.weights_bytes == LLAMA2_7B_PARAMS * 2
    assert report.memory.weights_bytes == pytest.approx(14e9, rel=0.05)
    assert report.memory.quantization_overhead_bytes == 0


def test_4_bit_quarters_the_quantized_weights_up_to_the_named_scale_overhead():
    w16, _ = weight_bytes(LLAMA2_7B, 16)
    w4, overhead4 = weight_bytes(LLAMA2_7B, 4)
    # scale overhead: (16-bit scale + 4-bit zero) per 128 weights = 20/128 bits = 0.01953125 B per weight
    assert float(overhead4) == pytest.approx(QUANTIZED_7B * 20 / 128 / 8)
    # the quantized matmuls alone shrink exactly 4×; embeddings/head/norms stay at 2 B each
    quantized16 = float(w16) - KEPT_16BIT_7B * 2
    quantized4 = float(w4) - float(overhead4) - KEPT_16BIT_7B * 2
    assert quantized4 == pytest.approx(quantized16 / 4)
    # total: 6,476,005,376 · 0.51953125 + 262,410,240 · 2 = 3,364,487,168 + 524,820,480 = 3,889,307,648 B
    assert float(w4) == pytest.approx(3_889_307_648)
    # published: TheBloke/Llama-2-7B-GPTQ gptq_model-4bit-128g.safetensors is 3.9 GB (huggingface.co)
    assert float(w4) == pytest.approx(3.9e9, rel=0.02)
    # the whole model: between a quarter and a third of fp16 (16-bit embeddings + scales)
    assert 0.25 < float(w4) / float(w16) < 0.30


def test_8_bit_overhead_uses_an_8_bit_zero_point():
    # (16 + 8) bits per 128 weights on top of 8 bits: 1 + 24/128/8 bytes per weight
    assert float(bytes_per_quantized_weight(8)) == pytest.approx(1 + 24 / 128 / 8)
    assert float(bytes_per_quantized_weight(16)) == 2.0


def test_kv_cache_llama_2_7b_4096_tokens_fp16_is_2_15_gb(a100):
    # 2·32·32·128·4096·2 bytes = 2,147,483,648 B
    assert kv_cache_bytes(LLAMA2_7B, 4096, 1, 16) == 2 * 32 * 32 * 128 * 4096 * 2 == 2_147_483_648
    report = estimate_serving(LLAMA2_7B, a100, Bare(prompt_tokens=4000, output_tokens=96))
    assert report.memory.kv_cache_bytes == pytest.approx(2.147483648e9)
    assert kv_cache_bytes(LLAMA2_7B, 4096, 1, 8) == 2_147_483_648 / 2  # 8-bit KV halves it


def test_per_device_memory_is_the_sum_of_its_parts(a100):
    report = estimate_serving(LLAMA2_70B, a100, Bare(batch=8, prompt_tokens=2048, output_tokens=512))
    m, t = report.memory, report.devices
    kv_split = min(t, LLAMA2_70B.n_kv_heads)
    assert m.per_device_bytes == pytest.approx(
        m.weights_bytes / t + m.kv_cache_bytes / kv_split + m.runtime_allowance_bytes
    )
    assert m.runtime_allowance_bytes == pytest.approx(0.10 * 80e9)  # vLLM gpu_memory_utilization = 0.9


def test_fewest_devices_that_fit_are_chosen(a100):
    # Llama-2-70B fp16: 137.95 GB of weights. On 2 A100-80GB: 68.98 GB + KV (327,680 B/token · 768 tokens / 2
    # = 0.126 GB) + 8 GB allowance = 77.1 GB ≤ 80 GB; on 1: 146 GB > 80 → 2 devices.
    report = estimate_serving(LLAMA2_70B, a100, Bare())
    assert report.devices == 2
    assert report.memory.fits
    assert report.memory.devices_needed == 2
    assert report.memory.per_device_bytes == pytest.approx(
        LLAMA2_70B_PARAMS * 2 / 2 + 2 * 80 * 8 * 128 * 2 * 768 / 2 + 8e9
    )
    # 4-bit fits on one device: 68.45e9 · 0.5195 + 0.524e9 · 2 = 36.6 GB + 8 GB allowance
    four = next(v for v in report.variants if v.weights_bits == 4)
    assert four.devices == 1 and four.memory.fits


def test_too_few_devices_gives_a_does_not_fit_report_with_the_count_that_would(a100):
    report = estimate_serving(LLAMA2_70B, a100, Bare(devices=1))
    assert report.devices == 1
    assert not report.memory.fits
    assert report.memory.devices_needed == 2
    assert any("does not fit" in w and "fits on 2 devices" in w for w in report.warnings)


def test_a_model_that_fits_on_no_number_of_devices_is_refused(a100):
    # KV cache of 2048 sequences × 4096 tokens = 2,048 · 2.147 GB = 4.40 TB. Tensor parallelism can split
    # Llama-2-7B's 32 heads over at most 32 devices: 4.40 TB / 32 = 137 GB per device > 80 GB.
    with pytest.raises(InvalidValue, match="fits on no number of a100-80gb"):
        estimate_serving(LLAMA2_7B, a100, Bare(batch=2048, prompt_tokens=4000, output_tokens=96))
    with pytest.raises(InvalidValue, match="fits on no number"):
        estimate_serving(LLAMA2_7B, a100, Bare(batch=2048, prompt_tokens=4000, output_tokens=96, devices=8))


def test_device_counts_must_split_the_heads():
    assert tensor_parallel_degrees(LLAMA2_7B) == [1, 2, 4, 8, 16, 32]
    # 64 heads, 8 KV heads: t divides 64 and (8 % t == 0 or t % 8 == 0)
    assert tensor_parallel_degrees(LLAMA2_70B) == [1, 2, 4, 8, 16, 32, 64]
    with pytest.raises(InvalidLayout, match="must divide"):
        estimate_serving(LLAMA2_7B, _profile(), Bare(devices=3))


# --- decode ----------------------------------------------------------------------------------------------
def test_decode_on_one_a100_cannot_beat_bandwidth_over_weight_bytes(a100):
    report = estimate_serving(LLAMA2_7B, a100, Bare(batch=1, prompt_tokens=5, output_tokens=200))
    bound = A100_BANDWIDTH / (6.74e9 * 2)  # ≈ 151 tok/s: every weight read once per token
    assert bound == pytest.approx(151.3, abs=0.1)
    assert report.decode.tokens_per_second < bound
    # by hand: bytes per step = 6,607,077,376 · 2 (matmul weights, LM head) + 524,288 B · 105 (KV at the mean
    # context 5 + 200/2) = 13,214,154,752 + 55,050,240 = 13,269,204,992 B at 0.63 · 2039 GB/s = 1284.57 GB/s
    expected_seconds = (READ_PER_TOKEN_7B * 2 + KV_BYTES_PER_TOKEN_7B_FP16 * 105) / (0.63 * A100_BANDWIDTH)
    assert report.decode.seconds_per_token == pytest.approx(expected_seconds, rel=1e-9)
    assert report.decode.tokens_per_second == pytest.approx(1 / expected_seconds)  # 96.8 tokens/s
    assert report.decode.bound == "memory"


def test_quantized_weights_speed_up_memory_bound_decode(a100):
    report = estimate_serving(LLAMA2_7B, a100, Bare(batch=1, prompt_tokens=5, output_tokens=200))
    by_bits = {v.weights_bits: v for v in report.variants}
    # 16- and 8-bit at batch 1 are memory bound: the ratio of their speeds is the ratio of bytes read
    # 16-bit: 13,214,154,752 + 55,050,240; 8-bit: 6,476,005,376 · (1 + 24/128/8) + 131,072,000 · 2 + 55,050,240
    bytes16 = READ_PER_TOKEN_7B * 2 + KV_BYTES_PER_TOKEN_7B_FP16 * 105
    bytes8 = QUANTIZED_7B * (8 + 24 / 128) / 8 + 32000 * 4096 * 2 + KV_BYTES_PER_TOKEN_7B_FP16 * 105
    bytes4 = QUANTIZED_7B * (4 + 20 / 128) / 8 + 32000 * 4096 * 2 + KV_BYTES_PER_TOKEN_7B_FP16 * 105
    assert by_bits[16].decode.bound == by_bits[8].decode.bound == "memory"
    ratio = by_bits[8].decode.tokens_per_second / by_bits[16].decode.tokens_per_second
    assert ratio == pytest.approx(bytes16 / bytes8, rel=1e-9)
    # 4-bit is faster still, but never faster than its bytes allow (at one token per pass the fitted GEMM
    # curve may make its step compute bound: then it gains less than the bytes ratio)
    ratio4 = by_bits[4].decode.tokens_per_second / by_bits[16].decode.tokens_per_second
    assert ratio < ratio4 <= bytes16 / bytes4 * (1 + 1e-9)
    # prefill of a long prompt is compute bound and runs in 16-bit either way: same time for every width
    long = estimate_serving(LLAMA2_7B, a100, Bare(prompt_tokens=2048))
    times = {v.prefill.seconds for v in long.variants}
    assert max(times) == pytest.approx(min(times))
    assert long.prefill.bound == "compute"


def test_prefill_time_is_flops_over_effective_peak_when_compute_bound(a100):
    # causal prefill: prompt token i attends to i tokens, (P + 1)/2 on average (FlashAttention-2 skips the masked
    # blocks): 2·N·P + 4·L·(heads·head_dim)·P·(P + 1)/2 for P = 2048, batch 1, N = PaLM's 6,607,077,376 (layer
    # matmuls + head, no norms): 27,062,588,932,096 + 1,100,048,498,688 = 28,162,637,430,784 FLOPs
    # (the full P² count, PaLM's training convention, would be 29,261,612,187,648)
    flops = 2 * READ_PER_TOKEN_7B * 2048 + 4 * 32 * 4096 * 2048 * 2049 // 2
    assert flops == 28_162_637_430_784
    given = estimate_serving(LLAMA2_7B, a100, Bare(prompt_tokens=2048, matmul_efficiency=0.5))
    assert given.prefill.flops == pytest.approx(flops)
    assert given.prefill.seconds == pytest.approx(flops / (A100_PEAK_BF16 * 0.5))  # a given η is used as is
    assert given.prefill.matmul_efficiency == 0.5
    assert given.prefill.time_to_first_token_seconds == given.prefill.seconds
    # without one: the fitted GEMM curve η = c / (1 + w½/(d/t) + w½/(b·P)) at d/t = 4096, b·P = 2048
    fit = EfficiencyParams.load()
    eta = fit.gemm_ceiling_for(a100)[0] / (1 + fit.gemm_half_width / 4096 + fit.gemm_half_width / 2048)
    fitted = estimate_serving(LLAMA2_7B, a100, Bare(prompt_tokens=2048))
    assert fitted.prefill.matmul_efficiency == pytest.approx(eta, rel=1e-12)
    assert fitted.prefill.seconds == pytest.approx(flops / (A100_PEAK_BF16 * eta), rel=1e-9)


def test_ridge_batch_where_decode_turns_compute_bound(a100):
    # prompt 1 + output 2 → mean context 2 tokens. Per sequence per step:
    #   F = 2·6,607,077,376 + 4·32·4096·2 = 13,215,203,328 FLOPs;  K = 524,288 · 2 = 1,048,576 B of KV
    #   W = 6,607,077,376 · 2 = 13,214,154,752 B of weights per step
    # with a given η = 0.5: ridge = (312e12 · 0.5) / (2039e9 · 0.63) = 121.44 FLOP/B; b* = W / (F/ridge − K) ≈ 122.6
    f = 2 * READ_PER_TOKEN_7B + 4 * 32 * 4096 * 2
    k = KV_BYTES_PER_TOKEN_7B_FP16 * 2
    w = READ_PER_TOKEN_7B * 2
    ridge = (A100_PEAK_BF16 * 0.5) / (A100_BANDWIDTH * 0.63)
    b_star = w / (f / ridge - k)
    assert b_star == pytest.approx(122.6, abs=0.5)
    req = dict(prompt_tokens=1, output_tokens=2, matmul_efficiency=0.5)
    assert estimate_serving(LLAMA2_7B, a100, Bare(**req)).decode.ridge_batch == pytest.approx(b_star, rel=1e-9)
    below = estimate_serving(LLAMA2_7B, a100, Bare(**req, batch=96))
    above = estimate_serving(LLAMA2_7B, a100, Bare(**req, batch=160))
    assert below.decode.bound == "memory" and above.decode.bound == "compute"
    # with the fitted curve, η(b) = c / (1 + w½/4096 + w½/b): compute time b·F/(P·η(b)) = α·b + β with
    # α = F·(1 + w½/4096)/(P·c), β = F·w½/(P·c); memory time (W + b·K)/(B·0.63): b* = (W/B' − β)/(α − K/B')
    fit = EfficiencyParams.load()
    c, h, bw = fit.gemm_ceiling_for(a100)[0], fit.gemm_half_width, A100_BANDWIDTH * 0.63
    alpha, beta = f * (1 + h / 4096) / (A100_PEAK_BF16 * c), f * h / (A100_PEAK_BF16 * c)
    fitted_star = (w / bw - beta) / (alpha - k / bw)
    ridge_batch = estimate_serving(LLAMA2_7B, a100, Bare(prompt_tokens=1, output_tokens=2)).decode.ridge_batch
    assert ridge_batch == pytest.approx(fitted_star, rel=1e-9)
    for batch, bound in ((math.floor(fitted_star), "memory"), (math.ceil(fitted_star) + 1, "compute")):
        got = estimate_serving(LLAMA2_7B, a100, Bare(prompt_tokens=1, output_tokens=2, batch=batch))
        assert got.decode.bound == bound


def test_long_mha_contexts_never_turn_compute_bound(a100):
    # at a mean context of 640 tokens each sequence reads 524,288 · 640 = 335.5 MB of KV for
    # 1.36e10 FLOPs: 40 FLOP/B, below any ridge the A100 can have (312e12 / (2039e9 · 0.63) = 243 FLOP/B even
    # at η = 1), so more batch never makes decode compute bound
    report = estimate_serving(LLAMA2_7B, a100, Bare(prompt_tokens=512, output_tokens=256))
    assert report.decode.ridge_batch is None


# --- tensor parallel ------------------------------------------------------------------------------------
# NCCL's cost model (NVIDIA/nccl src/graph/tuning.cc), the constants training uses too. Simple protocol:
RING_BASE_S, NVLINK_HOP_S, NET_HOP_S, TREE_HOP_S = 8.4e-6, 3.4e-6, 14.0e-6, 28.0e-6
# LL protocol (ring): base, NVLink hop (× 1.8 when the group spans nodes), network hop; a quarter of the bandwidth
LL_BASE_S, LL_NVLINK_HOP_S, LL_NET_HOP_S, LL_BANDWIDTH_SHARE = 6.6e-6, 0.6e-6, 2.7e-6, 0.25


def test_tensor_parallel_all_reduce_per_token(a100):
    report = estimate_serving(LLAMA2_7B, a100, Bare(devices=2, batch=4))
    # 2 all-reduces per layer × 32 layers, each a ring on NVLink (one node) of 4·4096·2 B = 32 KiB per rank.
    # Simple: 2·(2−1)/2 · 32768 B / 300e9 B/s + 8.4 µs base + 2·(2 − 1) steps × 3.4 µs = 15.31 µs.
    # LL: 4 × that bandwidth term + 6.6 µs + 2 × 0.6 µs = 8.24 µs: NCCL's tuner takes LL for this size.
    bandwidth = 2 * (1 / 2) * (4 * 4096 * 2) / 300e9
    simple = bandwidth + RING_BASE_S + 2 * NVLINK_HOP_S
    ll = bandwidth / LL_BANDWIDTH_SHARE + LL_BASE_S + 2 * LL_NVLINK_HOP_S
    assert ll < simple
    assert report.decode.communication_seconds_per_token == pytest.approx(64 * ll, rel=1e-12)
    assert report.chosen.link == "intra-node" and report.chosen.link_bandwidth_bytes_per_s == 300e9
    # a large batch's megabyte messages go back to Simple: 512 sequences × 8 KiB = 4 MiB per all-reduce
    big = estimate_serving(LLAMA2_7B, a100, Bare(devices=2, batch=512))
    bandwidth = 2 * (1 / 2) * (512 * 4096 * 2) / 300e9
    simple = bandwidth + RING_BASE_S + 2 * NVLINK_HOP_S
    assert simple < bandwidth / LL_BANDWIDTH_SHARE + LL_BASE_S + 2 * LL_NVLINK_HOP_S
    assert big.decode.communication_seconds_per_token == pytest.approx(64 * simple, rel=1e-12)


def test_tensor_parallel_across_nodes_uses_the_inter_node_link():
    """4 devices on nodes of 2: 2 group members per node drive 2 NICs, 2 × 10 GB/s = 20 GB/s (≤ the 100 GB/s
    intra-node link). Ring: 2·3 = 6 steps, 2·2 = 4 of them cross the network. Simple: 8.4 + 2·3.4 + 4·14 =
    71.2 µs + 2·(3/4)·8192 B / 20e9 = 0.6144 µs. LL: 6.6 + 2·(0.6·1.8) + 4·2.7 = 19.56 µs + 4 × 0.6144 µs =
    22.0176 µs. Tree: 2·28·((4/2 − 1) + log2 2) = 112 µs + (2/0.92)·8192/20e9: slowest. 64 all-reduces a token."""
    profile = _profile(devices_per_node=2, memory_bytes=80e9)
    report = estimate_serving(LLAMA2_7B, profile, Bare(devices=4))
    bandwidth = 2 * (3 / 4) * (1 * 4096 * 2) / 20e9
    ring = RING_BASE_S + 2 * NVLINK_HOP_S + 4 * NET_HOP_S + bandwidth
    ll = LL_BASE_S + 2 * LL_NVLINK_HOP_S * 1.8 + 4 * LL_NET_HOP_S + bandwidth / LL_BANDWIDTH_SHARE
    tree = 2 * TREE_HOP_S * 2 + (2 / 0.92) * (1 * 4096 * 2) / 20e9
    assert ll < ring < tree
    assert report.decode.communication_seconds_per_token == pytest.approx(64 * ll, rel=1e-12)
    assert report.chosen.link == "inter-node" and report.chosen.link_bandwidth_bytes_per_s == 20e9
    assert any("spans nodes" in w for w in report.warnings)


# --- cost -----------------------------------------------------------------------------------------------
def test_cost_per_million_tokens_per_tier():
    profile = _profile(memory_bytes=80e9)
    report = estimate_serving(LLAMA2_7B, profile, Bare(batch=8))
    tokens_per_hour = report.output_tokens_per_second * 3600
    assert report.cost.tier == "on-demand"
    assert report.cost.usd_per_million_tokens == pytest.approx(4.0 / tokens_per_hour * 1e6)
    assert report.cost.by_tier["spot"] == pytest.approx(1.0 / tokens_per_hour * 1e6)
    # output tokens per second counts the prefill: batch · T / (prefill + (T − 1) · step)
    assert report.output_tokens_per_second == pytest.approx(
        8 * 256 / (report.prefill.seconds + 255 * report.decode.seconds_per_token)
    )
    spot = estimate_serving(LLAMA2_7B, profile, Bare(batch=8, price_tier="spot"))
    assert spot.cost.usd_per_million_tokens == pytest.approx(report.cost.by_tier["spot"])
    with pytest.raises(InvalidValue, match="no such price"):
        estimate_serving(LLAMA2_7B, profile, Bare(price_tier="reserved-3y"))


def test_cost_scales_with_devices(a100):
    one = estimate_serving(LLAMA2_7B, a100, Bare(devices=1))
    two = estimate_serving(LLAMA2_7B, a100, Bare(devices=2))
    for r in (one, two):
        assert r.cost.usd_per_million_tokens == pytest.approx(
            r.devices * 5.069 / (r.output_tokens_per_second * 3600) * 1e6
        )


# --- CPU, measured and MoE profiles ----------------------------------------------------------------------
def test_cpu_profile_without_prices_omits_cost_unless_a_price_is_given(catalog):
    cpu = catalog.get("epyc-9654")
    report = estimate_serving(LLAMA2_7B, cpu, Bare(prompt_tokens=5, output_tokens=200))
    assert report.cost.usd_per_million_tokens is None and "cost omitted" in report.cost.note
    assert report.hardware.compute_dtype == "fp32"  # no 16-bit peak in the profile
    # decode, one token per pass: the larger of 13,269,204,992 B at 0.63 · 460.8 GB/s (12 × DDR5-4800 × 8 B)
    # = 45.7 ms and F = 2·6,607,077,376 + 4·32·4096·105 FLOPs at 7.3728 TFLOP/s fp32 × η, where the fitted GEMM
    # curve (no CPU family: the base ceiling c) would give c / (1 + w½/4096 + w½/1) ≈ 0.0104 at one token, but
    # a mat-vec runs on the same SIMD units at the ceiling itself (the vector path, inference.py): η = c
    fit = EfficiencyParams.load()
    eta = fit.gemm_ceiling
    flops = 2 * READ_PER_TOKEN_7B + 4 * 32 * 4096 * 105
    step = max(13_269_204_992 / (0.63 * 460.8e9), flops / (7.3728e12 * eta))
    assert report.decode.seconds_per_token == pytest.approx(step, rel=1e-9)
    assert report.decode.matmul_efficiency == pytest.approx(eta, rel=1e-12)
    priced = estimate_serving(LLAMA2_7B, cpu, Bare(prompt_tokens=5, output_tokens=200, price_per_hour_usd=2.0))
    assert priced.cost.tier == "custom"
    assert priced.cost.usd_per_million_tokens == pytest.approx(2.0 / (priced.output_tokens_per_second * 3600) * 1e6)


def test_measured_profile_with_full_bandwidth_efficiency():
    # a bench-style profile holds sustained figures (its peak is the measured GEMM rate): with
    # bandwidth_efficiency=1 and matmul_efficiency=1 decode is bytes / bandwidth, 13.27 GB / 40 GB/s = 0.33 s
    # (the FLOPs, 1.33e10 at 1.2 TFLOP/s, take 11 ms)
    measured = _profile(
        kind="cpu",
        peak_flops_per_s={"fp32": 1.2e12},
        memory_bytes=64e9,
        memory_bandwidth_bytes_per_s=40e9,
        prices_usd_per_device_hour={},
    )
    report = estimate_serving(
        LLAMA2_7B,
        measured,
        Bare(prompt_tokens=5, output_tokens=200, bandwidth_efficiency=1.0, matmul_efficiency=1.0),
    )
    assert report.decode.seconds_per_token == pytest.approx(13_269_204_992 / 40e9, rel=1e-9)


def test_moe_memory_uses_all_experts_decode_reads_active_ones(a100):
    moe = ModelSpec(
        name="moe", layers=4, d_model=1024, heads=8, ffn=4096, gated_ffn=True, vocab=1000, experts=8, active_experts=2
    )
    report = estimate_serving(moe, a100, Bare(prompt_tokens=1, output_tokens=2))
    assert report.memory.weights_bytes == moe.params * 2
    # per step: 4 layers × (attention 4·1024² + 2 experts × 3·1024·4096) + head 1000·1024, at 2 B each,
    # plus KV 2·4·8·128·2 B per token × 2 tokens of mean context
    weights_read = (4 * (4 * 1024**2 + 2 * 3 * 1024 * 4096) + 1000 * 1024) * 2
    kv = 2 * 4 * 8 * 128 * 2 * 2
    assert report.decode.bytes_read_per_step == pytest.approx(weights_read + kv)
    assert any("MoE" in w for w in report.warnings)


# --- validation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"weights_bits": 3}, "weights 3"),
        ({"kv_bits": 4}, "kv_bits 4"),
        ({"batch": 0}, "batch: 0"),
        ({"prompt_tokens": 0}, "prompt_tokens: 0"),
        ({"output_tokens": 0}, "output_tokens: 0"),
        ({"bandwidth_efficiency": 1.5}, "bandwidth_efficiency: 1.5"),
        ({"price_per_hour_usd": -1.0}, "price_per_hour: -1.0"),
    ],
)
def test_bad_requests_raise_usage_errors(a100, request_kwargs, message):
    with pytest.raises(InvalidValue) as info:
        estimate_serving(LLAMA2_7B, a100, Bare(**request_kwargs))
    assert str(info.value).startswith(message)  # the library names the keyword, the CLI the flag
    assert info.value.one_line(flag_style).startswith("--" + message.replace("_", "-"))


def test_context_beyond_the_model_is_a_warning(a100):
    report = estimate_serving(LLAMA2_7B, a100, Bare(prompt_tokens=4096, output_tokens=512))
    assert any("context" in w for w in report.warnings)


# --- invariants -----------------------------------------------------------------------------------------
shapes = st.builds(
    lambda layers, heads, head_dim, mult, kv_div, vocab: ModelSpec(
        layers=layers,
        d_model=heads * head_dim,
        heads=heads,
        kv_heads=heads // kv_div,
        ffn=mult * heads * head_dim,
        gated_ffn=True,
        vocab=vocab,
    ),
    layers=st.integers(1, 48),
    heads=st.sampled_from([4, 8, 16, 32]),
    head_dim=st.sampled_from([32, 64, 128]),
    mult=st.integers(2, 4),
    kv_div=st.sampled_from([1, 2, 4]),
    vocab=st.integers(1000, 64000),
)


@settings(max_examples=40, deadline=None)
@given(model=shapes, batch=st.integers(1, 64), prompt=st.integers(1, 4096), out=st.integers(1, 1024))
def test_invariants(model, batch, prompt, out):
    profile = _profile(memory_bytes=1e15)  # everything fits: compare across widths and device counts
    req = Bare(batch=batch, prompt_tokens=prompt, output_tokens=out)
    devices = np.array(tensor_parallel_degrees(model), dtype=float)
    g = serving_grid(model, profile, req, np.array([16.0, 8.0, 4.0]), devices)
    # fewer bits: never more memory, never slower
    assert np.all(np.diff(g["weights_bytes"], axis=0) < 0)
    assert np.all(np.diff(g["step_seconds"], axis=0) <= 1e-15)
    # more devices: never more memory per device
    assert np.all(np.diff(g["per_device_bytes"], axis=1) <= 1e-6)
    # a decode step is never faster than its bytes at full bandwidth nor its FLOPs at full peak
    floor = np.maximum(g["step_bytes"] / 1e12, g["step_flops"] / 100e12)
    assert np.all(g["step_seconds"] >= floor)
    # a request takes at least its prefill plus the rest of the decode steps
    assert np.all(g["request_seconds"] >= g["prefill_seconds"])
    assert math.isfinite(float(g["request_seconds"].max()))
