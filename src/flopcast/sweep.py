"""``flopcast estimate --sweep devices=8..4096``: one job estimated at every power-of-two device count.

One vectorised pass of the estimator core: every candidate layout of every device count is enumerated
(:class:`flopcast.planner.CandidateCache`), evaluated at once (:func:`flopcast.estimator.core.evaluate`) and
the best per count picked with the same rule as ``estimate`` (:func:`flopcast.layout.pick_best_grouped`), so
each row equals ``flopcast estimate --devices N`` with the same options. No formula lives here.
"""

from __future__ import annotations

import re

import numpy as np

from flopcast.errors import ConflictingOptions, InvalidLayout, InvalidValue
from flopcast.units import parse_int

SWEEP_PARAMETERS = ("devices",)
_SWEEP = re.compile(r"^\s*(?P<name>[a-z_-]+)\s*=\s*(?P<lo>[^.\s]+)\s*\.\.\s*(?P<hi>\S+)\s*$")
SWEEP_HINT = "e.g. --sweep devices=8..4096 (every power of two in that range)"


def parse_sweep(text: str) -> tuple[str, int, int]:
    """``"devices=8..4096"`` → ``("devices", 8, 4096)``; the bounds accept suffixes (``8..4k``)."""
    match = _SWEEP.match(str(text))
    if not match:
        raise InvalidValue(f"--sweep {text!r}: expected NAME=LOW..HIGH", hint=SWEEP_HINT)
    name = match["name"].replace("-", "_")
    if name not in SWEEP_PARAMETERS:
        raise InvalidValue(
            f"--sweep {text!r}: cannot sweep {match['name']!r}", hint=f"sweepable: {', '.join(SWEEP_PARAMETERS)}"
        )
    lo = parse_int(match["lo"], what="--sweep")
    hi = parse_int(match["hi"], what="--sweep")
    if lo > hi:
        raise InvalidValue(f"--sweep {text!r}: the low end {lo} is above the high end {hi}", hint=SWEEP_HINT)
    return name, lo, hi


def power_of_two_counts(lo: int, hi: int) -> list[int]:
    """Every power of two in [lo, hi]."""
    counts, k = [], 1
    while k <= hi:
        if k >= lo:
            counts.append(k)
        k *= 2
    if not counts:
        raise InvalidValue(f"--sweep devices={lo}..{hi}: no power of two in that range", hint=SWEEP_HINT)
    return counts


def sweep_estimate(
    *,
    sweep: str,
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
    interleave=None,
    precision: str = "bf16",
    mfu=None,
    price_tier: str | None = None,
    price_per_hour=None,
    profiles=None,
    seq_len=None,
    **architecture,
):
    """Estimate the job at every device count of ``sweep``; returns a :class:`~flopcast.reports.sweep.SweepReport`.

    Options mean what they mean for :func:`flopcast.api.estimate`; ``--devices`` and ``--dp`` follow the
    sweep and may not be given.
    """
    from flopcast import api
    from flopcast.estimator.arrays import PRECISIONS, HardwareArrays, ModelArrays, Workload, precision_used
    from flopcast.estimator.core import evaluate
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.layout import LayoutQuery, pick_best_grouped
    from flopcast.planner import CandidateCache

    _, lo, hi = parse_sweep(sweep)
    if devices is not None:
        raise ConflictingOptions("--devices together with --sweep devices=...", hint="drop --devices")
    if dp is not None:
        raise ConflictingOptions("--dp together with --sweep devices=...", hint="drop --dp: it follows the devices")
    counts = power_of_two_counts(lo, hi)
    unknown = sorted(k for k, v in architecture.items() if k not in api.ARCHITECTURE_KEYS and v is not None)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise ConflictingOptions(f"{flags} together with --sweep", hint=f"drop {flags} or estimate one device count")
    architecture = {k: v for k, v in architecture.items() if k in api.ARCHITECTURE_KEYS}
    if tokens is None:
        raise InvalidValue("--tokens: no token count given", hint="e.g. --tokens 2T")
    from flopcast.units import parse_count

    n_tokens = parse_count(tokens, what="--tokens")
    if precision not in PRECISIONS:
        raise InvalidValue(f"--precision: unknown precision {precision!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    a = {
        "tp": api._opt_int(tp, "--tp"),
        "pp": api._opt_int(pp, "--pp"),
        "dp": None,
        "micro_batch": api._opt_int(micro_batch, "--micro-batch"),
        "global_batch": api._opt_int(global_batch, "--global-batch"),
        "zero": api._opt_int(zero, "--zero", allow_zero=True),
    }
    if interleave is not None:  # interleaved pipeline schedule: virtual stages per device
        a["interleave"] = api._opt_int(interleave, "--interleave")
    if a["zero"] is not None and a["zero"] > 3:
        raise InvalidValue(f"--zero: {zero!r} is not a ZeRO stage", hint="use 0, 1, 2 or 3")
    if recompute is not None and str(recompute) not in api.RECOMPUTE_CHOICES:
        raise InvalidValue(f"--recompute: {recompute!r} is not a recompute mode", hint="use none, selective or full")
    forced_mfu = api.parse_mfu(mfu)
    spec = api._resolve_model(model, seq_len, {k: v for k, v in architecture.items() if v is not None})
    profile = api.resolve_hardware(hardware, profiles)
    price, tier, _, warnings = api._price(profile, price_tier, price_per_hour)
    warnings = list(warnings)

    # Counts whose layout options cannot work (e.g. --tp 16 on 8 devices) are skipped with the reason.
    valid, skipped, first_error = [], [], None
    for n in counts:
        try:
            api.check_partial_layout(spec, n, a)
        except InvalidLayout as exc:
            first_error = first_error or exc
            skipped.append((n, exc.message))
            continue
        valid.append(n)
    if not valid:
        raise first_error

    params = EfficiencyParams.load()
    hw = HardwareArrays.from_profiles([profile], precision=precision, tier=None, price_per_hour=price, params=params)
    query = LayoutQuery(recompute=None if recompute is None else str(recompute), **a)
    cands, kept, starts = CandidateCache(spec, query).layouts(int(profile.devices_per_node), valid)
    kept_list = [int(k) for k in kept]
    skipped += [(n, f"no layout of {n} devices matches the given options") for n in valid if n not in kept_list]
    if not kept_list:
        raise InvalidLayout(
            f"no parallel layout of any device count in {lo}..{hi} matches the given options for this model",
            hint="check that --tp divides the heads, --pp the layers, and --global-batch the data-parallel degree",
        )
    workload = Workload(tokens=n_tokens, precision=precision, mfu_override=forced_mfu)
    est = evaluate(ModelArrays.from_specs([spec]), hw, cands, workload, params)  # every layout of every count
    sizes = np.diff(np.append(starts, len(cands.tp)))
    groups = np.repeat(np.arange(len(kept_list)), sizes)
    winners = pick_best_grouped(est, groups, len(kept_list))
    rows = [est.row(int(i)) for i in winners]
    layouts = [cands.take(np.asarray([int(i)])) for i in winners]

    used = precision_used(profile, precision)
    if used != precision:
        warnings.append(f"{profile.id} has no {precision} peak; using its {used} peak (mixed precision in {used})")
    if not bool(hw.calibrated[0]):
        warnings.append(
            f"no published runs of {profile.id}'s hardware family were used to fit the efficiency model; "
            "its P10–P90 range is wider"
        )
    if a["global_batch"] is None:
        warnings.append("--global-batch not given: at each device count, the default rule's batch (as estimate)")
    if kept_list[-1] > profile.devices_per_node and profile.inter_node_bandwidth_bytes_per_s is None:
        warnings.append(f"{profile.id} publishes no inter-node bandwidth; assumed 12.5 GB/s per device (100 Gb/s)")
    if forced_mfu is not None:
        warnings.append(f"step time forced by --mfu {forced_mfu:g}")
    no_fit = [n for n, r in zip(kept_list, rows, strict=True) if not r["fits"]]
    if no_fit:
        warnings.append(
            f"does not fit on {', '.join(str(n) for n in no_fit)} device(s) (no layout fits in "
            f"{profile.memory_bytes / 1e9:.0f} GB); those rows show the layout closest to fitting"
        )
    if profile.power_watts is None:
        warnings.append(f"{profile.id} publishes no power figure; no energy estimate")
    return _report(
        spec, profile, api._label(model, spec), n_tokens, lo, hi, a, recompute, precision, forced_mfu,
        price_tier, price_per_hour, price, tier, kept_list, rows, layouts, sorted(skipped), len(cands.tp), warnings,
    )  # fmt: skip


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _report(
    spec, profile, label, tokens, lo, hi, a, recompute, precision, forced_mfu, price_tier, price_per_hour, price,
    tier, counts, rows, layouts, skipped, evaluated, warnings,
):  # fmt: skip
    from flopcast.layout import RECOMPUTE_NAMES
    from flopcast.reports.plan import LayoutInfo, ModelSummary
    from flopcast.reports.sweep import SkippedCount, SweepInputs, SweepReport, SweepRow

    # scaling efficiency is relative to the smallest count that fits (the first count when none does)
    ref = next((k for k, r in enumerate(rows) if r["fits"]), 0)
    base = rows[ref]["tokens_per_second"] / counts[ref]
    out = []
    for n, r, lay in zip(counts, rows, layouts, strict=True):
        out.append(
            SweepRow(
                devices=n,
                layout=LayoutInfo(
                    tp=int(lay.tp[0]),
                    pp=int(lay.pp[0]),
                    dp=int(lay.dp[0]),
                    micro_batch=int(lay.micro_batch[0]),
                    global_batch=int(lay.global_batch[0]),
                    zero=int(lay.zero[0]),
                    recompute=RECOMPUTE_NAMES[int(lay.recompute[0])],
                ),
                interleave=int(lay.interleave[0]),
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
            model=label,
            tokens=tokens,
            hardware=profile.id,
            parameter="devices",
            devices_min=lo,
            devices_max=hi,
            tp=a["tp"],
            pp=a["pp"],
            micro_batch=a["micro_batch"],
            global_batch=a["global_batch"],
            zero=a["zero"],
            recompute=None if recompute is None else str(recompute),
            interleave=a.get("interleave"),
            precision=precision,
            mfu=forced_mfu,
            price_tier=tier if price_per_hour is None else None,
            price_per_hour=None if price_per_hour is None else price,
        ),
        model=ModelSummary(
            name=spec.name,
            params=spec.params,
            layers=spec.layers,
            d_model=spec.d_model,
            heads=spec.heads,
            seq_len=spec.seq_len,
        ),
        hardware_name=profile.name,
        price_tier=tier,
        usd_per_device_hour=price,
        rows=out,
        skipped=[SkippedCount(devices=n, reason=why) for n, why in skipped],
        layouts_evaluated=evaluated,
        warnings=warnings,
    )
