"""Deployment (inference) estimates with weight quantization (DESIGN §6 `serve`): a thin layer on the core.

request checks → the core's arrays (ModelArrays, HardwareArrays) → bytes from serving_memory.py (quantized
weights, KV cache) → prefill and decode from estimator/inference.py → the report (reports/serve.py).
One grid, vectorised over weight bit widths × tensor-parallel device counts, gives every combination.

Model of a request batch (``b`` sequences, ``P`` prompt tokens, ``T`` output tokens, ``t`` devices):

memory     per device = weights/t + KV/min(t, kv_heads) + runtime allowance   (KV heads are replicated
           once t exceeds them, as vLLM does; an MLA latent is on every device); serving_memory.py
prefill    b·P tokens, each attending causally to (P + 1)/2 tokens (a sliding window caps it): the core's
           forward FLOPs (PaLM App. B), weights read once and the KV cache written, on the roofline with the
           fitted GEMM efficiency of training (inference.py), plus the runtime's fixed cost per forward
decode     b tokens per step at the mean context s̄ = P + T/2: active weights + the whole KV cache read
           once at the runtime's bandwidth for the weight format; memory bound at small b; plus the
           runtime's fixed cost per forward (kernel gaps, launches: runtimes.py, data/runtimes.yaml)
compute    --compute fp8|fp4 (W8A8, W4A4): the variant whose weights are in that format runs its linear GEMMs at
           the profile's fp8/fp4 peak, attention core and head at 16 bit (serving_passes.linear_peak)
tensor     the core's tensor-parallel all-reduces on the link, bandwidth and NCCL latency that training's
parallel   tensor parallelism gets (comms.ring_group)
cost       t · price per device-hour / output tokens per hour (prefill included)

MoE: memory holds every expert; FLOPs and bytes read per token use the active experts only. At a large
batch every expert is read each step, so decode time at large batch is a lower bound for MoE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flopcast.errors import opt
from flopcast.estimator import inference
from flopcast.hardware import HardwareProfile
from flopcast.models import ModelSpec
from flopcast.reports.serve import (
    ServeHardware,
    ServeInputs,
    ServeModel,
    ServeReport,
    ServeRuntime,
    build_variant,
)
from flopcast.runtimes import RuntimeProfile, is_measured
from flopcast.serving_checks import (
    KV_BITS_CHOICES,
    WEIGHT_BITS_CHOICES,
    assumptions,
    check_compute,
    check_request,
    raise_fits_nowhere,
    raise_unsustainable,
    tensor_parallel_degrees,
    warnings_for,
)
from flopcast.serving_lengths import LengthDist, check_dist
from flopcast.serving_load import Load, steady_state
from flopcast.serving_memory import (
    RUNTIME_RESERVE_FRACTION,
    kv_cache_bytes_per_sequence,
    weight_bytes,
)
from flopcast.serving_passes import (
    COMPUTE_WEIGHT_BITS,
    compute_peak,
    core_arrays,
    decode_pass,
    pass_inputs,
    prefill_pass,
    resolve_runtime,
    variant_compute,
)

__all__ = ["KV_BITS_CHOICES", "WEIGHT_BITS_CHOICES", "ServeRequest", "estimate_serving", "serve", "serving_grid",
           "tensor_parallel_degrees", "resolve_runtime"]  # fmt: skip

# --- named constants ------------------------------------------------------------------------------------
# Decode's bandwidth efficiency and the fixed cost per forward pass come from the serving runtime's profile
# (flopcast/data/runtimes.yaml, every value sourced); bit-width choices and checks live in serving_checks.py.
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
    runtime: str | RuntimeProfile | None = None  # None: the default runtime for the device kind
    request_rate: float | None = None  # requests/s (Poisson): continuous batching in steady state (serving_load)
    compute: str = "bf16"  # the linear GEMMs' format: bf16, fp8 (W8A8) or fp4 (W4A4) (serving_passes.COMPUTE_FORMATS)
    chunked_prefill_tokens: int | None = None  # token budget per step under chunked prefill (Sarathi-Serve); None: off
    prompt_dist: str = "fixed"  # prompt lengths under load: fixed, exponential, uniform (serving_lengths.py)
    output_dist: str = "fixed"  # output lengths under load, the same choices

    def lengths(self) -> tuple[LengthDist, LengthDist]:
        """The prompt and output length distributions (means: prompt_tokens, output_tokens)."""
        return LengthDist(self.prompt_dist, self.prompt_tokens), LengthDist(self.output_dist, self.output_tokens)


# --- the grid ----------------------------------------------------------------------------------------
def serving_grid(
    model: ModelSpec,
    profile: HardwareProfile,
    request: ServeRequest,
    bits: np.ndarray,
    devices: np.ndarray,
    runtime: RuntimeProfile | None = None,
) -> dict[str, np.ndarray]:
    """Every figure for every (bit width, device count) pair: arrays of shape (len(bits), len(devices))."""
    runtime = runtime or resolve_runtime(request, profile)
    b_bits = np.asarray(bits, dtype=float)[:, None]
    t = np.asarray(devices, dtype=float)[None, :]
    b, p, n_out = float(request.batch), float(request.prompt_tokens), float(request.output_tokens)
    capacity = profile.memory_bytes
    hw = core_arrays(model, profile)[1]

    # memory: the KV cache of every sequence at its full length (sliding-window layers capped at the window)
    weights, overhead = weight_bytes(model, b_bits, runtime.stored_bits_per_weight)
    tokens = p + n_out
    kv_sequence = kv_cache_bytes_per_sequence(model, tokens, request.kv_bits)
    kv_total = kv_sequence * b
    kv_split = np.minimum(t, float(model.n_kv_heads)) if not model.is_mla else np.ones_like(t)
    reserve = RUNTIME_RESERVE_FRACTION * capacity
    per_device = weights / t + kv_total / kv_split + reserve
    fits = per_device <= capacity
    max_batch = np.floor(np.maximum(capacity - reserve - weights / t, 0.0) / (kv_sequence / kv_split))

    x = pass_inputs(model, profile, request, runtime, b_bits, t, kv_split)
    pre = prefill_pass(x, b)
    step = decode_pass(x, b)
    # the ridge of a MoE model lies at batches whose tokens touch every expert: its weights are all of them
    ridge_weights = x.decode_weight_bytes if x.routed_share >= 1.0 else x.prefill_weight_bytes
    ridge_batch = inference.decode_ridge_batch(
        x.m, x.hw, x.params, context_tokens=x.decode_context, weight_bytes=ridge_weights,
        kv_bytes_per_token=x.decode_kv_bytes_per_token, **x.common,
    )  # fmt: skip
    context, eta_b = x.context, x.common["bandwidth_efficiency"]
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
        "prefill_overhead_seconds": pre.overhead_seconds,
        "step_seconds": step.seconds,
        "step_flops": step.flops,
        "step_bytes": step.bytes_moved,
        "decode_compute_bound": step.compute_bound,
        "decode_matmul_efficiency": step.matmul_efficiency,
        "step_overhead_seconds": step.overhead_seconds,
        "bandwidth_efficiency": eta_b,
        "ridge_batch": ridge_batch,
        "step_comm_seconds": step.comm_seconds,
        "request_seconds": request_seconds,
        "output_tokens_per_second": output_tokens_per_second,
        "link_bandwidth": link_bw,
        "context": context,
    }
    return {k: np.broadcast_to(np.asarray(v, dtype=float), shape) for k, v in full.items()}


def _load(model, profile, request, runtime, wbits: int, devices: int, max_batch: float) -> Load:
    """The steady state under ``request.request_rate`` for one weight format on ``devices`` devices."""
    t = np.array([[float(devices)]])
    kv_split = np.ones_like(t) if model.is_mla else np.minimum(t, float(model.n_kv_heads))
    x = pass_inputs(model, profile, request, runtime, np.array([[float(wbits)]]), t, kv_split)
    prompt_dist, output_dist = request.lengths()
    return steady_state(x, request.request_rate, request.output_tokens, max_batch,
                        chunk_tokens=request.chunked_prefill_tokens, prompt_dist=prompt_dist,
                        output_dist=output_dist)  # fmt: skip


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
    weights=None,
    compute="bf16",
    kv_bits=16,
    batch=1,
    prompt_tokens=512,
    output_tokens=256,
    price_tier: str | None = None,
    price_per_hour=None,
    matmul_efficiency=None,
    bandwidth_efficiency=None,
    runtime=None,
    request_rate=None,
    chunked_prefill=None,
    prompt_dist=None,
    output_dist=None,
    seq_len=None,
    profiles=None,
    storage=None,
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

    compute = "bf16" if compute is None else str(compute).strip().lower()
    if weights is None:  # the compute format's own width (W8A8, W4A4), else 16-bit weights
        weights = COMPUTE_WEIGHT_BITS.get(compute, 16)
    request = ServeRequest(
        compute=compute,
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
        runtime=runtime if runtime is None or isinstance(runtime, RuntimeProfile) else str(runtime),
        request_rate=None if request_rate is None else parse_count(request_rate, what=opt("request_rate")),
        chunked_prefill_tokens=count(chunked_prefill, "chunked_prefill"),
        prompt_dist=check_dist(prompt_dist, 1, "prompt_dist").kind,
        output_dist=check_dist(output_dist, 1, "output_dist").kind,
    )
    spec = resolve_model(model, seq_len, architecture)
    tier = None
    if storage is not None:
        from flopcast.storage import get_tier

        tier = get_tier(storage)
    profile = resolve_hardware(required(hardware, "hardware", "a100-80gb"), profiles)
    report = estimate_serving(spec, profile, request)
    return report if tier is None else with_weights_load(report, profile, tier)


def with_weights_load(report: ServeReport, profile: HardwareProfile, tier) -> ServeReport:
    """``report`` with the start-up load of its weights from ``tier`` (every node reads its devices' share)."""
    import math

    from flopcast.estimator.checkpoint import transfer_seconds
    from flopcast.reports.serve import ServeWeightsLoad

    weights = report.memory.weights_bytes
    nodes = max(1, math.ceil(report.devices / max(profile.devices_per_node, 1)))
    seconds = transfer_seconds(weights, nodes, tier.read_bytes_per_s_per_node, tier.aggregate(weights))
    load = ServeWeightsLoad(tier=tier.id, weights_bytes=weights, nodes=nodes, load_seconds=seconds,
                            sources=list(tier.sources))  # fmt: skip
    return report.model_copy(update={"weights_load": load})


# --- the report --------------------------------------------------------------------------------------
def estimate_serving(model: ModelSpec, profile: HardwareProfile, request: ServeRequest) -> ServeReport:
    """Memory, prefill, decode and cost of serving ``model`` on ``profile`` at 16/8/4-bit weights.

    Raises :class:`InvalidValue` / :class:`InvalidLayout` (exit 2) for bad input and when the chosen bit width
    fits on no number of devices; a ``--devices`` count that is too small gives a report with ``fits`` false
    and ``devices_needed`` set instead.
    """
    runtime = resolve_runtime(request, profile)
    check_request(model, request, runtime)
    check_compute(profile, request, runtime)
    candidates = tensor_parallel_degrees(model)
    formats = runtime.weight_bits  # one variant per weight format the runtime has kernels for
    bits = np.array(formats, dtype=float)
    grid = serving_grid(model, profile, request, bits, np.array(candidates, dtype=float), runtime)
    tiers, tier, cost_note = _prices(profile, request)
    warnings: list[str] = []

    variants = []
    for row, wbits in enumerate(formats):
        fitting = np.flatnonzero(grid["fits"][row] > 0)
        needed = candidates[int(fitting[0])] if fitting.size else None
        if wbits == request.weights_bits and needed is None:
            raise_fits_nowhere(model, profile, request, grid, row, candidates)
        devices = request.devices if request.devices is not None else (needed or candidates[-1])
        col = candidates.index(devices)
        load = None
        if request.request_rate is not None:
            load = _load(model, profile, request, runtime, wbits, devices, float(grid["max_batch_that_fits"][row, col]))
        variants.append(
            build_variant(
                {k: float(v[row, col]) for k, v in grid.items()},
                load=load,
                weights_bits=wbits,
                compute_dtype=variant_compute(request, wbits),
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
    if chosen.load is not None and not chosen.load.sustainable:
        raise_unsustainable(model, profile, request, chosen, variants)
    warnings += warnings_for(model, profile, request, chosen)
    dtype, peak = compute_peak(profile)
    if chosen.compute_dtype != "bf16":  # the chosen variant's linear GEMMs run at the low-bit peak
        dtype, peak = chosen.compute_dtype, float(profile.peak_flops_per_s.get(chosen.compute_dtype))
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
            runtime=runtime.id,
            request_rate_per_s=request.request_rate,
            compute=request.compute,
            chunked_prefill_tokens=request.chunked_prefill_tokens,
            prompt_dist=request.prompt_dist,
            output_dist=request.output_dist,
        ),
        runtime=ServeRuntime.of(runtime, model.layers, is_measured(profile)),
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
        load=chosen.load,
        variants=variants,
        assumptions=assumptions(model, profile, request, chosen, runtime, is_measured(profile)),
        warnings=warnings,
    )
