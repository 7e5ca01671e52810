"""`serve --plan`: the cheapest serving configuration that meets latency targets at a request rate (issue 17
item 4), on the same core passes and steady state as `serve --request-rate` (serving_passes.py,
serving_load.py).

Search space: hardware (default: every profile the runtime runs on that has a price) × weight format (every
one the runtime has kernels for) × tensor-parallel degree (tensor_parallel_degrees) × replicas r (each
replica an independent engine taking rate/r of the Poisson arrivals, the thinning of a Poisson stream; load
balancers such as vLLM's router spread requests so), with devices = tp·r ≤ max devices. The running batch is
not a free choice under load: it forms from the rate (Little's law), capped by the KV cache that fits.

Per hardware, one vectorised pass over (weights × tp) × r gives every steady state (serving_load.steady_states);
TTFT percentiles are simulated for one configuration at a time (serving_load.ttft_quantiles) and bracketed for
all (serving_load.ttft_bounds), so only configurations the bounds cannot settle are simulated.

Winner: the lowest cost per hour among configurations meeting every target at the percentile; ties go to
fewer devices, then the faster first token. Pareto: cost per hour vs TTFT at the percentile among
configurations that meet the TPOT target (each point cheaper than every faster one). None meets: exit 3 with
the nearest misses, ranked by the worst ratio of a latency to its target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from flopcast.errors import InvalidValue, opt
from flopcast.hardware import HardwareProfile
from flopcast.models import ModelSpec
from flopcast.reports.serve import ServeModel
from flopcast.reports.serve_plan import ServePlanInputs, ServePlanReport, ServePlanSkipped, targets_text
from flopcast.runtimes import RuntimeProfile, check_weight_bits, load_runtime, runtime_ids
from flopcast.serving import ServeRequest
from flopcast.serving_checks import WEIGHT_BITS_CHOICES, check_request
from flopcast.serving_load import PERCENTILES, check_rate
from flopcast.serving_passes import COMPUTE_FORMATS, COMPUTE_WEIGHT_BITS
from flopcast.serving_plan_search import PERCENTILE_NAMES, Rows, Ttft, point, search_hardware, select

DEFAULT_PERCENTILE = "p90"
DEFAULT_MAX_DEVICES = 64
DEFAULT_KINDS = ("gpu",)  # searched when no hardware is named
_LATENCY = re.compile(r"\s*(?P<num>[0-9.eE+-]+)\s*(?P<unit>ms|us|µs)\s*")
_SUBSECOND = {"ms": 1e-3, "us": 1e-6, "µs": 1e-6}


def parse_latency(text, what: str) -> float | None:
    """A latency target in seconds: ``500ms``, ``50 ms``, ``200us``, ``0.5s``, ``2`` (seconds)."""
    if text is None:
        return None
    from flopcast.units import parse_duration

    if isinstance(text, int | float):
        value = float(text)
    else:
        m = _LATENCY.fullmatch(str(text))
        try:
            value = float(m.group("num")) * _SUBSECOND[m.group("unit")] if m else parse_duration(text, what=what)
        except (ValueError, InvalidValue):
            raise InvalidValue(f"{what}: cannot read {text!r}", hint="give a latency such as 500ms or 0.5s") from None
    if not (value > 0) or not np.isfinite(value):
        raise InvalidValue(f"{what}: {text!r} must be a positive latency", hint="e.g. 500ms")
    return value


def parse_percentile(text) -> str:
    """``p50``/``p90`` (also ``P90``, ``90`` or ``90%``) → ``p50``/``p90``."""
    key = DEFAULT_PERCENTILE if text is None else str(text).strip().lower().removesuffix("%")
    key = key if key.startswith("p") else f"p{key}"
    if key not in PERCENTILE_NAMES:
        raise InvalidValue(f"{opt('percentile')} {text!r}: unknown percentile", hint="use p50 or p90")
    return key


@dataclass(frozen=True)
class ServeTargets:
    """What the plan must meet: latencies in seconds (None: no target) at a percentile, on at most
    ``max_devices`` devices in all."""

    ttft_seconds: float | None = None
    tpot_seconds: float | None = None
    percentile: str = DEFAULT_PERCENTILE
    max_devices: int = DEFAULT_MAX_DEVICES


def _runtime_for(request: ServeRequest, profile: HardwareProfile) -> RuntimeProfile | str:
    """The runtime on this profile, or why it cannot be used there."""
    if isinstance(request.runtime, RuntimeProfile):
        return request.runtime
    try:
        return load_runtime(request.runtime, profile.kind, profile.id, profile.vendor)
    except InvalidValue:
        name = request.runtime or "no serving runtime"
        kinds = {"gpu": "GPUs", "tpu": "TPUs", "cpu": "CPUs"}.get(profile.kind, f"{profile.kind}s")
        return f"{name} does not run on {profile.vendor} {kinds}"


def _check(model: ModelSpec, request: ServeRequest, weights: tuple[int, ...] | None, targets: ServeTargets):
    check_rate(request.request_rate)
    named = request.runtime is not None and not isinstance(request.runtime, RuntimeProfile)
    if named and str(request.runtime).strip().lower() not in runtime_ids():
        load_runtime(request.runtime, "gpu")  # raises: no such runtime, with the closest names
    for w in weights or ():
        if w not in WEIGHT_BITS_CHOICES:
            raise InvalidValue(f"{opt('weights')} {w}: unsupported weight bit width", hint="use 16, 8 or 4")
    tokens = request.prompt_tokens + request.output_tokens
    if tokens > model.seq_len:
        raise InvalidValue(
            f"{opt('prompt_tokens')} + {opt('output_tokens')} = {tokens:,} tokens is longer than {model.name}'s "
            f"maximum context of {model.seq_len:,} tokens",
            hint=f"keep prompt + output within {model.seq_len:,} tokens",
        )
    if targets.max_devices < 1:
        raise InvalidValue(f"{opt('max_devices')}: {targets.max_devices} must be ≥ 1", hint="e.g. 64")
    if targets.ttft_seconds is None and targets.tpot_seconds is None:
        raise InvalidValue(f"{opt('plan')} needs a target: {opt('ttft')}, {opt('tpot')} or both",
                           hint=f"e.g. {opt('ttft')} 500ms {opt('tpot')} 50ms")  # fmt: skip


def plan_serving(
    model: ModelSpec,
    profiles: list[HardwareProfile],
    request: ServeRequest,
    targets: ServeTargets,
    weights: tuple[int, ...] | None = None,
    compute: tuple[str, ...] | None = None,
) -> ServePlanReport:
    """The cheapest configuration meeting ``targets`` at ``request.request_rate`` (module doc). Raises
    :class:`InvalidValue` (exit 2) for bad input; a report with ``feasible`` false when none meets them
    (the caller raises :class:`Infeasible`, exit 3, after writing it)."""
    from flopcast.request import check_price_tier, price_for

    _check(model, request, weights, targets)
    check_price_tier(request.price_tier, profiles)
    if request.price_per_hour_usd is not None and len(profiles) > 1:  # one price for all would rank nothing
        raise InvalidValue(f"{opt('price_per_hour')} prices one profile: {len(profiles)} are searched",
                           hint=f"name one {opt('hardware')} with it, or drop it to use the listed prices")  # fmt: skip
    rows, hw_ids, runtimes, searched, skipped, count = Rows(), [], [], [], [], 0
    for profile in profiles:
        runtime = _runtime_for(request, profile)
        if isinstance(runtime, str):
            skipped.append(ServePlanSkipped(hardware=profile.id, reason=runtime))
            continue
        formats = [b for b in runtime.weight_bits if weights is None or b in weights]
        if not formats:
            if request.runtime is not None:  # the format asked for is not one the runtime asked for has
                check_weight_bits(runtime, weights[0])
            have = "/".join(map(str, runtime.weight_bits))
            skipped.append(ServePlanSkipped(hardware=profile.id, reason=f"{runtime.id} runs {have}-bit weights only"))
            continue
        tiers = profile.prices_usd_per_device_hour
        if request.price_per_hour_usd is None and request.price_tier is not None and request.price_tier not in tiers:
            skipped.append(ServePlanSkipped(hardware=profile.id, reason=f"lists no {request.price_tier} price"))
            continue
        price = price_for(profile, request.price_tier, request.price_per_hour_usd).usd_per_device_hour
        if price is None:
            skipped.append(ServePlanSkipped(hardware=profile.id, reason="lists no price"))
            continue
        check_request(model, replace(request, weights_bits=formats[0], devices=None), runtime)
        n = 0
        for fmt, fmt_bits in _compute_variants(profile, runtime, formats, compute):
            n += search_hardware(model, profile, replace(request, compute=fmt), runtime, fmt_bits, targets, rows,
                                 len(hw_ids), price, COMPUTE_FORMATS.index(fmt))  # fmt: skip
        hw_ids.append(profile.id)
        runtimes.append(runtime.id)
        searched.append(profile.id)
        count += n
    if not searched:
        reasons = "; ".join(f"{s.hardware}: {s.reason}" for s in skipped[:4])
        raise InvalidValue(f"no hardware to search ({reasons})",
                           hint=f"give priced hardware with {opt('hardware')}, or {opt('price_per_hour')}")  # fmt: skip
    r = rows.done()
    ttft = Ttft(r)
    winner, pareto, misses = select(r, targets, ttft)
    at = lambda i, **kw: point(r, i, ttft, hw_ids, runtimes, **kw)  # noqa: E731
    best = None if winner is None else at(winner, meets=True)
    ttft_t, tpot_t = targets.ttft_seconds, targets.tpot_seconds
    which = PERCENTILE_NAMES.index(targets.percentile)

    def meets(i: int) -> bool:
        tp = r["tpot50" if which == 0 else "tpot90"][i]
        return (ttft_t is None or ttft(i)[which] <= ttft_t) and (tpot_t is None or tp <= tpot_t)

    reason = None
    if best is None and count == 0:  # nothing holds the weights and one sequence's KV cache
        reason = (
            f"{model.name} with {request.prompt_tokens + request.output_tokens:,} tokens of KV cache fits on no "
            f"configuration of {', '.join(searched)} on up to {targets.max_devices} devices"
        )
    elif best is None:
        reason = (
            f"no configuration of {', '.join(searched)} on up to {targets.max_devices} devices serves "
            f"{request.request_rate:g} requests/s of {request.prompt_tokens} + {request.output_tokens} tokens"
            + _targets_text(targets)
        )
    return ServePlanReport(
        inputs=ServePlanInputs(
            model=model.name,
            hardware=searched,
            request_rate_per_s=request.request_rate,
            prompt_tokens=request.prompt_tokens,
            output_tokens=request.output_tokens,
            kv_bits=request.kv_bits,
            weights_bits=None if weights is None else list(weights),
            runtime=None if request.runtime is None else str(getattr(request.runtime, "id", request.runtime)),
            compute=None if compute is None else list(compute),
            ttft_target_seconds=ttft_t,
            tpot_target_seconds=tpot_t,
            percentile=targets.percentile,
            max_devices=targets.max_devices,
            price_tier=request.price_tier,
            price_per_hour_usd=request.price_per_hour_usd,
            matmul_efficiency=request.matmul_efficiency,
            bandwidth_efficiency=request.bandwidth_efficiency,
        ),  # fmt: skip
        model=ServeModel.of(model),
        configurations_searched=count,
        feasible=best is not None,
        best=best,
        pareto=[at(i, meets=meets(i)) for i in pareto],
        near_misses=[at(i, meets=False, miss=text) for i, text in misses],
        infeasible_reason=reason,
        skipped=skipped,
        assumptions=_assumptions(request, targets),
    )


def _compute_variants(profile, runtime, formats, compute):
    """(compute format, weight widths) pairs to search on one profile: bf16 over every width (weight-only
    below 16 bit), and each low-bit format (W8A8, W4A4) the profile has a peak for and the runtime has kernels
    for, on its own width; ``compute`` (None: all) keeps only those named."""
    out = []
    for fmt in COMPUTE_FORMATS:
        if compute is not None and fmt not in compute:
            continue
        if fmt not in COMPUTE_WEIGHT_BITS:
            out.append((fmt, formats))
        elif (
            profile.peak_flops_per_s.get(fmt) is not None
            and fmt in runtime.compute_formats
            and COMPUTE_WEIGHT_BITS[fmt] in formats
        ):
            out.append((fmt, [COMPUTE_WEIGHT_BITS[fmt]]))
    return out


def _targets_text(targets: ServeTargets) -> str:
    text = targets_text(targets.ttft_seconds, targets.tpot_seconds)
    return f" with {text} at {targets.percentile.upper()}" if text else ""


def _assumptions(request: ServeRequest, targets: ServeTargets) -> list[str]:
    q = PERCENTILES[PERCENTILE_NAMES.index(targets.percentile)]
    return [
        f"targets met at the {q:.0%} point of each latency's distribution in steady state",
        "replicas split the Poisson arrivals evenly (each an independent engine at rate / replicas); devices = "
        "tensor parallel × replicas; tensor parallelism stays inside one node (the profile's devices_per_node: "
        "its all-reduce per layer needs the node's links, vLLM's guidance), replicas spread over nodes",
        "each configuration is `serve --request-rate` at its share of the rate: continuous batching with prefill "
        "first (vLLM's scheduler), unchunked; the running batch from Little's law; TTFT from an M/D/1 queue of "
        "prompts; fixed prompt and output lengths",
        "cost per hour = devices × the price per device-hour; per million output tokens at the requested rate",
    ]


def serve_plan(
    model=None,
    hardware=None,
    *,
    request_rate=None,
    ttft=None,
    tpot=None,
    percentile=None,
    max_devices=None,
    weights=None,
    compute=None,
    kv_bits=16,
    prompt_tokens=512,
    output_tokens=256,
    runtime=None,
    price_tier=None,
    price_per_hour=None,
    matmul_efficiency=None,
    bandwidth_efficiency=None,
    seq_len=None,
    profiles=None,
    **architecture,
) -> ServePlanReport:
    """`serve --plan` as a library call (``flopcast.api.serve_plan``): numbers or strings with units, e.g.
    ``serve_plan(model="llama-3.1-8b", request_rate=20, ttft="500ms", tpot="50ms")``. ``hardware``: ids
    comma-separated or a list (default: every GPU profile with a price); ``weights``: bit widths to search
    (default: every format the runtime has); ``compute``: bf16, fp8, fp4, comma-separated or a list (default: bf16
    and every low-bit format the hardware and runtime have)."""
    from flopcast.request import resolve_hardware_list, resolve_model
    from flopcast.units import parse_count, parse_int, parse_usd

    if request_rate is None:
        raise InvalidValue(f"{opt('plan')} needs {opt('request_rate')}: the plan is for a load",
                           hint=f"e.g. {opt('request_rate')} 20 (requests per second)")  # fmt: skip
    rate = parse_count(request_rate, what=opt("request_rate"), allow_zero=True) if not isinstance(
        request_rate, int | float) else float(request_rate)  # fmt: skip
    check_rate(rate)
    if weights is None:
        bits = None
    else:
        parts = str(weights).split(",") if isinstance(weights, str) else list(np.atleast_1d(weights))
        bits = tuple(parse_int(w, what=opt("weights")) for w in parts)
    request = ServeRequest(
        weights_bits=bits[0] if bits else 16,
        kv_bits=parse_int(kv_bits, what=opt("kv_bits")),
        prompt_tokens=parse_int(prompt_tokens, what=opt("prompt_tokens")),
        output_tokens=parse_int(output_tokens, what=opt("output_tokens")),
        price_tier=None if price_tier is None else str(price_tier).strip().lower(),
        price_per_hour_usd=None if price_per_hour is None else parse_usd(price_per_hour, what=opt("price_per_hour")),
        matmul_efficiency=_fraction(matmul_efficiency, "matmul_efficiency"),
        bandwidth_efficiency=_fraction(bandwidth_efficiency, "bandwidth_efficiency"),
        runtime=runtime if runtime is None or isinstance(runtime, RuntimeProfile) else str(runtime),
        request_rate=rate,
    )  # fmt: skip
    targets = ServeTargets(
        ttft_seconds=parse_latency(ttft, opt("ttft")),
        tpot_seconds=parse_latency(tpot, opt("tpot")),
        percentile=parse_percentile(percentile),
        max_devices=DEFAULT_MAX_DEVICES if max_devices is None else parse_int(max_devices, what=opt("max_devices")),
    )
    spec = resolve_model(model, seq_len, architecture)
    chosen = resolve_hardware_list(hardware, profiles)
    if hardware is None:
        chosen = [p for p in chosen if p.kind in DEFAULT_KINDS]
    return plan_serving(spec, chosen, request, targets, bits, _compute_list(compute))


def _compute_list(compute) -> tuple[str, ...] | None:
    if compute is None:
        return None
    parts = str(compute).split(",") if isinstance(compute, str) else list(compute)
    names = tuple(str(p).strip().lower() for p in parts if str(p).strip())
    for name in names:
        if name not in COMPUTE_FORMATS:
            raise InvalidValue(
                f"{opt('compute')} {name!r}: unknown compute format",
                hint=f"use {', '.join(COMPUTE_FORMATS)} (comma-separated with {opt('plan')})",
            )
    if not names:
        raise InvalidValue(f"{opt('compute')}: empty", hint=f"use {', '.join(COMPUTE_FORMATS)}")
    return names


def _fraction(value, name: str) -> float | None:
    from flopcast.units import parse_count

    return None if value is None else parse_count(value, what=opt(name))
