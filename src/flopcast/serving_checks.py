"""`serve`'s request checks, warnings and stated assumptions (serving.py builds the report with them)."""

from __future__ import annotations

from flopcast.errors import Infeasible, InvalidLayout, InvalidValue, opt
from flopcast.estimator import inference
from flopcast.estimator.efficiency import EfficiencyParams
from flopcast.models import ModelSpec
from flopcast.reports.serve import ServeVariant
from flopcast.runtimes import RuntimeProfile, check_weight_bits
from flopcast.serving_memory import QUANT_GROUP_SIZE, RUNTIME_RESERVE_FRACTION

WEIGHT_BITS_CHOICES = (16, 8, 4)  # 16-bit (bf16/fp16), 8-bit and 4-bit weight-only quantization
KV_BITS_CHOICES = (16, 8)  # fp16/bf16 KV cache or an 8-bit (fp8/int8) one (vLLM kv_cache_dtype="fp8")


def tensor_parallel_degrees(model: ModelSpec) -> list[int]:
    """Device counts tensor parallelism can split this model over: the degree must divide the attention heads
    (Megatron-LM; vLLM checks ``num_attention_heads % tensor_parallel_size == 0``), and the KV heads must divide
    over the devices or be replicated whole (``kv_heads % t == 0`` or ``t % kv_heads == 0``, vLLM)."""
    kv = model.n_kv_heads
    return [t for t in range(1, model.heads + 1) if model.heads % t == 0 and (kv % t == 0 or t % kv == 0)]


def check_request(model: ModelSpec, request, runtime: RuntimeProfile) -> None:
    if request.weights_bits not in WEIGHT_BITS_CHOICES:
        raise InvalidValue(
            f"{opt('weights')} {request.weights_bits}: unsupported weight bit width", hint="use 16, 8 or 4"
        )
    check_weight_bits(runtime, request.weights_bits)
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
    if request.request_rate is not None:
        from flopcast.serving_load import check_rate

        check_rate(request.request_rate)
    load_only = (
        ("chunked_prefill", request.chunked_prefill_tokens is not None),
        ("prompt_dist", request.prompt_dist != "fixed"),
        ("output_dist", request.output_dist != "fixed"),
    )
    for name, given in load_only:
        if given and request.request_rate is None:
            raise InvalidValue(
                f"{opt(name)} models the steady state under load: it needs {opt('request_rate')}",
                hint=f"add {opt('request_rate')} R (requests per second), or drop {opt(name)}",
            )
    chunk = request.chunked_prefill_tokens
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise InvalidValue(
            f"{opt('chunked_prefill')}: {chunk!r} must be a whole number of tokens ≥ 1",
            hint="give a token budget per step such as 512 or 2048 (vLLM max_num_batched_tokens)",
        )
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


def check_compute(profile, request, runtime: RuntimeProfile) -> None:
    """``--compute``: a known format, one the hardware has a peak for and the runtime has kernels for, and
    weights stored in it (W8A8 needs 8-bit weights, W4A4 4-bit ones). One line each (exit 2)."""
    from flopcast.runtimes import check_compute_format
    from flopcast.serving_passes import COMPUTE_FORMATS, COMPUTE_WEIGHT_BITS

    fmt = request.compute
    if fmt not in COMPUTE_FORMATS:
        raise InvalidValue(
            f"{opt('compute')} {fmt!r}: unknown compute format", hint=f"use {', '.join(COMPUTE_FORMATS)}"
        )
    if fmt not in COMPUTE_WEIGHT_BITS:
        return
    if profile.peak_flops_per_s.get(fmt) is None:
        have = [d for d, v in profile.peak_flops_per_s.model_dump().items() if v is not None]
        able = "FP8 tensor cores (Hopper, Ada, MI300)" if fmt == "fp8" else "FP4 tensor cores (Blackwell, MI355X)"
        raise InvalidValue(
            f"{opt('compute')} {fmt}: {profile.id} publishes no {fmt} matmul peak (it has {', '.join(have)})",
            hint=f"use {opt('compute')} bf16 (weight-only {COMPUTE_WEIGHT_BITS[fmt]}-bit weights), or hardware "
            f"with {able}",
        )
    check_compute_format(runtime, fmt)
    bits = COMPUTE_WEIGHT_BITS[fmt]
    if request.weights_bits != bits:
        raise InvalidValue(
            f"{opt('compute')} {fmt} multiplies {bits}-bit {fmt} weights (W{bits}A{bits}), not "
            f"{request.weights_bits}-bit ones",
            hint=f"use {opt('weights')} {bits}, or {opt('compute')} bf16 for {request.weights_bits}-bit weights",
        )


def raise_fits_nowhere(model, profile, request, grid, row, candidates) -> None:
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


def raise_unsustainable(model, profile, request, chosen: ServeVariant, variants: list[ServeVariant]) -> None:
    """Exit 3: the chosen configuration cannot keep up with the request rate; say the most it sustains and
    which other weight formats would."""
    others = [
        f"{v.weights_bits}-bit weights on {v.devices} (up to {v.load.max_request_rate_per_s:.3g}/s)"
        for v in variants
        if v is not chosen and v.load is not None and v.load.sustainable
    ]
    chunk = f"raise {opt('chunked_prefill')}, " if request.chunked_prefill_tokens is not None else ""
    hint = f"lower {opt('request_rate')}, {chunk}add {opt('devices')}, or use " + (
        "; ".join(others) if others else "faster hardware"
    )
    raise Infeasible(
        f"{opt('request_rate')} {request.request_rate:g}/s: {model.name} with {chosen.weights_bits}-bit weights on "
        f"{chosen.devices} × {profile.id} sustains at most {chosen.load.max_request_rate_per_s:.3g} requests/s of "
        f"{request.prompt_tokens} + {request.output_tokens} tokens (the queue would grow without bound)",
        hint=hint,
        near_misses=others,
    )


def warnings_for(model, profile, request, chosen: ServeVariant) -> list[str]:
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


def assumptions(model, profile, request, chosen: ServeVariant, runtime: RuntimeProfile, measured: bool) -> list[str]:
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
    if request.bandwidth_efficiency is not None:
        eta_b = f"memory bandwidth efficiency {request.bandwidth_efficiency:g} (given)"
    else:
        stream = "1 (a measured profile: its bandwidth is sustained)" if measured else f"{runtime.stream_fraction:g}"
        fractions = ", ".join(f"{b}-bit {f:g}" for b, f in runtime.bandwidth_fraction.items())
        eta_b = (
            f"memory bandwidth: datasheet × streaming fraction {stream} × {runtime.id}'s kernel fraction "
            f"({fractions}); flopcast/data/runtimes.yaml gives the source of each"
        )
    kernels = runtime.kernels_per_forward(model.layers)
    overlap = "overlapping the device" if runtime.host_overlaps_device() else "adding to the work (CPU)"
    return [
        f"matmul efficiency: prefill {chosen.prefill.matmul_efficiency:.3g}, decode "
        f"{chosen.decode.matmul_efficiency:.3g} ({eta_c_src})",
        eta_b,
        f"runtime {runtime.id} ({runtime.name}): {kernels:g} kernels per forward, "
        f"{runtime.gap_seconds_per_kernel * 1e6:.3g} µs device gap and {runtime.launch_seconds_per_kernel * 1e6:.3g} "
        f"µs host launch each (+{runtime.seconds_per_forward * 1e6:.3g} µs per forward), the host {overlap}",
        f"quantized weights: fp16 scale + zero point per group of {QUANT_GROUP_SIZE} (GPTQ/AWQ); embeddings, "
        "LM head and norms stay 16-bit; matmuls run in 16-bit (weight-only quantization)"
        if request.compute == "bf16"
        else f"{opt('compute')} {request.compute}: the {chosen.weights_bits}-bit variant multiplies {request.compute} "
        f"weights by {request.compute} activations (W{chosen.weights_bits}A{chosen.weights_bits}): its linear GEMMs at "
        f"{profile.id}'s {request.compute} peak {profile.peak_flops_per_s.get(request.compute) / 1e12:,.0f} TFLOP/s × "
        "the same fitted efficiency, the attention core and LM head at the 16-bit peak (vLLM quantises Linear "
        "layers only); activation quantisation kernels not timed; weights held as the weight-only format's "
        f"(scales per group of {QUANT_GROUP_SIZE}); the other columns compute in 16-bit",
        f"runtime allowance {RUNTIME_RESERVE_FRACTION:.0%} of device memory (vLLM gpu_memory_utilization=0.9)",
        "decode time per token at the mean context (prompt + output/2); prefill attention is causal: a prompt "
        "token attends to (P + 1)/2 tokens on average (fused kernels skip the masked half), sliding-window layers "
        "to at most the window",
        f"tensor parallel: {inference.TP_ALL_REDUCES_PER_FORWARD_LAYER} all-reduces per layer (Megatron-LM), "
        "placed on the intra- or inter-node link and timed with NCCL's ring/tree latency model exactly as "
        "`estimate` times training's; KV heads replicated past kv_heads (an MLA latent on every device)",
        "time to first token = prefill time (no queueing); cost per output token includes the prefill"
        if request.request_rate is None
        else f"under load: Poisson arrivals at {request.request_rate:g}/s, {_lengths(request)}; continuous "
        f"batching, {_chunking(request)}; the running batch from Little's law with the mean output length "
        f"({opt('batch')} is not used: the batch forms), decode at the sequences' mean context P + E[T²]/(2E[T])",
        *([] if request.request_rate is None else [_queue_line(request)]),
    ]


def _lengths(request) -> str:
    if request.prompt_dist == request.output_dist == "fixed":
        return "fixed prompt and output lengths"
    return (f"{request.prompt_dist} prompt lengths (mean {request.prompt_tokens}) and {request.output_dist} output "
            f"lengths (mean {request.output_tokens}), continuous, independent")  # fmt: skip


def _chunking(request) -> str:
    if request.chunked_prefill_tokens is None:
        return "prefill first (vLLM's scheduler), unchunked: a prompt's whole prefill stalls every running sequence"
    return (f"chunked prefill with a budget of {request.chunked_prefill_tokens} tokens per step (Sarathi-Serve, "
            "Agrawal et al. 2024): decodes first, prompt chunks fill the rest of the budget (at most a mean prompt), "
            "so a step stalls the decodes by one chunk's time at most")  # fmt: skip


def _queue_line(request) -> str:
    queue = "M/D/1" if request.prompt_dist == "fixed" else "M/G/1"
    line = (f"the prompt queue as {queue}: mean wait λ·E[S²]/(2(1 − ρ)) (Pollaczek–Khinchine), S a prompt's "
            + ("prefill" if request.chunked_prefill_tokens is None else "share of the chunk slots, P·step/chunk")
            + "; TTFT P50/P90 from a seeded Lindley recursion of the same queue + the decode step in progress; TPOT "
            "P50/P90 from the prompts arriving during a request's T − 1 steps (Poisson)")  # fmt: skip
    if request.prompt_dist != "fixed" or request.output_dist != "fixed":
        line += ", over seeded requests of the length mix (summed prompt costs by their normal limit)"
    return line
