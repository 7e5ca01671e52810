"""Mixture-of-experts layers under expert parallelism: the all-to-all, the grouped GEMMs, the busiest expert.

Expert parallelism places E/ep routed experts on each device of an ``ep`` group carved out of the dp·cp devices
(Megatron-Core MoE, "expert model parallelism"; Lepikhin et al. 2021, GShard, Sec. 3; DeepSeek-AI 2024,
DeepSeek-V3 Sec. 3.2). Every MoE layer then runs, per micro-batch:
  dispatch   all-to-all: each token's d-wide hidden state to the devices of its k routed experts,
  experts    grouped GEMMs over the tokens each local expert received,
  combine    all-to-all back; the backward runs both again with the gradients (4 all-to-alls, 6 when the
             layer's forward is recomputed).
Bytes per device per all-to-all: ``e · (b·s/(cp·tp)) · k · d`` (the sequence-parallel share of the micro-batch's
tokens, each sent to k experts), of which (ep − 1)/ep leave the device. Inside a node the traffic rides
NVLink; to the ep ranks on other nodes it leaves through this device's NIC; both run at once, so the slower
share sets the time. Not overlapped with compute (Megatron-Core's default; DeepSeek's DualPipe hides it).

Shared experts run on every token locally; the dense layers and the attention are data parallel as usual.
Routed experts' states are sharded ep ways and their gradients reduced over the dp·cp/ep replicas of each expert.
"""

from __future__ import annotations

import numpy as np

from flopcast.estimator.comms import (
    NCCL_RING_BASE_LATENCY_S,
    NCCL_RING_NET_HOP_LATENCY_S,
    NCCL_RING_NVLINK_HOP_LATENCY_S,
)

ALL_TO_ALLS_PER_MOE_LAYER = 4  # dispatch + combine, forward and backward
ALL_TO_ALLS_PER_RECOMPUTED_FORWARD = 2
# The busiest device's expert load relative to the mean. Dropless routing with load-balancing losses keeps
# expert loads near the capacity factors GShard and Switch Transformer train with: 1.0-1.25 (Fedus et al. 2022,
# "Switch Transformers", Table 1 and Sec. 2.2; Lepikhin et al. 2021 use 2.0 at top-2). We take 1.1: the grouped
# GEMMs and the all-to-all of a layer wait for the busiest expert.
MOE_BUSIEST_LOAD_FACTOR = 1.1


def routed_active_params_per_layer(m) -> np.ndarray:
    """Routed-expert parameters one token's matmuls use per layer (mean over layers): k of the E experts."""
    return m.layer_expert_params * m.active_experts / m.experts


def tokens_per_local_expert(m, tokens_per_device: np.ndarray, ep: np.ndarray) -> np.ndarray:
    """Rows of each local expert's GEMM per micro-batch: the ep group's tokens × k spread over E experts."""
    return tokens_per_device * ep * m.active_experts / m.experts


def all_to_all_seconds(
    bytes_per_rank: np.ndarray,
    ep: np.ndarray,
    rank_stride: np.ndarray,
    devices_per_node: np.ndarray,
    intra_node_bandwidth_bytes_per_s: np.ndarray,
    inter_node_bandwidth_bytes_per_s: np.ndarray,
) -> np.ndarray:
    """One all-to-all of ``bytes_per_rank`` over an ep group placed ``rank_stride`` apart: the NVLink share and
    the NIC share run concurrently; plus NCCL's base latency and one hop (0 for a group of one)."""
    per_node = np.maximum(np.floor(devices_per_node / rank_stride), 1.0)
    local = np.minimum(ep, per_node)  # group members in this device's node, itself included
    intra = bytes_per_rank * (local - 1.0) / ep / intra_node_bandwidth_bytes_per_s
    inter = bytes_per_rank * (ep - local) / ep / inter_node_bandwidth_bytes_per_s
    hop = np.where(ep > local, NCCL_RING_NET_HOP_LATENCY_S, NCCL_RING_NVLINK_HOP_LATENCY_S)
    return (ep > 1) * (np.maximum(intra, inter) + NCCL_RING_BASE_LATENCY_S + hop)


def moe_all_to_all_seconds_per_layer(
    m, hw, *, tp, ep, tokens_per_device, element_bytes: float, forward_recomputed
) -> np.ndarray:
    """All-to-all seconds per layer (mean over layers: MoE layers only) and micro-batch."""
    bytes_per_rank = element_bytes * tokens_per_device / tp * m.active_experts * m.d_model * MOE_BUSIEST_LOAD_FACTOR
    one = all_to_all_seconds(
        bytes_per_rank,
        ep,
        tp,
        hw.devices_per_node,
        hw.intra_node_bandwidth_bytes_per_s,
        hw.inter_node_bandwidth_bytes_per_s,
    )
    count = ALL_TO_ALLS_PER_MOE_LAYER + ALL_TO_ALLS_PER_RECOMPUTED_FORWARD * forward_recomputed
    return m.moe_fraction * count * one
