"""MLA (DeepSeek) and sliding-window layers (Gemma 2) in the training core: attention FLOPs and activations.

Hand derivations, written out here:
* MLA, DeepSeek-V2-Lite (DeepSeek-AI 2024, App. B: 16 heads, qk_nope 128 + qk_rope 64 = 192 per query/key head,
  v_head_dim 128, kv_lora_rank 512, no query compression): per token and layer, QKᵀ costs 2·T·16·192 and A·V
  2·T·16·128 FLOPs: 2·T·5120 in all (the MHA formula 4·T·H·Q would read 4·T·3072 = 2·T·6144, 20% more).
* Sliding window, Gemma 2 9B (Gemma Team 2024: 42 layers alternating local and global, window 4096): at a
  training sequence of 8192 tokens a local layer attends, in the PaLM convention (a global layer counts all
  8192), 2·4096 − 4096²/8192 = 6144 tokens; half the layers local: mean context share (1 + 0.75)/2 = 0.875.
"""

from __future__ import annotations

import numpy as np
import pytest

from flopcast.estimator.arrays import ModelArrays, local_context_tokens
from flopcast.estimator.flops import forward_attention_flops_per_token_per_layer
from flopcast.estimator.memory import activation_bytes_per_token_per_layer
from flopcast.model_resolve import resolve_model


def _arrays(model_id: str, seq_len: int | None = None) -> ModelArrays:
    spec = resolve_model(model_id)
    if seq_len is not None:
        spec = spec.model_copy(update={"seq_len": seq_len})
    return ModelArrays.from_specs([spec])


def test_mla_attention_flops_count_the_value_heads_at_their_own_width():
    m = _arrays("deepseek-v2-lite")
    t = 4096
    assert forward_attention_flops_per_token_per_layer(m)[0] == pytest.approx(2 * t * 5120)


def test_mla_activations_store_latents_and_narrower_values():
    m = _arrays("deepseek-v2-lite")
    e = 2.0
    # attention: x (2048) + Q (3072) + K (3072) + V (2048) + O input (2048) + KV latent at its norm and its
    # up-projection (2 × 512) = 13,312 elements; norms 2 × 2048; FFNs: 6 routed + 2 shared experts of 1408 in
    # 26 of 27 layers (the first is dense, 10944): every FFN keeps its input (d) and the SwiGLU keeps 3 × width
    d = 2048
    attention = e * 13_312
    norms = 2 * e * d
    moe_share, dense_share = 26 / 27, 1 / 27
    units = dense_share * 1 + moe_share * 8
    width = dense_share * 10944 + moe_share * 8 * 1408
    mlp = units * e * d + 3 * e * width
    assert activation_bytes_per_token_per_layer(m, e)[0] == pytest.approx(attention + norms + mlp)


def test_local_context_against_a_position_by_position_count():
    s, w = 8192, 4096
    assert local_context_tokens(s, w) == 6144
    # second method: twice the mean causal keys per query, minus the one the convention drops on a global layer
    keys = np.minimum(np.arange(1, s + 1), w)
    assert 2 * keys.mean() - 1 == pytest.approx(local_context_tokens(s, w), abs=1.0)
    assert local_context_tokens(2048, 4096) == 2048  # a window longer than the sequence changes nothing


def test_gemma2_attention_flops_at_8k_use_the_windows():
    m8 = _arrays("gemma-2-9b", seq_len=8192)
    assert m8.attention_context_fraction[0] == pytest.approx(0.875)
    spec = resolve_model("gemma-2-9b")
    full = 2 * 2 * spec.attn_width * 8192  # every layer global
    assert forward_attention_flops_per_token_per_layer(m8)[0] == pytest.approx(0.875 * full)
    # at 4096 tokens the window covers the whole sequence: no change
    m4 = _arrays("gemma-2-9b", seq_len=4096)
    assert m4.attention_context_fraction[0] == 1.0


def test_inference_contexts_are_left_to_the_caller():
    m = _arrays("gemma-2-9b", seq_len=8192)
    spec = resolve_model("gemma-2-9b")
    assert forward_attention_flops_per_token_per_layer(m, 1000)[0] == pytest.approx(4 * spec.attn_width * 1000)
