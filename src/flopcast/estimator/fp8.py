"""FP8 training: which GEMMs run in FP8, what FP8 adds to memory, and the cast traffic (DESIGN §4).

Transformer Engine's FP8 recipe (NVIDIA Transformer Engine docs, "Using FP8 with Transformer Engine"; Micikevicius
et al. 2022, "FP8 Formats for Deep Learning", Sec. 4; FP8-LM, Peng et al. 2023, Sec. 2.1) runs the layers'
linear GEMMs (QKV, attention output, the FFN or experts) in FP8 with per-tensor scaling and keeps the rest in
16 bit: the attention core (the fused FlashAttention kernel in bf16) and the output head and loss. So under
``--precision fp8`` the linear GEMMs run at the device's fp8 peak and the attention core and head at its bf16
peak (HardwareArrays.high_precision_peak_flops_per_s).

What FP8 costs besides the GEMMs:
* casts: before each FP8 GEMM its 16-bit input is scaled and cast (read 2 B, write 1 B per element) — the
  forward's activations and the backward's output gradients — plus an amax reduction over the same tensor,
  memory-bound traffic counted per element below; and once per optimizer step every linear weight is cast
  (read 2 B, write its FP8 copy and, on Hopper, its transpose: 1 + 1 B; TE caches them across the micro-batches
  of a step, ``is_first_microbatch``);
* memory: those FP8 weight copies (2 B per linear parameter); on the other side, each FP8 GEMM saves its FP8
  input for the backward instead of the 16-bit one (1 B instead of 2 per element of the GEMM inputs).
Master weights, gradients and optimizer states are unchanged (bf16/fp32 as for bf16 training).
"""

from __future__ import annotations

import numpy as np

# Cast of a 16-bit tensor to FP8 with its scaling: read 2 B + write 1 B per element, and the amax reduction
# reads the input once more (2 B): Transformer Engine's cast-transpose kernels fuse the amax into the cast, so
# we count the cast only.
FP8_CAST_BYTES_PER_ELEMENT = 3.0
# FP8 weight copies kept through the step: the FP8 weight and its transpose (Hopper's FP8 tensor cores take
# only the TN layout, so TE keeps row- and column-wise copies): 1 + 1 B per linear parameter.
FP8_WEIGHT_COPY_BYTES_PER_PARAM = 2.0
# The per-step weight cast: read the 16-bit weight (2 B), write both FP8 copies (2 B).
FP8_WEIGHT_CAST_BYTES_PER_PARAM = 4.0
FP8_ELEMENT_BYTES = 1.0


def gemm_input_elements_per_token_per_layer(m) -> np.ndarray:
    """Elements per token of one layer's FP8 GEMM inputs in the forward: the QKV input (d), the attention output
    projection's input (q), each FFN's input (d per FFN a token passes) and the down projection's input (the
    summed hidden width). These are what TE saves in FP8 for the backward."""
    return m.d_model + m.attn_width + m.mlp_units * m.d_model + m.mlp_width


def gemm_output_grad_elements_per_token_per_layer(m) -> np.ndarray:
    """Elements per token of the output gradients the backward casts to FP8: QKV's (q + 2·kv), O's (d), the
    up projections' (2·f gated, else f) and the down projections' (d per FFN)."""
    up = np.where(m.gated > 0, 2.0, 1.0) * m.mlp_width
    return m.attn_width + 2 * m.kv_width + m.d_model + up + m.mlp_units * m.d_model


def cast_bytes_per_token_per_layer(m) -> np.ndarray:
    """Memory traffic of the per-micro-batch FP8 casts of one layer, per token, unsharded."""
    elements = gemm_input_elements_per_token_per_layer(m) + gemm_output_grad_elements_per_token_per_layer(m)
    return FP8_CAST_BYTES_PER_ELEMENT * elements


def saved_input_savings_bytes_per_token_per_layer(m, element_bytes: float) -> np.ndarray:
    """Bytes per token one layer saves by keeping its FP8 GEMM inputs in FP8 instead of ``element_bytes``."""
    return (element_bytes - FP8_ELEMENT_BYTES) * gemm_input_elements_per_token_per_layer(m)
