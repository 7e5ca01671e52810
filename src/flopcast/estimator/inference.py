"""Inference time: prefill and decode of a request batch over the core's arrays (DESIGN §6 `serve`).

A forward pass over ``tokens`` new tokens per sequence, each attending to ``context`` tokens, on a
tensor-parallel group of ``t`` devices (every figure per device):

  FLOPs       b · tokens · (2·N + 4·L·H·Q·context) / t      flops.forward_flops_per_token (PaLM App. B)
  bytes       the weights read once + the KV cache moved    (given by the caller: quantisation and the KV
                                                            cache are serving's, serving.py)
  compute     roofline: max(FLOPs / rate, bytes / (bandwidth·η_b))                roofline.roofline_seconds
              rate = max(peak·η, vector peak·ceiling): the faster of two kernel paths. η =
              efficiency.gemm_efficiency(ceiling, d/t, b·tokens, w½) is the matrix units' fitted GEMM
              curve (the training core's, timing.py), which falls as 1/(1 + w½/tokens) when the tokens
              per pass leave most of a tile empty. Kernel libraries run such skinny products (decode at a
              small batch) as GEMV on the vector units instead (cuBLAS gemv, llama.cpp's mat-vec kernels:
              fp32 FMA on CUDA cores / SIMD), whose roof is the fp32 peak the profile publishes (A100:
              19.5 TFLOP/s, NVIDIA A100 datasheet), at the same fitted ceiling. On a CPU the two roofs are
              the same units, so its η is the ceiling at any batch. A caller's fixed η replaces both.
  tensor      2 all-reduces of the b·tokens·d 16-bit activations per layer (Megatron-LM forward, Shoeybi
  parallel    et al. 2019 §3) on comms.ring_group(t, stride 1): the group, link, bandwidth and NCCL latency
              timing.py uses for training tensor parallelism

  low-bit     FP8 (W8A8) or FP4 (W4A4) compute: the layers' linear GEMMs (QKV, O, FFN/experts) run at the
  compute     format's peak (``linear_peak_flops_per_s``), the attention core and the output head at the 16-bit
              peak (vLLM's Fp8LinearMethod quantises Linear layers only; FlashAttention and the LM head stay
              16-bit), on the same fitted η: tile time = (F_lin/P_lin + F_rest/P)/η. The vector (GEMV) path is
              the same fp32 units whatever the format; the compute time is the faster of the two paths.
  fixed cost  a runtime's per-forward cost (FixedCost): kernel gaps add to the device time; the host's
              launches overlap it on an accelerator (step = max(device, host)) and add to it on a CPU

Prefill: tokens = P, each attending causally to (P + 1)/2 tokens on average (fused kernels skip the masked
upper triangle: FlashAttention-2, Dao 2023, §3.1.1), unless the caller gives the attended context (sliding
windows). Decode: one token per sequence, context = the mean context of the generated tokens. Every function
broadcasts: arrays over weight bit widths × tensor-parallel degrees × batch (or anything else) give one figure
per combination.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # numpy.typing costs ~1 ms of start-up; annotations only
    from numpy.typing import ArrayLike

from flopcast.estimator.arrays import HardwareArrays, ModelArrays
from flopcast.estimator.comms import RingGroup, ring_group
from flopcast.estimator.efficiency import EfficiencyParams, gemm_efficiency
from flopcast.estimator.flops import forward_flops_per_token, forward_linear_flops_per_token_per_layer
from flopcast.estimator.roofline import roofline_seconds

# Megatron-LM tensor parallelism: one all-reduce after attention and one after the MLP per forward pass of a
# layer (Shoeybi et al. 2019, §3 and Fig. 4: "two all-reduces in the forward pass").
TP_ALL_REDUCES_PER_FORWARD_LAYER = 2
# Activations exchanged by the tensor-parallel all-reduces are 16-bit (bf16/fp16 inference; weight-only
# quantisation dequantises to 16 bit before the matmul).
ACTIVATION_BYTES_PER_ELEMENT = 2.0
TP_RANK_STRIDE = 1.0  # tensor-parallel ranks are adjacent (Megatron-LM's rank order, as in timing.py)


class FixedCost(NamedTuple):
    """Per forward pass, beyond bytes and FLOPs (a serving runtime's, flopcast.runtimes): seconds the device
    spends on kernel gaps, seconds the host spends launching, and whether the host runs ahead of the device."""

    device_seconds: ArrayLike = 0.0
    host_seconds: ArrayLike = 0.0
    host_overlaps: bool = True


NO_FIXED_COST = FixedCost()


class ForwardPass(NamedTuple):
    """One forward pass of the batch on one device of the tensor-parallel group (broadcast arrays)."""

    flops: np.ndarray  # per device
    bytes_moved: np.ndarray  # per device: weights read + KV cache read or written
    matmul_efficiency: np.ndarray  # η on the compute roof
    compute_seconds: np.ndarray  # on the roofline
    compute_bound: np.ndarray  # bool: the compute roof binds
    comm_seconds: np.ndarray  # tensor-parallel all-reduces
    seconds: np.ndarray  # compute + communication + the fixed cost not hidden
    overhead_seconds: np.ndarray  # seconds − compute − communication: the runtime's fixed cost that shows


def tensor_parallel_group(hw: HardwareArrays, tp: ArrayLike) -> RingGroup:
    """The tp group, placed as training places it (timing.py: ``ring_group(tp, 1, ...)``): intra-node link
    while tp ≤ devices per node, else the inter-node link times the members per node."""
    return ring_group(
        tp,
        TP_RANK_STRIDE,
        hw.devices_per_node,
        hw.intra_node_bandwidth_bytes_per_s,
        hw.inter_node_bandwidth_bytes_per_s,
    )


def effective_peak(m: ModelArrays, hw: HardwareArrays, context_tokens, linear_peak_flops_per_s=None) -> np.ndarray:
    """The one rate that times a token's FLOPs F as its linear GEMMs F_lin at ``linear_peak_flops_per_s`` and the
    rest (attention core, head) at the 16-bit peak P: F / (F_lin/P_lin + (F − F_lin)/P); P when None."""
    peak = hw.peak_flops_per_s
    if linear_peak_flops_per_s is None:
        return peak
    total = forward_flops_per_token(m, context_tokens)
    linear = m.layers * forward_linear_flops_per_token_per_layer(m)
    return total / (linear / np.asarray(linear_peak_flops_per_s, dtype=float) + (total - linear) / peak)


def matmul_efficiency(
    m: ModelArrays,
    hw: HardwareArrays,
    params: EfficiencyParams,
    tp: ArrayLike,
    tokens_per_pass: ArrayLike,
    fixed: float | None = None,
) -> np.ndarray:
    """η of a forward pass over ``tokens_per_pass`` tokens (batch × new tokens per sequence) on tp devices:
    the training core's GEMM curve at width d/t, or ``fixed`` when the caller gives one."""
    if fixed is not None:
        return np.broadcast_to(np.asarray(fixed, dtype=float), np.broadcast(np.asarray(tp), tokens_per_pass).shape)
    return gemm_efficiency(
        hw.gemm_ceiling, m.d_model / np.asarray(tp, dtype=float), tokens_per_pass, params.gemm_half_width
    )


def forward_pass(
    m: ModelArrays,
    hw: HardwareArrays,
    params: EfficiencyParams,
    *,
    tp: ArrayLike,
    batch: ArrayLike,
    new_tokens: ArrayLike,
    context_tokens: ArrayLike,
    bytes_moved: ArrayLike,
    bandwidth_efficiency: ArrayLike,
    fixed_matmul_efficiency: float | None = None,
    fixed: FixedCost = NO_FIXED_COST,
    linear_peak_flops_per_s: ArrayLike | None = None,
) -> ForwardPass:
    """``batch`` sequences × ``new_tokens`` each, attending to ``context_tokens``; ``bytes_moved`` per device.
    ``linear_peak_flops_per_s``: the peak of the layers' linear GEMMs under FP8/FP4 compute (None: 16-bit)."""
    tp = np.asarray(tp, dtype=float)
    tokens = np.asarray(batch, dtype=float) * new_tokens
    flops = tokens * forward_flops_per_token(m, context_tokens) / tp
    eta = matmul_efficiency(m, hw, params, tp, tokens, fixed_matmul_efficiency)
    bw = hw.memory_bandwidth_bytes_per_s
    peak = effective_peak(m, hw, context_tokens, linear_peak_flops_per_s)
    if fixed_matmul_efficiency is None:  # the vector (GEMV) path when it beats the padded tiles
        eta = np.maximum(eta, hw.gemm_ceiling * hw.vector_flops_per_s / peak)
    compute = roofline_seconds(flops, bytes_moved, peak, bw, eta, bandwidth_efficiency)
    compute_only = roofline_seconds(flops, 0.0, peak, bw, eta, bandwidth_efficiency)
    group = tensor_parallel_group(hw, tp)
    activations = ACTIVATION_BYTES_PER_ELEMENT * tokens * m.d_model
    # a measured latency (bench --collectives) replaces NCCL's modelled one inside a node
    all_reduce = group.all_reduce_seconds(activations, hw.collective_latency_s)
    comm = TP_ALL_REDUCES_PER_FORWARD_LAYER * m.layers * all_reduce
    device = compute + comm + np.asarray(fixed.device_seconds, dtype=float)
    host = np.asarray(fixed.host_seconds, dtype=float)
    seconds = np.maximum(device, host) if fixed.host_overlaps else device + host
    return ForwardPass(
        flops,
        np.asarray(bytes_moved, dtype=float),
        eta,
        compute,
        compute_only >= compute,
        comm,
        seconds,
        seconds - compute - comm,
    )


def prefill(
    m: ModelArrays,
    hw: HardwareArrays,
    params: EfficiencyParams,
    *,
    tp: ArrayLike,
    batch: ArrayLike,
    prompt_tokens: ArrayLike,
    weight_bytes: ArrayLike,
    kv_bytes_per_token: ArrayLike,
    bandwidth_efficiency: ArrayLike,
    fixed_matmul_efficiency: float | None = None,
    attended_tokens: ArrayLike | None = None,
    fixed: FixedCost = NO_FIXED_COST,
    linear_peak_flops_per_s: ArrayLike | None = None,
) -> ForwardPass:
    """The prompt's forward pass: weights read once, the prompt's KV cache written (bytes per device). Each
    prompt token attends to ``attended_tokens`` (default the causal mean (P + 1)/2)."""
    written = np.asarray(batch, dtype=float) * prompt_tokens * kv_bytes_per_token
    if attended_tokens is None:
        attended_tokens = causal_mean_context(prompt_tokens)
    return forward_pass(
        m,
        hw,
        params,
        tp=tp,
        batch=batch,
        new_tokens=prompt_tokens,
        context_tokens=attended_tokens,
        bytes_moved=np.asarray(weight_bytes, dtype=float) + written,
        bandwidth_efficiency=bandwidth_efficiency,
        fixed_matmul_efficiency=fixed_matmul_efficiency,
        fixed=fixed,
        linear_peak_flops_per_s=linear_peak_flops_per_s,
    )


def causal_mean_context(prompt_tokens: ArrayLike, window: ArrayLike | None = None) -> np.ndarray:
    """Mean number of tokens a prompt token attends to under a causal mask: token i (1-based) sees i tokens,
    or min(i, W) under a sliding window of W: (P + 1)/2, or (W·(W + 1)/2 + (P − W)·W)/P once P > W."""
    p = np.asarray(prompt_tokens, dtype=float)
    if window is None:
        return (p + 1.0) / 2.0
    w = np.minimum(np.asarray(window, dtype=float), p)
    return (w * (w + 1.0) / 2.0 + (p - w) * w) / p


def decode_step(
    m: ModelArrays,
    hw: HardwareArrays,
    params: EfficiencyParams,
    *,
    tp: ArrayLike,
    batch: ArrayLike,
    context_tokens: ArrayLike,
    weight_bytes: ArrayLike,
    kv_bytes_per_token: ArrayLike,
    bandwidth_efficiency: ArrayLike,
    fixed_matmul_efficiency: float | None = None,
    fixed: FixedCost = NO_FIXED_COST,
    linear_peak_flops_per_s: ArrayLike | None = None,
) -> ForwardPass:
    """One generated token per sequence: the weights and every sequence's KV cache read once."""
    read = np.asarray(batch, dtype=float) * context_tokens * kv_bytes_per_token
    return forward_pass(
        m,
        hw,
        params,
        tp=tp,
        batch=batch,
        new_tokens=1.0,
        context_tokens=context_tokens,
        bytes_moved=np.asarray(weight_bytes, dtype=float) + read,
        bandwidth_efficiency=bandwidth_efficiency,
        fixed_matmul_efficiency=fixed_matmul_efficiency,
        fixed=fixed,
        linear_peak_flops_per_s=linear_peak_flops_per_s,
    )


def decode_ridge_batch(
    m: ModelArrays,
    hw: HardwareArrays,
    params: EfficiencyParams,
    *,
    tp: ArrayLike,
    context_tokens: ArrayLike,
    weight_bytes: ArrayLike,
    kv_bytes_per_token: ArrayLike,
    bandwidth_efficiency: ArrayLike,
    fixed_matmul_efficiency: float | None = None,
    linear_peak_flops_per_s: ArrayLike | None = None,
) -> np.ndarray:
    """The batch at which a decode step turns compute bound (inf when it never does).

    Per device, F FLOPs and K bytes of KV cache per sequence, W bytes of weights, peak P, bandwidth B·η_b.
    With the GEMM curve η(b) = c / (1 + w½·t/d + w½/b) the compute time is linear in b:
    b·F/(P·η(b)) = α·b + β, α = F·(1 + w½·t/d)/(P·c), β = F·w½/(P·c); memory time is W/(B·η_b) + b·K/(B·η_b).
    They meet at b* = (W/(B·η_b) − β) / (α − K/(B·η_b)). A fixed η: β = 0, α = F/(P·η).
    α ≤ K/(B·η_b): more batch never makes the step compute bound (inf) — though with the curve a step can be
    compute bound at a small batch, where η ∝ b, and turn memory bound as b grows (``ForwardPass.compute_bound``
    says which roof binds at the batch asked). b* < 0 (β above the weights' time): compute bound at any batch,
    reported as 0. Under FP8/FP4 compute P is :func:`effective_peak`."""
    tp = np.asarray(tp, dtype=float)
    f = forward_flops_per_token(m, context_tokens) / tp
    peak = effective_peak(m, hw, context_tokens, linear_peak_flops_per_s)
    if fixed_matmul_efficiency is not None:
        alpha, beta = f / (peak * fixed_matmul_efficiency), 0.0 * f
    else:
        c, half = hw.gemm_ceiling, params.gemm_half_width
        alpha = f * (1.0 + half * tp / m.d_model) / (peak * c)
        beta = f * half / (peak * c)
    bw = hw.memory_bandwidth_bytes_per_s * bandwidth_efficiency
    w = np.asarray(weight_bytes, dtype=float) / bw
    k = np.asarray(kv_bytes_per_token, dtype=float) * context_tokens / bw
    ridge = _crossing(alpha, beta, w, k)
    if fixed_matmul_efficiency is None:
        # compute time is the faster path's, min(α·b + β, b·F/V): it binds only once both lines pass memory
        with np.errstate(divide="ignore"):
            vector = hw.vector_flops_per_s * hw.gemm_ceiling
            vector_alpha = np.where(vector > 0, f / vector, np.inf)
        ridge = np.maximum(ridge, _crossing(vector_alpha, 0.0 * f, w, k))
    return ridge


def _crossing(alpha, beta, w, k) -> np.ndarray:
    """Where α·b + β reaches w + k·b (0 when it is above at any batch, inf when never)."""
    slope = alpha - k
    with np.errstate(divide="ignore", invalid="ignore"):
        ridge = np.maximum((w - beta) / np.where(slope > 0, slope, 1.0), 0.0)
    return np.where(slope > 0, ridge, np.inf)
