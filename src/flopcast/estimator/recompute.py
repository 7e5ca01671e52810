"""Activation recomputation variants: what each keeps for the backward pass and what it computes again.

Every variant is described by three facts, used by memory.py (what a layer keeps), flops.py and timing.py
(what the backward recomputes):

=============  =====================================================  =====================  ===============
variant        keeps per token per layer (16-bit e = 2 bytes)          recomputes             source
=============  =====================================================  =====================  ===============
``none``       everything the backward needs (memory.py)              nothing                Korthikanti 2022
``selective``  everything but the attention scores / softmax          the attention core     Korthikanti 2022
                                                                                              (Megatron-LM)
``op``         the layer input, the outputs of every odd matmul        the even matmuls and   torchtitan's
               (Q, V, W1 and W2 of a SwiGLU layer: the ``mm`` policy   everything else of     per-op SAC
               saves all matmul outputs "except every second") and     the layer              policy
               the attention kernel's output and log-sum-exp
``attention``  the layer input and the attention kernel's output       every matmul, not the  FlashAttention-
               and log-sum-exp                                         attention core         only save list
``full``       the layer input                                         the whole layer        Chen et al. 2016
=============  =====================================================  =====================  ===============

The backward of a checkpointed layer first re-runs its forward, so that layer's full working set (what
``none`` keeps, minus what the variant already kept) exists again for one micro-batch at a time
(:func:`recompute_working_bytes_per_token`); a local PyTorch run without this term is ~23% low (issue 13).

Sources: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", Sec. 4-5;
Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"; torchtitan,
``torchtitan/distributed/activation_checkpoint.py`` (``_save_list`` = mm, the SDPA kernels, reduce-scatter;
``_custom_policy`` recomputes every second ``mm``); PyTorch ``torch.utils.checkpoint.
create_selective_checkpoint_contexts``. ``flopcast bench --verify-train`` measures all five in PyTorch.
"""

from __future__ import annotations

import numpy as np

RECOMPUTE_NONE = 0
RECOMPUTE_SELECTIVE = 1  # attention core only (Korthikanti et al. 2022; Megatron "selective")
RECOMPUTE_FULL = 2  # whole transformer layer (Chen et al. 2016; Megatron "full")
RECOMPUTE_OP = 3  # torchtitan per-op selective activation checkpointing
RECOMPUTE_ATTENTION = 4  # save only the attention kernel's outputs
# the order is the codes': RECOMPUTE_NAMES[code]
RECOMPUTE_NAMES = ("none", "selective", "full", "op", "attention")
# from most kept to least kept: the order fit suggestions try them in
RECOMPUTE_BY_MEMORY = ("none", "selective", "op", "attention", "full")
# what `plan` and `estimate --devices N` search when no --recompute is given: Megatron-LM's three modes
RECOMPUTE_SEARCHED = (RECOMPUTE_NONE, RECOMPUTE_SELECTIVE, RECOMPUTE_FULL)
RECOMPUTE_HELP = {
    "none": "keep every activation",
    "selective": "Megatron-LM: recompute the attention core (scores, softmax)",
    "full": "keep each layer's input, recompute the whole layer",
    "op": "torchtitan per-op: save odd matmuls' and attention outputs",
    "attention": "save the attention output, recompute the matmuls",
}

# The attention kernel's log-sum-exp: one fp32 value per head per token (FlashAttention-2, Dao 2023, Alg. 1
# saves L = m + log(l) for the backward).
LOGSUMEXP_BYTES_PER_HEAD = 4.0


def recomputes_attention_core(recompute: np.ndarray) -> np.ndarray:
    """Whether the backward re-runs the attention core (QKᵀ, softmax, A·V)."""
    return (recompute == RECOMPUTE_SELECTIVE) | (recompute == RECOMPUTE_FULL)


def recomputes_layer_forward(recompute: np.ndarray) -> np.ndarray:
    """Whether the backward re-runs every matmul of the layer (and its tensor-parallel collectives and, under
    ZeRO-3, its weight gather): ``full`` and ``attention``."""
    return (recompute == RECOMPUTE_FULL) | (recompute == RECOMPUTE_ATTENTION)


def is_checkpointed(recompute: np.ndarray) -> np.ndarray:
    """Whether the layer is a checkpoint region (its forward is re-run inside the backward)."""
    return recompute >= RECOMPUTE_FULL


def _matmul_widths(m) -> tuple[np.ndarray, np.ndarray]:
    """(all, recomputed-by-``op``) weight elements per token of one layer's matmuls, in the order a Llama
    layer calls them: Q, K, V, O, then W1, W3, W2 (SwiGLU) or W1, W2; ``op`` recomputes the even ones."""
    d, q, kv, f = m.d_model, m.attn_width, m.kv_width, m.mlp_width  # f: every FFN a token passes, summed
    gated = m.gated > 0
    total = d * q + 2 * d * kv + q * d + d * f * np.where(gated, 3.0, 2.0)
    even = d * kv + q * d + d * f  # K, O, and W3 (gated) or W2 (ungated)
    return total, even


def recomputed_linear_fraction(m, recompute: np.ndarray) -> np.ndarray:
    """Fraction of one layer's forward matmul FLOPs the backward computes again."""
    total, even = _matmul_widths(m)
    return np.where(recomputes_layer_forward(recompute), 1.0, np.where(recompute == RECOMPUTE_OP, even / total, 0.0))


def kept_by_checkpoint_bytes_per_token(m, recompute: np.ndarray, element_bytes: float) -> np.ndarray:
    """What a checkpointed layer keeps per token (unsharded), for ``full``, ``op`` and ``attention``."""
    e = element_bytes
    d, q, kv, f = m.d_model, m.attn_width, m.kv_width, m.mlp_width
    attention_out = e * q + LOGSUMEXP_BYTES_PER_HEAD * m.heads
    # odd matmuls: Q, V, W1 and (gated) W2's output; the layer input is the checkpoint
    odd = e * q + e * kv + e * f + np.where(m.gated > 0, e * d * m.mlp_units, 0.0)
    return e * d + np.where(
        recompute == RECOMPUTE_OP, odd + attention_out, np.where(recompute == RECOMPUTE_ATTENTION, attention_out, 0.0)
    )
