"""``flopcast estimate --sweep devices=8..4096``: one job estimated at every power-of-two device count.

One pass of the search (:func:`flopcast.search.search_counts`) over every device count: the same
enumeration, chunked evaluation and winner rule as ``estimate``, so each row equals ``flopcast estimate
--devices N`` with the same options. No formula lives here.
"""

from __future__ import annotations

import re

import numpy as np

from flopcast.errors import ConflictingOptions, InvalidLayout, InvalidValue, opt
from flopcast.units import parse_int

SWEEP_PARAMETERS = ("devices",)
_SWEEP = re.compile(r"^\s*(?P<name>[a-z_-]+)\s*=\s*(?P<lo>[^.\s]+)\s*\.\.\s*(?P<hi>\S+)\s*$")
SWEEP_HINT = f"e.g. {opt('sweep')} devices=8..4096 (every power of two in that range)"


def parse_sweep(text: str) -> tuple[str, int, int]:
    """``"devices=8..4096"`` → ``("devices", 8, 4096)``; the bounds accept suffixes (``8..4k``)."""
    match = _SWEEP.match(str(text))
    if not match:
        raise InvalidValue(f"{opt('sweep')} {text!r}: expected NAME=LOW..HIGH", hint=SWEEP_HINT)
    name = match["name"].replace("-", "_")
    if name not in SWEEP_PARAMETERS:
        raise InvalidValue(
            f"{opt('sweep')} {text!r}: cannot sweep {match['name']!r}", hint=f"sweepable: {', '.join(SWEEP_PARAMETERS)}"
        )
    lo = parse_int(match["lo"], what=opt("sweep"))
    hi = parse_int(match["hi"], what=opt("sweep"))
    if lo > hi:
        raise InvalidValue(f"{opt('sweep')} {text!r}: the low end {lo} is above the high end {hi}", hint=SWEEP_HINT)
    return name, lo, hi


def power_of_two_counts(lo: int, hi: int) -> list[int]:
    """Every power of two in [lo, hi]."""
    counts, k = [], 1
    while k <= hi:
        if k >= lo:
            counts.append(k)
        k *= 2
    if not counts:
        raise InvalidValue(f"{opt('sweep')} devices={lo}..{hi}: no power of two in that range", hint=SWEEP_HINT)
    return counts


def sweep_estimate(
    *,
    sweep: str,
    model=None,
    tokens=None,
    hardware="a100-80gb",
    devices=None,
    precision: str = "bf16",
    mfu=None,
    price_tier: str | None = None,
    price_per_hour=None,
    profiles=None,
    seq_len=None,
    memory_headroom=None,
    grad_dtype=None,
    **options,
):
    """Estimate the job at every device count of ``sweep``; returns a :class:`~flopcast.reports.sweep.SweepReport`.

    Options (layout and architecture keywords) mean what they mean for :func:`flopcast.api.estimate`;
    ``devices`` and ``dp`` follow the sweep and may not be given. Each count's row is the search's winner there,
    as ``estimate`` chooses it."""
    from flopcast import request
    from flopcast.estimator.arrays import ModelArrays
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.layout import Layout, check_layout
    from flopcast.search import CandidateCache, search_counts

    _, lo, hi = parse_sweep(sweep)
    layout, architecture = request.split_options(options)
    for name, value in (("devices", devices), ("dp", layout.get("dp"))):
        if value is not None:
            raise ConflictingOptions(
                f"{opt(name)} together with {opt('sweep')} devices=...",
                hint=f"drop {opt(name)}" + (": it follows the devices" if name == "dp" else ""),
            )
    counts = power_of_two_counts(lo, hi)
    work = request.training_workload(
        model=model, tokens=tokens, seq_len=seq_len, precision=precision, mfu=mfu, memory_headroom=memory_headroom,
        architecture=architecture, grad_dtype=grad_dtype,
    )  # fmt: skip
    request.refuse_measured(work, "estimate --sweep")
    query = request.layout_query(**layout)
    spec = work.spec
    params = EfficiencyParams.load()
    profile = request.resolve_hardware(hardware, profiles)
    hw = request.priced_hardware(
        profile, precision=work.precision, params=params, tier=price_tier, price_per_hour=price_per_hour
    )

    # Counts whose layout options cannot work (e.g. tp 16 on 8 devices) are skipped with the reason.
    valid, skipped, first_error = [], [], None
    for n in counts:
        try:
            check_layout(spec, n, query)
        except InvalidLayout as exc:
            first_error = first_error or exc
            skipped.append((n, exc.message))
            continue
        valid.append(n)
    if not valid:
        raise first_error
    w = search_counts(spec, ModelArrays.from_specs([spec]), hw, valid, work.core(), params, CandidateCache(spec, query))
    kept = [int(k) for k in w.devices]
    skipped += [(n, f"no layout of {n} devices matches the given options") for n in valid if n not in kept]
    if not kept:
        raise InvalidLayout(
            f"no parallel layout of any device count in {lo}..{hi} matches the given options for this model",
            hint=f"check that {opt('tp')} divides the heads, {opt('pp')} the layers, and {opt('global_batch')} the "
            "data-parallel degree",
        )
    rows = [w.estimates.row(k) for k in range(len(kept))]
    layouts = [Layout.from_arrays(w.layouts, k) for k in range(len(kept))]
    warnings = request.hardware_warnings(hw, kept[-1])
    if query.global_batch is None:
        warnings.append("no global batch given: at each device count, the default rule's batch (as estimate)")
    if work.mfu is not None:
        warnings.append(f"step time forced to MFU {work.mfu:g}")
    no_fit = [n for n, r in zip(kept, rows, strict=True) if not r["fits"]]
    if no_fit:
        warnings.append(
            f"does not fit on {', '.join(str(n) for n in no_fit)} device(s) (no layout fits in "
            f"{profile.memory_bytes / 1e9:.0f} GB); those rows show the layout closest to fitting"
        )
    return _report(work, hw, lo, hi, query, kept, rows, layouts, sorted(skipped), w.evaluated, warnings)


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _report(work, hw, lo, hi, query, counts, rows, layouts, skipped, evaluated, warnings):
    from flopcast.reports.build import model_summary
    from flopcast.reports.layout import layout_info
    from flopcast.reports.sweep import SkippedCount, SweepInputs, SweepReport, SweepRow

    profile, price = hw.profile, hw.price
    # scaling efficiency is relative to the smallest count that fits (the first count when none does)
    ref = next((k for k, r in enumerate(rows) if r["fits"]), 0)
    base = rows[ref]["tokens_per_second"] / counts[ref]
    out = []
    for n, r, lay in zip(counts, rows, layouts, strict=True):
        out.append(
            SweepRow(
                devices=n,
                layout=layout_info(lay),
                fits=r["fits"],
                memory_per_device_bytes=r["memory_bytes"],
                capacity_bytes=profile.memory_bytes,
                step_seconds=r["step_seconds"],
                wall_clock_seconds=r["wall_clock_seconds"],
                wall_clock_seconds_p10=r["wall_clock_seconds_p10"],
                wall_clock_seconds_p90=r["wall_clock_seconds_p90"],
                device_hours=r["device_hours"],
                device_hours_p10=r["device_hours_p10"],
                device_hours_p90=r["device_hours_p90"],
                cost_usd=_num(r["cost_usd"]),
                cost_usd_p10=_num(r["cost_usd_p10"]),
                cost_usd_p90=_num(r["cost_usd_p90"]),
                energy_kwh=_num(r["energy_kwh"]),
                mfu=r["mfu"],
                tokens_per_second=r["tokens_per_second"],
                scaling_efficiency=(r["tokens_per_second"] / n) / base if base > 0 else 0.0,
            )
        )
    return SweepReport(
        inputs=SweepInputs(
            model=work.label,
            tokens=work.tokens,
            hardware=profile.id,
            parameter="devices",
            devices_min=lo,
            devices_max=hi,
            precision=work.precision,
            mfu=work.mfu,
            price_tier=None if price.custom else price.tier,
            price_per_hour=price.usd_per_device_hour if price.custom else None,
            **query.given(),
        ),
        model=model_summary(work.spec),
        hardware_name=profile.name,
        price_tier=price.tier,
        usd_per_device_hour=price.usd_per_device_hour,
        rows=out,
        skipped=[SkippedCount(devices=n, reason=why) for n, why in skipped],
        layouts_evaluated=evaluated,
        warnings=warnings,
    )
