"""Fine-tuning with frozen base weights: LoRA (Hu et al. 2021) and QLoRA (Dettmers et al. 2023).

Full fine-tuning is training (the core runs it unchanged; only the token budget differs). With adapters the
base weights are frozen and every adapted weight matrix W (d_in × d_out) gains a trainable low-rank update
B·A, A: d_in × r, B: r × d_out (Hu et al. 2021, Sec. 4.1), so

    adapter parameters per adapted matrix   r · (d_in + d_out)

Targets (``LORA_TARGETS``): ``all`` adapts every linear layer of every transformer block, the attention's
q, k, v, o and the MLP's matrices (QLoRA, Dettmers et al. 2023 Sec. 4: "LoRA on all linear transformer
block layers are required to match full finetuning performance"), the default; ``attention`` adapts q, k, v
and o only (Hu et al. 2021 Sec. 7.1 adapt attention weights). The embedding and the output head are never
adapted (PEFT's and QLoRA's default: ``lm_head`` is left out). In an MoE layer every routed and shared
expert's matrices are adapted; a token's FLOPs count the experts it visits.

FLOPs per token (2 per multiply-add; N the frozen matmul parameters of the layers and the head, N_a the
adapter parameters, the attention core as in flops.py):
  forward                 2·N + 2·N_a + attention
  backward                2·N   (activation gradients only: a frozen weight gets no gradient)
                          + 4·N_a (the adapters' activation and weight gradients) + 2 × attention
so a LoRA step costs (4·N + 6·N_a + 3·attention)/(6·N + 3·attention) of a full step. Model FLOPs (what MFU
counts) are these, executed once, without recomputation; hardware FLOPs add the recomputed forward
(2·N_layers + 2·N_a for a full recompute).

Memory: frozen weights in 16 bit (LoRA) or, for QLoRA, the layers' linear weights in 4-bit NormalFloat with
blocks of 64 and double quantisation of the constants: 4 + 8/64 + 32/(64·256) = 4.127 bits per parameter
(Dettmers et al. 2023, Sec. 3 "Double Quantization": 0.127 bits of constants per parameter); norms, the
embedding and the head stay 16-bit. Frozen weights have no gradients and no optimizer state; the adapters
carry the usual mixed-precision model states (weights, gradients, Adam; memory.model_state_bytes_per_param).
QLoRA dequantises one linear weight to bf16 per matmul: that matrix's 16-bit copy is counted as a working
buffer (the largest one). Activations are counted as for full training (the adapters' A needs each linear
layer's input for its weight gradient) plus the rank-r intermediates x·A each adapted matrix keeps (r
elements per token). QLoRA's paged optimizer (states paged to host memory on spikes) is not modelled: the
adapters' optimizer states stay on the device, which at ~1% of the parameters is a few GB at most.

Time: the frozen matmuls run 2 passes (forward, activation gradient) instead of 3; the adapter matmuls run
the usual 3 at the layer's GEMM efficiency (their extra element-wise traffic in an unfused LoRA kernel is not
modelled). QLoRA adds a memory-bound dequantisation pass per matmul call: read the 4-bit weights with their
constants and write the bf16 copy the GEMM then reads, ``QLORA_DEQUANT_BYTES_PER_PARAM`` per frozen linear
parameter per pass per micro-batch (bitsandbytes ``dequantize_4bit`` before each matmul of a batch larger
than one token). Data parallelism all-reduces the adapters' gradients only and the optimizer updates only
adapters; ZeRO 1-2 shard only those trainable states, ZeRO-3 also shards (and gathers per layer) the frozen
weights, as FSDP does; tensor and pipeline parallelism split the frozen weights as for training.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.estimator.arrays import ModelArrays
from flopcast.estimator.experts import routed_active_params_per_layer
from flopcast.estimator.flops import (
    FLOPS_PER_MULTIPLY_ADD,
    TRAINING_PASSES,
    forward_attention_flops_per_token_per_layer,
    forward_head_flops_per_token,
)
from flopcast.estimator.recompute import recomputed_linear_fraction, recomputes_attention_core

FINETUNE_MODES = ("full", "lora", "qlora")
LORA_TARGETS = ("all", "attention")
DEFAULT_LORA_RANK = 16  # PEFT's default is 8, Hu et al. 2021 try 1-64, QLoRA uses 64 (Dettmers et al. Sec. 4)
DEFAULT_LORA_TARGETS = "all"  # QLoRA's choice (module docstring)
# Dettmers et al. 2023, Sec. 3: NF4 (4 bits) in blocks of 64 with fp32 constants → 32/64 = 0.5 bits; double
# quantisation stores them in 8 bits with one fp32 second-level constant per 256 → 8/64 + 32/(64·256) = 0.127.
NF4_BITS_PER_PARAM = 4.0
NF4_BLOCK_SIZE = 64
DOUBLE_QUANT_BLOCK_SIZE = 256
QUANT_CONSTANT_BITS_PER_PARAM = 8.0 / NF4_BLOCK_SIZE + 32.0 / (NF4_BLOCK_SIZE * DOUBLE_QUANT_BLOCK_SIZE)
QLORA_WEIGHT_BYTES_PER_PARAM = (NF4_BITS_PER_PARAM + QUANT_CONSTANT_BITS_PER_PARAM) / 8.0
BF16_BYTES_PER_PARAM = 2.0
# one dequantisation: read the 4-bit weight and its constants, write the bf16 copy the GEMM reads
QLORA_DEQUANT_BYTES_PER_PARAM = QLORA_WEIGHT_BYTES_PER_PARAM + BF16_BYTES_PER_PARAM
ATTENTION_MATRICES = 4  # q, k, v, o


class Finetune(NamedTuple):
    """A fine-tuning request as the core takes it (``Workload.finetune``); ``full`` runs as training."""

    mode: str = "lora"
    rank: int = DEFAULT_LORA_RANK
    targets: str = DEFAULT_LORA_TARGETS

    @property
    def frozen(self) -> bool:
        return self.mode in ("lora", "qlora")

    @property
    def quantised(self) -> bool:
        return self.mode == "qlora"


class AdapterArrays(NamedTuple):
    """Per model row: parameters per layer (mean over layers), elements per token."""

    dense_params: np.ndarray  # adapters outside the routed experts, one layer
    expert_params: np.ndarray  # adapters of all routed experts, one layer (sharded by ep)
    active_params: np.ndarray  # adapters one token's matmuls use, one layer (N_a per layer)
    intermediate_elements: np.ndarray  # rank-r outputs x·A one token keeps per layer
    quantised_dense_params: np.ndarray  # frozen linear weights outside the routed experts, one layer
    largest_matrix_params: np.ndarray  # the largest linear weight (QLoRA's dequantised copy)

    @property
    def layer_params(self) -> np.ndarray:
        return self.dense_params + self.expert_params


def _expert_ffn_width(m: ModelArrays, matrices: np.ndarray) -> np.ndarray:
    """One routed expert's hidden width from its parameters (matrices · d · f; biases ignored)."""
    per_expert = np.where(m.moe_fraction > 0, m.layer_expert_params / np.maximum(m.moe_fraction * m.experts, 1e-30), 0)
    return per_expert / (matrices * m.d_model)


def adapter_arrays(m: ModelArrays, rank, targets: str = DEFAULT_LORA_TARGETS) -> AdapterArrays:
    """Adapter parameter counts of ``m`` at LoRA rank ``rank`` on ``targets`` (module docstring)."""
    d, q, kv, r = m.d_model, m.attn_width, m.kv_width, np.asarray(rank, dtype=float)
    attention = r * ((d + q) + 2 * (d + kv) + (q + d))  # q: d→q, k and v: d→kv, o: q→d
    matrices = np.where(m.gated > 0, 3.0, 2.0)  # per FFN: gate, up, down (SwiGLU) or up, down
    f_expert = _expert_ffn_width(m, matrices)
    routed_one = matrices * r * (d + f_expert)  # one routed expert's adapters
    mlp_active = matrices * r * (m.mlp_units * d + m.mlp_width)  # every FFN a token passes
    routed_active = m.moe_fraction * m.active_experts * routed_one
    expert = m.moe_fraction * m.experts * routed_one
    mlp = targets == "all"
    dense = attention + (mlp_active - routed_active if mlp else 0.0)
    expert = expert if mlp else 0.0 * expert
    active = attention + (mlp_active if mlp else 0.0)
    intermediates = r * (ATTENTION_MATRICES + (matrices * m.mlp_units if mlp else 0.0))
    linear_dense = m.layer_matmul_params_active - routed_active_params_per_layer(m)
    largest = d * np.maximum(np.maximum(q, m.ffn), f_expert)
    like = 0.0 * d
    return AdapterArrays(dense + like, expert + like, active + like, intermediates + like, linear_dense, largest)


# --- FLOPs ---------------------------------------------------------------------------------------------------


def model_flops_per_token(m: ModelArrays, a: AdapterArrays) -> np.ndarray:
    """``4·N + 6·N_a + 12·L·H·Q·T``: frozen matmuls forward + activation gradient, adapters all three passes."""
    frozen_passes = TRAINING_PASSES - 1
    linear = FLOPS_PER_MULTIPLY_ADD * (frozen_passes * m.layer_matmul_params_active + TRAINING_PASSES * a.active_params)
    attention = TRAINING_PASSES * forward_attention_flops_per_token_per_layer(m)
    return m.layers * (linear + attention) + frozen_passes * forward_head_flops_per_token(m)


def recompute_flops_per_token(m: ModelArrays, a: AdapterArrays, recompute: np.ndarray) -> np.ndarray:
    """The recomputed forward per token: the attention core and/or the linear layers, adapters included."""
    attention = m.layers * forward_attention_flops_per_token_per_layer(m)
    linear = m.layers * FLOPS_PER_MULTIPLY_ADD * (m.layer_matmul_params_active + a.active_params)
    return np.where(recomputes_attention_core(recompute), attention, 0.0) + linear * recomputed_linear_fraction(
        m, recompute
    )


def hardware_flops_per_token(m: ModelArrays, a: AdapterArrays, recompute: np.ndarray) -> np.ndarray:
    return model_flops_per_token(m, a) + recompute_flops_per_token(m, a, recompute)


# --- memory --------------------------------------------------------------------------------------------------


class FrozenStates(NamedTuple):
    """One device's model states under fine-tuning, bytes (parameters for ``trainable_params``)."""

    weights: np.ndarray  # frozen base + adapters + QLoRA's dequantised matrix
    grads: np.ndarray  # adapters only
    optim: np.ndarray  # adapters only
    frozen_weights: np.ndarray
    adapter_weights: np.ndarray
    dequant_buffer: np.ndarray
    trainable_params: np.ndarray  # adapter parameters on the device before ZeRO sharding
    trainable_expert_params: np.ndarray  # of which routed experts' adapters


def frozen_states(
    ft: Finetune,
    a: AdapterArrays,
    *,
    dense_dev,
    expert_dev,
    lps,
    tp,
    ep,
    zero,
    dense_shards,
    expert_shards,
    w_b: float,
    g_b,
    o_b: float,
) -> FrozenStates:
    """Model states of one stage's device: ``dense_dev``/``expert_dev`` frozen parameters on it (after tp/ep,
    embedding and head included on their stages), ``lps`` its layers; w_b, g_b, o_b the training precision's
    bytes per parameter (memory.model_state_bytes_per_param), used for the adapters."""

    def sharded(params, shards, from_stage):
        return params / np.where(zero >= from_stage, shards, 1.0)

    if ft.quantised:  # the layers' linear weights in NF4; norms, embedding and head stay 16-bit
        q_dense = np.minimum(lps * a.quantised_dense_params / tp, dense_dev)
        frozen_dense = w_b * (dense_dev - q_dense) + QLORA_WEIGHT_BYTES_PER_PARAM * q_dense
        frozen_expert = QLORA_WEIGHT_BYTES_PER_PARAM * expert_dev
        dequant = BF16_BYTES_PER_PARAM * a.largest_matrix_params / tp
    else:
        frozen_dense, frozen_expert, dequant = w_b * dense_dev, w_b * expert_dev, 0.0 * dense_dev
    frozen = sharded(frozen_dense, dense_shards, 3) + sharded(frozen_expert, expert_shards, 3)
    a_dense, a_expert = lps * a.dense_params / tp, lps * a.expert_params / (tp * ep)

    def adapters(bytes_per_param, from_stage):
        return bytes_per_param * (
            sharded(a_dense, dense_shards, from_stage) + sharded(a_expert, expert_shards, from_stage)
        )

    adapter_weights = adapters(w_b, 3)
    return FrozenStates(
        weights=frozen + adapter_weights + dequant,
        grads=adapters(g_b, 2),
        optim=adapters(o_b, 1),
        frozen_weights=frozen,
        adapter_weights=adapter_weights,
        dequant_buffer=dequant + 0.0 * frozen,
        trainable_params=a_dense + a_expert,
        trainable_expert_params=a_expert,
    )


def intermediate_bytes_per_token_per_layer(a: AdapterArrays, element_bytes: float) -> np.ndarray:
    """The rank-r outputs x·A a layer keeps for the B matrices' weight gradients, per token, unsharded."""
    return element_bytes * a.intermediate_elements


# --- time ------------------------------------------------------------------------------------------------------


def dequant_seconds_per_layer(ft: Finetune, m: ModelArrays, tp, ep, passes, bandwidth_bytes_per_s) -> np.ndarray:
    """QLoRA's dequantisation of one layer's frozen linear weights per micro-batch: ``passes`` matmul calls
    per weight (forward, activation gradient, a recomputed forward), memory bound; 0 for LoRA."""
    if not ft.quantised:
        return np.zeros(())
    dense = m.layer_matmul_params_active - routed_active_params_per_layer(m)
    weights = dense / tp + m.layer_expert_params / (tp * ep)
    return QLORA_DEQUANT_BYTES_PER_PARAM * weights * passes / bandwidth_bytes_per_s


class FrozenBase(NamedTuple):
    """What the core's hooks take: the request and the model rows' adapter counts."""

    spec: Finetune
    adapters: AdapterArrays


def frozen_base(m: ModelArrays, ft: Finetune | None) -> FrozenBase | None:
    """The hooks' argument for ``ft`` on ``m``; None for training and full fine-tuning (nothing changes)."""
    if ft is None or not ft.frozen:
        return None
    return FrozenBase(ft, adapter_arrays(m, ft.rank, ft.targets))
