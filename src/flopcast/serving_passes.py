"""Forward passes of one request shape on the estimator core, for `serve` (serving.py) and its load model
(serving_load.py): the core's arrays, the runtime's bandwidth efficiency and fixed cost, the bytes a prompt's
pass and a decode step read, and the tokens each attends to (causal, sliding windows)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.estimator import inference
from flopcast.estimator.arrays import HardwareArrays, ModelArrays
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.hardware import HardwareProfile
from flopcast.models import ModelSpec
from flopcast.runtimes import RuntimeProfile, check_weight_bits, is_measured, load_runtime
from flopcast.serving_lengths import LengthDist
from flopcast.serving_memory import kv_cache_bytes_per_sequence, weights_read_bytes

# `serve --compute`: the format of the layers' linear GEMMs. bf16 with any weights (weight-only W8A16/W4A16
# kernels dequantise to 16 bit); fp8 multiplies FP8 weights by FP8 activations (W8A8), fp4 FP4 by FP4 (W4A4,
# NVFP4/MXFP4), so each needs weights stored in that width (Micikevicius et al. 2022, "FP8 Formats for Deep
# Learning"; vLLM docs, FP8 W8A8; NVIDIA Blackwell architecture technical brief, NVFP4).
COMPUTE_FORMATS = ("bf16", "fp8", "fp4")
COMPUTE_WEIGHT_BITS = {"fp8": 8, "fp4": 4}


def compute_peak(profile: HardwareProfile) -> tuple[str, float]:
    """Weight-only quantization (W8A16, W4A16) dequantizes to 16 bit and multiplies in 16 bit, so every bit
    width runs at the 16-bit peak: bf16, else fp16, else fp32 (CPUs), else fp64."""
    return profile.peak_flops_per_s.for_training()


def variant_compute(request, bits: int) -> str:
    """The linear GEMMs' format of the variant with ``bits``-bit weights: the requested low-bit format where the
    weights are stored in it (8-bit under fp8, 4-bit under fp4), else 16-bit (weight-only dequantisation)."""
    fmt = getattr(request, "compute", "bf16")
    return fmt if COMPUTE_WEIGHT_BITS.get(fmt) == int(bits) else "bf16"


def linear_peak(profile: HardwareProfile, request, b_bits) -> np.ndarray | None:
    """The linear GEMMs' peak per weight bit width (array like ``b_bits``); None when every variant is 16-bit."""
    fmt = getattr(request, "compute", "bf16")
    if fmt not in COMPUTE_WEIGHT_BITS:
        return None
    _, sixteen = compute_peak(profile)
    low = profile.peak_flops_per_s.get(fmt)
    return np.where(np.asarray(b_bits, dtype=float) == COMPUTE_WEIGHT_BITS[fmt], float(low), sixteen)


def core_arrays(
    model: ModelSpec, profile: HardwareProfile, params: EfficiencyParams | None = None
) -> tuple[ModelArrays, HardwareArrays, EfficiencyParams]:
    """The estimator core's arrays for one model on one profile, at the 16-bit peak (compute_peak)."""
    params = params or EfficiencyParams.load()
    dtype, _ = compute_peak(profile)
    hw = HardwareArrays.from_profiles([profile], precision=dtype, tier=None, params=params)
    return ModelArrays.from_specs([model]), hw, params


# --- the runtime -------------------------------------------------------------------------------------
def resolve_runtime(request, profile: HardwareProfile) -> RuntimeProfile:
    """The request's runtime (a name, a RuntimeProfile, or None: the default for the device kind)."""
    if isinstance(request.runtime, RuntimeProfile):
        return request.runtime
    return load_runtime(request.runtime, profile.kind, profile.id, profile.vendor)


def bandwidth_efficiency(request, runtime: RuntimeProfile, profile, bits) -> np.ndarray:
    """Share of the profile's bandwidth decode reaches, per weight bit width (a given one replaces it)."""
    if request.bandwidth_efficiency is not None:
        return np.broadcast_to(np.asarray(request.bandwidth_efficiency, dtype=float), np.shape(bits))
    measured = is_measured(profile)
    flat = np.asarray(bits, dtype=float).ravel()
    for b in flat:
        check_weight_bits(runtime, int(b))
    return np.array([runtime.bandwidth_efficiency(int(b), measured) for b in flat]).reshape(np.shape(bits))


def fixed_cost(runtime: RuntimeProfile, model: ModelSpec) -> inference.FixedCost:
    """The runtime's fixed cost of one forward pass of ``model`` (runtimes.yaml: kernels × gap and launch)."""
    kernels = runtime.kernels_per_forward(model.layers)
    return inference.FixedCost(
        device_seconds=kernels * runtime.gap_seconds_per_kernel,
        host_seconds=kernels * runtime.launch_seconds_per_kernel + runtime.seconds_per_forward,
        host_overlaps=runtime.host_overlaps_device(),
    )


def prefill_attended_tokens(model: ModelSpec, prompt_tokens) -> np.ndarray:
    """Mean tokens a prompt token attends to, over the layers: causal (P + 1)/2 in the global layers, the
    windowed causal mean in the local ones (inference.causal_mean_context)."""
    full = inference.causal_mean_context(prompt_tokens)
    if model.sliding_window is None:
        return full
    local = inference.causal_mean_context(prompt_tokens, model.sliding_window)
    return (model.global_attention_layers * full + model.local_attention_layers * local) / model.layers


def decode_attended_tokens(model: ModelSpec, context) -> np.ndarray:
    """Mean tokens a generated token attends to, over the layers (local layers: at most the window)."""
    s = np.asarray(context, dtype=float)
    if model.sliding_window is None:
        return s
    local = np.minimum(s, float(model.sliding_window))
    return (model.global_attention_layers * s + model.local_attention_layers * local) / model.layers


class PassInputs(NamedTuple):
    """What a forward pass of one request shape needs on the core, per (bit width, device count)."""

    m: ModelArrays
    hw: HardwareArrays
    params: EfficiencyParams
    common: dict  # tp, bandwidth efficiency, fixed matmul efficiency
    fixed: inference.FixedCost
    prompt_tokens: float
    prefill_weight_bytes: np.ndarray
    prefill_kv_bytes_per_token: np.ndarray
    prefill_attended: np.ndarray
    context: float  # mean context of a decode step, P + T/2
    decode_context: np.ndarray  # tokens a generated token attends to (windows capped), over the layers
    decode_weight_bytes: np.ndarray
    decode_kv_bytes_per_token: np.ndarray
    model: ModelSpec | None = None  # what with_prompt needs to rebuild the prompt's pass at other lengths
    kv_bits: int = 16
    kv_split: np.ndarray | float = 1.0
    routed_share: float = 1.0  # k/E: the share of routed experts one token uses (1: dense)


def experts_touched_share(routed_share: float, batch) -> np.ndarray:
    """Expected share of a layer's routed experts that ``batch`` tokens use between them, each token picking
    k of E (share k/E) independently and uniformly — the load-balanced limit routers are trained towards:
    1 − (1 − k/E)^batch (a coupon-collector count; one token: k/E, many: all of them). Mixtral (k/E = 2/8) at
    batch 16 reads 99% of its experts, not 25%."""
    b = np.maximum(np.asarray(batch, dtype=float), 1.0)
    return 1.0 - (1.0 - routed_share) ** b


def decode_weight_bytes_at(x: PassInputs, batch) -> np.ndarray:
    """Weight bytes a decode step of ``batch`` sequences reads per device: the dense weights and the experts its
    tokens route to (experts_touched_share), between the one-token read (decode_weight_bytes) and every
    expert (prefill_weight_bytes); the dense read for a dense model."""
    if x.routed_share >= 1.0:
        return x.decode_weight_bytes
    k_e = x.routed_share
    extra = (experts_touched_share(k_e, batch) - k_e) / (1.0 - k_e)
    return x.decode_weight_bytes + (x.prefill_weight_bytes - x.decode_weight_bytes) * extra


def pass_inputs(model, profile, request, runtime: RuntimeProfile, b_bits, t, kv_split) -> PassInputs:
    """Bytes and contexts of the prompt's pass and of a decode step (per device), for any batch."""
    m, hw, params = core_arrays(model, profile)
    p, n_out = float(request.prompt_tokens), float(request.output_tokens)
    # weight bytes a forward pass reads: the prompt's batch of tokens reads every expert, a decode step
    # the active ones (a lower bound at large batch for MoE)
    stored = runtime.stored_bits_per_weight
    read_all = weights_read_bytes(model, b_bits, active=False, stored=stored)
    read_active = weights_read_bytes(model, b_bits, active=True, stored=stored)
    # KV bytes per token of context: the cache a sequence holds at that context over the context (windows)
    # the mean context of the sequences decoding: P + E[T²]/(2·E[T]) (length-biased: a longer output stays in the
    # batch longer; T/2 for fixed outputs; serving_lengths.py)
    output_dist = LengthDist(getattr(request, "output_dist", "fixed"), n_out)
    context = p + output_dist.second_moment() / (2.0 * n_out)
    kv_prompt = kv_cache_bytes_per_sequence(model, p, request.kv_bits) / p / kv_split
    kv_context = kv_cache_bytes_per_sequence(model, context, request.kv_bits) / context / kv_split
    decode_context = decode_attended_tokens(model, context)
    eta_b = bandwidth_efficiency(request, runtime, profile, b_bits)
    common = dict(tp=t, bandwidth_efficiency=eta_b, fixed_matmul_efficiency=request.matmul_efficiency,
                  linear_peak_flops_per_s=linear_peak(profile, request, b_bits))  # fmt: skip
    routed_share = model.active_experts / model.experts if model.moe_layers else 1.0
    return PassInputs(
        m, hw, params, common,
        fixed_cost(runtime, model), p, read_all / t, kv_prompt, prefill_attended_tokens(model, p), context,
        decode_context, read_active / t, kv_context * context / decode_context, model, request.kv_bits, kv_split,
        routed_share,
    )  # fmt: skip


def with_prompt(x: PassInputs, prompts) -> PassInputs:
    """``x`` with the prompt's pass at other lengths (an array along the last axis of ``x``'s S + (1,) arrays):
    its KV bytes per token and the tokens each attends to rebuilt for each length."""
    p = np.asarray(prompts, dtype=float)
    kv = kv_cache_bytes_per_sequence(x.model, p, x.kv_bits) / p / x.kv_split
    return x._replace(
        prompt_tokens=p, prefill_kv_bytes_per_token=kv, prefill_attended=prefill_attended_tokens(x.model, p)
    )


def hybrid_pass(x: PassInputs, batch, chunk) -> inference.ForwardPass:
    """One step of chunked prefill (Sarathi-Serve, Agrawal et al. 2024, §4): ``batch`` decodes at the mean context
    and ``chunk`` tokens of a mean prompt in one forward pass of batch + chunk tokens. FLOPs: each decode token's
    at the decode context, each chunk token's at the prompt's causal mean (the chunks of a prompt attend to
    exactly what the whole prompt does): one pass at the token-weighted context (FLOPs are affine in it). Bytes:
    the weights once (every expert when a chunk rides along), every sequence's KV cache, the chunk's KV written
    and the prompt's earlier chunks' KV read once ((P − chunk)/2 tokens on average over its chunks)."""
    b, c = np.asarray(batch, dtype=float), np.asarray(chunk, dtype=float)
    tokens = b + c
    context = (b * x.decode_context + c * x.prefill_attended) / np.maximum(tokens, 1e-12)
    weights = np.where(c > 0, x.prefill_weight_bytes, decode_weight_bytes_at(x, b))
    earlier = np.maximum(x.prompt_tokens - c, 0.0) / 2.0 * np.where(c > 0, 1.0, 0.0)
    kv = b * x.decode_context * x.decode_kv_bytes_per_token + (c + earlier) * x.prefill_kv_bytes_per_token
    return inference.forward_pass(
        x.m, x.hw, x.params, batch=tokens, new_tokens=1.0, context_tokens=context, bytes_moved=weights + kv,
        fixed=x.fixed, **x.common,
    )  # fmt: skip


def prefill_pass(x: PassInputs, batch) -> inference.ForwardPass:
    """The prompt's forward pass for ``batch`` sequences."""
    return inference.prefill(
        x.m, x.hw, x.params, batch=batch, prompt_tokens=x.prompt_tokens, weight_bytes=x.prefill_weight_bytes,
        kv_bytes_per_token=x.prefill_kv_bytes_per_token, attended_tokens=x.prefill_attended, fixed=x.fixed,
        **x.common,
    )  # fmt: skip


def decode_pass(x: PassInputs, batch) -> inference.ForwardPass:
    """One decode step of ``batch`` sequences at the mean context."""
    return inference.decode_step(
        x.m, x.hw, x.params, batch=batch, context_tokens=x.decode_context,
        weight_bytes=decode_weight_bytes_at(x, batch), kv_bytes_per_token=x.decode_kv_bytes_per_token,
        fixed=x.fixed, **x.common,
    )  # fmt: skip
