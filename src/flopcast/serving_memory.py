"""Serving memory: weights at a quantized bit width and the KV cache, in bytes (DESIGN §6 `serve`).

weights  = quantized layer matmuls · (bits/8 + group-scale overhead) + the rest at 16 bit
           (embeddings, LM head, norms: GPTQ/AWQ checkpoints keep them in fp16); a runtime with its own
           format (llama.cpp's GGUF blocks: Q4_0 4.5, Q8_0 8.5 bits per weight) gives its bits instead
KV cache = 2·L·kv_heads·head_dim·s·b·kv_bits/8 (MLA: L·(kv_lora_rank + rope dim)·s·b·kv_bits/8; sliding-window
           layers hold at most the window)
These bytes feed the estimator core's inference functions (estimator/inference.py); every function
broadcasts over numpy arrays of bit widths.
"""

from __future__ import annotations

import numpy as np

from flopcast.models import ModelSpec

UNQUANTIZED_BITS = 16  # bf16/fp16: how checkpoints ship weights (and what weight-only kernels compute in)
BITS_PER_BYTE = 8

# Group-wise weight quantization, GPTQ (Frantar et al. 2022) and AWQ (Lin et al. 2023) as AutoGPTQ/AutoAWQ
# ship them: one fp16 scale and one zero point (packed at the weight's own width, `qzeros`) per group of
# 128 input weights. Check: TheBloke/Llama-2-7B-GPTQ gptq_model-4bit-128g.safetensors is 3.9 GB
# (huggingface.co/TheBloke/Llama-2-7B-GPTQ), our formula gives 3.89 GB.
QUANT_GROUP_SIZE = 128
QUANT_SCALE_BITS = 16

# Runtime allowance per device: vLLM's default gpu_memory_utilization=0.9 leaves 10% of device memory for
# the CUDA context, activations, sampling and non-torch allocations (vLLM EngineArgs). Applied to every
# device kind (on a CPU the same headroom stands for the OS and the runtime: a rationale, not a measurement).
RUNTIME_RESERVE_FRACTION = 0.10


def bytes_per_quantized_weight(bits: np.ndarray | int, stored: dict[int, float] | None = None) -> np.ndarray:
    """Bytes per weight of a quantized matmul: bits/8, plus (scale + zero point) / group for bits < 16 (GPTQ/AWQ);
    ``stored``: a runtime's own bits per weight by width, scales included (GGUF Q4_0 4.5, Q8_0 8.5), which win."""
    bits = np.asarray(bits, dtype=float)
    overhead_bits = np.where(bits < UNQUANTIZED_BITS, (QUANT_SCALE_BITS + bits) / QUANT_GROUP_SIZE, 0.0)
    total = bits + overhead_bits
    for width, value in (stored or {}).items():
        total = np.where(bits == width, float(value), total)
    return total / BITS_PER_BYTE


def quantized_params(model: ModelSpec, *, active: bool = False) -> int:
    """Weights of the transformer blocks' matmuls (attention + dense FFNs and experts, shared ones included;
    routers left out): the ones GPTQ/AWQ quantize."""
    return model.block_matmul_params(active=active) - model.moe_layers * model.router_params_per_layer


def weight_bytes(
    model: ModelSpec, bits: np.ndarray | int, stored: dict[int, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(all weights in bytes, of which quantization scales/zeros) at ``bits``-bit matmul weights (``stored``:
    bytes_per_quantized_weight)."""
    q = float(quantized_params(model))
    kept = float(model.params) - q
    per_weight = bytes_per_quantized_weight(bits, stored)
    total = q * per_weight + kept * UNQUANTIZED_BITS / BITS_PER_BYTE
    overhead = q * (per_weight - np.asarray(bits, dtype=float) / BITS_PER_BYTE)
    return total, overhead


def kv_cache_bytes_per_token(model: ModelSpec, kv_bits: int) -> float:
    """K and V of every layer for one token of one sequence: 2·L·kv_heads·head_dim·kv_bits/8 bytes (MLA:
    L·(kv_lora_rank + qk_rope_head_dim), ModelSpec.kv_cache_width). Sliding windows: kv_cache_bytes_per_sequence."""
    return float(model.layers * model.kv_cache_width) * kv_bits / BITS_PER_BYTE


def kv_cache_bytes(model: ModelSpec, tokens: int, batch: int, kv_bits: int) -> float:
    """The KV cache of ``batch`` sequences of ``tokens`` tokens: 2·L·kv_heads·head_dim·s·b·bytes."""
    return kv_cache_bytes_per_token(model, kv_bits) * tokens * batch


def weights_read_bytes(
    model: ModelSpec, bits: np.ndarray | int, *, active: bool = True, stored: dict[int, float] | None = None
) -> np.ndarray:
    """Weight bytes one forward pass reads: the quantized block matmuls (the active experts' when ``active``)
    + the 16-bit LM head (V·d). Norms are too small to count; the input embedding is a lookup of b rows."""
    head = float(model.vocab * model.d_model) * UNQUANTIZED_BITS / BITS_PER_BYTE
    return float(quantized_params(model, active=active)) * bytes_per_quantized_weight(bits, stored) + head


def kv_cache_bytes_per_sequence(model: ModelSpec, context: np.ndarray | float, kv_bits: int) -> np.ndarray:
    """The KV cache one sequence holds at ``context`` tokens, in bytes: L·kv_cache_width·s·kv_bits/8, with
    the local (sliding-window) layers capped at the window (ModelSpec.kv_cache_elements_per_sequence, here
    over arrays): Mistral 7B v0.1 and Gemma's local layers keep at most ``sliding_window`` tokens."""
    s = np.asarray(context, dtype=float)
    local = np.minimum(s, float(model.sliding_window)) if model.sliding_window is not None else s
    width = float(model.kv_cache_width)
    elements = width * (model.global_attention_layers * s + model.local_attention_layers * local)
    return elements * kv_bits / BITS_PER_BYTE
