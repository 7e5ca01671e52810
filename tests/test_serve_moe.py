"""MoE decode reads the experts its batch routes to, not one token's k: against hand counts.

Mixtral 8x7B (Jiang et al. 2024): 32 layers, d 4096, 8 experts of width 14336 (SwiGLU: 3 matrices), 2 active,
GQA with 8 KV heads of 128, vocabulary 32000. Per layer: experts 8 · 3 · 4096 · 14336 = 1,409,286,144 weights;
attention 2 · 4096² + 2 · 4096 · 1024 = 41,943,040. The LM head 32000 · 4096 = 131,072,000.
"""

from __future__ import annotations

import numpy as np
import pytest

from flopcast.hardware import load_catalog
from flopcast.presets import get_preset
from flopcast.serving import ServeRequest, estimate_serving
from flopcast.serving_passes import decode_weight_bytes_at, experts_touched_share, pass_inputs, resolve_runtime

EXPERTS_ALL = 32 * 8 * 3 * 4096 * 14336  # 45,097,156,608
ATTENTION = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024)  # 1,342,177,280
HEAD = 32000 * 4096
READ_ALL = 2 * (EXPERTS_ALL + ATTENTION + HEAD)  # 93,140,811,776 B at 16 bit
READ_ONE_TOKEN = 2 * (EXPERTS_ALL * 2 // 8 + ATTENTION + HEAD)  # 25,495,076,864 B: 2 of 8 experts


def test_the_share_of_experts_a_batch_touches_by_hand():
    # each token picks 2 of 8: a given expert is missed with probability 3/4 per token
    assert experts_touched_share(0.25, 1) == pytest.approx(0.25)
    assert experts_touched_share(0.25, 2) == pytest.approx(1 - 0.75**2)  # 0.4375
    assert experts_touched_share(0.25, 16) == pytest.approx(0.98998, abs=1e-5)
    assert experts_touched_share(8 / 256, 32) == pytest.approx(1 - (31 / 32) ** 32)  # DeepSeek-V3: 63.9%


def _x(tp: int):
    model = get_preset("mixtral-8x7b")
    profile = load_catalog().get("h100-80gb")
    request = ServeRequest(weights_bits=16, devices=tp)
    runtime = resolve_runtime(request, profile)
    t = np.array([float(tp)])
    return pass_inputs(model, profile, request, runtime, np.array([16.0]), t, np.minimum(t, 8.0))


def test_mixtral_decode_reads_between_one_tokens_experts_and_all_of_them():
    x = _x(2)
    assert float(x.decode_weight_bytes[0]) == pytest.approx(READ_ONE_TOKEN / 2, rel=1e-12)
    assert float(x.prefill_weight_bytes[0]) == pytest.approx(READ_ALL / 2, rel=1e-12)
    for batch in (1, 4, 16, 64):
        touched = 1 - 0.75**batch
        routed = EXPERTS_ALL * touched * 2  # bytes of the experts the batch routes to
        expected = (routed + 2 * (ATTENTION + HEAD)) / 2
        assert float(decode_weight_bytes_at(x, batch)[0]) == pytest.approx(expected, rel=1e-12)


def test_a_dense_model_reads_its_weights_at_any_batch():
    model = get_preset("llama-2-7b")
    profile = load_catalog().get("h100-80gb")
    r = ServeRequest(weights_bits=16)
    x = pass_inputs(model, profile, r, resolve_runtime(r, profile), np.array([16.0]), np.array([1.0]), 1.0)
    assert decode_weight_bytes_at(x, 64) is x.decode_weight_bytes


def test_large_batch_moe_decode_is_bound_by_every_expert():
    """At batch 64 nearly every expert is read each step: per-request tokens/s falls well below batch 1's, and the
    step reads at least the all-expert weights' share per device (46.6 GB on each of 2 H100s)."""
    profile = load_catalog().get("h100-80gb")
    one = estimate_serving(get_preset("mixtral-8x7b"), profile, ServeRequest(devices=2, batch=1))
    many = estimate_serving(get_preset("mixtral-8x7b"), profile, ServeRequest(devices=2, batch=64))
    assert many.decode.bytes_read_per_step >= READ_ALL / 2 * (1 - 0.75**64)
    assert many.decode.tokens_per_second < 0.5 * one.decode.tokens_per_second
