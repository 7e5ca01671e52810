"""The arrays the estimator core works on: model, hardware, layout, workload in; estimate out.

Every field is a numpy array that broadcasts against the others: a single estimate uses arrays of
length 1, the planner passes layouts of length 10^6 (and, if it likes, hardware and models indexed per
row, so one sweep can mix several profiles or architectures). Nothing here is pydantic: building a
pydantic object per row would cost more than the whole estimate. The records are NamedTuples, which
Python defines several times faster than dataclasses (start-up time matters for the CLI).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from flopcast.errors import InvalidValue, opt

# Recompute codes (LayoutArrays.recompute): estimator/recompute.py describes each variant.
from flopcast.estimator.recompute import (  # noqa: F401  (re-exported: the layout's codes)
    RECOMPUTE_ATTENTION,
    RECOMPUTE_FULL,
    RECOMPUTE_NAMES,
    RECOMPUTE_NONE,
    RECOMPUTE_OP,
    RECOMPUTE_SELECTIVE,
)
from flopcast.layout_fields import LAYOUT_FIELDS, LAYOUT_SPECS  # plain data: the layout record, declared once

# Inter-node bandwidth assumed when a profile does not publish one and a group spans nodes:
# one 100 Gb/s (EDR InfiniBand / 100 GbE) link per device, the slowest common data-centre fabric of the
# V100 era (shared/data/hardware_specs.csv, V100 row: "DGX-1/DGX-2 era: 100 Gb/s EDR InfiniBand").
FALLBACK_INTER_NODE_BANDWIDTH_BYTES_PER_S = 100e9 / 8


def _arr(values, dtype=float) -> np.ndarray:
    return np.asarray(values, dtype=dtype)


def _take(values: Sequence, index: np.ndarray | None, dtype=float) -> np.ndarray:
    base = np.asarray(values, dtype=dtype)
    return base if index is None else base[index]


def local_context_tokens(seq_len: float, window: float) -> float:
    """The context a token of a ``seq_len``-token training sequence attends to in a sliding-window layer, in the
    PaLM convention (App. B: a causal layer is counted at the whole sequence, twice the mean causal context).

    Causally, position i sees min(i + 1, w) keys; the mean over a sequence longer than the window is
    (w(w + 1)/2 + (s − w)·w)/s ≈ w − w²/(2s), so the convention's count is twice that, 2w − w²/s (s when
    s ≤ w: a window at least as long as the sequence changes nothing). Gemma 2 (Team Gemma 2024): w = 4096.
    """
    if seq_len <= window:
        return float(seq_len)
    return 2.0 * window - window * window / seq_len


def attention_context_fraction(spec) -> float:
    """Mean over layers of the attended context / seq_len (1 without sliding-window layers)."""
    if spec.sliding_window is None:
        return 1.0
    local = local_context_tokens(spec.seq_len, spec.sliding_window) / spec.seq_len
    return (spec.global_attention_layers + spec.local_attention_layers * local) / spec.layers


_NOT_MEASURED = {
    "measured": 0.0,
    "forward_flops_per_sample": 0.0,
    "activation_bytes_per_sample": 0.0,
    "embedding_table_params": 0.0,
    "lookup_bytes_per_sample": 0.0,
}


class ModelArrays(NamedTuple):
    """Architecture per row. Widths in elements; parameter counts in parameters."""

    layers: np.ndarray
    d_model: np.ndarray
    heads: np.ndarray
    kv_heads: np.ndarray
    attn_width: np.ndarray  # heads · head_dim
    kv_width: np.ndarray  # kv_heads · head_dim (the width of K; MLA: heads · (nope + rope))
    kv_v_width: np.ndarray  # the width of V: kv_width, or heads · v_head_dim under MLA
    v_width: np.ndarray  # the attention output before O: attn_width, or heads · v_head_dim under MLA
    latent_width: np.ndarray  # MLA: the Q and KV latents a layer stores, 2·(q_lora_rank + kv_lora_rank); else 0
    # mean over layers of the context a training token attends to, as a share of seq_len, in the PaLM
    # convention (a global layer counts the whole sequence): below 1 with sliding-window layers (local_context)
    attention_context_fraction: np.ndarray
    ffn: np.ndarray
    gated: np.ndarray  # 1.0 for SwiGLU (three FFN matrices), else 0.0
    vocab: np.ndarray
    seq_len: np.ndarray
    active_experts: np.ndarray  # routed experts a token visits in an MoE layer (1 for a dense model)
    experts: np.ndarray  # routed experts per MoE layer (1 for a dense model)
    moe_fraction: np.ndarray  # share of the layers that are MoE layers (0 for a dense model)
    mlp_units: np.ndarray  # FFNs a token passes per layer, mean over layers: 1 dense, k + shared in MoE layers
    mlp_width: np.ndarray  # their summed hidden width, mean over layers (ffn for a dense model)
    layer_expert_params: np.ndarray  # routed experts' parameters per layer, mean over layers (sharded by ep)
    params: np.ndarray  # total (memory)
    layer_params: np.ndarray  # one layer, all experts (memory)
    layer_matmul_params_active: np.ndarray  # one layer, weights that take part in a matmul per token
    input_embedding_params: np.ndarray  # V·d (+ learned positions): a lookup, not a matmul
    head_params: np.ndarray  # V·d output head (a matmul even when tied to the input embedding)
    tied: np.ndarray  # 1.0 when the head shares the input embedding's weights
    final_params: np.ndarray  # final norm
    matmul_params: np.ndarray  # N of 6·N: active layer matmuls + the head (PaLM App. B)
    dropout: np.ndarray  # 1.0 when the model trains with dropout (its masks are stored), else 0.0
    # measured models (estimator/measured.py): 0 on a transformer row
    measured: np.ndarray = 0.0  # 1.0 for a measured model (a sample is its token: seq_len 1)
    forward_flops_per_sample: np.ndarray = 0.0
    activation_bytes_per_sample: np.ndarray = 0.0  # stored for the backward, at 2 B per element
    embedding_table_params: np.ndarray = 0.0  # sharded over the data-parallel devices
    lookup_bytes_per_sample: np.ndarray = 0.0  # looked-up embeddings (16-bit): the all-to-all's payload

    @classmethod
    def from_specs(cls, specs: Sequence, index: np.ndarray | None = None) -> ModelArrays:
        """Arrays for ``specs`` (ModelSpec objects); ``index`` picks one spec per row (None: one row each)."""
        cols: dict[str, list] = {f: [] for f in cls._fields}
        for m in specs:
            d, v = m.d_model, m.vocab
            norm = m.d_model * (2 if m.layernorm_bias else 1)
            layer_active = (m.matmul_params - v * d) / m.layers  # ModelSpec.matmul_params: one definition
            moe, dense = m.moe_layers / m.layers, m.dense_layers / m.layers
            per_moe_layer = m.active_experts + m.shared_experts
            row = {
                "layers": m.layers,
                "d_model": d,
                "heads": m.heads,
                "kv_heads": m.n_kv_heads,
                "attn_width": m.attn_width,
                "kv_width": m.kv_width,
                "kv_v_width": m.v_width if m.is_mla else m.kv_width,
                "v_width": m.v_width,
                "latent_width": 2 * ((m.q_lora_rank or 0) + m.kv_lora_rank) if m.is_mla else 0,
                "attention_context_fraction": attention_context_fraction(m),
                "ffn": m.ffn_size,
                "gated": 1.0 if m.gated_ffn else 0.0,
                "vocab": v,
                "seq_len": m.seq_len,
                "active_experts": m.active_experts,
                "experts": m.experts,
                "moe_fraction": moe,
                "mlp_units": dense + moe * per_moe_layer,
                "mlp_width": dense * m.ffn_size + moe * per_moe_layer * m.expert_ffn_size,
                "layer_expert_params": moe * m.experts * m.ffn_params_per_expert,
                "params": m.params,
                "layer_params": m._layer_params(m.experts),
                "layer_matmul_params_active": layer_active,
                "input_embedding_params": v * d + (m.seq_len * d if m.learned_positions else 0),
                "head_params": v * d,
                "tied": 1.0 if m.tied_embeddings else 0.0,
                "final_params": norm,
                "matmul_params": m.matmul_params,
                "dropout": 1.0 if m.dropout else 0.0,
            }
            row.update(m.array_row() if getattr(m, "measured", False) else _NOT_MEASURED)
            for k, val in row.items():
                cols[k].append(val)
        return cls(**{k: _take(vals, index) for k, vals in cols.items()})


class HardwareArrays(NamedTuple):
    """Per-device hardware figures per row, for one training precision and one price tier."""

    peak_flops_per_s: np.ndarray
    # the peak of the GEMMs that stay in 16 bit (attention core, output head): the bf16 peak under fp8 training
    # (estimator/fp8.py), the training peak otherwise
    high_precision_peak_flops_per_s: np.ndarray
    vector_flops_per_s: np.ndarray  # fp32 peak of the vector units (CUDA cores, SIMD): GEMV kernels; 0 if none
    memory_bytes: np.ndarray
    memory_bandwidth_bytes_per_s: np.ndarray
    devices_per_node: np.ndarray
    intra_node_bandwidth_bytes_per_s: np.ndarray
    inter_node_bandwidth_bytes_per_s: np.ndarray
    power_watts: np.ndarray  # NaN when the profile publishes neither TDP nor a typical draw
    price_usd_per_device_hour: np.ndarray  # NaN when the tier is not in the profile
    fused_attention: np.ndarray  # 1.0 when FlashAttention-style fused attention runs on this device
    attention_efficiency_ratio: np.ndarray  # fused attention kernel's efficiency ÷ the GEMMs' (efficiency.py)
    gemm_ceiling: np.ndarray  # achievable large-GEMM fraction of peak (efficiency model)
    calibrated: np.ndarray  # 1.0 when the GEMM ceiling comes from runs on this hardware family
    runtime_allowance: np.ndarray  # 1.0 on device kinds with a CUDA-like runtime (estimator/memory.py)
    collective_latency_s: np.ndarray  # measured per-collective latency (bench --collectives); NaN: NCCL's model

    @classmethod
    def from_profiles(
        cls,
        profiles: Sequence,
        index: np.ndarray | None = None,
        *,
        precision: str = "bf16",
        tier: str | None = "on-demand",
        price_per_hour: float | None = None,
        params=None,
    ) -> HardwareArrays:
        """Arrays for ``profiles`` (HardwareProfile objects); ``index`` picks one profile per row.

        ``precision`` selects the peak (mixed-precision training: bf16, falling back to fp16 where the
        device has no bf16, e.g. V100). ``price_per_hour`` overrides the tier's price.
        """
        from flopcast.estimator.comms import measured_latency_s
        from flopcast.estimator.efficiency import (
            EfficiencyParams,
            attention_efficiency_ratio,
            fused_attention_supported,
        )
        from flopcast.estimator.memory import DEVICE_KINDS_WITH_RUNTIME_ALLOWANCE

        params = params or EfficiencyParams.load()
        cols: dict[str, list] = {f: [] for f in cls._fields}
        for p in profiles:
            peak = training_peak(p, precision)
            inter = p.inter_node_bandwidth_bytes_per_s or FALLBACK_INTER_NODE_BANDWIDTH_BYTES_PER_S
            intra = p.intra_node_bandwidth_bytes_per_s or inter
            if price_per_hour is not None:
                price = float(price_per_hour)
            elif tier is not None and tier in p.prices_usd_per_device_hour:
                price = p.prices_usd_per_device_hour[tier].usd_per_device_hour
            else:
                price = np.nan
            ceiling, calibrated = params.gemm_ceiling_for(p)
            high = training_peak(p, "bf16") if precision == "fp8" else peak
            row = {
                "peak_flops_per_s": peak,
                "high_precision_peak_flops_per_s": high,
                "vector_flops_per_s": float(p.peak_flops_per_s.get("fp32") or 0.0),
                "memory_bytes": p.memory_bytes,
                "memory_bandwidth_bytes_per_s": p.memory_bandwidth_bytes_per_s,
                "devices_per_node": p.devices_per_node,
                "intra_node_bandwidth_bytes_per_s": intra,
                "inter_node_bandwidth_bytes_per_s": inter,
                "power_watts": p.power_watts if p.power_watts is not None else np.nan,
                "price_usd_per_device_hour": price,
                "fused_attention": 1.0 if fused_attention_supported(p) else 0.0,
                "attention_efficiency_ratio": attention_efficiency_ratio(p) if fused_attention_supported(p) else 1.0,
                "gemm_ceiling": ceiling,
                "calibrated": 1.0 if calibrated else 0.0,
                "runtime_allowance": 1.0 if p.kind in DEVICE_KINDS_WITH_RUNTIME_ALLOWANCE else 0.0,
                "collective_latency_s": measured_latency_s(p),
            }
            for k, val in row.items():
                cols[k].append(val)
        return cls(**{k: _take(vals, index) for k, vals in cols.items()})


# Peak used for each training precision, in order of preference (mixed precision keeps fp32 masters).
_PRECISION_PEAKS = {
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
    "fp8": ("fp8",),
    "tf32": ("tf32", "fp32"),
    "fp32": ("fp32",),
    "fp64": ("fp64",),
}
PRECISIONS = tuple(_PRECISION_PEAKS)


def training_peak(profile, precision: str) -> float:
    """Dense peak FLOP/s of ``profile`` for ``precision``; bf16 falls back to fp16 (Volta has no bf16)."""
    if precision not in _PRECISION_PEAKS:
        raise InvalidValue(
            f"{opt('precision')}: unknown precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}"
        )
    for dtype in _PRECISION_PEAKS[precision]:
        value = profile.peak_flops_per_s.get(dtype)
        if value is not None:
            return float(value)
    published = [d for d in ("bf16", "fp16", "fp8", "tf32", "fp32", "fp64") if profile.peak_flops_per_s.get(d)]
    raise InvalidValue(
        f"{opt('precision')} {precision}: {profile.id} publishes no {precision} peak",
        hint=f"use {opt('precision')} {published[0]}" if published else "choose another hardware profile",
    )


def precision_used(profile, precision: str) -> str:
    """The dtype whose peak :func:`training_peak` uses (to tell the user about a fallback)."""
    for dtype in _PRECISION_PEAKS.get(precision, ()):
        if profile.peak_flops_per_s.get(dtype) is not None:
            return dtype
    return precision


def activation_bytes_per_element(precision: str) -> float:
    """16-bit activations for mixed precision (fp8 training keeps activations in bf16); 4 B for fp32/tf32,
    8 B for fp64."""
    return {"fp32": 4.0, "tf32": 4.0, "fp64": 8.0}.get(precision, 2.0)


# each layout field's default as an array value (recompute as its RECOMPUTE_* code)
_LAYOUT_ARRAY_DEFAULTS = {
    s.name: RECOMPUTE_NAMES.index(s.default) if s.name == "recompute" else s.default for s in LAYOUT_SPECS
}


class LayoutArrays(NamedTuple("_LayoutColumns", [(name, np.ndarray) for name in LAYOUT_FIELDS])):
    """The parallel layout per row, one array per field of the layout record (flopcast.layout_fields, in its
    order). ``recompute`` holds RECOMPUTE_* codes; ``global_batch`` is in sequences; ``interleave`` is virtual
    pipeline stages per device (1 = plain 1F1B); devices = tp · cp · pp · dp."""

    __slots__ = ()

    @classmethod
    def of(cls, **values) -> LayoutArrays:
        """Arrays from keyword values (scalars or sequences); a field not given takes the record's default."""
        unknown = set(values) - set(cls._fields)
        if unknown:
            raise TypeError(f"unknown layout field(s): {', '.join(sorted(unknown))}")
        return cls(**{f: _arr(values.get(f, _LAYOUT_ARRAY_DEFAULTS[f])) for f in cls._fields})

    @classmethod
    def filled(cls, n: int, **columns) -> LayoutArrays:
        """``n`` rows: the given columns, every other field at the record's default."""
        return cls(
            **{f: columns[f] if f in columns else np.full(n, float(_LAYOUT_ARRAY_DEFAULTS[f])) for f in cls._fields}
        )

    @classmethod
    def empty(cls) -> LayoutArrays:
        return cls(*(np.zeros(0) for _ in cls._fields))

    @property
    def size(self) -> int:
        return int(np.broadcast(*self).size)

    def take(self, index) -> LayoutArrays:
        """Rows ``index`` (an int array or slice) of the broadcast layout."""
        shape = np.broadcast(*self).shape or (1,)
        return LayoutArrays(*(np.broadcast_to(np.atleast_1d(a), shape)[index] for a in self))

    @classmethod
    def concatenate(cls, parts: list[LayoutArrays]) -> LayoutArrays:
        if not parts:
            return cls.empty()
        shapes = [np.broadcast(*p).shape or (1,) for p in parts]
        return cls(
            *(
                np.concatenate(
                    [np.broadcast_to(np.atleast_1d(p[k]), shp) for p, shp in zip(parts, shapes, strict=True)]
                )
                for k in range(len(cls._fields))
            )
        )

    @property
    def devices(self) -> np.ndarray:
        return self.tp * self.cp * self.pp * self.dp


class Workload(NamedTuple):
    """What is trained and how long: tokens (array or scalar) plus knobs that are not part of the layout."""

    tokens: np.ndarray | float
    precision: str = "bf16"
    mfu_override: float | None = None  # forces model-FLOPs utilisation of the step (DESIGN §7 --mfu)
    memory_headroom: float = 0.0  # fraction of each device's memory a layout must leave free to "fit"
    grad_dtype: str | None = None  # gradient dtype; None: the precision's convention (memory.default_grad_dtype)
    finetune: object = None  # estimator.finetune.Finetune (LoRA/QLoRA: frozen base weights); None: training


class EstimateArrays(NamedTuple):
    """Everything the core computes, one array per quantity (broadcast shape of the inputs)."""

    # FLOPs
    model_flops_per_token: np.ndarray
    hardware_flops_per_token: np.ndarray
    model_flops_total: np.ndarray
    hardware_flops_total: np.ndarray
    # memory per device, bytes (the fullest pipeline stage)
    weights_bytes: np.ndarray
    gradients_bytes: np.ndarray
    optimizer_bytes: np.ndarray
    activations_bytes: np.ndarray
    logits_bytes: np.ndarray
    zero3_buffer_bytes: np.ndarray
    recompute_working_bytes: np.ndarray
    allocated_bytes: np.ndarray  # the tensors at the peak moment (estimator/memory.py)
    fragmentation_bytes: np.ndarray  # reserved by the caching allocator beyond what is allocated
    reserved_bytes: np.ndarray
    runtime_context_bytes: np.ndarray  # CUDA context etc., outside the allocator
    communicator_bytes: np.ndarray  # NCCL buffers, outside the allocator
    peak_at_optimizer_step: np.ndarray  # 1.0 when the peak is at the end of the backward / optimizer step
    memory_bytes: np.ndarray
    fits: np.ndarray  # bool
    # one optimizer step, seconds (critical path of one device)
    micro_batches: np.ndarray
    compute_seconds: np.ndarray
    tp_comm_seconds: np.ndarray
    cp_comm_seconds: np.ndarray  # context-parallel K/V ring, beyond the attention it overlaps
    ep_comm_seconds: np.ndarray  # expert-parallel all-to-alls
    pp_comm_seconds: np.ndarray
    dp_comm_exposed_seconds: np.ndarray
    bubble_seconds: np.ndarray
    optimizer_seconds: np.ndarray
    step_seconds: np.ndarray
    gemm_efficiency: np.ndarray
    # the whole run
    steps: np.ndarray
    training_seconds: np.ndarray  # steps × step time, no interruptions
    reliability_seconds: np.ndarray  # added by interruptions and other overhead
    wall_clock_seconds: np.ndarray
    device_hours: np.ndarray
    tokens_per_second: np.ndarray
    mfu: np.ndarray
    hfu: np.ndarray
    model_tflops_per_device: np.ndarray
    cost_usd: np.ndarray
    energy_kwh: np.ndarray
    co2_kg: np.ndarray
    # P10, P80, P90 from the held-out calibration residuals (multiplicative; uncertainty.py)
    wall_clock_seconds_p10: np.ndarray
    wall_clock_seconds_p80: np.ndarray
    wall_clock_seconds_p90: np.ndarray
    device_hours_p10: np.ndarray
    device_hours_p80: np.ndarray
    device_hours_p90: np.ndarray
    cost_usd_p10: np.ndarray
    cost_usd_p80: np.ndarray
    cost_usd_p90: np.ndarray
    extrapolation_doublings: np.ndarray  # doublings of devices + parameters beyond the fitted runs (0 inside)
    # fine-tuning (estimator/finetune.py); training: 0 bytes and every parameter trainable
    trainable_params_per_device: np.ndarray  # parameters with gradients and optimizer states, before ZeRO
    frozen_weights_bytes: np.ndarray  # of weights_bytes: the frozen base (16-bit, or NF4 + constants)
    adapter_weights_bytes: np.ndarray  # of weights_bytes: the adapters
    dequant_buffer_bytes: np.ndarray  # of weights_bytes: QLoRA's bf16 copy of the matrix being multiplied

    def row(self, i: int) -> dict[str, float]:
        """One row as plain Python numbers (for the report of the chosen layout)."""
        out = {}
        for name, array in zip(self._fields, self, strict=True):
            value = np.broadcast_to(array, self.fits.shape)[i]
            out[name] = bool(value) if name == "fits" else float(value)
        return out
