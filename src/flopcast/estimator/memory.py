"""Memory per device for training: model states, activations, logits, buffers (DESIGN §4).

Model states, mixed precision with Adam (Rajbhandari et al. 2020, "ZeRO", Sec. 3.1): 2 bytes of 16-bit
weights + 2 of 16-bit gradients + K = 12 of optimizer state (fp32 master weights, momentum, variance)
= 16 bytes per parameter. fp32 training keeps 4 + 4 + 8 (m, v). A pipeline stage holds its layers'
parameters, tensor parallelism splits them t ways; ZeRO stage 1 shards the optimizer state over the
data-parallel group, stage 2 also the gradients, stage 3 also the weights.

Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
Sec. 4.1, 16-bit): per layer and micro-batch ``s·b·h·(34 + 5·a·s/h)`` bytes for a GPT layer
(attention 11·sbh + 5·a·s²·b, MLP 19·sbh, two LayerNorms 4·sbh). Written per token with the layer's own
widths so that GQA, head_dim ≠ d/heads, ffn ≠ 4d and SwiGLU come out right:
  attention   2·d (QKV input) + 2·q (Q) + 2·kv (K) + 2·kv (V) + 2·q (output-projection input)
              + d (dropout mask)                                          = 11·d for q = kv = d
  MLP         2·d (input) + 2·f (activation input) + 2·f (its output) + d (dropout mask)
              = 3·d + 4·f = 19·d for f = 4·d; SwiGLU stores both branches: 3·d + 6·f
  norms       2 × 2·d
  scores      5·a·s (softmax output 2, dropout mask 1, dropout output 2), gone with fused
              (FlashAttention) kernels and with selective recomputation
Tensor + sequence parallelism divides all of it by t (their eq. 4). Full recomputation keeps only the
layer input, 2·s·b·h/t. Under 1F1B the first pipeline stage holds min(p, m) micro-batches in flight
(their Sec. 4.2.3), ×(1 + (p−1)/(p·v)) with v interleaved stages. The loss keeps 32-bit logits,
4·s·b·V/t bytes (their Sec. 4.3).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.estimator.arrays import RECOMPUTE_FULL, RECOMPUTE_SELECTIVE, ModelArrays, activation_bytes_per_element

# Mixed-precision Adam model states, bytes per parameter (ZeRO paper, Sec. 3.1: 2 + 2 + K, K = 12).
WEIGHT_BYTES_PER_PARAM_MIXED = 2.0
GRADIENT_BYTES_PER_PARAM_MIXED = 2.0
OPTIMIZER_BYTES_PER_PARAM_MIXED = 12.0
# fp32 training: 4-byte weights and gradients, Adam's m and v in fp32 (no separate master copy).
WEIGHT_BYTES_PER_PARAM_FP32 = 4.0
GRADIENT_BYTES_PER_PARAM_FP32 = 4.0
OPTIMIZER_BYTES_PER_PARAM_FP32 = 8.0

# Korthikanti et al. 2022, Sec. 4.1: attention-score bytes per token per layer per head per key position.
SCORE_BYTES_PER_HEAD_POSITION = 5.0
# Full recomputation keeps the layer input, 2·s·b·h bytes (16-bit), i.e. 2 bytes per element of d.
CHECKPOINT_BYTES_PER_ELEMENT = 2.0
# The cross-entropy loss keeps the logits in fp32: 4·s·b·V/t bytes (Korthikanti et al. 2022, Sec. 4.3).
LOGITS_BYTES_PER_VOCAB_ENTRY = 4.0
# Dropout masks are 1 byte per element (Korthikanti et al. 2022 count them as s·b·h).
MASK_BYTES_PER_ELEMENT = 1.0

# Framework allowance per device: CUDA context and kernels (~0.3–0.5 GB with PyTorch + cuDNN/cuBLAS),
# NCCL communicator buffers (NCCL_BUFFSIZE 4 MiB × channels × peers, a few hundred MB), cuBLAS
# workspaces and the caching allocator's fragmentation. PyTorch's docs on CUDA memory management note that
# the context alone is "typically 300–500 MB"; we round the whole allowance up to 2 GB.
FRAMEWORK_BUFFER_BYTES = 2.0e9
# ZeRO-3 gathers a layer's full 16-bit weights before using it and prefetches the next one
# (DeepSpeed stage3_prefetch_bucket_size / FSDP forward prefetch): two layers' worth of gathered weights.
ZERO3_GATHERED_LAYERS = 2.0


def model_state_bytes_per_param(precision: str) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes per parameter for ``precision``."""
    if precision in ("fp32", "tf32"):
        return WEIGHT_BYTES_PER_PARAM_FP32, GRADIENT_BYTES_PER_PARAM_FP32, OPTIMIZER_BYTES_PER_PARAM_FP32
    if precision == "fp64":  # everything in 8-byte words: twice the fp32 figures
        return 2 * WEIGHT_BYTES_PER_PARAM_FP32, 2 * GRADIENT_BYTES_PER_PARAM_FP32, 2 * OPTIMIZER_BYTES_PER_PARAM_FP32
    return WEIGHT_BYTES_PER_PARAM_MIXED, GRADIENT_BYTES_PER_PARAM_MIXED, OPTIMIZER_BYTES_PER_PARAM_MIXED


def layers_per_stage(m: ModelArrays, pp: np.ndarray) -> np.ndarray:
    """Layers on the fullest pipeline stage."""
    return np.ceil(m.layers / pp)


def activation_bytes_per_token_per_layer(m: ModelArrays, element_bytes: float) -> np.ndarray:
    """Korthikanti's per-layer activations without the attention-score term, per token, unsharded."""
    d, q, kv, f = m.d_model, m.attn_width, m.kv_width, m.ffn
    e = element_bytes
    attention = e * d + e * q + 2 * e * kv + e * q + MASK_BYTES_PER_ELEMENT * d
    mlp_per_expert = e * d + np.where(m.gated > 0, 3 * e * f, 2 * e * f) + MASK_BYTES_PER_ELEMENT * d
    norms = 2 * e * d
    return attention + m.active_experts * mlp_per_expert + norms


def score_bytes_per_token_per_layer(m: ModelArrays, element_bytes: float) -> np.ndarray:
    """Attention scores kept by an unfused attention: 5·a·s per token (16-bit), unsharded."""
    return SCORE_BYTES_PER_HEAD_POSITION * (element_bytes / 2.0) * m.heads * m.seq_len


def stored_activation_bytes_per_token_per_layer(
    m: ModelArrays, recompute: np.ndarray, fused_attention: np.ndarray, tp: np.ndarray, element_bytes: float
) -> np.ndarray:
    """What one layer keeps for the backward pass, per token per device (tensor + sequence parallel)."""
    keeps_scores = (recompute < RECOMPUTE_SELECTIVE) & (fused_attention < 0.5)
    full = activation_bytes_per_token_per_layer(m, element_bytes) + np.where(
        keeps_scores, score_bytes_per_token_per_layer(m, element_bytes), 0.0
    )
    checkpoint = CHECKPOINT_BYTES_PER_ELEMENT * (element_bytes / 2.0) * m.d_model
    return np.where(recompute == RECOMPUTE_FULL, checkpoint, full) / tp


def micro_batches_in_flight(pp: np.ndarray, micro_batches: np.ndarray, interleave: np.ndarray) -> np.ndarray:
    """Micro-batches whose activations the first 1F1B stage holds at once."""
    interleaved = np.where(interleave > 1, 1.0 + (pp - 1) / (pp * interleave), 1.0)
    return np.maximum(np.minimum(pp, micro_batches), 1.0) * interleaved


class MemoryArrays(NamedTuple):
    weights_bytes: np.ndarray
    gradients_bytes: np.ndarray
    optimizer_bytes: np.ndarray
    activations_bytes: np.ndarray
    logits_bytes: np.ndarray
    zero3_buffer_bytes: np.ndarray
    framework_bytes: np.ndarray
    total_bytes: np.ndarray
    params_per_device: np.ndarray  # parameters of the fullest stage on one device (before ZeRO sharding)


def memory_per_device(
    m: ModelArrays,
    *,
    tp: np.ndarray,
    pp: np.ndarray,
    dp: np.ndarray,
    micro_batch: np.ndarray,
    micro_batches: np.ndarray,
    zero: np.ndarray,
    recompute: np.ndarray,
    interleave: np.ndarray,
    fused_attention: np.ndarray,
    precision: str,
) -> MemoryArrays:
    """Bytes on the fullest device: the first pipeline stage (embedding + in-flight activations) or the
    last (output head + logits); with one stage they are the same device."""
    w_b, g_b, o_b = model_state_bytes_per_param(precision)
    element = activation_bytes_per_element(precision)
    lps = layers_per_stage(m, pp)
    single = pp <= 1
    layer_params = lps * m.layer_params
    first_params = (
        layer_params + m.input_embedding_params + np.where(single, m.head_params * (1.0 - m.tied) + m.final_params, 0.0)
    )
    # Megatron keeps a copy of a tied embedding on the last stage to compute the logits.
    last_params = layer_params + m.head_params + m.final_params
    tokens = micro_batch * m.seq_len
    per_layer = stored_activation_bytes_per_token_per_layer(m, recompute, fused_attention, tp, element)
    first_act = lps * per_layer * tokens * micro_batches_in_flight(pp, micro_batches, interleave)
    last_act = lps * per_layer * tokens
    logits = LOGITS_BYTES_PER_VOCAB_ENTRY * tokens * m.vocab / tp

    def states(params):
        per_dev = params / tp
        weights = w_b * per_dev / np.where(zero >= 3, dp, 1.0)
        grads = g_b * per_dev / np.where(zero >= 2, dp, 1.0)
        optim = o_b * per_dev / np.where(zero >= 1, dp, 1.0)
        return per_dev, weights, grads, optim

    f_dev, f_w, f_g, f_o = states(first_params)
    l_dev, l_w, l_g, l_o = states(last_params)
    zero3 = np.where(zero >= 3, ZERO3_GATHERED_LAYERS * w_b * m.layer_params / tp, 0.0)
    framework = np.full(np.shape(zero3), FRAMEWORK_BUFFER_BYTES)
    first_logits = np.where(single, logits, 0.0)
    first_total = f_w + f_g + f_o + first_act + first_logits + zero3 + framework
    last_total = l_w + l_g + l_o + last_act + logits + zero3 + framework
    use_first = single | (first_total >= last_total)
    pick = lambda a, b: np.where(use_first, a, b)  # noqa: E731
    return MemoryArrays(
        weights_bytes=pick(f_w, l_w),
        gradients_bytes=pick(f_g, l_g),
        optimizer_bytes=pick(f_o, l_o),
        activations_bytes=pick(first_act, last_act),
        logits_bytes=pick(first_logits, logits),
        zero3_buffer_bytes=zero3 + 0.0 * first_total,
        framework_bytes=framework + 0.0 * first_total,
        total_bytes=pick(first_total, last_total),
        params_per_device=np.maximum(f_dev, l_dev),
    )
