"""The library entry point: ``flopcast.estimate(...)`` (the CLI's ``estimate`` calls the same function).

Example::

    import flopcast
    r = flopcast.estimate(model="llama-2-7b", tokens="2T", hardware="a100-80gb", devices=256)
    r.time.wall_clock_seconds, r.cost.total_usd, r.memory.fits

Numbers may be given as numbers or as strings with units (``"2T"``, ``"7B"``, ``"$2.5"``). Layout options
left as None are chosen automatically: the fastest layout that fits (layout.search_layouts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flopcast.errors import ConflictingOptions, InvalidLayout, InvalidValue
from flopcast.units import parse_count, parse_int, parse_usd

RECOMPUTE_CHOICES = ("none", "selective", "full")
ARCHITECTURE_KEYS = (
    "layers",
    "d_model",
    "heads",
    "kv_heads",
    "head_dim",
    "ffn",
    "gated_ffn",
    "vocab",
    "tied_embeddings",
    "experts",
    "active_experts",
)


def _opt_int(value, what: str, *, allow_zero: bool = False) -> int | None:
    return None if value is None else parse_int(value, what=what, allow_zero=allow_zero)


def parse_mfu(value) -> float | None:
    """A model-FLOPs utilisation in (0, 1]; ``"45%"`` is accepted."""
    if value is None:
        return None
    text = str(value).strip()
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1], 0.01
    number = parse_count(text, what="--mfu") * scale
    if not 0 < number <= 1:
        raise InvalidValue(f"--mfu: {value!r} is not a fraction in (0, 1]", hint="give e.g. 0.45 or 45%")
    return number


def resolve_hardware(hardware, profiles):
    """A HardwareProfile from an id/alias (searching ``profiles`` dirs too) or a profile object."""
    from flopcast.hardware import HardwareProfile, load_catalog

    if isinstance(hardware, HardwareProfile):
        return hardware
    if hardware is None or not str(hardware).strip():
        raise InvalidValue(
            "--hardware: no hardware given", hint="e.g. --hardware a100-80gb (see `flopcast hardware list`)"
        )
    dirs = [Path(p) for p in (profiles or [])] if not isinstance(profiles, str | Path) else [Path(profiles)]
    return load_catalog(dirs).get(str(hardware))


def _resolve_model(model, seq_len, architecture: dict):
    from flopcast.models import ModelSpec, resolve_model

    if isinstance(model, ModelSpec):
        if architecture:
            raise ConflictingOptions(
                "a ModelSpec together with architecture options", hint="put the architecture into the ModelSpec"
            )
        return model if seq_len is None else model.model_copy(update={"seq_len": parse_int(seq_len, what="--seq-len")})
    return resolve_model(model, seq_len=seq_len, **architecture)


def _price(profile, tier: str | None, price_per_hour) -> tuple[float | None, str | None, str | None, list[str]]:
    """(USD per device-hour, tier label, date, warnings). An unknown tier is an error listing the tiers."""
    tiers = profile.prices_usd_per_device_hour
    if price_per_hour is not None:
        return parse_usd(price_per_hour, what="--price-per-hour"), "custom", None, []
    if tier is not None:
        if tier not in tiers:
            listed = ", ".join(sorted(tiers)) if tiers else "none"
            raise InvalidValue(
                f"--price-tier {tier}: {profile.id} has no such price (tiers listed: {listed})",
                hint="choose a listed tier or give --price-per-hour",
            )
        price = tiers[tier]
        return price.usd_per_device_hour, tier, price.date, []
    if "on-demand" in tiers:
        price = tiers["on-demand"]
        return price.usd_per_device_hour, "on-demand", price.date, []
    if tiers:
        name, price = min(tiers.items(), key=lambda kv: kv[1].usd_per_device_hour)
        return (
            price.usd_per_device_hour,
            name,
            price.date,
            [f"{profile.id} lists no on-demand price; costed at its {name} tier"],
        )
    return None, None, None, [f"{profile.id} lists no price; give --price-per-hour to get a cost"]


def estimate(
    model=None,
    tokens=None,
    hardware="a100-80gb",
    devices=None,
    tp=None,
    pp=None,
    dp=None,
    micro_batch=None,
    global_batch=None,
    zero=None,
    recompute=None,
    precision: str = "bf16",
    mfu=None,
    price_tier: str | None = None,
    price_per_hour=None,
    profiles=None,
    seq_len=None,
    interleave=None,
    **architecture,
):
    """Estimate one training job and return an :class:`~flopcast.reports.estimate.EstimateReport`.

    ``model``: a preset id, a size (``"7B"``) or a ModelSpec; or None with ``layers``, ``d_model``,
    ``heads``... as keyword arguments. ``tokens`` and ``devices`` are required. Layout options left None
    are searched (fastest layout that fits); ``interleave`` is the interleaved pipeline schedule's virtual
    stages per device (searched when pp > 1). ``price_tier`` None means on-demand where listed.
    Raises :class:`~flopcast.errors.FlopcastError` subclasses on bad input; a job that does not fit is
    not an error: ``memory.fits`` is False and the warnings name the smallest changes that fit.
    """
    from flopcast.estimator.arrays import PRECISIONS

    unknown = sorted(set(architecture) - set(ARCHITECTURE_KEYS))
    if unknown:
        raise InvalidValue(
            f"unknown option(s) {', '.join(unknown)}", hint=f"architecture options are {', '.join(ARCHITECTURE_KEYS)}"
        )
    if tokens is None:
        raise InvalidValue("--tokens: no token count given", hint="e.g. --tokens 2T")
    n_tokens = parse_count(tokens, what="--tokens")
    if devices is None:
        raise InvalidValue("--devices: no device count given", hint="e.g. --devices 256")
    n_devices = parse_int(devices, what="--devices")
    if precision not in PRECISIONS:
        raise InvalidValue(f"--precision: unknown precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    layout_args = {
        "tp": _opt_int(tp, "--tp"),
        "pp": _opt_int(pp, "--pp"),
        "dp": _opt_int(dp, "--dp"),
        "micro_batch": _opt_int(micro_batch, "--micro-batch"),
        "global_batch": _opt_int(global_batch, "--global-batch"),
        "zero": _opt_int(zero, "--zero", allow_zero=True),
        "interleave": _opt_int(interleave, "--interleave"),
    }
    if layout_args["zero"] is not None and layout_args["zero"] > 3:
        raise InvalidValue(f"--zero: {zero!r} is not a ZeRO stage", hint="use 0, 1, 2 or 3")
    if recompute is not None and str(recompute) not in RECOMPUTE_CHOICES:
        raise InvalidValue(f"--recompute: {recompute!r} is not a recompute mode", hint="use none, selective or full")
    forced_mfu = parse_mfu(mfu)
    spec = _resolve_model(model, seq_len, {k: v for k, v in architecture.items() if v is not None})
    profile = resolve_hardware(hardware, profiles)
    price, tier, price_date, price_warnings = _price(profile, price_tier, price_per_hour)
    return _estimate(
        spec,
        profile,
        n_tokens,
        n_devices,
        layout_args,
        None if recompute is None else str(recompute),
        precision,
        forced_mfu,
        (price, tier, price_date, price_warnings),
        model_label=_label(model, spec),
        price_per_hour=None if price_per_hour is None else price,
    )


def _label(model, spec) -> str:
    if model is None or not isinstance(model, str):
        return spec.name
    return str(model)


def check_partial_layout(spec, devices: int, a: dict) -> None:
    """One-line errors for layout options that cannot work whatever the search picks."""
    from flopcast.layout import divisors

    tp, pp, dp, mb, gb = a["tp"], a["pp"], a["dp"], a["micro_batch"], a["global_batch"]
    v = a.get("interleave")
    if v is not None and v > 1:
        if pp == 1 or (pp is None and devices == 1):
            raise InvalidLayout(
                f"--interleave {v} needs pipeline parallelism (--pp > 1)", hint="drop --interleave or give --pp"
            )
        if pp is not None and spec.layers % pp == 0 and (spec.layers // pp) % v:
            raise InvalidLayout(
                f"--interleave {v} does not divide the {spec.layers // pp} layers per pipeline stage",
                hint=f"use one of {', '.join(str(d) for d in divisors(spec.layers // pp))}",
            )
    if tp is not None and spec.heads % tp:
        raise InvalidLayout(
            f"--tp {tp} does not divide the {spec.heads} attention heads",
            hint=f"use one of {', '.join(str(d) for d in divisors(spec.heads) if d <= devices)}",
        )
    if pp is not None and spec.layers % pp:
        raise InvalidLayout(
            f"--pp {pp}: the {spec.layers} layers are not divisible by {pp} pipeline stages",
            hint=f"use one of {', '.join(str(d) for d in divisors(spec.layers) if d <= devices)}",
        )
    given = [x for x in (tp, pp, dp) if x is not None]
    product = int(np.prod(given)) if given else 1
    if len(given) == 3 and product != devices:
        raise InvalidLayout(
            f"tp·pp·dp = {tp}·{pp}·{dp} = {product} but --devices is {devices}",
            hint="make the product equal the device count, or leave one of --tp/--pp/--dp out",
        )
    if devices % product:
        names = "·".join(n for n, x in (("tp", tp), ("pp", pp), ("dp", dp)) if x is not None)
        raise InvalidLayout(
            f"{names} = {product} does not divide --devices {devices}",
            hint="choose degrees whose product divides the device count",
        )
    if gb is not None:
        if dp is not None and mb is not None and gb % (dp * mb):
            raise InvalidLayout(
                f"--global-batch {gb} is not divisible by dp × micro-batch = {dp} × {mb} = {dp * mb}",
                hint=f"use a multiple of {dp * mb}",
            )
        if dp is not None and gb % dp:
            raise InvalidLayout(f"--global-batch {gb} is not divisible by dp = {dp}", hint=f"use a multiple of {dp}")
        if mb is not None and gb % mb:
            raise InvalidLayout(
                f"--global-batch {gb} is not divisible by --micro-batch {mb}", hint=f"use a multiple of {mb}"
            )


def _estimate(
    spec, profile, n_tokens, n_devices, a, recompute, precision, forced_mfu, pricing, *, model_label, price_per_hour
):
    from flopcast.estimator.arrays import HardwareArrays, ModelArrays, Workload, precision_used
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.layout import LayoutQuery, check_layout, fit_suggestions, search_layouts

    params = EfficiencyParams.load()
    price, tier, price_date, warnings = pricing
    warnings = list(warnings)
    check_partial_layout(spec, n_devices, a)
    used = precision_used(profile, precision)
    hw = HardwareArrays.from_profiles([profile], precision=precision, tier=None, price_per_hour=price, params=params)
    workload = Workload(tokens=n_tokens, precision=precision, mfu_override=forced_mfu)
    query = LayoutQuery(recompute=recompute, **a)
    if query.is_complete():
        from flopcast.layout import Layout

        check_layout(spec, n_devices, Layout(recompute=recompute, **{**a, "interleave": a["interleave"] or 1}))
    try:
        result = search_layouts(spec, profile, n_devices, workload, query=query, params=params, hardware=hw)
    except InvalidLayout:
        if a["global_batch"] is not None:
            raise InvalidLayout(
                f"--global-batch {a['global_batch']} is not divisible by dp × micro-batch for any layout of "
                f"{n_devices} devices that matches the options",
                hint="use a multiple of the data-parallel degree",
            ) from None
        raise
    est, i, layout = result.estimates, result.index, result.layout
    row = est.row(i)

    if used != precision:
        warnings.append(f"{profile.id} has no {precision} peak; using its {used} peak (mixed precision in {used})")
    if not bool(hw.calibrated[0]):
        warnings.append(
            f"no published runs of {profile.id}'s hardware family were used to fit the efficiency "
            f"model; its P10–P90 range is wider"
        )
    if a["global_batch"] is None:
        warnings.append(
            f"--global-batch not given: {layout.global_batch} sequences "
            f"({layout.global_batch * spec.seq_len / 1e6:.3g}M tokens) by the default rule"
        )
    if n_devices > profile.devices_per_node and profile.inter_node_bandwidth_bytes_per_s is None:
        warnings.append(f"{profile.id} publishes no inter-node bandwidth; assumed 12.5 GB/s per device (100 Gb/s)")
    if forced_mfu is not None:
        warnings.append(f"step time forced by --mfu {forced_mfu:g}; the breakdown is scaled to it")
        if row["mfu"] < forced_mfu * (1 - 1e-9):  # core.evaluate keeps the hardware FLOP rate at or below peak
            warnings.append(
                f"--mfu {forced_mfu:g} with {layout.recompute} recomputation would run the hardware above its peak; "
                f"the step is limited to the peak (MFU {row['mfu']:.3g}, HFU 1)"
            )
    if n_tokens < layout.global_batch * spec.seq_len:
        warnings.append("fewer tokens than one global batch: the run is shorter than one optimizer step")
    suggestions = []
    if not row["fits"]:
        others = int(np.asarray(result.estimates.fits).sum())
        need, have = row["memory_bytes"] / 1e9, profile.memory_bytes / 1e9
        if result.automatic and others == 0:
            warnings.append(
                f"no layout of {n_devices} devices fits: the closest needs {need:.1f} GB per device of {have:.0f} GB"
            )
        else:
            warnings.append(f"does not fit: needs {need:.1f} GB per device of {have:.0f} GB")
        suggestions = fit_suggestions(spec, profile, n_devices, layout, workload, params=params, hardware=hw)
        if suggestions:
            warnings.append(
                "fits with: " + "; or ".join(f"{s.flags} ({s.memory_bytes / 1e9:.1f} GB)" for s in suggestions)
            )
        else:
            warnings.append(f"nothing up to {64 * n_devices} devices fits; use a larger-memory device")

    from flopcast.estimator import costs
    from flopcast.reports.estimate import (
        Cost,
        Efficiency,
        Energy,
        EstimateInputs,
        EstimateReport,
        FitSuggestionInfo,
        Flops,
        HardwareInfo,
        Memory,
        MemoryBreakdown,
        ModelInfo,
        Parallelism,
        StepBreakdown,
        Throughput,
        Time,
    )

    devices = n_devices
    dh = row["device_hours"]
    by_tier = {name: dh * p.usd_per_device_hour for name, p in sorted(profile.prices_usd_per_device_hour.items())}
    if price_per_hour is not None:
        by_tier["custom"] = dh * price_per_hour
    has_price = price is not None
    if profile.power_watts is None:
        warnings.append(f"{profile.id} publishes no power figure; no energy or CO2 estimate")
    peak = float(hw.peak_flops_per_s[0])
    report = EstimateReport.model_construct(
        inputs=EstimateInputs.model_construct(
            model=model_label,
            tokens=n_tokens,
            hardware=profile.id,
            devices=devices,
            recompute=recompute,
            precision=precision,
            mfu=forced_mfu,
            price_tier=tier if price_per_hour is None else None,
            price_per_hour=price_per_hour,
            seq_len=spec.seq_len,
            **a,
        ),
        model=ModelInfo.model_construct(
            name=spec.name,
            params=spec.params,
            active_params=spec.active_params,
            matmul_params=int(ModelArrays.from_specs([spec]).matmul_params[0]),
            layers=spec.layers,
            d_model=spec.d_model,
            heads=spec.heads,
            kv_heads=spec.n_kv_heads,
            head_dim=spec.dim_head,
            ffn=spec.ffn_size,
            gated_ffn=spec.gated_ffn,
            vocab=spec.vocab,
            seq_len=spec.seq_len,
            tied_embeddings=spec.tied_embeddings,
            experts=spec.experts,
            active_experts=spec.active_experts,
        ),
        hardware=HardwareInfo.model_construct(
            id=profile.id,
            name=profile.name,
            precision=used,
            peak_flops_per_s=peak,
            memory_bytes=profile.memory_bytes,
            memory_bandwidth_bytes_per_s=profile.memory_bandwidth_bytes_per_s,
            devices_per_node=profile.devices_per_node,
            fused_attention=bool(hw.fused_attention[0] > 0.5),
            calibrated=bool(hw.calibrated[0] > 0.5),
        ),
        parallelism=Parallelism.model_construct(
            tp=layout.tp,
            pp=layout.pp,
            dp=layout.dp,
            zero=layout.zero,
            recompute=layout.recompute,
            micro_batch=layout.micro_batch,
            global_batch=layout.global_batch,
            global_batch_tokens=layout.global_batch * spec.seq_len,
            micro_batches_per_step=row["micro_batches"],
            interleave=layout.interleave,
            layout_chosen_automatically=len(result.candidates.tp) > 1,
            candidates_evaluated=len(result.candidates.tp),
        ),
        flops=Flops.model_construct(
            per_token=row["model_flops_per_token"],
            hardware_per_token=row["hardware_flops_per_token"],
            total=row["model_flops_total"],
            hardware_total=row["hardware_flops_total"],
        ),
        memory=Memory.model_construct(
            per_device_bytes=row["memory_bytes"],
            capacity_bytes=profile.memory_bytes,
            fits=row["fits"],
            headroom_bytes=profile.memory_bytes - row["memory_bytes"],
            breakdown=MemoryBreakdown.model_construct(
                weights_bytes=row["weights_bytes"],
                gradients_bytes=row["gradients_bytes"],
                optimizer_bytes=row["optimizer_bytes"],
                activations_bytes=row["activations_bytes"],
                logits_bytes=row["logits_bytes"],
                zero3_buffers_bytes=row["zero3_buffer_bytes"],
                framework_bytes=row["framework_bytes"],
            ),
        ),
        time=Time.model_construct(
            step_seconds=row["step_seconds"],
            steps=row["steps"],
            step_breakdown=StepBreakdown.model_construct(
                compute_seconds=row["compute_seconds"],
                tp_comm_seconds=row["tp_comm_seconds"],
                pp_comm_seconds=row["pp_comm_seconds"],
                dp_comm_exposed_seconds=row["dp_comm_exposed_seconds"],
                bubble_seconds=row["bubble_seconds"],
                optimizer_seconds=row["optimizer_seconds"],
            ),
            training_seconds=row["training_seconds"],
            reliability_seconds=row["reliability_seconds"],
            reliability_share=row["reliability_seconds"] / row["wall_clock_seconds"],
            wall_clock_seconds=row["wall_clock_seconds"],
            wall_clock_seconds_p10=row["wall_clock_seconds_p10"],
            wall_clock_seconds_p90=row["wall_clock_seconds_p90"],
            device_hours=dh,
            device_hours_p10=row["device_hours_p10"],
            device_hours_p90=row["device_hours_p90"],
        ),
        efficiency=Efficiency.model_construct(
            mfu=row["mfu"],
            hfu=row["hfu"],
            gemm_efficiency=row["gemm_efficiency"],
            mfu_forced=forced_mfu is not None,
            fitted_parameters=_fitted(params),
            fitted_on=params.fitted_on,
            fitted_date=params.fitted_date,
        ),
        throughput=Throughput.model_construct(
            tokens_per_second=row["tokens_per_second"],
            tokens_per_second_per_device=row["tokens_per_second"] / devices,
            model_tflops_per_device=row["model_tflops_per_device"],
            hardware_tflops_per_device=row["hardware_flops_per_token"] * row["tokens_per_second"] / devices / 1e12,
        ),
        cost=Cost.model_construct(
            total_usd=row["cost_usd"] if has_price else None,
            total_usd_p10=row["cost_usd_p10"] if has_price else None,
            total_usd_p90=row["cost_usd_p90"] if has_price else None,
            usd_per_device_hour=price,
            tier=tier,
            price_date=price_date,
            by_tier_usd=by_tier,
        ),
        energy=Energy.model_construct(
            kwh=row["energy_kwh"] if profile.power_watts is not None else None,
            co2_kg=row["co2_kg"] if profile.power_watts is not None else None,
            power_watts=profile.power_watts,
            power_fraction=costs.POWER_FRACTION_OF_TDP,
            pue=costs.PUE_DEFAULT,
            grid_kg_co2_per_kwh=costs.GRID_KG_CO2_PER_KWH_DEFAULT,
        ),
        fit_suggestions=[
            FitSuggestionInfo.model_construct(
                change=s.change, flags=s.flags, per_device_bytes=s.memory_bytes, wall_clock_seconds=s.wall_clock_seconds
            )
            for s in suggestions
        ],
        warnings=warnings,
    )
    return report


def _fitted(params) -> dict:
    from flopcast.estimator.efficiency import FITTED_NAMES

    out: dict = {name: float(getattr(params, name)) for name in FITTED_NAMES}
    out["family_ceiling_factor"] = {k: float(v) for k, v in params.family_ceiling_factor.items()}
    return out
