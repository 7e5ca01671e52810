"""The library: one function per question, one calling convention (keyword arguments, numbers or strings with
units such as ``"2T"``, ``"7B"``, ``"30d"``, ``"$2M"``), each returning a validated pydantic report.

    import flopcast
    r = flopcast.estimate(model="llama-2-7b", tokens="2T", hardware="a100-80gb", devices=256)
    r.time.wall_clock_seconds, r.cost.total_usd, r.memory.fits

    flopcast.plan(model="llama-2-7b", tokens="2T", deadline="30d")          # PlanReport (best, Pareto front)
    flopcast.compare(model="llama-2-7b", tokens="2T", devices=256)         # CompareReport (one row per hardware)
    flopcast.size(budget="$2M", hardware="h100-80gb", devices=512)         # SizeReport (compute-optimal N, D)
    flopcast.serve(model="llama-2-70b", hardware="h100-80gb", batch=8)     # ServeReport

Bad input raises :class:`~flopcast.errors.FlopcastError` subclasses (messages name the keyword arguments);
a job that does not fit is not an error (``memory.fits`` is False, the warnings say what would fit); a plan
with no feasible point returns a report with ``feasible`` False (the CLI exits 3).

Layout options left None are searched (:mod:`flopcast.search`: the fastest layout that fits).
"""

from __future__ import annotations

from flopcast.errors import opt
from flopcast.request import ARCHITECTURE_KEYS  # noqa: F401  (re-exported: the architecture keyword names)


def estimate(
    model=None,
    tokens=None,
    hardware="a100-80gb",
    devices=None,
    *,
    precision: str = "bf16",
    mfu=None,
    price_tier: str | None = None,
    price_per_hour=None,
    profiles=None,
    seq_len=None,
    memory_headroom=None,
    grad_dtype=None,
    storage=None,
    keep_checkpoints=None,
    transfer_gbps=None,
    finetune=None,
    lora_rank=None,
    lora_targets=None,
    epochs=None,
    torch_model=None,
    samples=None,
    **options,
):
    """Estimate one training job; returns an :class:`~flopcast.reports.estimate.EstimateReport`.

    ``model``: a preset id, a size (``"7B"``) or a ModelSpec; or None with ``layers``, ``d_model``,
    ``heads``... as keyword arguments. ``tokens`` and ``devices`` are required. Layout keywords are the layout
    record's fields (``tp``, ``pp``, ``dp``, ``micro_batch``, ``global_batch``, ``zero``, ``recompute``,
    ``interleave``, ...: flopcast.layout_fields); each left None is searched. ``price_tier`` None means
    on-demand where listed (:func:`flopcast.request.price_for`). ``memory_headroom``: the fraction of each
    device's memory a layout must leave free to fit (default 0.10, ``request.DEFAULT_MEMORY_HEADROOM_FRACTION``).
    ``grad_dtype``: fp32, bf16, fp16 (None: fp32 main grads for bf16/fp8, as Megatron-LM; fp16 for fp16).
    ``storage``: a storage tier id (flopcast.storage; None: tier-free storage figures only), with
    ``keep_checkpoints`` (default 2) and ``transfer_gbps`` (a rate to move the dataset and final checkpoint at).
    ``finetune``: full, lora or qlora (frozen base weights, flopcast.estimator.finetune) with ``lora_rank``
    (default 16) and ``lora_targets`` (all, the default, or attention); ``tokens`` is then the fine-tuning set,
    ``epochs`` (default 1) the passes over it.
    A measured model (a CNN, ViT or DLRM preset, or ``torch_model="package.module:factory"`` measured with
    PyTorch: flopcast.measured_models) trains on ``samples`` (not tokens), ``global_batch`` samples per step.
    """
    from flopcast import request
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.units import parse_int

    layout, architecture = request.split_options(options)
    if torch_model is not None or samples is not None:  # a measured model (flopcast.measured_models)
        from flopcast.measured_models import measured_budget

        model, tokens = measured_budget(model, tokens, torch_model, samples)
    work = request.training_workload(
        model=model, tokens=tokens, seq_len=seq_len, precision=precision, mfu=mfu, memory_headroom=memory_headroom,
        architecture=architecture, grad_dtype=grad_dtype, finetune=finetune, lora_rank=lora_rank,
        lora_targets=lora_targets, epochs=epochs,
    )  # fmt: skip
    if getattr(work.spec, "measured", False) and samples is None:
        from flopcast.errors import InvalidValue

        raise InvalidValue(
            f"{work.spec.name} is a measured model: it trains on samples, not tokens",
            hint=f"give {opt('samples')} instead of {opt('tokens')}, e.g. {opt('samples')} 1.28e8",
        )
    n_devices = parse_int(request.required(devices, "devices", "256"), what=opt("devices"))
    from flopcast.storage import storage_request

    store = storage_request(storage, keep_checkpoints, transfer_gbps)
    query = request.layout_query(**layout)
    params = EfficiencyParams.load()
    profile = request.resolve_hardware(hardware, profiles)
    from flopcast.finetune_request import check_finetune_hardware

    check_finetune_hardware(work.finetune, profile)
    hw = request.priced_hardware(
        profile, precision=work.precision, params=params, tier=price_tier, price_per_hour=price_per_hour
    )
    return estimate_on(work, hw, n_devices, query, params, storage=store)


def estimate_on(work, hw, devices: int, query, params, *, storage=None):
    """The estimate report of ``work`` (request.TrainingWorkload) on ``devices`` of ``hw``
    (request.PricedHardware) with the layout ``query`` fixes (the rest searched); ``storage`` a
    storage.StorageRequest (None: tier-free storage figures)."""
    from flopcast.config_path import config_warnings
    from flopcast.layout import check_layout, default_global_batch
    from flopcast.reports.build import estimate_report
    from flopcast.request import check_context_parallel_kernel, hardware_warnings
    from flopcast.search import MAX_DEVICE_MULTIPLIER, fit_suggestions, search_layouts

    spec = work.spec
    measured_note = None
    if getattr(spec, "measured", False):  # a batch in samples (flopcast.measured_models)
        from flopcast.measured_models import default_batch_query

        query, measured_note = default_batch_query(spec, query)
    check_layout(spec, devices, query)
    check_context_parallel_kernel(hw, query)
    result = search_layouts(spec, hw, devices, work.core(), query=query, params=params)
    layout, row = result.layout, result.estimates.row(0)
    warnings = hardware_warnings(hw, devices) + config_warnings(work.label)  # a config.json's notes
    warnings += [measured_note] if measured_note else []
    if query.global_batch is None:
        rule = default_global_batch(spec.params, spec.seq_len)
        chosen = f"{layout.global_batch} sequences ({layout.global_batch * spec.seq_len / 1e6:.3g}M tokens)"
        if layout.global_batch == rule:
            warnings.append(f"no global batch given: {chosen} by the default rule")
        else:  # the nearest multiple of dp × micro-batch (and at least pp micro-batches): say so
            warnings.append(
                f"no global batch given: {chosen}, the multiple of dp × micro-batch = {layout.dp} × "
                f"{layout.micro_batch} nearest the default rule's {rule}; give a global batch to pin it"
            )
    if work.mfu is not None:
        warnings.append(f"step time forced to MFU {work.mfu:g}; the breakdown is scaled to it")
        if row["mfu"] < work.mfu * (1 - 1e-9):  # core.evaluate keeps the hardware FLOP rate at or below peak
            warnings.append(
                f"MFU {work.mfu:g} with {layout.recompute} recomputation would run the hardware above its "
                f"peak; the step is limited to the peak (MFU {row['mfu']:.3g}, HFU 1)"
            )
    if work.tokens_processed < layout.global_batch * spec.seq_len:
        warnings.append("fewer tokens than one global batch: the run is shorter than one optimizer step")
    suggestions = []
    if not row["fits"]:
        need, have = row["memory_bytes"] / 1e9, hw.profile.memory_bytes / 1e9
        of = f"{have:.0f} GB"
        if work.memory_headroom:
            usable = have * (1 - work.memory_headroom)
            of = f"the {usable:.1f} GB usable ({have:.0f} GB less {work.memory_headroom:.0%})"
        if result.automatic and not result.any_fits:
            warnings.append(f"no layout of {devices} devices fits: the closest needs {need:.1f} GB per device of {of}")
        else:
            warnings.append(f"does not fit: needs {need:.1f} GB per device of {of}")
        suggestions = fit_suggestions(spec, hw, devices, layout, work.core(), params=params)
        if suggestions:
            warnings.append(
                "fits with: " + "; or ".join(f"{s.flags} ({s.memory_bytes / 1e9:.1f} GB)" for s in suggestions)
            )
        else:
            warnings.append(f"nothing up to {MAX_DEVICE_MULTIPLIER * devices} devices fits; use a larger-memory device")
    return estimate_report(
        work, hw, devices, query, result, params, suggestions=suggestions, warnings=warnings, storage_request=storage
    )


def plan(**options):
    """Search hardware × device count × layout (:func:`flopcast.planner.plan`); returns a PlanReport."""
    from flopcast.planner import plan as run

    return run(**options)


def compare(**options):
    """One workload on every (or the named) hardware (:func:`flopcast.comparison.compare`); a CompareReport."""
    from flopcast.comparison import compare as run

    return run(**options)


def size(**options):
    """Compute-optimal model and tokens for a budget (:func:`flopcast.sizing.size`); a SizeReport."""
    from flopcast.sizing import size as run

    return run(**options)


def calibrate(runs, *, hardware=None, model=None, devices=None, skip_steps: int = 3, fit_overhead: bool = False,
              profiles=None, seq_len=None, **options):  # fmt: skip
    """Fit a hardware profile's GEMM ceiling to measured steps (:mod:`flopcast.calibration.calibrate`); returns a
    CalibrationReport. ``runs``: paths of CSV/JSON measured steps or torchtitan / Megatron-LM / DeepSpeed logs;
    ``model``, ``devices`` and layout keywords (``tp``, ``dp``, ...) fill what a log does not say. Save the
    calibrated profile with :func:`flopcast.calibration.save.calibrated_profile` and ``write_profile``."""
    from pathlib import Path

    from flopcast.calibration.calibrate import calibrate as fit
    from flopcast.calibration.measured import load_sources
    from flopcast.request import resolve_hardware

    paths = [Path(runs)] if isinstance(runs, str | Path) else [Path(r) for r in runs]
    defaults = {"model": model, "seq_len": seq_len, "devices": devices, **options}
    measured = load_sources(paths, hardware=hardware, defaults=defaults, skip_steps=skip_steps, profiles=profiles)
    base = resolve_hardware(measured[0].run.hardware, profiles)
    return fit(measured, base, fit_overhead=fit_overhead, sources=[str(q) for q in paths])


def serve(**options):
    """Serving estimate (:func:`flopcast.serving.serve`); a ServeReport."""
    from flopcast.serving import serve as run

    return run(**options)


def serve_plan(**options):
    """The cheapest serving configuration under latency targets (:func:`flopcast.serving_plan.serve_plan`);
    a ServePlanReport."""
    from flopcast.serving_plan import serve_plan as run

    return run(**options)
