"""FLOPs per token: model FLOPs (what MFU counts) and hardware FLOPs (what the device executes).

PaLM (Chowdhery et al. 2022, Appendix B) and Kaplan et al. 2020: a training token costs
``6·N + 12·L·H·Q·T`` FLOPs, where N counts the parameters that take part in a matmul (the layers and
the output head; the input embedding is a lookup), L layers, H heads of width Q, T the sequence length.
The 6 is 2 (multiply-add) × 3 (forward, and the backward's two matmuls); the attention term is the
forward's ``QKᵀ`` and ``A·V`` (``2·T·H·Q`` each per layer) × 3. Causal masking is not halved (the PaLM
convention). Mixture-of-experts layers count their active experts only. Under MLA the A·V product is
as wide as the value heads (``v_width``), not the query/key heads; sliding-window layers attend their window
(``ModelArrays.attention_context_fraction``, in the same convention).

Recomputation (activation checkpointing) repeats part of the forward pass; the device executes it but
MFU does not count it (Korthikanti et al. 2022 define HFU with it, MFU without):
  full        the whole layer again:       + 2·N_layers + 4·L·H·Q·T
  selective   the attention core only:     + 4·L·H·Q·T
The output head is never recomputed (Megatron-LM's FLOP count, Narayanan et al. 2021 Appendix: the
logit term is ``6·V·h`` per token with or without recomputation).
"""

from __future__ import annotations

import numpy as np

from flopcast.estimator.arrays import ModelArrays
from flopcast.estimator.measured import training_flops_per_sample
from flopcast.estimator.recompute import recomputed_linear_fraction, recomputes_attention_core

FLOPS_PER_MULTIPLY_ADD = 2
TRAINING_PASSES = 3  # forward + backward (gradients of inputs and of weights) = 3 forward passes


def forward_linear_flops_per_token_per_layer(m: ModelArrays) -> np.ndarray:
    """Forward FLOPs of one layer's weight matmuls per token: 2 per active matmul parameter."""
    return FLOPS_PER_MULTIPLY_ADD * m.layer_matmul_params_active


def forward_attention_flops_per_token_per_layer(m: ModelArrays, context_tokens=None) -> np.ndarray:
    """Forward FLOPs of the attention core per token, mean over layers: QKᵀ 2·T·(H·Q) and A·V 2·T·(H·Q_v),
    T the context the token attends to (``context_tokens``; when None, the training sequence ``m.seq_len``
    with sliding-window layers at their window, ``m.attention_context_fraction``). Q_v is the value head
    width: Q itself, except under MLA (DeepSeek-V2: queries and keys 192 wide, values 128)."""
    if context_tokens is None:
        context = m.seq_len * m.attention_context_fraction
    else:
        context = context_tokens
    return FLOPS_PER_MULTIPLY_ADD * (m.attn_width + m.v_width) * context


def forward_head_flops_per_token(m: ModelArrays) -> np.ndarray:
    """Output head (logits) forward per token: 2·V·d."""
    return FLOPS_PER_MULTIPLY_ADD * m.head_params


def head_flops_per_token(m: ModelArrays) -> np.ndarray:
    """Output head (logits) forward + backward per token: 6·V·d."""
    return TRAINING_PASSES * forward_head_flops_per_token(m)


def forward_flops_per_token(m: ModelArrays, context_tokens=None) -> np.ndarray:
    """One forward pass per token, ``2·N + 4·L·H·Q·T`` (PaLM App. B: the training count ``6·N + 12·L·H·Q·T``
    is three forward passes), T the context attended to (``m.seq_len`` when None). What inference
    (estimator/inference.py) executes per prompt or generated token."""
    per_layer = forward_linear_flops_per_token_per_layer(m) + forward_attention_flops_per_token_per_layer(
        m, context_tokens
    )
    return m.layers * per_layer + forward_head_flops_per_token(m)


def model_flops_per_token(m: ModelArrays) -> np.ndarray:
    """``6·N + 12·L·H·Q·T`` (PaLM App. B), N = layer matmul parameters + output head."""
    per_layer = forward_linear_flops_per_token_per_layer(m) + forward_attention_flops_per_token_per_layer(m)
    transformer = TRAINING_PASSES * m.layers * per_layer + head_flops_per_token(m)
    return training_flops_per_sample(m, transformer)  # a measured model's 3 × forward (estimator/measured.py)


def recompute_flops_per_token(m: ModelArrays, recompute: np.ndarray) -> np.ndarray:
    """FLOPs the recomputed forward adds per token (0 without recomputation)."""
    attention = m.layers * forward_attention_flops_per_token_per_layer(m)
    linear = m.layers * forward_linear_flops_per_token_per_layer(m)
    return np.where(recomputes_attention_core(recompute), attention, 0.0) + linear * recomputed_linear_fraction(
        m, recompute
    )


def hardware_flops_per_token(m: ModelArrays, recompute: np.ndarray) -> np.ndarray:
    """Model FLOPs plus the recomputed forward (what HFU and the Megatron papers' TFLOP/s count)."""
    return model_flops_per_token(m) + recompute_flops_per_token(m, recompute)
