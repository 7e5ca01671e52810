"""Step time of one optimizer step on the critical-path device (DESIGN §4 "Step time").

    step = m · (stage compute + tensor-parallel comms + pipeline sends)     m micro-batches per step
         + pipeline bubble (p − 1)/v · one micro-batch's stage time          (Narayanan et al. 2021)
         + exposed data-parallel comms + optimizer update

Stage compute per micro-batch = its layers × (weight matmuls + attention core on the matmul roofline,
memory-bound ops on the bandwidth roofline) + the output head on the last stage. The pipeline runs at
the pace of its slowest stage, the one with the most layers and the head.

Communication (comms.py; ring algorithms):
* tensor parallel: 4 all-reduces of the s·b·d activations per layer per micro-batch (2 forward,
  2 backward; Shoeybi et al. 2019 Fig. 4) + 2 more when the forward is recomputed in full. With sequence
  parallelism they become reduce-scatter + all-gather pairs of the same volume (Korthikanti et al. 2022).
  Not overlapped (Megatron-LM runs them on the critical path).
* pipeline: one forward and one backward send of s·b·d/t activations per micro-batch (scatter-gather,
  Narayanan et al. 2021 Sec. 4.1).
* data parallel: an all-reduce (or ZeRO's reduce-scatter + all-gather, the same volume) of the stage's
  16-bit gradients per step, overlapped with the last micro-batch's backward pass up to the fitted
  ``dp_overlap``. ZeRO-3 moves 1.5× that volume (Rajbhandari et al. 2020, Sec. 7) for every micro-batch,
  because the weights are re-gathered each time, overlapped with the whole step's compute.
* a group whose devices span more than one node runs at the inter-node bandwidth per device, times the
  group members per node (each drives its own NIC; comms.ring_bandwidth_bytes_per_s).
Rank order is Megatron-LM's: tensor-parallel ranks adjacent, then data parallel, then pipeline.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.estimator.arrays import RECOMPUTE_FULL, RECOMPUTE_SELECTIVE, HardwareArrays, LayoutArrays, ModelArrays
from flopcast.estimator.comms import all_reduce_seconds, point_to_point_seconds, ring_bandwidth_bytes_per_s
from flopcast.estimator.efficiency import EfficiencyParams, gemm_efficiency
from flopcast.estimator.flops import (
    TRAINING_PASSES,
    forward_attention_flops_per_token_per_layer,
    forward_linear_flops_per_token_per_layer,
    head_flops_per_token,
)
from flopcast.estimator.memory import (
    LOGITS_BYTES_PER_VOCAB_ENTRY,
    activation_bytes_per_token_per_layer,
    layers_per_stage,
    score_bytes_per_token_per_layer,
)
from flopcast.estimator.roofline import roofline_seconds

# Shoeybi et al. 2019 (Megatron-LM), Fig. 4: two all-reduces in the forward and two in the backward pass
# of each transformer layer; a recomputed forward repeats the forward two.
TP_ALL_REDUCES_PER_LAYER = 4
TP_ALL_REDUCES_PER_RECOMPUTED_FORWARD = 2
PP_SENDS_PER_MICRO_BATCH = 2  # activations forward, their gradients backward
ZERO3_TRAFFIC_FACTOR = 1.5  # Rajbhandari et al. 2020, Sec. 7.2.2: 3Ψ vs 2Ψ for an all-reduce
BACKWARD_SHARE_OF_COMPUTE = 2.0 / 3.0  # the backward pass is 2 of the 3 forward-pass equivalents
# Adam update traffic per parameter: read fp32 master, m, v and the fp32 main gradient (16 B), write
# master, m, v (12 B) and the 16-bit copy of the weight (2 B). Memory bound.
ADAM_STEP_BYTES_PER_PARAM = 30.0
CAUSAL_FUSED_ATTENTION_FRACTION = 0.5  # share of the s × s score blocks a causal fused kernel computes
# A recomputed forward repeats the forward's memory traffic: one of the three passes.
RECOMPUTED_TRAFFIC_SHARE = 1.0 / TRAINING_PASSES


class StepArrays(NamedTuple):
    micro_batches: np.ndarray
    compute_seconds: np.ndarray
    tp_comm_seconds: np.ndarray
    pp_comm_seconds: np.ndarray
    dp_comm_exposed_seconds: np.ndarray
    bubble_seconds: np.ndarray
    optimizer_seconds: np.ndarray
    step_seconds: np.ndarray
    gemm_efficiency: np.ndarray


def step_time(
    m: ModelArrays,
    hw: HardwareArrays,
    lay: LayoutArrays,
    params: EfficiencyParams,
    *,
    element_bytes: float,
    params_per_device: np.ndarray,
) -> StepArrays:
    """Seconds of one optimizer step; see the module docstring for the model."""
    tp, pp, dp, mb, zero, rec = lay.tp, lay.pp, lay.dp, lay.micro_batch, lay.zero, lay.recompute
    peak, bw = hw.peak_flops_per_s, hw.memory_bandwidth_bytes_per_s
    tokens = mb * m.seq_len  # tokens per micro-batch (shared by the tensor-parallel group)
    micro_batches = lay.global_batch / (dp * mb)
    lps = layers_per_stage(m, pp)
    full = rec == RECOMPUTE_FULL

    # --- one layer, one micro-batch, one device ---------------------------------------------------
    eta = gemm_efficiency(hw.gemm_ceiling, m.d_model / tp, tokens, params.gemm_half_width)
    linear_passes = TRAINING_PASSES + full
    attention_passes = TRAINING_PASSES + (rec >= RECOMPUTE_SELECTIVE)
    # Fused causal attention (FlashAttention) skips the blocks above the diagonal: it executes half the
    # conventional attention FLOPs (Dao 2023, FlashAttention-2 Sec. 3.1 "causal masking ... skip"); an
    # unfused kernel computes the whole s × s score matrix and masks it afterwards.
    attention_executed = np.where(hw.fused_attention > 0.5, CAUSAL_FUSED_ATTENTION_FRACTION, 1.0)
    matmul_flops = (
        tokens
        / tp
        * (
            forward_linear_flops_per_token_per_layer(m) * linear_passes
            + forward_attention_flops_per_token_per_layer(m) * attention_passes * attention_executed
        )
    )
    weight_bytes = element_bytes * m.layer_matmul_params_active / tp * linear_passes
    matmul_seconds = roofline_seconds(matmul_flops, weight_bytes, peak, bw, eta)
    elementwise = activation_bytes_per_token_per_layer(m, element_bytes) * (1.0 + RECOMPUTED_TRAFFIC_SHARE * full)
    scores = (
        score_bytes_per_token_per_layer(m, element_bytes)
        * (1.0 - hw.fused_attention)
        * (1.0 + RECOMPUTED_TRAFFIC_SHARE * (rec >= RECOMPUTE_SELECTIVE))
    )
    memory_bound_seconds = params.memory_passes * tokens / tp * (elementwise + scores) / bw
    layer_seconds = matmul_seconds + memory_bound_seconds

    # --- output head and loss on the last stage ------------------------------------------------------
    head_eta = gemm_efficiency(hw.gemm_ceiling, m.d_model, tokens, params.gemm_half_width)
    head_matmul = roofline_seconds(
        tokens * head_flops_per_token(m) / tp, element_bytes * m.head_params / tp * TRAINING_PASSES, peak, bw, head_eta
    )
    head_seconds = head_matmul + params.memory_passes * tokens * LOGITS_BYTES_PER_VOCAB_ENTRY * m.vocab / tp / bw
    stage_compute = lps * layer_seconds + head_seconds

    # --- communication ------------------------------------------------------------------------------
    dpn, intra, inter = hw.devices_per_node, hw.intra_node_bandwidth_bytes_per_s, hw.inter_node_bandwidth_bytes_per_s
    activation_bytes = element_bytes * tokens * m.d_model
    tp_bw = ring_bandwidth_bytes_per_s(tp, 1.0, dpn, intra, inter)
    tp_count = TP_ALL_REDUCES_PER_LAYER + TP_ALL_REDUCES_PER_RECOMPUTED_FORWARD * full
    tp_seconds = lps * tp_count * all_reduce_seconds(activation_bytes, tp, tp_bw)
    pp_bw = ring_bandwidth_bytes_per_s(2.0, tp * dp, dpn, intra, inter)  # neighbouring stages
    pp_seconds = np.where(pp > 1, PP_SENDS_PER_MICRO_BATCH * point_to_point_seconds(activation_bytes / tp, pp_bw), 0.0)
    micro_batch_seconds = stage_compute + tp_seconds + pp_seconds
    bubble = (pp - 1) / lay.interleave * micro_batch_seconds

    dp_bw = ring_bandwidth_bytes_per_s(dp, tp, dpn, intra, inter)
    gradient_bytes = element_bytes * params_per_device
    dp_once = all_reduce_seconds(gradient_bytes, dp, dp_bw)
    zero3 = zero >= 3
    dp_total = np.where(zero3, ZERO3_TRAFFIC_FACTOR * micro_batches * dp_once, dp_once)
    window = np.where(zero3, micro_batches * stage_compute, BACKWARD_SHARE_OF_COMPUTE * stage_compute)
    dp_exposed = np.maximum(dp_total - params.dp_overlap * window, 0.0)

    updated = params_per_device / np.where(zero >= 1, dp, 1.0)
    optimizer = ADAM_STEP_BYTES_PER_PARAM * updated / bw

    compute = micro_batches * stage_compute
    tp_total = micro_batches * tp_seconds
    pp_total = micro_batches * pp_seconds
    step = compute + tp_total + pp_total + bubble + dp_exposed + optimizer
    return StepArrays(
        micro_batches=micro_batches,
        compute_seconds=compute,
        tp_comm_seconds=tp_total,
        pp_comm_seconds=pp_total,
        dp_comm_exposed_seconds=dp_exposed,
        bubble_seconds=bubble,
        optimizer_seconds=optimizer,
        step_seconds=step,
        gemm_efficiency=eta,
    )
