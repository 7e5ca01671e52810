"""Context parallelism: a sequence split over ``cp`` devices, attention as a ring (DESIGN §4).

Megatron-LM (Transformer Engine's ``attn_fn`` with ``cp_comm_type="p2p"``) and torchtitan (``context_parallel``,
ring attention) split every sequence into 2·cp chunks and give device i the chunks i and 2·cp − 1 − i, so that
under a causal mask every device does the same attention work (Megatron-LM docs, "Context parallelism"; Liu et
al. 2023, "Ring Attention with Blockwise Transformers"; Brandon et al. 2023, "Striped Attention" for the
balancing). Each device then holds 1/cp of the tokens: the weight GEMMs, the memory-bound ops, the loss and
every stored activation shrink by cp, and the attention core too (each local query still attends to its whole
causal context, which arrives in blocks).

Communication per layer and micro-batch: the K and V blocks travel round the ring, cp − 1 steps of the local
block (``2·kv_width`` elements per token), point to point between ring neighbours, each step overlapped with
the attention of the block already received. The backward sends K, V again together with their gradients dK, dV
(TE's ring backward): 3 forward volumes per layer, 4 when the attention core is recomputed. What the attention
compute of the layer does not hide is exposed. Gradients of the (replicated) weights are reduced over dp·cp.
"""

from __future__ import annotations

import numpy as np

from flopcast.estimator.comms import point_to_point_seconds, ring_bandwidth_bytes_per_s

CP_KV_VOLUMES_PER_LAYER = 3.0  # forward K,V + backward K,V and dK,dV (each dK,dV block as large as K,V)
CP_KV_VOLUMES_PER_RECOMPUTED_CORE = 1.0  # a recomputed attention core circulates K,V once more
# Megatron-LM asserts seq_length % (2·cp) == 0 (each device takes two chunks for the causal balance).
CP_CHUNKS_PER_RANK = 2


def ring_attention_exposed_seconds(
    m,
    hw,
    *,
    tp: np.ndarray,
    cp: np.ndarray,
    tokens_per_device: np.ndarray,
    element_bytes: float,
    core_recomputed: np.ndarray,
    attention_seconds: np.ndarray,
) -> np.ndarray:
    """Seconds per layer and micro-batch the K/V ring adds beyond the layer's own attention compute
    (``attention_seconds``, forward + backward + any recomputation); 0 without context parallelism.
    ``tokens_per_device`` is this device's share of the micro-batch (b·s/cp)."""
    block_bytes = element_bytes * 2.0 * m.kv_width / tp * tokens_per_device  # K and V of the local block
    bandwidth = ring_bandwidth_bytes_per_s(
        cp, tp, hw.devices_per_node, hw.intra_node_bandwidth_bytes_per_s, hw.inter_node_bandwidth_bytes_per_s
    )
    across = cp * tp > hw.devices_per_node
    one_step = point_to_point_seconds(block_bytes, bandwidth, across)
    volumes = CP_KV_VOLUMES_PER_LAYER + CP_KV_VOLUMES_PER_RECOMPUTED_CORE * core_recomputed
    ring = (cp > 1) * volumes * (cp - 1.0) * one_step
    return np.maximum(ring - attention_seconds, 0.0)
