"""Deployment (inference) estimates with weight quantization (DESIGN §6 `serve`): a thin layer on the core.

request checks → the core's arrays (ModelArrays, HardwareArrays) → bytes from serving_memory.py (quantized
weights, KV cache) → prefill and decode from estimator/inference.py → the report (reports/serve.py).
One grid, vectorised over weight bit widths × tensor-parallel device counts, gives every combination.

Model of a request batch (``b`` sequences, ``P`` prompt tokens, ``T`` output tokens, ``t`` devices):

memory     per device = weights/t + KV/min(t, kv_heads) + runtime allowance   (KV heads are replicated
           once t exceeds them, as vLLM does); weights and KV cache: serving_memory.py
prefill    b·P tokens attending to P: the core's forward FLOPs (PaLM App. B), weights read once and the KV
           cache written, on the roofline with the fitted GEMM efficiency of training (inference.py)
decode     b tokens per step at the mean context s̄ = P + T/2: active weights + the whole KV cache read
           once; memory bound at small b
tensor     the core's tensor-parallel all-reduces on the link, bandwidth and NCCL latency that training's
parallel   tensor parallelism gets (comms.ring_group)
cost       t · price per device-hour / output tokens per hour (prefill included)

MoE: memory holds every expert; FLOPs and bytes read per token use the active experts only. At a large
batch every expert is read each step, so decode time at large batch is a lower bound for MoE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flopcast.errors import InvalidLayout, InvalidValue, opt
from flopcast.estimator import inference
from flopcast.estimator.arrays import HardwareArrays, ModelArrays
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.hardware import HardwareProfile
from flopcast.models import ModelSpec
from flopcast.reports.serve import (
    ServeHardware,
    ServeInputs,
    ServeModel,
    ServeReport,
    ServeVariant,
    build_variant,
)
from flopcast.serving_memory import (
    QUANT_GROUP_SIZE,
    RUNTIME_RESERVE_FRACTION,
    kv_cache_bytes_per_token,
    weight_bytes,
    weights_read_bytes,
)

# --- named constants ------------------------------------------------------------------------------------
WEIGHT_BITS_CHOICES = (16, 8, 4)  # 16-bit (bf16/fp16), 8-bit and 4-bit weight-only quantization
KV_BITS_CHOICES = (16, 8)  # fp16/bf16 KV cache or an 8-bit (fp8/int8) one (vLLM kv_cache_dtype="fp8")
# Fraction of datasheet memory bandwidth a tuned decode step achieves ("model bandwidth utilisation"):
# gpt-fast (pytorch-labs/gpt-fast README, "AMD" table) decodes Llama-2-7B at batch 1 on one MI250X GCD at
# 76.33 tokens/s, moving 1,028.70 GB/s of model bytes, of the 1,638.4 GB/s of one GCD (AMD MI250X datasheet:
# 3.2768 TB/s for its two GCDs): 0.628. Checked on other hardware: gpt-fast on an A100-80GB, 104.9 tokens/s
# (we predict 96.8, -8%); a CUDA-graph PyTorch decode on an H200, batch 1-64 (tests/test_serve_gpu.py):
# within -3%..+17%. A streaming read kernel reaches more (88% on an A100, NVIDIA developer forum "Trouble to
# reach peak bandwidth of A100"): decode adds small kernels, norms and attention. A profile measured by
# `flopcast bench` holds a sustained bandwidth already: pass bandwidth_efficiency=1 for it.
DECODE_BANDWIDTH_EFFICIENCY = 0.63

DEFAULT_PRICE_TIER = "on-demand"
CUSTOM_PRICE_TIER = "custom"


@dataclass(frozen=True)
class ServeRequest:
    """What to serve: precision, batch and tokens, device count (None = fewest that fit), price."""

    weights_bits: int = 16
    kv_bits: int = 16
    batch: int = 1
    prompt_tokens: int = 512
    output_tokens: int = 256
    devices: int | None = None
    price_tier: str | None = None
    price_per_hour_usd: float | None = None
    matmul_efficiency: float | None = None
    bandwidth_efficiency: float | None = None


# --- tensor-parallel degrees ----------------------------------------------------------------------
def tensor_parallel_degrees(model: ModelSpec) -> list[int]:
    """Device counts tensor parallelism can split this model over: the degree must divide the attention heads
    (Megatron-LM; vLLM checks ``num_attention_heads % tensor_parallel_size == 0``), and the KV heads must divide
    over the devices or be replicated whole (``kv_heads % t == 0`` or ``t % kv_heads == 0``, vLLM)."""
    kv = model.n_kv_heads
    return [t for t in range(1, model.heads + 1) if model.heads % t == 0 and (kv % t == 0 or t % kv == 0)]


def compute_peak(profile: HardwareProfile) -> tuple[str, float]:
    """Weight-only quantization (W8A16, W4A16) dequantizes to 16 bit and multiplies in 16 bit, so every bit
    width runs at the 16-bit peak: bf16, else fp16, else fp32 (CPUs), else fp64."""
    return profile.peak_flops_per_s.for_training()


# --- the grid ----------------------------------------------------------------------------------------
def core_arrays(
    model: ModelSpec, profile: HardwareProfile, params: EfficiencyParams | None = None
) -> tuple[ModelArrays, HardwareArrays, EfficiencyParams]:
    """The estimator core's arrays for one model on one profile, at the 16-bit peak (compute_peak)."""
    params = params or EfficiencyParams.load()
    dtype, _ = compute_peak(profile)
    hw = HardwareArrays.from_profiles([profile], precision=dtype, tier=None, params=params)
    return ModelArrays.from_specs([model]), hw, params


def serving_grid(
    model: ModelSpec, profile: HardwareProfile, request: ServeRequest, bits: np.ndarray, devices: np.ndarray
) -> dict[str, np.ndarray]:
    """Every figure for every (bit width, device count) pair: arrays of shape (len(bits), len(devices))."""
    b_bits = np.asarray(bits, dtype=float)[:, None]
    t = np.asarray(devices, dtype=float)[None, :]
    b, p, n_out = float(request.batch), float(request.prompt_tokens), float(request.output_tokens)
    capacity = profile.memory_bytes
    m, hw, params = core_arrays(model, profile)
    eta_b = _bandwidth_efficiency(request)
    fixed_eta = request.matmul_efficiency

    # memory
    weights, overhead = weight_bytes(model, b_bits)
    kv_token = kv_cache_bytes_per_token(model, request.kv_bits)
    tokens = p + n_out
    kv_total = kv_token * tokens * b
    kv_split = np.minimum(t, float(model.n_kv_heads))
    reserve = RUNTIME_RESERVE_FRACTION * capacity
    per_device = weights / t + kv_total / kv_split + reserve
    fits = per_device <= capacity
    kv_per_sequence = kv_token * tokens / kv_split
    max_batch = np.floor(np.maximum(capacity - reserve - weights / t, 0.0) / kv_per_sequence)

    # weight bytes a forward pass reads: the prompt's batch of tokens reads every expert, a decode step
    # the active ones (a lower bound at large batch, see the MoE note above)
    read_all = weights_read_bytes(model, b_bits, active=False)
    read_active = weights_read_bytes(model, b_bits, active=True)
    kv_token_per_device = kv_token / kv_split

    # the core: prefill, one decode step for the whole batch at the mean context, the decode ridge batch
    common = dict(
        tp=t, kv_bytes_per_token=kv_token_per_device, bandwidth_efficiency=eta_b, fixed_matmul_efficiency=fixed_eta
    )
    pre = inference.prefill(m, hw, params, batch=b, prompt_tokens=p, weight_bytes=read_all / t, **common)
    context = p + n_out / 2.0
    step = inference.decode_step(m, hw, params, batch=b, context_tokens=context, weight_bytes=read_active / t, **common)
    ridge_batch = inference.decode_ridge_batch(
        m, hw, params, context_tokens=context, weight_bytes=read_active / t, **common
    )
    link_bw = inference.tensor_parallel_group(hw, t).bandwidth_bytes_per_s

    # request
    request_seconds = pre.seconds + (n_out - 1.0) * step.seconds
    output_tokens_per_second = b * n_out / request_seconds

    shape = np.broadcast_shapes(b_bits.shape, t.shape)
    full = {
        "weights_bytes": weights,
        "quantization_overhead_bytes": overhead,
        "kv_cache_bytes": kv_total,
        "runtime_allowance_bytes": reserve,
        "per_device_bytes": per_device,
        "fits": fits,
        "max_batch_that_fits": max_batch,
        "prefill_flops": pre.flops,
        "prefill_seconds": pre.seconds,
        "prefill_compute_bound": pre.compute_bound,
        "prefill_comm_seconds": pre.comm_seconds,
        "prefill_matmul_efficiency": pre.matmul_efficiency,
        "step_seconds": step.seconds,
        "step_flops": step.flops,
        "step_bytes": step.bytes_moved,
        "decode_compute_bound": step.compute_bound,
        "decode_matmul_efficiency": step.matmul_efficiency,
        "ridge_batch": ridge_batch,
        "step_comm_seconds": step.comm_seconds,
        "request_seconds": request_seconds,
        "output_tokens_per_second": output_tokens_per_second,
        "link_bandwidth": link_bw,
        "context": context,
    }
    return {k: np.broadcast_to(np.asarray(v, dtype=float), shape) for k, v in full.items()}


def _bandwidth_efficiency(request: ServeRequest) -> float:
    if request.bandwidth_efficiency is not None:
        return request.bandwidth_efficiency
    return DECODE_BANDWIDTH_EFFICIENCY


# --- validation --------------------------------------------------------------------------------------
def _check_request(model: ModelSpec, request: ServeRequest) -> None:
    if request.weights_bits not in WEIGHT_BITS_CHOICES:
        raise InvalidValue(
            f"{opt('weights')} {request.weights_bits}: unsupported weight bit width", hint="use 16, 8 or 4"
        )
    if request.kv_bits not in KV_BITS_CHOICES:
        raise InvalidValue(f"{opt('kv_bits')} {request.kv_bits}: unsupported KV-cache bit width", hint="use 16 or 8")
    for what, value in (
        (opt("batch"), request.batch),
        (opt("prompt_tokens"), request.prompt_tokens),
        (opt("output_tokens"), request.output_tokens),
    ):
        if not isinstance(value, int) or value < 1:
            raise InvalidValue(f"{what}: {value!r} must be a whole number ≥ 1", hint="give a positive value")
    for what, value in (
        (opt("matmul_efficiency"), request.matmul_efficiency),
        (opt("bandwidth_efficiency"), request.bandwidth_efficiency),
    ):
        if value is not None and not (0 < value <= 1):
            raise InvalidValue(f"{what}: {value!r} is outside (0, 1]", hint="give a fraction such as 0.8")
    if request.price_per_hour_usd is not None and not (request.price_per_hour_usd > 0):
        raise InvalidValue(
            f"{opt('price_per_hour')}: {request.price_per_hour_usd!r} must be positive", hint="give a price such as 2.5"
        )
    if request.devices is not None:
        if request.devices < 1:
            raise InvalidValue(f"{opt('devices')}: {request.devices!r} must be ≥ 1", hint="give a positive count")
        allowed = tensor_parallel_degrees(model)
        if request.devices not in allowed:
            raise InvalidLayout(
                f"{opt('devices')} {request.devices}: tensor parallelism splits {model.name}'s {model.heads} attention "
                f"heads ({model.n_kv_heads} KV heads), so the device count must divide them",
                hint=f"use one of {', '.join(map(str, allowed))}",
            )


def _prices(profile: HardwareProfile, request: ServeRequest) -> tuple[dict[str, float], str | None, str | None]:
    """(price per device-hour by tier, the chosen tier, a note on how it was chosen or why cost is omitted):
    the one price rule of every front door (:func:`flopcast.request.price_for`)."""
    from flopcast.request import price_for

    price = price_for(profile, request.price_tier, request.price_per_hour_usd)
    tiers = {tier: p.usd_per_device_hour for tier, p in profile.prices_usd_per_device_hour.items()}
    if price.custom:
        tiers[price.tier] = price.usd_per_device_hour
    return tiers, price.tier, "; ".join(price.warnings) or None


def serve(
    model=None,
    hardware=None,
    *,
    devices=None,
    weights=16,
    kv_bits=16,
    batch=1,
    prompt_tokens=512,
    output_tokens=256,
    price_tier: str | None = None,
    price_per_hour=None,
    matmul_efficiency=None,
    bandwidth_efficiency=None,
    seq_len=None,
    profiles=None,
    **architecture,
) -> ServeReport:
    """Serve ``model`` on ``hardware`` (library entry point, the same calling convention as
    ``flopcast.estimate``: numbers or strings with units); returns the :class:`ServeReport`."""
    from flopcast.request import required, resolve_hardware, resolve_model
    from flopcast.units import parse_count, parse_int, parse_usd

    def count(value, name):
        return None if value is None else parse_int(value, what=opt(name))

    def fraction(value, name):
        return None if value is None else parse_count(value, what=opt(name))

    request = ServeRequest(
        weights_bits=count(weights, "weights"),
        kv_bits=count(kv_bits, "kv_bits"),
        batch=count(batch, "batch"),
        prompt_tokens=count(prompt_tokens, "prompt_tokens"),
        output_tokens=count(output_tokens, "output_tokens"),
        devices=count(devices, "devices"),
        price_tier=None if price_tier is None else str(price_tier).strip().lower(),
        price_per_hour_usd=None if price_per_hour is None else parse_usd(price_per_hour, what=opt("price_per_hour")),
        matmul_efficiency=fraction(matmul_efficiency, "matmul_efficiency"),
        bandwidth_efficiency=fraction(bandwidth_efficiency, "bandwidth_efficiency"),
    )
    spec = resolve_model(model, seq_len, architecture)
    return estimate_serving(spec, resolve_hardware(required(hardware, "hardware", "a100-80gb"), profiles), request)


# --- the report --------------------------------------------------------------------------------------
def estimate_serving(model: ModelSpec, profile: HardwareProfile, request: ServeRequest) -> ServeReport:
    """Memory, prefill, decode and cost of serving ``model`` on ``profile`` at 16/8/4-bit weights.

    Raises :class:`InvalidValue` / :class:`InvalidLayout` (exit 2) for bad input and when the chosen bit width
    fits on no number of devices; a ``--devices`` count that is too small gives a report with ``fits`` false
    and ``devices_needed`` set instead.
    """
    _check_request(model, request)
    candidates = tensor_parallel_degrees(model)
    bits = np.array(WEIGHT_BITS_CHOICES, dtype=float)
    grid = serving_grid(model, profile, request, bits, np.array(candidates, dtype=float))
    tiers, tier, cost_note = _prices(profile, request)
    warnings: list[str] = []

    variants = []
    for row, wbits in enumerate(WEIGHT_BITS_CHOICES):
        fitting = np.flatnonzero(grid["fits"][row] > 0)
        needed = candidates[int(fitting[0])] if fitting.size else None
        if wbits == request.weights_bits and needed is None:
            _raise_fits_nowhere(model, profile, request, grid, row, candidates)
        devices = request.devices if request.devices is not None else (needed or candidates[-1])
        col = candidates.index(devices)
        variants.append(
            build_variant(
                {k: float(v[row, col]) for k, v in grid.items()},
                weights_bits=wbits,
                devices=devices,
                devices_needed=needed,
                devices_per_node=profile.devices_per_node,
                capacity_bytes=profile.memory_bytes,
                batch=request.batch,
                tiers=tiers,
                tier=tier,
                cost_note=cost_note,
            )
        )

    chosen = next(v for v in variants if v.weights_bits == request.weights_bits)
    warnings += _warnings(model, profile, request, chosen)
    dtype, peak = compute_peak(profile)
    return ServeReport(
        inputs=ServeInputs(
            model=model.name,
            hardware=profile.id,
            devices=request.devices,
            weights_bits=request.weights_bits,
            kv_bits=request.kv_bits,
            batch=request.batch,
            prompt_tokens=request.prompt_tokens,
            output_tokens=request.output_tokens,
            price_tier=request.price_tier,
            price_per_hour_usd=request.price_per_hour_usd,
        ),
        model=ServeModel.of(model),
        hardware=ServeHardware.of(profile, dtype, peak),
        devices=chosen.devices,
        weights_bits=chosen.weights_bits,
        memory=chosen.memory,
        prefill=chosen.prefill,
        decode=chosen.decode,
        request_seconds=chosen.request_seconds,
        output_tokens_per_second=chosen.output_tokens_per_second,
        cost=chosen.cost,
        variants=variants,
        assumptions=_assumptions(model, profile, request, chosen),
        warnings=warnings,
    )


def _raise_fits_nowhere(model, profile, request, grid, row, candidates) -> None:
    most = candidates[-1]
    need = float(grid["per_device_bytes"][row, -1])
    raise InvalidValue(
        f"{model.name} with {request.weights_bits}-bit weights, batch {request.batch} × "
        f"{request.prompt_tokens + request.output_tokens} tokens fits on no number of {profile.id}: even split over "
        f"{most} devices (the most its {model.heads} heads allow) it needs {need / 1e9:.3g} GB per device of "
        f"{profile.memory_bytes / 1e9:.3g} GB",
        hint=f"lower {opt('batch')} or the tokens, use {opt('kv_bits')} 8 or fewer {opt('weights')} bits, or hardware "
        "with more memory",
    )


def _warnings(model, profile, request, chosen: ServeVariant) -> list[str]:
    out = []
    m = chosen.memory
    if not m.fits:
        out.append(
            f"does not fit: {m.per_device_bytes / 1e9:.3g} GB per device on {chosen.devices} × {profile.id} "
            f"({m.capacity_bytes / 1e9:.3g} GB); it fits on {m.devices_needed} devices"
        )
    if request.prompt_tokens + request.output_tokens > model.seq_len:
        out.append(
            f"prompt + output tokens ({request.prompt_tokens + request.output_tokens}) exceed "
            f"{model.name}'s context of {model.seq_len} tokens"
        )
    if chosen.devices > 1:
        link = (
            profile.intra_node_bandwidth_bytes_per_s
            if chosen.link == "intra-node"
            else profile.inter_node_bandwidth_bytes_per_s
        )
        if link is None:
            out.append(
                f"{profile.id} publishes no {chosen.link} bandwidth: its all-reduces assume "
                f"{chosen.link_bandwidth_bytes_per_s / 1e9:.3g} GB/s per device, as `estimate` does"
            )
        if chosen.link == "inter-node":
            out.append(
                f"tensor parallelism over {chosen.devices} devices spans nodes of {profile.devices_per_node}: "
                "its all-reduces run on the inter-node link"
            )
    if model.experts > 1:
        out.append(
            "MoE: memory holds all experts, but FLOPs and bytes read per token use the active experts "
            "only; at a large batch every expert is read each step, so decode time is a lower bound"
        )
    return out


def _assumptions(model, profile, request, chosen: ServeVariant) -> list[str]:
    eta_b = _bandwidth_efficiency(request)
    if request.matmul_efficiency is not None:
        eta_c_src = "given"
    else:
        params = EfficiencyParams.load()
        ceiling, calibrated = params.gemm_ceiling_for(profile)
        eta_c_src = (
            f"fitted GEMM curve as in training: ceiling {ceiling:.3g}"
            f"{'' if calibrated else ' (not calibrated on this hardware family)'}, half-efficiency width "
            f"{params.gemm_half_width:.3g} for d/t and for the tokens per pass; fitted {params.fitted_date} on "
            "training runs, flopcast/data/efficiency_fit.json"
        )
    eta_b_src = (
        "given"
        if request.bandwidth_efficiency is not None
        else "decode bandwidth utilisation of gpt-fast's Llama-2-7B on an MI250X GCD, 1028.7 of 1638.4 GB/s"
    )
    return [
        f"matmul efficiency: prefill {chosen.prefill.matmul_efficiency:.3g}, decode "
        f"{chosen.decode.matmul_efficiency:.3g} ({eta_c_src})",
        f"memory bandwidth efficiency {eta_b:g} ({eta_b_src})",
        f"quantized weights: fp16 scale + zero point per group of {QUANT_GROUP_SIZE} (GPTQ/AWQ); embeddings, "
        "LM head and norms stay 16-bit; matmuls run in 16-bit (weight-only quantization)",
        f"runtime allowance {RUNTIME_RESERVE_FRACTION:.0%} of device memory (vLLM gpu_memory_utilization=0.9)",
        "decode time per token at the mean context (prompt + output/2); prefill attention FLOPs count the full "
        "P² (PaLM convention; causal kernels do about half)",
        f"tensor parallel: {inference.TP_ALL_REDUCES_PER_FORWARD_LAYER} all-reduces per layer (Megatron-LM), "
        "placed on the intra- or inter-node link and timed with NCCL's ring/tree latency model exactly as "
        "`estimate` times training's; KV heads replicated past kv_heads",
        "time to first token = prefill time (no queueing); cost per output token includes the prefill",
    ]
