"""`serve` and the training estimator are one core: the same FLOPs, link rule and GEMM efficiency.

Every expected figure is worked out by hand in the test, never taken from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flopcast.estimator.arrays import HardwareArrays, LayoutArrays, ModelArrays, Workload
from flopcast.estimator.core import evaluate
from flopcast.estimator.efficiency import EfficiencyParams, gemm_efficiency
from flopcast.estimator.flops import forward_flops_per_token, model_flops_per_token
from flopcast.hardware import HardwareProfile, load_catalog
from flopcast.models import ModelSpec
from flopcast.serving import ServeRequest, estimate_serving, serving_grid, tensor_parallel_degrees

# A small explicit architecture: 2 layers, d = 64, 4 heads (head_dim 16), plain FFN of 256, vocab 100.
#   per layer matmuls: Q, K, V, O 4·64² = 16,384; FFN 2·64·256 = 32,768 → 49,152
#   N (PaLM App. B: layer matmuls + head) = 2·49,152 + 100·64 = 98,304 + 6,400 = 104,704
#   forward per token at context T = 32: 2·N + 4·L·d·T = 209,408 + 4·2·64·32 = 209,408 + 16,384 = 225,792
#   training model FLOPs per token: 6·N + 12·L·d·T = 628,224 + 49,152 = 677,376 = 3 × 225,792
SMALL = ModelSpec(name="small", layers=2, d_model=64, heads=4, ffn=256, vocab=100, seq_len=32)
SMALL_N = 104_704
SMALL_FORWARD_PER_TOKEN = 225_792
SMALL_TRAINING_PER_TOKEN = 677_376

LLAMA2_7B = ModelSpec(
    name="llama-2-7b", layers=32, d_model=4096, heads=32, ffn=11008, gated_ffn=True, vocab=32000, seq_len=4096
)


@pytest.fixture(scope="module")
def a100() -> HardwareProfile:
    return load_catalog().get("a100-80gb")


# --- FLOPs ---------------------------------------------------------------------------------------------
def test_serve_and_training_agree_on_forward_flops_per_token(a100):
    assert SMALL.matmul_params == SMALL_N
    assert int(ModelArrays.from_specs([SMALL]).matmul_params[0]) == SMALL_N
    m = ModelArrays.from_specs([SMALL])
    assert float(model_flops_per_token(m)[0]) == SMALL_TRAINING_PER_TOKEN
    assert float(forward_flops_per_token(m)[0]) == SMALL_FORWARD_PER_TOKEN
    # serve: one sequence of a 32-token prompt on one device. Causal, prompt token i attends to i tokens, so the
    # prompt costs 32 × 2·N + 4·L·d·(1 + 2 + ... + 32) = 32 × 209,408 + 4·2·64·528 = 6,701,056 + 270,336
    report = estimate_serving(SMALL, a100, ServeRequest(prompt_tokens=32, output_tokens=1, devices=1))
    assert report.prefill.flops == 6_971_392
    # decode attends to the whole context: prompt 10 + 44 new tokens → mean context 32, the training count
    report = estimate_serving(SMALL, a100, ServeRequest(prompt_tokens=10, output_tokens=44, devices=1))
    assert report.decode.flops_per_step == SMALL_FORWARD_PER_TOKEN
    # the training estimator, same model: model FLOPs per token = 3 × serve's forward count
    est = evaluate(m, HardwareArrays.from_profiles([a100]), LayoutArrays.of(global_batch=1), Workload(tokens=1e6))
    assert float(est.model_flops_per_token[0]) == 3 * SMALL_FORWARD_PER_TOKEN


def test_decode_flops_attend_to_the_mean_context(a100):
    """Prompt 10, 44 new tokens: a step's tokens attend to 10 + 44/2 = 32 tokens on average, so a step of
    batch 3 costs 3 × (2·N + 4·L·d·32) = 3 × 225,792 FLOPs (the same per-token count as above)."""
    report = estimate_serving(SMALL, a100, ServeRequest(batch=3, prompt_tokens=10, output_tokens=44, devices=1))
    assert report.decode.flops_per_step == 3 * SMALL_FORWARD_PER_TOKEN


# --- the tensor-parallel link ----------------------------------------------------------------------------
def _training_tp_seconds(a100, tp: int) -> float:
    """Training's tensor-parallel seconds per step for Llama-2-7B, one 4096-token sequence, no pipeline."""
    m = ModelArrays.from_specs([LLAMA2_7B])
    lay = LayoutArrays.of(tp=tp, global_batch=1)
    return float(evaluate(m, HardwareArrays.from_profiles([a100]), lay, Workload(tokens=1e6)).tp_comm_seconds[0])


def test_serve_and_training_use_the_same_tensor_parallel_link(a100):
    """DGX A100 (a100-80gb.yaml): 8 GPUs per node on 300 GB/s NVLink, one 25 GB/s NIC per GPU.
    tp 8 stays in one node: 300 GB/s; ring all-reduce latency 8.4 + 2·7·3.4 = 56 µs.
    tp 16 spans 2 nodes with 8 members each, which drive 8 NICs: 8 × 25 = 200 GB/s; ring latency
    8.4 + (30 − 4)·3.4 + 4·14 = 152.8 µs (2·N = 4 of its 30 steps cross the network; the tree's
    2·28·(8 − 1 + 1) = 448 µs latency is slower at these sizes).
    Training (timing.py): 4 all-reduces per layer of 4096·4096·2 B on the Simple protocol; serve decode: 2 per
    layer of 4096·2 B, small enough for NCCL's LL protocol (a quarter of the bandwidth): 6.6 + 2·7·0.6 = 15.0 µs
    on one node, 6.6 + 26·0.6·1.8 + 4·2.7 = 45.48 µs over two (the NVLink hop × 1.8 when the group spans nodes).
    The link, and so the bandwidth, is the same for both."""
    cases = ((8, 300e9, 56.0e-6, 15.0e-6), (16, 200e9, 152.8e-6, 45.48e-6))
    for tp, bandwidth, latency, ll_latency in cases:

        def ring(size, n=tp, bw=bandwidth, lat=latency, share=1.0):
            return 2 * (n - 1) / n * size / (bw * share) + lat

        serve = estimate_serving(LLAMA2_7B, a100, ServeRequest(devices=tp))
        assert serve.chosen.link_bandwidth_bytes_per_s == bandwidth
        decode = ring(4096 * 2, lat=ll_latency, share=0.25)
        assert decode < ring(4096 * 2)
        assert serve.decode.communication_seconds_per_token == pytest.approx(2 * 32 * decode, rel=1e-12)
        assert _training_tp_seconds(a100, tp) == pytest.approx(4 * 32 * ring(4096 * 4096 * 2), rel=1e-12)


# --- matmul efficiency -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_serve_matmul_efficiency_is_the_training_cores(a100, tp):
    """Prefill of 2 sequences × 1024 tokens = 2048 tokens per pass at width 4096/tp: the η the training
    estimator gives a micro-batch of one 2048-token sequence at tp."""
    model = LLAMA2_7B.model_copy(update={"seq_len": 2048})
    lay = LayoutArrays.of(tp=tp, micro_batch=1, global_batch=8)
    est = evaluate(ModelArrays.from_specs([model]), HardwareArrays.from_profiles([a100]), lay, Workload(tokens=1e9))
    serve = estimate_serving(model, a100, ServeRequest(batch=2, prompt_tokens=1024, output_tokens=8, devices=tp))
    assert serve.prefill.matmul_efficiency == pytest.approx(float(est.gemm_efficiency[0]), rel=1e-12)
    # decode: one token per sequence, 2 tokens per pass
    fit = EfficiencyParams.load()
    ceiling = fit.gemm_ceiling_for(a100)[0]
    curve = float(gemm_efficiency(np.array(ceiling), np.array(4096 / tp), np.array(2.0), fit.gemm_half_width))
    # at 2 tokens per pass the tensor-core tiles are nearly empty, and the GEMV path on the CUDA cores (fp32
    # 19.5 of bf16 312 TFLOP/s, NVIDIA A100 datasheet, at the same ceiling) may be faster: the faster one runs
    gemv = ceiling * 19.5e12 / 312e12
    assert serve.decode.matmul_efficiency == pytest.approx(max(curve, gemv), rel=1e-12)


def test_a_given_matmul_efficiency_replaces_the_curve(a100):
    report = estimate_serving(LLAMA2_7B, a100, ServeRequest(matmul_efficiency=0.42))
    assert report.prefill.matmul_efficiency == 0.42 and report.decode.matmul_efficiency == 0.42
    assert any("matmul efficiency" in a and "given" in a for a in report.assumptions)


# --- monotonicity ----------------------------------------------------------------------------------------
def _profile(peak: float, bandwidth: float) -> HardwareProfile:
    return HardwareProfile.model_validate(
        dict(
            id="test-gpu",
            name="Test GPU",
            kind="gpu",
            peak_flops_per_s={"bf16": peak},
            memory_bytes=1e15,
            memory_bandwidth_bytes_per_s=bandwidth,
            devices_per_node=8,
            intra_node_bandwidth_bytes_per_s=100e9,
            inter_node_bandwidth_bytes_per_s=10e9,
            sources=["test"],
        )
    )


shapes = st.builds(
    lambda layers, heads, head_dim, kv_div, vocab: ModelSpec(
        layers=layers,
        d_model=heads * head_dim,
        heads=heads,
        kv_heads=heads // kv_div,
        ffn=4 * heads * head_dim,
        vocab=vocab,
    ),
    layers=st.integers(1, 48),
    heads=st.sampled_from([4, 8, 16, 32]),
    head_dim=st.sampled_from([32, 64, 128]),
    kv_div=st.sampled_from([1, 2, 4]),
    vocab=st.integers(1000, 64000),
)


@settings(max_examples=30, deadline=None)
@given(
    model=shapes,
    batch=st.integers(1, 256),
    prompt=st.integers(1, 4096),
    out=st.integers(1, 1024),
    peak=st.floats(1e12, 2e15),
    bandwidth=st.floats(1e10, 1e13),
    factor=st.floats(1.0, 100.0),
)
def test_more_bandwidth_never_slows_decode_more_peak_never_slows_prefill(
    model, batch, prompt, out, peak, bandwidth, factor
):
    req = ServeRequest(batch=batch, prompt_tokens=prompt, output_tokens=out)
    bits, devices = np.array([16.0, 8.0, 4.0]), np.array(tensor_parallel_degrees(model), dtype=float)
    base = serving_grid(model, _profile(peak, bandwidth), req, bits, devices)
    wider = serving_grid(model, _profile(peak, bandwidth * factor), req, bits, devices)
    faster = serving_grid(model, _profile(peak * factor, bandwidth), req, bits, devices)
    assert np.all(wider["step_seconds"] <= base["step_seconds"] * (1 + 1e-12))
    assert np.all(faster["prefill_seconds"] <= base["prefill_seconds"] * (1 + 1e-12))
