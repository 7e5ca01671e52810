"""Deployment (inference) estimates with weight quantization (DESIGN §6 `serve`).

One grid, vectorised over weight bit widths × tensor-parallel device counts (numpy broadcasting), gives
memory, prefill, decode, communication and cost for every combination; the report picks the rows it needs.

Model of a request batch (``b`` sequences, ``P`` prompt tokens, ``T`` output tokens, ``t`` devices):

memory     weights  = quantized layer matmuls · (bits/8 + group-scale overhead) + the rest at 16 bit
                      (embeddings, LM head, norms: GPTQ/AWQ checkpoints keep them in fp16)
           KV cache = 2·L·kv_heads·head_dim·(P+T)·b·kv_bits/8
           per device = weights/t + KV/min(t, kv_heads) + runtime allowance   (KV heads are replicated
           once t exceeds them, as vLLM does)
prefill    FLOPs = b·P·(2·N_matmul + 4·L·(heads·head_dim)·P) / t     (PaLM App. B forward convention)
           bytes = weights read once + KV written; on the roofline, compute bound for long prompts
decode     per step FLOPs = b·(2·N_matmul + 4·L·(heads·head_dim)·s̄) / t, s̄ = P + T/2 (mean context)
           per step bytes = active weights + the whole KV cache read once; memory bound at small b
tensor     2 all-reduces per layer per forward (Megatron-LM, Shoeybi et al. 2019) of b·tokens·d 16-bit
parallel   activations, on the intra-node link when t ≤ devices per node, else the inter-node link
cost       t · price per device-hour / output tokens per hour (prefill included)

MoE: memory holds every expert; FLOPs and bytes read per token use the active experts only. At a large
batch every expert is read each step, so decode time at large batch is a lower bound for MoE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flopcast.errors import InvalidLayout, InvalidValue
from flopcast.estimator.comms import all_reduce_seconds, group_bandwidth_bytes_per_s
from flopcast.estimator.roofline import ridge_point_flops_per_byte, roofline_seconds
from flopcast.hardware import HardwareProfile
from flopcast.models import ModelSpec
from flopcast.reports.serve import (
    ServeCost,
    ServeDecode,
    ServeHardware,
    ServeInputs,
    ServeMemory,
    ServeModel,
    ServePrefill,
    ServeReport,
    ServeVariant,
)
from flopcast.units import SECONDS_PER_HOUR

# --- named constants ------------------------------------------------------------------------------------
WEIGHT_BITS_CHOICES = (16, 8, 4)  # 16-bit (bf16/fp16), 8-bit and 4-bit weight-only quantization
KV_BITS_CHOICES = (16, 8)  # fp16/bf16 KV cache or an 8-bit (fp8/int8) one (vLLM kv_cache_dtype="fp8")
UNQUANTIZED_BITS = 16
BITS_PER_BYTE = 8

# Group-wise weight quantization, GPTQ (Frantar et al. 2022) and AWQ (Lin et al. 2023) as AutoGPTQ/AutoAWQ
# ship them: one fp16 scale and one zero point (packed at the weight's own width, `qzeros`) per group of
# 128 input weights. Check: TheBloke/Llama-2-7B-GPTQ gptq_model-4bit-128g.safetensors is 3.9 GB
# (huggingface.co/TheBloke/Llama-2-7B-GPTQ), our formula gives 3.89 GB.
QUANT_GROUP_SIZE = 128
QUANT_SCALE_BITS = 16

# Activations exchanged by tensor-parallel all-reduces are 16-bit.
ACTIVATION_BYTES = 2
# Megatron-LM tensor parallelism: one all-reduce after attention and one after the MLP per forward pass
# (Shoeybi et al. 2019, §3).
TP_ALL_REDUCES_PER_LAYER = 2
# A decode all-reduce moves only b·d·2 bytes, so its latency dominates: ~6 µs for 128 B–64 KiB all-reduces
# on 2 NVLink-connected H100s with CUDA graphs (nccl-tests all_reduce_perf, github.com/NVIDIA/nccl/issues/1259).
ALL_REDUCE_LATENCY_SECONDS = 6e-6

# Runtime allowance per device: vLLM's default gpu_memory_utilization=0.9 leaves 10% of device memory for
# the CUDA context, activations, sampling and non-torch allocations (vLLM EngineArgs). Applied to every
# device kind (on a CPU the same headroom stands for the OS and the runtime: a rationale, not a measurement).
RUNTIME_RESERVE_FRACTION = 0.10

# Fraction of datasheet memory bandwidth a tuned decode step achieves ("model bandwidth utilisation"):
# gpt-fast (pytorch-labs/gpt-fast README, "AMD" table) decodes Llama-2-7B at batch 1 on one MI250X GCD at
# 76.33 tokens/s, moving 1,028.70 GB/s of model bytes, of the 1,638.4 GB/s of one GCD (AMD MI250X datasheet:
# 3.2768 TB/s for its two GCDs): 0.628. Checked on other hardware: gpt-fast on an A100-80GB, 104.9 tokens/s
# (we predict 96.8, -8%); a CUDA-graph PyTorch decode on an H200, batch 1-64 (tests/test_serve_gpu.py):
# within -3%..+17%. A streaming read kernel reaches more (88% on an A100, NVIDIA developer forum "Trouble to
# reach peak bandwidth of A100"): decode adds small kernels, norms and attention. A profile measured by
# `flopcast bench` holds a sustained bandwidth already: pass bandwidth_efficiency=1 for it.
DECODE_BANDWIDTH_EFFICIENCY = 0.63

# Matmul efficiency when the profile carries no calibrated one: the low end of the model-FLOPs utilisation
# MosaicML measured for 7B and 70B models on A100-40/80GB in bf16 (0.49–0.64, llm-foundry
# scripts/train/benchmarking/README.md, rows mpt-* of shared/data/calibration_runs.csv).
DEFAULT_MATMUL_EFFICIENCY = 0.5

# Forward FLOPs per token (PaLM, Chowdhery et al. 2022, App. B: training 6·N + 12·L·d·s, forward a third):
MATMUL_FLOPS_PER_PARAM = 2  # one multiply-add per weight per token
ATTENTION_FLOPS_PER_LAYER_WIDTH_TOKEN = 4  # QKᵀ and AV: 2 matmuls × 2 FLOPs, per layer, per width, per context

DEFAULT_PRICE_TIER = "on-demand"
CUSTOM_PRICE_TIER = "custom"
TOKENS_PER_MILLION = 1e6


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


# --- building blocks (each broadcasts over numpy arrays) -----------------------------------------------
def bytes_per_quantized_weight(bits: np.ndarray | int) -> np.ndarray:
    """Bytes per weight of a quantized matmul: bits/8, plus (scale + zero point) / group for bits < 16."""
    bits = np.asarray(bits, dtype=float)
    overhead_bits = np.where(bits < UNQUANTIZED_BITS, (QUANT_SCALE_BITS + bits) / QUANT_GROUP_SIZE, 0.0)
    return (bits + overhead_bits) / BITS_PER_BYTE


def quantized_params(model: ModelSpec, *, active: bool = False) -> int:
    """Weights of the transformer blocks' matmuls (attention + MLP experts): the ones GPTQ/AWQ quantize."""
    experts = model.active_experts if active else model.experts
    return model.layers * (model.attention_params_per_layer + experts * model.ffn_params_per_expert)


def weight_bytes(model: ModelSpec, bits: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """(all weights in bytes, of which quantization scales/zeros) at ``bits``-bit matmul weights."""
    q = float(quantized_params(model))
    kept = float(model.params) - q
    per_weight = bytes_per_quantized_weight(bits)
    total = q * per_weight + kept * UNQUANTIZED_BITS / BITS_PER_BYTE
    overhead = q * (per_weight - np.asarray(bits, dtype=float) / BITS_PER_BYTE)
    return total, overhead


def kv_cache_bytes_per_token(model: ModelSpec, kv_bits: int) -> float:
    """K and V of every layer for one token of one sequence: 2·L·kv_heads·head_dim·kv_bits/8 bytes."""
    return 2.0 * model.layers * model.n_kv_heads * model.dim_head * kv_bits / BITS_PER_BYTE


def kv_cache_bytes(model: ModelSpec, tokens: int, batch: int, kv_bits: int) -> float:
    """The KV cache of ``batch`` sequences of ``tokens`` tokens: 2·L·kv_heads·head_dim·s·b·bytes."""
    return kv_cache_bytes_per_token(model, kv_bits) * tokens * batch


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
def serving_grid(
    model: ModelSpec, profile: HardwareProfile, request: ServeRequest, bits: np.ndarray, devices: np.ndarray
) -> dict[str, np.ndarray]:
    """Every figure for every (bit width, device count) pair: arrays of shape (len(bits), len(devices))."""
    b_bits = np.asarray(bits, dtype=float)[:, None]
    t = np.asarray(devices, dtype=float)[None, :]
    b, p, n_out = float(request.batch), float(request.prompt_tokens), float(request.output_tokens)
    layers, d, width = float(model.layers), float(model.d_model), float(model.attn_width)
    capacity = profile.memory_bytes
    _, peak = compute_peak(profile)
    bandwidth = profile.memory_bandwidth_bytes_per_s
    eta_c = _matmul_efficiency(profile, request)
    eta_b = request.bandwidth_efficiency if request.bandwidth_efficiency is not None else DECODE_BANDWIDTH_EFFICIENCY

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

    # bytes of weights one forward pass reads: quantized block matmuls + the 16-bit LM head (V·d)
    head_bytes = float(model.vocab * model.d_model) * UNQUANTIZED_BITS / BITS_PER_BYTE
    per_weight = bytes_per_quantized_weight(b_bits)
    read_all = float(quantized_params(model)) * per_weight + head_bytes
    read_active = float(quantized_params(model, active=True)) * per_weight + head_bytes

    # tensor-parallel link
    link_bw = group_bandwidth_bytes_per_s(
        t,
        profile.devices_per_node,
        _or_inf(profile.intra_node_bandwidth_bytes_per_s),
        _or_inf(profile.inter_node_bandwidth_bytes_per_s),
    )
    latency = np.where(t > 1, ALL_REDUCE_LATENCY_SECONDS, 0.0)
    collectives = TP_ALL_REDUCES_PER_LAYER * layers

    # prefill
    matmul_flops_per_token = MATMUL_FLOPS_PER_PARAM * float(model.matmul_params)
    prefill_flops = b * p * (matmul_flops_per_token + ATTENTION_FLOPS_PER_LAYER_WIDTH_TOKEN * layers * width * p) / t
    prefill_bytes = read_all / t + b * p * kv_token / kv_split
    prefill_compute, prefill_compute_bound = _roofline(prefill_flops, prefill_bytes, peak, bandwidth, eta_c, eta_b)
    prefill_comm = collectives * (all_reduce_seconds(b * p * d * ACTIVATION_BYTES, t, link_bw) + latency)
    prefill_seconds = prefill_compute + prefill_comm

    # decode, one step for the whole batch at the mean context
    context = p + n_out / 2.0
    flops_per_sequence = (matmul_flops_per_token + ATTENTION_FLOPS_PER_LAYER_WIDTH_TOKEN * layers * width * context) / t
    kv_read_per_sequence = kv_token * context / kv_split
    weights_read = read_active / t
    step_flops = b * flops_per_sequence
    step_bytes = weights_read + b * kv_read_per_sequence
    step_compute, decode_compute_bound = _roofline(step_flops, step_bytes, peak, bandwidth, eta_c, eta_b)
    step_comm = collectives * (all_reduce_seconds(b * d * ACTIVATION_BYTES, t, link_bw) + latency)
    step_seconds = step_compute + step_comm
    # ridge: b·F/(peak·ηc) = (W + b·K)/(bw·ηb)  ⇒  b* = W / (F/ridge − K); never when F/ridge ≤ K
    ridge = ridge_point_flops_per_byte(peak * eta_c, bandwidth * eta_b)
    slope = flops_per_sequence / ridge - kv_read_per_sequence
    with np.errstate(divide="ignore", invalid="ignore"):
        ridge_batch = np.where(slope > 0, weights_read / np.where(slope > 0, slope, 1.0), np.inf)

    # request
    request_seconds = prefill_seconds + (n_out - 1.0) * step_seconds
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
        "prefill_flops": prefill_flops,
        "prefill_seconds": prefill_seconds,
        "prefill_compute_bound": prefill_compute_bound,
        "prefill_comm_seconds": prefill_comm,
        "step_seconds": step_seconds,
        "step_flops": step_flops,
        "step_bytes": step_bytes,
        "decode_compute_bound": decode_compute_bound,
        "ridge_batch": ridge_batch,
        "step_comm_seconds": step_comm,
        "request_seconds": request_seconds,
        "output_tokens_per_second": output_tokens_per_second,
        "link_bandwidth": link_bw * np.ones(shape),
        "context": context,
    }
    return {k: np.broadcast_to(np.asarray(v, dtype=float), shape) for k, v in full.items()}


def _roofline(flops, bytes_moved, peak, bandwidth, eta_c, eta_b) -> tuple[np.ndarray, np.ndarray]:
    """Seconds on the roofline and whether the compute roof is the one that binds."""
    seconds = roofline_seconds(flops, bytes_moved, peak, bandwidth, eta_c, eta_b)
    compute_only = roofline_seconds(flops, 0.0, peak, bandwidth, eta_c, eta_b)
    return seconds, compute_only >= seconds


def _or_inf(value: float | None) -> float:
    """A missing link bandwidth: its bandwidth term is not counted (a warning says so)."""
    return math.inf if value is None else value


def _matmul_efficiency(profile: HardwareProfile, request: ServeRequest) -> float:
    if request.matmul_efficiency is not None:
        return request.matmul_efficiency
    if profile.calibration is not None and profile.calibration.matmul_efficiency is not None:
        return profile.calibration.matmul_efficiency
    return DEFAULT_MATMUL_EFFICIENCY


# --- validation --------------------------------------------------------------------------------------
def _check_request(model: ModelSpec, request: ServeRequest) -> None:
    if request.weights_bits not in WEIGHT_BITS_CHOICES:
        raise InvalidValue(f"--weights {request.weights_bits}: unsupported weight bit width", hint="use 16, 8 or 4")
    if request.kv_bits not in KV_BITS_CHOICES:
        raise InvalidValue(f"--kv-bits {request.kv_bits}: unsupported KV-cache bit width", hint="use 16 or 8")
    for what, value in (
        ("--batch", request.batch),
        ("--prompt-tokens", request.prompt_tokens),
        ("--output-tokens", request.output_tokens),
    ):
        if not isinstance(value, int) or value < 1:
            raise InvalidValue(f"{what}: {value!r} must be a whole number ≥ 1", hint="give a positive value")
    for what, value in (
        ("--matmul-efficiency", request.matmul_efficiency),
        ("--bandwidth-efficiency", request.bandwidth_efficiency),
    ):
        if value is not None and not (0 < value <= 1):
            raise InvalidValue(f"{what}: {value!r} is outside (0, 1]", hint="give a fraction such as 0.8")
    if request.price_per_hour_usd is not None and not (request.price_per_hour_usd > 0):
        raise InvalidValue(
            f"--price-per-hour: {request.price_per_hour_usd!r} must be positive", hint="give a price such as 2.5"
        )
    if request.devices is not None:
        if request.devices < 1:
            raise InvalidValue(f"--devices: {request.devices!r} must be ≥ 1", hint="give a positive count")
        allowed = tensor_parallel_degrees(model)
        if request.devices not in allowed:
            raise InvalidLayout(
                f"--devices {request.devices}: tensor parallelism splits {model.name}'s {model.heads} attention "
                f"heads ({model.n_kv_heads} KV heads), so the device count must divide them",
                hint=f"use one of {', '.join(map(str, allowed))}",
            )


def _prices(profile: HardwareProfile, request: ServeRequest) -> tuple[dict[str, float], str | None, str | None]:
    """(price per device-hour by tier, the chosen tier, a note when cost is omitted)."""
    tiers = {tier: price.usd_per_device_hour for tier, price in profile.prices_usd_per_device_hour.items()}
    if request.price_per_hour_usd is not None:
        tiers[CUSTOM_PRICE_TIER] = request.price_per_hour_usd
        if request.price_tier is None:
            return tiers, CUSTOM_PRICE_TIER, None
    if request.price_tier is not None:
        if request.price_tier not in tiers:
            known = ", ".join(sorted(tiers)) or "none"
            raise InvalidValue(
                f"--price-tier {request.price_tier!r}: {profile.id} has no such price (tiers: {known})",
                hint="pick one of its tiers or give --price-per-hour USD",
            )
        return tiers, request.price_tier, None
    if not tiers:
        return tiers, None, f"{profile.id} has no price per device-hour: cost omitted (give --price-per-hour USD)"
    chosen = DEFAULT_PRICE_TIER if DEFAULT_PRICE_TIER in tiers else sorted(tiers)[0]
    return tiers, chosen, None


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
            _variant(profile, grid, row, col, wbits, devices, needed, tiers, tier, cost_note, request.batch)
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
        model=ServeModel(
            name=model.name,
            params=model.params,
            active_params=model.active_params,
            layers=model.layers,
            d_model=model.d_model,
            heads=model.heads,
            kv_heads=model.n_kv_heads,
            head_dim=model.dim_head,
            experts=model.experts,
            active_experts=model.active_experts,
            context_tokens=model.seq_len,
        ),
        hardware=ServeHardware(
            id=profile.id,
            name=profile.name,
            kind=profile.kind,
            memory_bytes=profile.memory_bytes,
            memory_bandwidth_bytes_per_s=profile.memory_bandwidth_bytes_per_s,
            compute_dtype=dtype,
            peak_flops_per_s=peak,
            devices_per_node=profile.devices_per_node,
        ),
        devices=chosen.devices,
        weights_bits=chosen.weights_bits,
        memory=chosen.memory,
        prefill=chosen.prefill,
        decode=chosen.decode,
        request_seconds=chosen.request_seconds,
        output_tokens_per_second=chosen.output_tokens_per_second,
        cost=chosen.cost,
        variants=variants,
        assumptions=_assumptions(model, profile, request),
        warnings=warnings,
    )


def _variant(profile, grid, row, col, wbits, devices, needed, tiers, tier, cost_note, batch) -> ServeVariant:
    g = {k: float(v[row, col]) for k, v in grid.items()}
    ridge = g["ridge_batch"]
    step = g["step_seconds"]
    usd_per_million = {
        name: devices * price / SECONDS_PER_HOUR / g["output_tokens_per_second"] * TOKENS_PER_MILLION
        for name, price in tiers.items()
    }
    return ServeVariant(
        weights_bits=wbits,
        devices=devices,
        link="none" if devices == 1 else ("intra-node" if devices <= profile.devices_per_node else "inter-node"),
        memory=ServeMemory(
            weights_bytes=g["weights_bytes"],
            quantization_overhead_bytes=g["quantization_overhead_bytes"],
            kv_cache_bytes=g["kv_cache_bytes"],
            runtime_allowance_bytes=g["runtime_allowance_bytes"],
            per_device_bytes=g["per_device_bytes"],
            capacity_bytes=profile.memory_bytes,
            fits=bool(g["fits"]),
            devices_needed=needed,
            max_batch_that_fits=int(g["max_batch_that_fits"]),
        ),
        prefill=ServePrefill(
            flops=g["prefill_flops"],
            seconds=g["prefill_seconds"],
            time_to_first_token_seconds=g["prefill_seconds"],
            bound="compute" if g["prefill_compute_bound"] else "memory",
            communication_seconds=g["prefill_comm_seconds"],
        ),
        decode=ServeDecode(
            seconds_per_token=step,
            tokens_per_second=1.0 / step,
            total_tokens_per_second=batch / step,
            mean_context_tokens=g["context"],
            flops_per_step=g["step_flops"],
            bytes_read_per_step=g["step_bytes"],
            bound="compute" if g["decode_compute_bound"] else "memory",
            ridge_batch=None if math.isinf(ridge) else ridge,
            communication_seconds_per_token=g["step_comm_seconds"],
        ),
        request_seconds=g["request_seconds"],
        output_tokens_per_second=g["output_tokens_per_second"],
        cost=ServeCost(
            tier=tier,
            usd_per_device_hour=tiers.get(tier) if tier else None,
            usd_per_million_tokens=usd_per_million.get(tier) if tier else None,
            by_tier=usd_per_million,
            note=cost_note,
        ),
    )


def _raise_fits_nowhere(model, profile, request, grid, row, candidates) -> None:
    most = candidates[-1]
    need = float(grid["per_device_bytes"][row, -1])
    raise InvalidValue(
        f"{model.name} with {request.weights_bits}-bit weights, batch {request.batch} × "
        f"{request.prompt_tokens + request.output_tokens} tokens fits on no number of {profile.id}: even split over "
        f"{most} devices (the most its {model.heads} heads allow) it needs {need / 1e9:.3g} GB per device of "
        f"{profile.memory_bytes / 1e9:.3g} GB",
        hint="lower --batch or the tokens, use --kv-bits 8 or fewer --weights bits, or hardware with more memory",
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
                f"{profile.id} publishes no {chosen.link} bandwidth: all-reduce bandwidth time not counted "
                "(only their latency)"
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


def _assumptions(model, profile, request) -> list[str]:
    eta_c = _matmul_efficiency(profile, request)
    eta_b = request.bandwidth_efficiency if request.bandwidth_efficiency is not None else DECODE_BANDWIDTH_EFFICIENCY
    if request.matmul_efficiency is not None:
        eta_c_src = "given"
    elif profile.calibration is not None and profile.calibration.matmul_efficiency is not None:
        eta_c_src = f"profile calibration: {profile.calibration.fitted_on}"
    else:
        eta_c_src = "default: low end of MosaicML's measured MFU on A100, 0.49-0.64"
    eta_b_src = (
        "given"
        if request.bandwidth_efficiency is not None
        else "decode bandwidth utilisation of gpt-fast's Llama-2-7B on an MI250X GCD, 1028.7 of 1638.4 GB/s"
    )
    return [
        f"matmul efficiency {eta_c:g} ({eta_c_src})",
        f"memory bandwidth efficiency {eta_b:g} ({eta_b_src})",
        f"quantized weights: fp16 scale + zero point per group of {QUANT_GROUP_SIZE} (GPTQ/AWQ); embeddings, "
        "LM head and norms stay 16-bit; matmuls run in 16-bit (weight-only quantization)",
        f"runtime allowance {RUNTIME_RESERVE_FRACTION:.0%} of device memory (vLLM gpu_memory_utilization=0.9)",
        "decode time per token at the mean context (prompt + output/2); prefill attention FLOPs count the full "
        "P² (PaLM convention; causal kernels do about half)",
        f"tensor parallel: {TP_ALL_REDUCES_PER_LAYER} all-reduces per layer (Megatron-LM), ring bandwidth term "
        f"+ {ALL_REDUCE_LATENCY_SECONDS * 1e6:g} µs latency each (nccl-tests); KV heads replicated past kv_heads",
        "time to first token = prefill time (no queueing); cost per output token includes the prefill",
    ]
