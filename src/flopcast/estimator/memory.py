"""Memory per device for training: model states, activations, the loss, runtime buffers (DESIGN §4).

Model states, mixed precision with Adam (Rajbhandari et al. 2020, "ZeRO", Sec. 3.1): 2 bytes of 16-bit
weights + K = 12 of optimizer state (fp32 master weights, momentum, variance) + the gradients, whose dtype
is explicit (``grad_dtype``): Megatron-LM accumulates bf16 training's gradients in fp32 "main grads", 4 B per
parameter ("bfloat16 requires gradient accumulation and all-reduce to be done in fp32",
megatron/training/arguments.py), DeepSpeed keeps them in 16 bit, 2 B (the ZeRO paper's 2 + 2 + 12 = 16).
fp32 training keeps 4 + 4 + 8 (m, v). A pipeline stage holds its layers' parameters, tensor parallelism
splits them t ways; ZeRO stage 1 shards the optimizer state over the data-parallel group, stage 2 also the
gradients, stage 3 also the weights.

When the peak happens. A main-grad buffer (gradients in a wider dtype than the weights) is allocated once and
lives through the step. Gradients in the weights' own dtype are PyTorch's ``.grad`` tensors, freed by
``zero_grad(set_to_none=True)`` (the default since PyTorch 2.0) and re-created by each backward: during the
forward and the loss they do not exist yet. The peak is the larger of two moments,
  (a) the loss / first backward: states + every stored activation + the larger of the loss's working set
      (last stage) and one recomputed layer's working set (checkpointed layers);
  (b) the end of the backward / the optimizer step: states + every gradient, activations freed.
The breakdown reports what is allocated at the peak moment (it sums to ``allocated``).

Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
Sec. 4.1, 16-bit): per layer and micro-batch ``s·b·h·(34 + 5·a·s/h)`` bytes for a GPT layer with dropout.
Written per token with the layer's own widths so that GQA, head_dim ≠ d/heads, ffn ≠ 4d and SwiGLU come out
right, e bytes per element:
  attention   e·d (QKV input) + e·q (Q) + e·kv (K) + e·kv (V) + e·q (output-projection input)
              + d (dropout mask); a fused kernel's 4 B log-sum-exp per head is left out (< 0.5%).
              MLA: V and the output projection's input are heads·v_head_dim wide, and the Q and KV latents
              are kept at their norms and up-projections, 2·(q_lora_rank + kv_lora_rank)
  MLP         e·d (input) + e·f (activation input) + e·f (its output) + d (dropout mask); a fused SwiGLU
              keeps both branches and the product's input: e·d + 3·e·f (Megatron-LM ``bias_swiglu``)
  norms       2 × e·d (their inputs)
  scores      unfused attention only: softmax output (2 B, 4 B under fp16 AMP where autocast runs softmax
              in fp32), dropout mask 1 B and output 2 B per head per key position: 5·a·s (16-bit)
Dropout masks are counted only for models trained with dropout (``ModelSpec.dropout``; most 2024+ decoders
train without). Tensor + sequence parallelism divides all of it by t (their eq. 4). What recomputation keeps
instead: recompute.py. Under 1F1B the first pipeline stage holds min(p, m) micro-batches in flight (their
Sec. 4.2.3), ×(1 + (p−1)/(p·v)) with v interleaved stages.

The loss. PyTorch's cross-entropy on fp32 logits holds three vocabulary-wide fp32-sized tensors at once at
the start of the backward: for 16-bit training the bf16 logits (2 B) and their fp32 log-softmax (4 B), then
the fp32 gradient (4 B) and its bf16 cast (2 B) = 12 B per vocabulary entry per token (``LOSS_...`` below;
measured 12.0 B in bf16 and 11.0 B in fp32 by ``bench --verify-train`` on this project's CI machine), not the
4 B of Korthikanti et al. (Sec. 4.3), who count the stored fp32 logits only.

Runtime memory outside the tensors (per device kind, :func:`runtime_allowance`): on a GPU the CUDA context
and communicator buffers sit outside PyTorch's caching allocator, and the allocator reserves more than is
allocated (fragmentation); ``reserved`` = allocated + fragmentation × what is allocated and freed every step
(activations, the loss, transient gradients; model states are allocated once). A CPU has neither.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.estimator.arrays import ModelArrays, activation_bytes_per_element
from flopcast.estimator.finetune import (
    QLORA_WEIGHT_BYTES_PER_PARAM,
    frozen_states,
    intermediate_bytes_per_token_per_layer,
)
from flopcast.estimator.fp8 import FP8_WEIGHT_COPY_BYTES_PER_PARAM, saved_input_savings_bytes_per_token_per_layer
from flopcast.estimator.measured import stored_bytes_per_sample, table_bytes_per_device
from flopcast.estimator.recompute import (
    RECOMPUTE_NONE,
    is_checkpointed,
    kept_by_checkpoint_bytes_per_token,
    recomputes_attention_core,
)

# Mixed-precision Adam model states, bytes per parameter (ZeRO paper, Sec. 3.1: 2 + 2 + K, K = 12).
WEIGHT_BYTES_PER_PARAM_MIXED = 2.0
OPTIMIZER_BYTES_PER_PARAM_MIXED = 12.0
# fp32 training: 4-byte weights and gradients, Adam's m and v in fp32 (no separate master copy).
WEIGHT_BYTES_PER_PARAM_FP32 = 4.0
OPTIMIZER_BYTES_PER_PARAM_FP32 = 8.0
GRAD_DTYPE_BYTES = {"fp64": 8.0, "fp32": 4.0, "bf16": 2.0, "fp16": 2.0}

# Korthikanti et al. 2022, Sec. 4.1: attention-score bytes per token per layer per head per key position,
# 16-bit: softmax output 2 + dropout mask 1 + dropout output 2; without dropout the softmax output only.
SCORE_BYTES_PER_HEAD_POSITION = 5.0
SCORE_BYTES_PER_HEAD_POSITION_NO_DROPOUT = 2.0
# fp16 AMP: torch.autocast runs softmax in fp32 (PyTorch's autocast op reference, "CUDA Ops that can
# autocast to float32": softmax), so its stored output is 4 B instead of 2.
FP16_AMP_SOFTMAX_EXTRA_BYTES = 2.0
# Dropout masks are 1 byte per element (Korthikanti et al. 2022 count them as s·b·h).
MASK_BYTES_PER_ELEMENT = 1.0
# The loss's working set at the start of the backward, bytes per vocabulary entry per token (module docstring).
LOSS_WORKING_BYTES_PER_VOCAB_ENTRY = 12.0
# ZeRO-3 gathers a layer's full 16-bit weights before using it and prefetches the next one
# (DeepSpeed stage3_prefetch_bucket_size / FSDP forward prefetch): two layers' worth of gathered weights.
ZERO3_GATHERED_LAYERS = 2.0

# --- runtime memory outside the tensors, per device kind -------------------------------------------------
# CUDA context with lazy module loading (CUDA >= 11.7, PyTorch's default since 1.13: "CUDA_MODULE_LOADING=LAZY
# ... significantly reduces device memory", CUDA C++ Programming Guide, "Lazy Loading"): the driver's context,
# the kernels of the modules used, cuBLAS/cuDNN handles; about half a gigabyte with PyTorch.
CUDA_CONTEXT_BYTES = 0.5e9
# NCCL: NCCL_BUFFSIZE (default 4 MiB, NCCL environment-variable docs) per channel and direction, with up
# to 32 channels on NVLink systems (NCCL_MAX_NCHANNELS); 16 channels × 2 directions per communicator.
NCCL_BUFFER_BYTES = 4 * 2**20
NCCL_CHANNELS = 16
NCCL_COMMUNICATOR_BYTES = NCCL_BUFFER_BYTES * NCCL_CHANNELS * 2
# PyTorch's caching allocator reserves more than it allocates: block rounding (2 MiB small segments, 20 MiB
# large-pool segments, c10/cuda/CUDACachingAllocator.cpp) and fragmentation. GMLake (Guo et al., ASPLOS 2024)
# measures fragmentation of 15% on average, up to 33%, across eight LLM training setups on A100-80GB with
# ZeRO-3, LoRA and recomputation; without those (and with expandable_segments) it is lower. We take 10%.
CUDA_ALLOCATOR_FRAGMENTATION_FRACTION = 0.10
# Device kinds (HardwareProfile.kind) with a CUDA-like runtime: a context, collective buffers, a caching
# allocator (ROCm/HIP and the Gaudi/Trainium runtimes work the same way; their figures are taken as CUDA's).
# TPUs (XLA assigns buffers statically at compile time) and CPUs have none of these.
DEVICE_KINDS_WITH_RUNTIME_ALLOWANCE = ("gpu", "accelerator")


def model_state_bytes_per_param(precision: str, grad_dtype: str | None = None) -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes per parameter for ``precision`` and ``grad_dtype``
    (None: :func:`default_grad_dtype`)."""
    grad = GRAD_DTYPE_BYTES[grad_dtype or default_grad_dtype(precision)]
    if precision in ("fp32", "tf32"):
        return WEIGHT_BYTES_PER_PARAM_FP32, grad, OPTIMIZER_BYTES_PER_PARAM_FP32
    if precision == "fp64":  # everything in 8-byte words: twice the fp32 figures
        return 2 * WEIGHT_BYTES_PER_PARAM_FP32, grad, 2 * OPTIMIZER_BYTES_PER_PARAM_FP32
    return WEIGHT_BYTES_PER_PARAM_MIXED, grad, OPTIMIZER_BYTES_PER_PARAM_MIXED


def default_grad_dtype(precision: str, zero: int = 0) -> str:
    """The conventions of the frameworks that run each ZeRO stage. ZeRO 0-1 (Megatron-LM, its distributed
    optimizer): bf16 (and fp8, whose master weights and gradients are bf16-trained) accumulate gradients in
    fp32 main grads; fp16 keeps fp16 gradients (``accumulate_allreduce_grads_in_fp32`` is off by default).
    ZeRO 2-3 (DeepSpeed; PyTorch FSDP2): 16-bit gradients — FSDP2 keeps fp32 sharded parameters and gradients
    with no separate master copy, 4 + 4 + 8 = the same 16 B per parameter as DeepSpeed's 2 + 2 + 12.
    Full-precision training keeps gradients in the weights' dtype."""
    if zero >= 2 and precision not in ("fp32", "tf32", "fp64"):
        return "fp16" if precision == "fp16" else "bf16"
    if precision in ("fp32", "tf32"):
        return "fp32"
    if precision == "fp64":
        return "fp64"
    return "fp16" if precision == "fp16" else "fp32"


def layers_per_stage(m: ModelArrays, pp: np.ndarray) -> np.ndarray:
    """Layers on the fullest pipeline stage."""
    return np.ceil(m.layers / pp)


def activation_bytes_per_token_per_layer(m: ModelArrays, element_bytes: float) -> np.ndarray:
    """Korthikanti's per-layer activations without the attention-score term, per token, unsharded."""
    d, q, kv, f = m.d_model, m.attn_width, m.kv_width, m.mlp_width  # f: every FFN a token passes, summed
    e = element_bytes
    mask = MASK_BYTES_PER_ELEMENT * m.dropout * d
    # the QKV input, Q, K, V, the output projection's input; MLA also its Q and KV latents (the inputs of their
    # norms and up-projections), its V and O input heads·v_head_dim wide
    attention = e * (d + q + kv + m.kv_v_width + m.v_width + m.latent_width) + mask
    # each FFN (a dense layer's, or each routed and shared expert a token visits) keeps its own input copy
    mlp = m.mlp_units * (e * d + mask) + np.where(m.gated > 0, 3 * e * f, 2 * e * f)
    norms = 2 * e * d
    return attention + mlp + norms


def score_bytes_per_token_per_layer(m: ModelArrays, element_bytes: float, precision: str = "bf16") -> np.ndarray:
    """Attention scores kept by an unfused attention per token, unsharded: 5·a·s bytes (16-bit, with dropout)."""
    per_position = np.where(m.dropout > 0, SCORE_BYTES_PER_HEAD_POSITION, SCORE_BYTES_PER_HEAD_POSITION_NO_DROPOUT)
    per_position = per_position * (element_bytes / 2.0) + (FP16_AMP_SOFTMAX_EXTRA_BYTES if precision == "fp16" else 0.0)
    return per_position * m.heads * m.seq_len


def _layer_bytes_per_token(m, with_scores: np.ndarray, element_bytes: float, precision: str) -> np.ndarray:
    """Everything a layer's forward leaves for its backward, per token, unsharded; the scores where asked."""
    scores = score_bytes_per_token_per_layer(m, element_bytes, precision)
    stored = activation_bytes_per_token_per_layer(m, element_bytes) + np.where(with_scores, scores, 0.0)
    if precision == "fp8":  # the FP8 GEMMs save their inputs in FP8 (estimator/fp8.py)
        stored = stored - saved_input_savings_bytes_per_token_per_layer(m, element_bytes)
    return stored


def stored_activation_bytes_per_token_per_layer(
    m: ModelArrays,
    recompute: np.ndarray,
    fused_attention: np.ndarray,
    tp: np.ndarray,
    element_bytes: float,
    precision: str = "bf16",
) -> np.ndarray:
    """What one layer keeps for the backward pass, per token per device (tensor + sequence parallel)."""
    keeps_scores = (recompute == RECOMPUTE_NONE) & (fused_attention < 0.5)
    everything = _layer_bytes_per_token(m, keeps_scores, element_bytes, precision)
    checkpointed = kept_by_checkpoint_bytes_per_token(m, recompute, element_bytes)
    return np.where(is_checkpointed(recompute), checkpointed, everything) / tp


def recompute_working_bytes_per_token(
    m: ModelArrays,
    recompute: np.ndarray,
    fused_attention: np.ndarray,
    tp: np.ndarray,
    element_bytes: float,
    precision: str = "bf16",
) -> np.ndarray:
    """What the re-run forward of one checkpointed layer materialises again, per token per device: everything
    the layer would keep (scores included when the core is recomputed unfused) minus what it kept."""
    rebuilt_scores = recomputes_attention_core(recompute) & (fused_attention < 0.5)
    everything = _layer_bytes_per_token(m, rebuilt_scores, element_bytes, precision)
    kept = kept_by_checkpoint_bytes_per_token(m, recompute, element_bytes)
    return np.where(is_checkpointed(recompute), np.maximum(everything - kept, 0.0), 0.0) / tp


def micro_batches_in_flight(pp: np.ndarray, micro_batches: np.ndarray, interleave: np.ndarray) -> np.ndarray:
    """Micro-batches whose activations the first 1F1B stage holds at once."""
    interleaved = np.where(interleave > 1, 1.0 + (pp - 1) / (pp * interleave), 1.0)
    return np.maximum(np.minimum(pp, micro_batches), 1.0) * interleaved


def runtime_allowance(
    runtime: np.ndarray, tp: np.ndarray, pp: np.ndarray, dp: np.ndarray, cp=1.0, ep=1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(context bytes, communicator bytes, allocator fragmentation fraction) per device. ``runtime`` is 1.0 on
    device kinds with a CUDA-like runtime (DEVICE_KINDS_WITH_RUNTIME_ALLOWANCE), else 0.0. Each parallel
    group of more than one device (tensor, context, expert, pipeline, data) is one NCCL communicator."""
    groups = (tp > 1).astype(float) + (pp > 1) + (dp > 1) + (np.asarray(cp) > 1) + (np.asarray(ep) > 1)
    return (
        runtime * CUDA_CONTEXT_BYTES,
        runtime * groups * NCCL_COMMUNICATOR_BYTES,
        runtime * CUDA_ALLOCATOR_FRAGMENTATION_FRACTION,
    )


def sharding_group_size(dp, cp, shard_group) -> np.ndarray:
    """Ranks ZeRO shards the dense model states over: the shard group when one is given (HSDP), else dp·cp."""
    group = np.asarray(shard_group, dtype=float)
    return np.where(group > 0, group, dp * np.asarray(cp, dtype=float))


class MemoryArrays(NamedTuple):
    """Bytes on the fullest device at its peak moment. weights + gradients + optimizer + activations + logits +
    recompute_working + zero3_buffers = allocated; allocated + fragmentation of what churns each step =
    reserved; reserved + runtime_context + communicators = total (what must fit)."""

    weights_bytes: np.ndarray
    gradients_bytes: np.ndarray  # allocated at the peak moment (0 when the peak precedes transient gradients)
    optimizer_bytes: np.ndarray
    activations_bytes: np.ndarray
    logits_bytes: np.ndarray  # the loss's working set, when the peak is at the loss
    recompute_working_bytes: np.ndarray  # one re-run layer, when the peak is in a checkpointed backward
    zero3_buffer_bytes: np.ndarray
    allocated_bytes: np.ndarray
    fragmentation_bytes: np.ndarray
    reserved_bytes: np.ndarray
    runtime_context_bytes: np.ndarray
    communicator_bytes: np.ndarray
    total_bytes: np.ndarray
    peak_at_optimizer_step: np.ndarray  # 1.0 when moment (b) of the module docstring is the peak
    params_per_device: np.ndarray  # parameters of the fullest stage on one device (before ZeRO sharding)
    expert_params_per_device: np.ndarray  # of which routed-expert parameters (sharded by ep, reduced over dp·cp/ep)
    # fine-tuning (estimator/finetune.py); training: every parameter trainable, no frozen or adapter bytes
    trainable_params_per_device: np.ndarray  # parameters with gradients (adapters), before ZeRO sharding
    trainable_expert_params_per_device: np.ndarray  # of which routed experts' adapters
    frozen_weights_bytes: np.ndarray  # of weights_bytes
    adapter_weights_bytes: np.ndarray  # of weights_bytes
    dequant_buffer_bytes: np.ndarray  # of weights_bytes


def memory_per_device(
    m: ModelArrays,
    *,
    tp: np.ndarray,
    pp: np.ndarray,
    dp: np.ndarray,
    cp: np.ndarray | float = 1.0,
    ep: np.ndarray | float = 1.0,
    shard_group: np.ndarray | float = 0.0,
    micro_batch: np.ndarray,
    micro_batches: np.ndarray,
    zero: np.ndarray,
    recompute: np.ndarray,
    interleave: np.ndarray,
    fused_attention: np.ndarray,
    precision: str,
    grad_dtype: str | None = None,
    runtime: np.ndarray | float = 1.0,
    frozen=None,
) -> MemoryArrays:
    """Bytes on the fullest device: the first pipeline stage (embedding + in-flight activations) or the
    last (output head + the loss); with one stage they are the same device.

    Context parallelism (``cp``) splits every sequence over cp devices: activations and the loss ÷ cp, the
    weights replicated; Megatron-LM's distributed optimizer shards over the data-parallel group *with* context
    parallelism, so ZeRO shards the dense states over dp·cp. Expert parallelism (``ep``, within dp·cp) places
    E/ep routed experts per device: their states ÷ (tp·ep), sharded by ZeRO over the dp·cp/ep replicas of each
    expert (Megatron-Core's expert-data-parallel group). ``frozen`` (finetune.FrozenBase): LoRA/QLoRA's frozen
    base weights and their adapters (estimator/finetune.py)."""
    w_b, g_b, o_b = model_state_bytes_per_param(precision, grad_dtype)
    fp8_copies = FP8_WEIGHT_COPY_BYTES_PER_PARAM if precision == "fp8" else 0.0
    if grad_dtype is None:  # the convention of the ZeRO stage's frameworks (default_grad_dtype), per row
        sharded = model_state_bytes_per_param(precision, default_grad_dtype(precision, zero=3))[1]
        g_b = np.where(zero >= 2, sharded, g_b)
    persistent_grads = g_b > w_b  # a main-grad buffer; otherwise PyTorch's transient .grad tensors
    element = activation_bytes_per_element(precision)
    lps = layers_per_stage(m, pp)
    single = pp <= 1
    cp, ep = np.asarray(cp, dtype=float), np.asarray(ep, dtype=float)
    expert_params = lps * m.layer_expert_params  # the same on every stage
    layer_params = lps * m.layer_params - expert_params  # dense part of the stage's layers
    first_params = (
        layer_params + m.input_embedding_params + np.where(single, m.head_params * (1.0 - m.tied) + m.final_params, 0.0)
    )
    # Megatron keeps a copy of a tied embedding on the last stage to compute the logits.
    last_params = layer_params + m.head_params + m.final_params
    tokens = micro_batch * m.seq_len / cp  # each device holds its 1/cp of every sequence
    per_layer = stored_activation_bytes_per_token_per_layer(m, recompute, fused_attention, tp, element, precision)
    per_layer = stored_bytes_per_sample(m, element, per_layer)  # a measured model's (estimator/measured.py)
    tables = table_bytes_per_device(m, dp)  # its embedding tables, sharded over dp
    working = recompute_working_bytes_per_token(m, recompute, fused_attention, tp, element, precision) * tokens
    if frozen is not None:  # the adapters' rank-r intermediates: kept, or rebuilt in a checkpointed layer
        extra = intermediate_bytes_per_token_per_layer(frozen.adapters, element) / tp
        checkpointed = is_checkpointed(recompute)
        per_layer = per_layer + np.where(checkpointed, 0.0, extra)
        working = working + np.where(checkpointed, extra * tokens, 0.0)
    first_act = lps * per_layer * tokens * micro_batches_in_flight(pp, micro_batches, interleave)
    last_act = lps * per_layer * tokens
    loss = LOSS_WORKING_BYTES_PER_VOCAB_ENTRY * tokens * m.vocab / tp
    gathered_layer = (m.layer_params - m.layer_expert_params) / tp + m.layer_expert_params / (tp * ep)
    gathered_b = QLORA_WEIGHT_BYTES_PER_PARAM if frozen is not None and frozen.spec.quantised else w_b
    zero3 = np.where(zero >= 3, ZERO3_GATHERED_LAYERS * gathered_b * gathered_layer, 0.0)
    dense_shards = sharding_group_size(dp, cp, shard_group)
    expert_shards = np.maximum(np.minimum(dense_shards, dp * cp / ep), 1.0)
    expert_per_dev = expert_params / (tp * ep)

    def device(params, activations, loss_bytes):
        """One stage's device at its peak moment: (weights, grads, optimizer, act, loss, working, allocated, b)."""
        dense_dev = params / tp
        per_dev = dense_dev + expert_per_dev

        def sharded(from_stage):  # model states, ZeRO-sharded from stage ``from_stage`` on
            return dense_dev / np.where(zero >= from_stage, dense_shards, 1.0) + expert_per_dev / np.where(
                zero >= from_stage, expert_shards, 1.0
            )

        # 16-bit weights (+ their FP8 copies under fp8 training, estimator/fp8.py)
        weights = (w_b + fp8_copies) * sharded(3) + tables
        grads = g_b * sharded(2)
        optim = o_b * sharded(1)
        tuned = (weights * 0.0, weights * 0.0, weights * 0.0, per_dev, expert_per_dev)
        if frozen is not None:  # frozen base weights, adapters with gradients and optimizer states
            st = frozen_states(
                frozen.spec, frozen.adapters, dense_dev=dense_dev, expert_dev=expert_per_dev, lps=lps, tp=tp,
                ep=ep, zero=zero, dense_shards=dense_shards, expert_shards=expert_shards, w_b=w_b, g_b=g_b, o_b=o_b,
            )  # fmt: skip
            weights, grads, optim = st.weights, st.grads, st.optim
            tuned = (st.frozen_weights, st.adapter_weights, st.dequant_buffer, st.trainable_params,
                     st.trainable_expert_params)  # fmt: skip
        # gradients exist from the first backward on: before the loss only on a step's first micro-batch
        held_grads = np.where(persistent_grads | (micro_batches > 1), grads, 0.0)
        at_loss = weights + optim + held_grads + activations + np.maximum(loss_bytes, working) + zero3
        at_step = weights + optim + grads + zero3
        step_peak = at_step > at_loss
        use_loss = (~step_peak) & (loss_bytes >= working)
        return (
            weights,
            np.where(step_peak, grads, held_grads),
            optim,
            np.where(step_peak, 0.0, activations),
            np.where(use_loss, loss_bytes, 0.0),
            np.where(step_peak | use_loss, 0.0, working),
            np.maximum(at_loss, at_step),
            step_peak,
            per_dev,
            weights + optim + held_grads + zero3,  # allocated once per run: no allocator churn
            *tuned,  # 10-14: frozen weights, adapter weights, dequantised buffer, trainable (expert) params
        )

    first = device(first_params, first_act, np.where(single, loss, 0.0))
    last = device(last_params, last_act, loss)
    use_first = single | (first[6] >= last[6])
    pick = lambda i: np.where(use_first, first[i], last[i])  # noqa: E731
    allocated = pick(6)
    context, communicators, fragmentation = runtime_allowance(np.asarray(runtime, dtype=float), tp, pp, dp, cp, ep)
    # fragmentation comes from the allocations that churn every step (activations, the loss, transient
    # gradients), not from the model states allocated once at start-up
    reserved = allocated + fragmentation * (allocated - pick(9))
    total = reserved + context + communicators
    like = 0.0 * total
    return MemoryArrays(
        weights_bytes=pick(0),
        gradients_bytes=pick(1),
        optimizer_bytes=pick(2),
        activations_bytes=pick(3),
        logits_bytes=pick(4),
        recompute_working_bytes=pick(5),
        zero3_buffer_bytes=zero3 + like,
        allocated_bytes=allocated,
        fragmentation_bytes=reserved - allocated,
        reserved_bytes=reserved,
        runtime_context_bytes=context + like,
        communicator_bytes=communicators + like,
        total_bytes=total,
        peak_at_optimizer_step=pick(7).astype(float),
        params_per_device=np.maximum(first[8], last[8]),
        expert_params_per_device=expert_per_dev + like,
        trainable_params_per_device=np.maximum(first[13], last[13]),
        trainable_expert_params_per_device=pick(14) + like,
        frozen_weights_bytes=pick(10) + like,
        adapter_weights_bytes=pick(11) + like,
        dequant_buffer_bytes=pick(12) + like,
    )
