"""``compare``: one workload on every (or the named) hardware, at a device count or at the fewest devices that
meet a deadline. Each row is an ``estimate`` of that hardware (the same request, search and report builder);
rows are ranked best first by the objective, and a row that cannot run says why."""

from __future__ import annotations

import math
import time

import numpy as np

from flopcast.confidence import at, parse_confidence
from flopcast.errors import ConflictingOptions, InvalidLayout, InvalidValue, opt
from flopcast.planner import (
    DEFAULT_MAX_DEVICES,
    _deadline_extension,
    device_counts,
    parse_constraints,
    parse_objective,
)
from flopcast.points import Points
from flopcast.units import format_duration, parse_int


def compare(
    model=None,
    tokens=None,
    *,
    hardware=None,
    devices=None,
    deadline=None,
    max_devices=None,
    objective=None,
    price_tier: str | None = None,
    precision: str = "bf16",
    global_batch=None,
    seq_len=None,
    profiles=None,
    params=None,
    memory_headroom=None,
    confidence=None,
    grad_dtype=None,
    **architecture,
):
    """One workload on every (or the named) hardware at ``devices`` or, with ``deadline``, at the fewest
    devices of each hardware that meet it; returns a :class:`~flopcast.reports.plan.CompareReport`.

    ``confidence`` (p50, the default; p80; p90): the percentile of each estimate's calibrated range at which
    the deadline is met and by which rows are ranked. With a deadline every row that meets it is ranked by
    its cost (objective cost), its device count (objective time: the fewest devices that meet the deadline)
    or its energy — never by how far under the deadline it finishes."""
    from flopcast import request
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.reports.build import model_summary
    from flopcast.reports.plan import CompareInputs, CompareReport

    started = time.perf_counter()
    objective = parse_objective(objective)
    confidence = parse_confidence(confidence)
    deadline_s, _, limit = parse_constraints(deadline, None, max_devices)
    n_devices = None if devices is None else parse_int(devices, what=opt("devices"))
    if n_devices is not None and deadline_s is not None:
        raise ConflictingOptions(
            f"{opt('devices')} together with {opt('deadline')}",
            hint=f"give {opt('devices')} N to compare at N devices, or {opt('deadline')} to find the fewest",
        )
    if n_devices is None and deadline_s is None:
        raise InvalidValue(
            f"compare needs {opt('devices')} N or {opt('deadline')} DURATION",
            hint=f"e.g. {opt('devices')} 256, or {opt('deadline')} 30d for the fewest devices that meet it",
        )
    if limit is not None and n_devices is not None:
        raise ConflictingOptions(
            f"{opt('max_devices')} together with {opt('devices')}",
            hint=f"{opt('max_devices')} bounds a deadline search",
        )
    work = request.training_workload(
        model=model, tokens=tokens, seq_len=seq_len, precision=precision, memory_headroom=memory_headroom,
        architecture=architecture, grad_dtype=grad_dtype,
    )  # fmt: skip
    request.refuse_measured(work, "compare")
    gb = request.optional_int(global_batch, "global_batch")
    chosen = request.resolve_hardware_list(hardware, profiles)
    request.check_price_tier(price_tier, chosen)
    params = params or EfficiencyParams.load()
    rows = [
        _compare_row(work, gb, p, n_devices, deadline_s, limit, objective, price_tier, params, confidence)
        for p in chosen
    ]
    value = {"cost": at("cost_usd", confidence), "time": at("wall_clock_seconds", confidence), "energy": "energy_kwh"}
    if deadline_s is not None:  # every ok row meets the deadline: rank by what it takes, not by the margin
        value["time"] = "devices"
    rows.sort(key=lambda r: (not r.ok, _sort_value(getattr(r, value[objective])), r.hardware))
    ranked = [r.model_copy(update={"rank": k + 1}) for k, r in enumerate(rows)]
    return CompareReport(
        inputs=CompareInputs(
            model=work.label,
            tokens=work.tokens,
            hardware=[p.id for p in chosen],
            devices=n_devices,
            deadline_seconds=deadline_s,
            max_devices=limit,
            objective=objective,
            price_tier=price_tier,
            precision=work.precision,
            global_batch=gb,
            confidence=confidence,
        ),  # fmt: skip
        model=model_summary(work.spec),
        rows=ranked,
        seconds=time.perf_counter() - started,
    )


def _sort_value(x) -> float:
    return math.inf if x is None else float(x)


def _empty_row(profile, reason: str):
    from flopcast.reports.plan import CompareRow

    return CompareRow(
        rank=0,
        hardware=profile.id,
        name=profile.name,
        ok=False,
        reason=reason,
        devices=None,
        fits=None,
        layout=None,
        memory_per_device_bytes=None,
        capacity_bytes=profile.memory_bytes,
        wall_clock_seconds=None,
        wall_clock_seconds_p10=None,
        wall_clock_seconds_p90=None,
        device_hours=None,
        device_hours_p10=None,
        device_hours_p90=None,
        cost_usd=None,
        cost_usd_p10=None,
        cost_usd_p90=None,
        price_tier=None,
        usd_per_device_hour=None,
        energy_kwh=None,
        co2_kg=None,
        mfu=None,
        tokens_per_second=None,
    )


def _compare_row(work, gb, profile, n_devices, deadline_s, limit, objective, price_tier, params, confidence="p50"):
    from flopcast.api import estimate_on
    from flopcast.request import layout_query, priced_hardware, unsearchable_reason

    why = unsearchable_reason(profile, precision=work.precision, tier=None)
    if why is not None:
        return _empty_row(profile, why)
    has_tier = price_tier is None or price_tier in profile.prices_usd_per_device_hour
    hw = priced_hardware(profile, precision=work.precision, params=params, tier=price_tier if has_tier else None)
    query = layout_query(global_batch=gb)
    note = None
    try:
        if n_devices is not None:
            report = estimate_on(work, hw, n_devices, query, params)
        else:
            report, note = _fewest_devices(work, gb, hw, deadline_s, limit, params, confidence)
            if report is None:
                return _empty_row(profile, note)
    except InvalidLayout as exc:
        return _empty_row(profile, exc.message)
    return _row_from_estimate(profile, report, objective, price_tier, has_tier, note)


def _fewest_devices(work, gb, hw, deadline_s, limit, params, confidence="p50"):
    """(estimate at the fewest devices whose winning layout meets the deadline, note) or (None, why). The
    winners are the search's, so the estimate at that count is the point itself."""
    from flopcast.api import estimate_on
    from flopcast.estimator.arrays import ModelArrays
    from flopcast.request import layout_query
    from flopcast.search import CandidateCache, search_counts

    spec, workload, query = work.spec, work.core(), layout_query(global_batch=gb)
    marr = ModelArrays.from_specs([spec])
    cache = CandidateCache(spec, query)
    top = DEFAULT_MAX_DEVICES if limit is None else limit
    dpn = hw.profile.devices_per_node
    sweeps = [search_counts(spec, marr, hw, device_counts(dpn, top), workload, params, cache)]
    if limit is None:
        more = _deadline_extension(sweeps[0], deadline_s, top, confidence)
        if more:
            sweeps.append(search_counts(spec, marr, hw, more, workload, params, cache))
            top = more[-1]
    pts = Points.join([hw], sweeps)
    if not len(pts):
        return None, "no parallel layout matches the options"
    v = pts.values
    fits = v["fits"].astype(bool)
    wall = v[at("wall_clock_seconds", confidence)]
    meets = np.flatnonzero(fits & (wall <= deadline_s))
    if len(meets):
        i = int(meets[np.argmin(pts.devices[meets])])
        return estimate_on(work, hw, int(pts.devices[i]), query, params), None
    if not fits.any():
        i = int(np.argmin(v["memory_bytes"]))
        return None, (
            f"does not fit on up to {top} devices (needs {v['memory_bytes'][i] / 1e9:.1f} GB per device of "
            f"{hw.profile.memory_bytes / 1e9:.0f} GB)"
        )
    i = int(np.argmin(np.where(fits, wall, np.inf)))
    report = estimate_on(work, hw, int(pts.devices[i]), query, params)
    level = "" if confidence == "p50" else f" at {confidence.upper()}"
    return report, (
        f"misses the {format_duration(deadline_s)} deadline{level} on up to {top} devices "
        f"(fastest: {format_duration(float(wall[i]))} on {int(pts.devices[i])})"
    )


def _row_from_estimate(profile, r, objective, price_tier, has_tier, note):
    from flopcast.reports.layout import LayoutInfo
    from flopcast.reports.plan import CompareRow

    p, t, c, e = r.parallelism, r.time, r.cost, r.energy
    reasons = [] if note is None else [note]
    if not r.memory.fits:
        need, have = r.memory.per_device_bytes / 1e9, r.memory.capacity_bytes / 1e9
        why = f"does not fit: needs {need:.1f} GB per device of {have:.0f} GB"
        if r.fit_suggestions:
            why += f"; fits with {r.fit_suggestions[0].change}"
        reasons.append(why)
    cost = c.total_usd if has_tier else None
    tier = c.tier if has_tier else price_tier
    if cost is None:
        reasons.append(f"no {price_tier} price" if price_tier and not has_tier else "lists no price")
    elif c.tier != (price_tier or "on-demand"):
        reasons.append(f"costed at its {c.tier} price")
    if e.kwh is None and objective == "energy":
        reasons.append("publishes no power figure")
    value = {"cost": cost, "time": t.wall_clock_seconds, "energy": e.kwh}[objective]
    ok = r.memory.fits and note is None and value is not None
    return CompareRow(
        rank=0,
        hardware=profile.id,
        name=profile.name,
        ok=ok,
        reason="; ".join(reasons) or None,
        devices=r.inputs.devices,
        fits=r.memory.fits,
        layout=LayoutInfo(**{name: getattr(p, name) for name in LayoutInfo.model_fields}),
        memory_per_device_bytes=r.memory.per_device_bytes,
        capacity_bytes=r.memory.capacity_bytes,
        wall_clock_seconds=t.wall_clock_seconds,
        wall_clock_seconds_p10=t.wall_clock_seconds_p10,
        wall_clock_seconds_p80=t.wall_clock_seconds_p80,
        wall_clock_seconds_p90=t.wall_clock_seconds_p90,
        device_hours=t.device_hours,
        device_hours_p10=t.device_hours_p10,
        device_hours_p80=t.device_hours_p80,
        device_hours_p90=t.device_hours_p90,
        cost_usd=cost,
        cost_usd_p10=c.total_usd_p10 if has_tier else None,
        cost_usd_p80=c.total_usd_p80 if has_tier else None,
        cost_usd_p90=c.total_usd_p90 if has_tier else None,
        price_tier=tier,
        usd_per_device_hour=c.usd_per_device_hour if has_tier else None,
        cost_by_tier_usd=dict(c.by_tier_usd),
        energy_kwh=e.kwh,
        co2_kg=e.co2_kg,
        mfu=r.efficiency.mfu,
        tokens_per_second=r.throughput.tokens_per_second,
    )
