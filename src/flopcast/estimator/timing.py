"""Step time of one optimizer step on the critical-path device (DESIGN §4 "Step time").

    step = m · (stage compute + tensor-parallel comms + pipeline sends)     m micro-batches per step
         + pipeline bubble (p − 1)/v · one micro-batch's stage time          (Narayanan et al. 2021)
         + exposed data-parallel comms + optimizer update

Stage compute per micro-batch = its layers × (weight matmuls + attention core on the matmul roofline,
memory-bound ops on the bandwidth roofline) + the output head on the last stage. The pipeline runs at
the pace of its slowest stage; the layers are partitioned so as to balance the stages, the last one
taking up to three layers fewer to make room for the head (stage_balance).

Communication (comms.py: ring bandwidth plus NCCL's latency model; all-reduce as ring or tree):
* tensor parallel: 4 all-reduces of the s·b·d activations per layer per micro-batch (2 forward,
  2 backward; Shoeybi et al. 2019 Fig. 4) + 2 more when the forward is recomputed in full. With sequence
  parallelism they become reduce-scatter + all-gather pairs of the same volume (Korthikanti et al. 2022).
  Not overlapped (Megatron-LM runs them on the critical path).
* pipeline: one forward and one backward send of s·b·d/t activations per micro-batch and virtual stage:
  the interleaved schedule with v stages per device sends v× as often and shrinks the bubble to
  (p − 1)/(v·m) (Narayanan et al. 2021, Sec. 2.2.2).
* data parallel (ZeRO 0–1): one all-reduce (or ZeRO-1's reduce-scatter + all-gather, the same volume) of
  the stage's 16-bit gradients per step, overlapped with the last micro-batch's backward pass up to
  ``dp_overlap`` of it (pinned at 1: the bucketed all-reduce runs beside the backward), except the last
  gradient bucket, which can start only when the backward pass ends: at least one bucket's all-reduce is
  always exposed (Megatron-LM's DistributedDataParallel buckets max(40M, 1M·dp) parameters,
  ``megatron/core/distributed/distributed_data_parallel.py``; PyTorch DDP's ``bucket_cap_mb`` is 25 MiB).
  ZeRO-2 keeps only a shard of the gradients, so it reduce-scatters every micro-batch's gradients as they
  are produced (ZeRO paper Sec. 5.2; why DeepSpeed's pipeline engine
  refuses ZeRO-2 with pipeline parallelism) and all-gathers the updated weights once per step; those
  reduce-scatters overlap every micro-batch's backward pass.
* ZeRO-3 / FSDP full sharding re-gathers every layer's weights before its forward and again before its
  backward (and before a recomputed forward), and reduce-scatters its gradients after the backward, for
  every micro-batch (Rajbhandari et al. 2020 Sec. 7.2.2: 3Ψ per step against 2Ψ for an all-reduce; Zhao
  et al. 2023, "PyTorch FSDP", Sec. 3.2: one all-gather per wrapped layer and pass). So per micro-batch
  and layer: 2 (+1 recomputed) all-gathers and 1 reduce-scatter, each a ring over the data-parallel group
  with its own latency — (n − 1) hops, milliseconds at a thousand ranks — overlapped with the step's
  compute up to ``dp_overlap``.
* a group whose devices span more than one node runs at the inter-node bandwidth per device, times the
  group members per node (each drives its own NIC; comms.ring_bandwidth_bytes_per_s).
Rank order is Megatron-LM's: tensor-parallel ranks adjacent, then data parallel, then pipeline.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.estimator.arrays import HardwareArrays, LayoutArrays, ModelArrays
from flopcast.estimator.comms import (
    measured_latency_shift_s,
    point_to_point_seconds,
    ring_bandwidth_bytes_per_s,
    ring_group,
)
from flopcast.estimator.context_parallel import ring_attention_exposed_seconds
from flopcast.estimator.efficiency import EfficiencyParams, gemm_efficiency
from flopcast.estimator.experts import (
    MOE_BUSIEST_LOAD_FACTOR,
    moe_all_to_all_seconds_per_layer,
    routed_active_params_per_layer,
    tokens_per_local_expert,
)
from flopcast.estimator.finetune import dequant_seconds_per_layer
from flopcast.estimator.flops import (
    FLOPS_PER_MULTIPLY_ADD,
    TRAINING_PASSES,
    forward_attention_flops_per_token_per_layer,
    forward_head_flops_per_token,
    head_flops_per_token,
)
from flopcast.estimator.fp8 import FP8_WEIGHT_CAST_BYTES_PER_PARAM, cast_bytes_per_token_per_layer
from flopcast.estimator.measured import stage_seconds
from flopcast.estimator.memory import (
    activation_bytes_per_token_per_layer,
    layers_per_stage,
    sharding_group_size,
)
from flopcast.estimator.recompute import recomputed_linear_fraction, recomputes_attention_core, recomputes_layer_forward
from flopcast.estimator.roofline import roofline_seconds

# The loss reads and writes the fp32 logits: 4 bytes per vocabulary entry per token per memory pass
# (Korthikanti et al. 2022, Sec. 4.3, count the logits in fp32).
LOGITS_TRAFFIC_BYTES_PER_VOCAB_ENTRY = 4.0

# Shoeybi et al. 2019 (Megatron-LM), Fig. 4: two all-reduces in the forward and two in the backward pass
# of each transformer layer; a recomputed forward repeats the forward two.
TP_ALL_REDUCES_PER_LAYER = 4
TP_ALL_REDUCES_PER_RECOMPUTED_FORWARD = 2
PP_SENDS_PER_MICRO_BATCH = 2  # activations forward, their gradients backward (per virtual stage)
ZERO3_TRAFFIC_FACTOR = 1.5  # Rajbhandari et al. 2020, Sec. 7.2.2: 3Ψ vs 2Ψ for an all-reduce
# ZeRO-3 collectives per layer per micro-batch (FSDP paper Sec. 3.2; ZeRO paper Sec. 7.2.2): all-gather
# before the forward and before the backward, reduce-scatter after the backward; a recomputed forward
# gathers once more (the weights were released after the first forward).
ZERO3_GATHERS_PER_LAYER = 2
ZERO3_GATHERS_PER_RECOMPUTED_FORWARD = 1
ZERO3_REDUCE_SCATTERS_PER_LAYER = 1
BACKWARD_SHARE_OF_COMPUTE = 2.0 / 3.0  # the backward pass is 2 of the 3 forward-pass equivalents
# Adam update traffic per parameter: read fp32 master, m, v and the fp32 main gradient (16 B), write
# master, m, v (12 B) and the 16-bit copy of the weight (2 B). Memory bound.
ADAM_STEP_BYTES_PER_PARAM = 30.0
# Megatron-LM DistributedDataParallel: bucket_size = max(40,000,000, 1,000,000 · dp) parameters
# (megatron/core/distributed/distributed_data_parallel.py): the last bucket's all-reduce is never hidden.
DP_BUCKET_MIN_PARAMS = 40_000_000
DP_BUCKET_PARAMS_PER_DP_RANK = 1_000_000
CAUSAL_FUSED_ATTENTION_FRACTION = 0.5  # share of the s × s score blocks a causal fused kernel computes
# Memory traffic of an unfused attention per score element (one head, one query–key pair), 16-bit, counted
# kernel by kernel as Megatron-LM runs them (QKᵀ GEMM, fused scale-mask-softmax, dropout, A·V GEMM):
#   forward   QKᵀ writes S 2 + softmax reads S 2, writes P 2 + dropout reads P 2, writes mask 1 and P' 2
#             + A·V reads P' 2                                                              = 13 bytes
#   backward  dV reads P' 2 + dP' written 2 + dropout-grad reads dP' 2, mask 1, writes dP 2
#             + softmax-grad reads dP 2, P 2, writes dS 2 + dQ and dK read dS 2 × 2            = 19 bytes
# A recomputed attention core (selective or full recomputation) repeats the forward.
SCORE_TRAFFIC_BYTES_FORWARD = 13.0
SCORE_TRAFFIC_BYTES_BACKWARD = 19.0
# A recomputed forward repeats the forward's memory traffic: one of the three passes.
RECOMPUTED_TRAFFIC_SHARE = 1.0 / TRAINING_PASSES


# How many layers the partitioner may move off the last stage to make room for the output head.
MAX_LAYERS_MOVED_FOR_HEAD = 3


def stage_balance(layers: np.ndarray, pp: np.ndarray, layer_seconds: np.ndarray, head_seconds: np.ndarray):
    """Slowest stage time with balanced partitioning ÷ that with ⌈L/p⌉ layers on every stage and the head on
    the last (≤ 1). Pipeline frameworks balance the stages: DeepSpeed partitions the layers by parameter count
    (the head counts as a layer's worth of parameters), Llama 3 "reduce[s] one Transformer layer each from the
    first and the last stages" (Dubey et al. 2024 Sec. 3.3.2), Megatron-LM takes the layers of the first and
    last stage as options. The last stage keeps k = ⌈L/p⌉ − j layers and the head, the other p − 1 stages
    share the rest: slowest = min over j of max(k·t_layer + t_head, ⌈(L − k)/(p − 1)⌉·t_layer)."""
    layers, pp, layer_seconds, head_seconds = np.broadcast_arrays(layers, pp, layer_seconds, head_seconds)
    out = np.ones(pp.shape)
    rows = np.flatnonzero(pp.ravel() > 1)  # one stage needs no partitioning
    if rows.size == 0:
        return out
    layers, pp = layers.ravel()[rows], pp.ravel()[rows]
    layer_seconds, head_seconds = layer_seconds.ravel()[rows], head_seconds.ravel()[rows]
    per_stage = np.ceil(layers / pp)
    plain = per_stage * layer_seconds + head_seconds
    best = plain
    others = pp - 1.0
    for moved in range(1, MAX_LAYERS_MOVED_FOR_HEAD + 1):
        last = np.maximum(per_stage - moved, 0.0)
        slowest = np.maximum(last * layer_seconds + head_seconds, np.ceil((layers - last) / others) * layer_seconds)
        best = np.minimum(best, slowest)
    out.ravel()[rows] = best / plain
    return out


class StepArrays(NamedTuple):
    micro_batches: np.ndarray
    compute_seconds: np.ndarray
    tp_comm_seconds: np.ndarray
    cp_comm_seconds: np.ndarray  # the K/V ring beyond the attention it overlaps (context_parallel.py)
    ep_comm_seconds: np.ndarray  # MoE all-to-alls (experts.py)
    pp_comm_seconds: np.ndarray
    dp_comm_exposed_seconds: np.ndarray
    bubble_seconds: np.ndarray
    optimizer_seconds: np.ndarray
    step_seconds: np.ndarray
    gemm_efficiency: np.ndarray


def _data_parallel_seconds(group, gradient_bytes, zero, micro_batches, lps, whole_layer, latency_s):
    """Seconds of one step's data-parallel collectives over ``group`` for ``gradient_bytes`` of the stage's
    gradients (see the module docstring: ZeRO 0-1 one all-reduce, ZeRO-2 a reduce-scatter per micro-batch and
    one all-gather, ZeRO-3 per-layer gathers and reduce-scatters every micro-batch); 0 for no bytes.
    ``latency_s``: a measured collective latency per row (NaN: NCCL's model; comms.measured_latency_shift_s)."""
    gather_shift = measured_latency_shift_s(group, latency_s, "all-gather")
    half = group.gather_seconds(gradient_bytes) + gather_shift  # one reduce-scatter or all-gather of the stage
    gathers = ZERO3_GATHERS_PER_LAYER + ZERO3_GATHERS_PER_RECOMPUTED_FORWARD * whole_layer
    collectives = gathers + ZERO3_REDUCE_SCATTERS_PER_LAYER
    zero3_per_micro_batch = collectives * (half + (lps - 1.0) * (group.gather_latency_s + gather_shift))
    all_reduce = group.all_reduce_seconds(gradient_bytes, latency_s)
    total = np.where(
        zero >= 3,
        micro_batches * zero3_per_micro_batch,
        np.where(zero == 2, (micro_batches + 1.0) * half, all_reduce),
    )
    return np.where(gradient_bytes > 0, total, 0.0)


def step_time(
    m: ModelArrays,
    hw: HardwareArrays,
    lay: LayoutArrays,
    params: EfficiencyParams,
    *,
    element_bytes: float,
    params_per_device: np.ndarray,
    expert_params_per_device: np.ndarray | float = 0.0,
    precision: str = "bf16",
    frozen=None,
    frozen_weight_bytes: np.ndarray | float = 0.0,
) -> StepArrays:
    """Seconds of one optimizer step; see the module docstring for the model. ``zero`` in ``lay`` is the
    effective stage (core.py maps FSDP with pipelines onto ZeRO-2's traffic). ``frozen`` (finetune.FrozenBase):
    LoRA/QLoRA, whose frozen matmuls skip the weight gradient and whose ``params_per_device`` are the adapters;
    ``frozen_weight_bytes``: the stage's frozen weights, which ZeRO-3 gathers per layer (estimator/finetune.py)."""
    tp, pp, dp, mb, zero, rec = lay.tp, lay.pp, lay.dp, lay.micro_batch, lay.zero, lay.recompute
    cp, ep = lay.cp, lay.ep
    peak, bw = hw.peak_flops_per_s, hw.memory_bandwidth_bytes_per_s
    high_peak = hw.high_precision_peak_flops_per_s  # attention core and head (bf16 under fp8 training)
    tokens = mb * m.seq_len / cp  # tokens per micro-batch on this device (shared by the tensor-parallel group)
    micro_batches = lay.global_batch / (dp * mb)
    lps = layers_per_stage(m, pp)
    whole_layer = recomputes_layer_forward(rec)  # every matmul again, with its collectives and gathers
    linear_again = recomputed_linear_fraction(m, rec)
    core_again = recomputes_attention_core(rec)
    fp8 = precision == "fp8"

    # --- one layer, one micro-batch, one device ---------------------------------------------------
    eta = gemm_efficiency(hw.gemm_ceiling, m.d_model / tp, tokens, params.gemm_half_width)
    linear_passes = TRAINING_PASSES + linear_again
    # fine-tuning: frozen weights get no weight gradient (one pass fewer); the adapters run every pass
    base_passes = linear_passes - (0.0 if frozen is None else 1.0)
    adapter_active = 0.0 if frozen is None else frozen.adapters.active_params
    attention_passes = TRAINING_PASSES + core_again
    # Fused causal attention (FlashAttention) skips the blocks above the diagonal: it executes half the
    # conventional attention FLOPs (Dao 2023, FlashAttention-2 Sec. 3.1 "causal masking ... skip"); an
    # unfused kernel computes the whole s × s score matrix and masks it afterwards.
    attention_executed = np.where(hw.fused_attention > 0.5, CAUSAL_FUSED_ATTENTION_FRACTION, 1.0)
    expert_active = routed_active_params_per_layer(m)
    dense_active = m.layer_matmul_params_active - expert_active
    attention_flops = tokens / tp * forward_attention_flops_per_token_per_layer(m) * attention_passes
    attention_flops = attention_flops * attention_executed
    # the attention core runs at the 16-bit peak and at its kernel's efficiency: counted in the dense roofline
    # at its time-equivalent FLOPs
    attention_slowdown = (peak / high_peak) / hw.attention_efficiency_ratio
    linear_flops = tokens / tp * FLOPS_PER_MULTIPLY_ADD * (dense_active * base_passes + adapter_active * linear_passes)
    dense_flops = linear_flops + attention_flops * attention_slowdown
    dense_seconds = roofline_seconds(dense_flops, element_bytes * dense_active / tp * base_passes, peak, bw, eta)
    # routed experts: grouped GEMMs over the tokens each local expert received, waiting for the busiest one
    # (the ``if``s below skip terms that are zero on every row: a million dense layouts need none of them)
    moe = bool(np.any(m.moe_fraction > 0))
    matmul_seconds = dense_seconds
    if moe:
        expert_eta = gemm_efficiency(
            hw.gemm_ceiling, m.d_model / tp, tokens_per_local_expert(m, tokens, ep), params.gemm_half_width
        )
        expert_flops = tokens / tp * FLOPS_PER_MULTIPLY_ADD * expert_active * base_passes * MOE_BUSIEST_LOAD_FACTOR
        expert_weight_bytes = element_bytes * m.layer_expert_params / (tp * ep) * base_passes
        matmul_seconds = matmul_seconds + np.where(
            m.moe_fraction > 0, roofline_seconds(expert_flops, expert_weight_bytes, peak, bw, expert_eta), 0.0
        )
    elementwise_again = 1.0 + RECOMPUTED_TRAFFIC_SHARE * linear_again
    elementwise = activation_bytes_per_token_per_layer(m, element_bytes) * elementwise_again
    if fp8:  # the casts before every FP8 GEMM (estimator/fp8.py), again for a recomputed forward's GEMMs
        elementwise = elementwise + cast_bytes_per_token_per_layer(m) * elementwise_again / params.memory_passes
    # Unfused attention writes the s × s scores to memory and reads them back, kernel by kernel
    # (SCORE_TRAFFIC_* below); fused kernels keep them on chip.
    score_bytes = (
        (1.0 - hw.fused_attention)
        * m.heads
        * m.seq_len
        * (element_bytes / 2.0)
        * (SCORE_TRAFFIC_BYTES_FORWARD + SCORE_TRAFFIC_BYTES_BACKWARD + SCORE_TRAFFIC_BYTES_FORWARD * core_again)
    )
    memory_bound_seconds = tokens / tp * (params.memory_passes * elementwise + score_bytes) / bw
    layer_seconds = matmul_seconds + memory_bound_seconds
    if frozen is not None:  # QLoRA dequantises every frozen weight before each of its matmuls
        layer_seconds = layer_seconds + dequant_seconds_per_layer(frozen.spec, m, tp, ep, base_passes, bw)

    # --- output head and loss on the last stage (16-bit GEMM under fp8 training) -------------------------
    head_eta = gemm_efficiency(hw.gemm_ceiling, m.d_model, tokens, params.gemm_half_width)
    head_passes = TRAINING_PASSES - (0.0 if frozen is None else 1.0)  # a frozen head: no weight gradient
    head_flops = head_flops_per_token(m) if frozen is None else head_passes * forward_head_flops_per_token(m)
    head_matmul = roofline_seconds(
        tokens * head_flops / tp,
        element_bytes * m.head_params / tp * head_passes,
        high_peak,
        bw,
        head_eta,
    )
    logits_traffic = tokens * LOGITS_TRAFFIC_BYTES_PER_VOCAB_ENTRY * m.vocab / tp
    head_seconds = head_matmul + params.memory_passes * logits_traffic / bw
    stage_compute = lps * layer_seconds + head_seconds

    # --- communication ------------------------------------------------------------------------------
    # Rank order (Megatron-LM's default "tp-cp-ep-dp-pp"): tensor-parallel ranks adjacent, then context
    # parallel, then data parallel (expert parallel inside dp·cp, next to tp), then pipeline.
    dpn, intra, inter = hw.devices_per_node, hw.intra_node_bandwidth_bytes_per_s, hw.inter_node_bandwidth_bytes_per_s
    activation_bytes = element_bytes * tokens * m.d_model
    tp_group = ring_group(tp, 1.0, dpn, intra, inter)
    tp_count = TP_ALL_REDUCES_PER_LAYER + TP_ALL_REDUCES_PER_RECOMPUTED_FORWARD * whole_layer
    latency = hw.collective_latency_s  # measured (bench --collectives) or NaN: NCCL's latency model
    tp_all_reduce = tp_group.all_reduce_seconds(activation_bytes, latency)
    tp_seconds = lps * tp_count * tp_all_reduce
    attention_seconds = attention_flops / (high_peak * eta * hw.attention_efficiency_ratio)
    cp_seconds = ep_seconds = 0.0
    if np.any(cp > 1):
        cp_seconds = lps * ring_attention_exposed_seconds(
            m, hw, tp=tp, cp=cp, tokens_per_device=tokens, element_bytes=element_bytes,
            core_recomputed=core_again | whole_layer, attention_seconds=attention_seconds,
        )  # fmt: skip
    if moe and np.any(ep > 1):
        ep_seconds = lps * moe_all_to_all_seconds_per_layer(
            m, hw, tp=tp, ep=ep, tokens_per_device=tokens, element_bytes=element_bytes, forward_recomputed=whole_layer
        )
    # a measured model (estimator/measured.py): its own compute and its embedding tables' all-to-alls
    stage_compute, ep_seconds, eta = stage_seconds(m, hw, lay, params, element_bytes, stage_compute, ep_seconds, eta)
    # The slowest stage, with the layers partitioned to balance the stages (the last one also runs the head).
    comm_per_layer = (tp_seconds + cp_seconds + ep_seconds) / lps
    balance = stage_balance(m.layers, pp, layer_seconds + comm_per_layer, head_seconds)
    stage_compute, tp_seconds = stage_compute * balance, tp_seconds * balance
    cp_seconds, ep_seconds = cp_seconds * balance, ep_seconds * balance
    neighbour_stride = tp * cp * dp  # ranks between neighbouring pipeline stages
    pp_bw = ring_bandwidth_bytes_per_s(2.0, neighbour_stride, dpn, intra, inter)
    one_send = point_to_point_seconds(activation_bytes / tp, pp_bw, neighbour_stride >= dpn)
    pp_seconds = (pp > 1) * (PP_SENDS_PER_MICRO_BATCH * lay.interleave) * one_send
    micro_batch_seconds = stage_compute + tp_seconds + cp_seconds + ep_seconds + pp_seconds
    bubble = (pp - 1) / lay.interleave * micro_batch_seconds

    # Data parallel: the dense weights' gradients over dp·cp (Megatron reduces over the data-parallel group
    # with context parallelism), the routed experts' over their dp·cp/ep replicas.
    # HSDP (a shard group smaller than dp·cp): the ZeRO collectives run inside the shard group and, once per
    # step, the gradient shards are all-reduced across the groups (FSDP HYBRID_SHARD).
    replicas = dp * cp
    shards = sharding_group_size(dp, cp, lay.shard_group)
    dense_group = ring_group(shards, tp, dpn, intra, inter)
    expert_shards = np.maximum(np.minimum(shards, replicas / ep), 1.0)
    dense_params = params_per_device - expert_params_per_device
    dense_bytes = element_bytes * dense_params
    expert_bytes = element_bytes * expert_params_per_device + 0.0 * dense_bytes
    dp_total = _data_parallel_seconds(dense_group, dense_bytes, zero, micro_batches, lps, whole_layer, latency)
    if moe:
        expert_group = ring_group(expert_shards, tp * ep, dpn, intra, inter)
        dp_total = dp_total + _data_parallel_seconds(
            expert_group, expert_bytes, zero, micro_batches, lps, whole_layer, latency
        )
    if frozen is not None and np.any(zero >= 3):  # FSDP gathers the frozen weights too (bandwidth; latency counted)
        frozen_gathers = ZERO3_GATHERS_PER_LAYER + ZERO3_GATHERS_PER_RECOMPUTED_FORWARD * whole_layer
        gathered = dense_group.ring_factor * frozen_weight_bytes / dense_group.bandwidth_bytes_per_s
        dp_total = dp_total + np.where(zero >= 3, micro_batches * frozen_gathers * gathered, 0.0)
    hybrid = (shards < replicas) & (zero >= 1)
    if np.any(hybrid):
        across = ring_group(np.maximum(replicas / shards, 1.0), tp * shards, dpn, intra, inter)
        dp_total = dp_total + np.where(hybrid, across.all_reduce_seconds(dense_bytes / shards), 0.0)
    zero3, zero2 = zero >= 3, zero == 2
    window = stage_compute * np.where(
        zero3, micro_batches, BACKWARD_SHARE_OF_COMPUTE * np.where(zero2, micro_batches, 1.0)
    )
    bucket_params = np.minimum(np.maximum(DP_BUCKET_MIN_PARAMS, DP_BUCKET_PARAMS_PER_DP_RANK * replicas), dense_params)
    last_bucket = np.where(
        replicas > 1,
        dense_group.all_reduce_seconds(element_bytes * bucket_params, latency),
        0.0,
    )
    hidden_until = np.maximum(dp_total - params.dp_overlap * window, np.where(zero3, 0.0, last_bucket))
    dp_exposed = np.minimum(np.maximum(hidden_until, 0.0), dp_total)

    sharded = zero >= 1
    updated = dense_params / np.where(sharded, shards, 1.0) + expert_params_per_device / np.where(
        sharded, expert_shards, 1.0
    )
    optimizer = ADAM_STEP_BYTES_PER_PARAM * updated / bw
    if fp8:  # every linear weight cast to its FP8 copies once per step (estimator/fp8.py)
        optimizer = optimizer + FP8_WEIGHT_CAST_BYTES_PER_PARAM * params_per_device / bw

    compute = micro_batches * stage_compute
    tp_total = micro_batches * tp_seconds
    cp_total = micro_batches * cp_seconds
    ep_total = micro_batches * ep_seconds
    pp_total = micro_batches * pp_seconds
    step = compute + tp_total + cp_total + ep_total + pp_total + bubble + dp_exposed + optimizer
    return StepArrays(
        micro_batches=micro_batches,
        compute_seconds=compute,
        tp_comm_seconds=tp_total,
        cp_comm_seconds=cp_total,
        ep_comm_seconds=ep_total,
        pp_comm_seconds=pp_total,
        dp_comm_exposed_seconds=dp_exposed,
        bubble_seconds=bubble,
        optimizer_seconds=optimizer,
        step_seconds=step,
        gemm_efficiency=eta,
    )
