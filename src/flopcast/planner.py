"""The planner: search hardware × device count × parallel layout under constraints (DESIGN §6).

What is searched, for one model and token count:

* hardware: every visible profile (or ``--hardware a,b``) that has a peak for the training precision and,
  when ``--price-tier`` is given, a price in that tier;
* device counts (:func:`device_counts`): the powers of two and every multiple of the node size up to
  ``--max-devices`` (default :data:`DEFAULT_MAX_DEVICES`); above :data:`DENSE_DEVICE_LIMIT` only the
  multiples of the node size of the form 2^k and 3·2^k. With a deadline and no ``--max-devices``, hardware
  that cannot meet the deadline within the default is searched further, up to twice the device count that
  linear scaling of its fastest plan implies (at most :data:`MAX_IMPLIED_DEVICES`);
* layouts: every valid tp × pp × dp × micro-batch × ZeRO stage × recompute mode × interleave of each device
  count, enumerated, evaluated and judged by :mod:`flopcast.search` exactly as for ``flopcast estimate``.

Within one hardware and device count, cost and energy are device-hours times a constant, so the fastest
layout that fits is also the cheapest and the least energy: the search keeps that layout per (hardware,
device count) — its *winner*, by search.py's one rule — and this module applies the constraints, the
objective and the Pareto front to the winners. Between points the best is the least objective, then (for
time) the least cost or (for cost and energy) the least wall-clock, then the fewest devices.
``layouts_feasible`` counts every evaluated layout that fits and meets the constraints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from flopcast.confidence import at, parse_confidence
from flopcast.errors import Infeasible, InvalidValue, flag_style, opt, render_options
from flopcast.points import Points, describe_miss, near_misses, objective_values, pareto_front
from flopcast.request import DEFAULT_MEMORY_HEADROOM_FRACTION
from flopcast.units import format_duration, format_usd, parse_duration, parse_int, parse_usd

OBJECTIVES = ("cost", "time", "energy")
# The largest device count searched by default: a 512-node cluster of 8-GPU servers, the scale of the
# largest runs in the calibration set (Megatron-LM's 1T-parameter run used 3,072 A100s: Narayanan et al. 2021).
DEFAULT_MAX_DEVICES = 4096
DENSE_DEVICE_LIMIT = 4096  # every multiple of the node size up to here; above, a 2^k / 3·2^k ladder
# The dense grid's finest step, in devices: one 8-GPU server (DGX/HGX), the unit in which clusters are bought.
# Single-device machines (a desktop GPU, an Apple or Jetson board) would otherwise put all 4,096 counts on the
# grid; they keep every power of two and 3·2^k below the limit as well.
DENSE_GRID_MIN_STEP = 8
# Sanity bound on a deadline-implied device count: 8× the 16,384 H100s of Llama 3 405B (Dubey et al. 2024).
MAX_IMPLIED_DEVICES = 131_072
DEADLINE_EXTENSION_MARGIN = 2.0  # linear scaling is optimistic: search up to twice the implied need
# Warn when the best plan's global batch exceeds the default rule's (layout.DEFAULT_BATCH_TOKENS_BY_PARAMS) by
# more than this factor: beyond the critical batch size extra data parallelism stops paying for itself
# (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training").
LARGE_BATCH_WARNING_FACTOR = 2.0


# --- input parsing (one line, exit 2, on anything wrong) --------------------------------------------------


def parse_objective(text: str | None, default: str = "cost") -> str:
    if text is None:
        return default
    value = str(getattr(text, "value", text)).strip().lower()
    if value not in OBJECTIVES:
        raise InvalidValue(f"{opt('objective')}: {text!r} is not an objective", hint="use cost, time or energy")
    return value


def parse_constraints(deadline=None, budget=None, max_devices=None):
    """(deadline seconds, budget USD, max devices), each None when not given."""
    return (
        None if deadline is None else parse_duration(deadline, what=opt("deadline")),
        None if budget is None else parse_usd(budget, what=opt("budget")),
        None if max_devices is None else parse_int(max_devices, what=opt("max_devices")),
    )


# --- the device-count grid -----------------------------------------------------------------------------------


def device_counts(devices_per_node: int, max_devices: int, *, above: int = 0) -> list[int]:
    """Device counts to search: powers of two and multiples of the node size up to ``max_devices``.

    Every multiple of the node size (at least :data:`DENSE_GRID_MIN_STEP`) up to :data:`DENSE_DEVICE_LIMIT`;
    beyond it, the multiples of the node size of the form 2^k or 3·2^k, plus ``max_devices`` itself when it is
    one. Only counts > ``above``.
    """
    if max_devices < 1:
        raise InvalidValue(f"{opt('max_devices')}: {max_devices} is not a positive count", hint="give e.g. 4096")
    dpn = max(int(devices_per_node), 1)
    counts: set[int] = set()
    k = 1
    while k <= max_devices:
        counts.add(k)
        k *= 2
    step = max(dpn, DENSE_GRID_MIN_STEP)
    counts.update(range(step, min(max_devices, DENSE_DEVICE_LIMIT) + 1, step))
    for base in (1, 3):
        n = base
        while n <= max_devices:
            if n % dpn == 0:
                counts.add(n)
            n *= 2
    if max_devices % dpn == 0:
        counts.add(max_devices)
    return sorted(c for c in counts if c > above)


# --- the whole search ------------------------------------------------------------------------------------------


@dataclass
class PlanResult:
    points: Points
    feasible: np.ndarray  # bool per point: fits and meets every constraint
    best: int | None
    pareto: np.ndarray
    near_misses: list[tuple[int, dict[str, float]]]
    layouts_evaluated: int
    layouts_feasible: int
    seconds: float
    max_devices: int
    device_counts: int
    skipped: dict[str, str] = field(default_factory=dict)
    message: str = ""


def search(
    spec,
    profiles: list,
    tokens: float,
    *,
    objective: str = "cost",
    deadline_seconds: float | None = None,
    budget_usd: float | None = None,
    max_devices: int | None = None,
    price_tier: str | None = None,
    precision: str = "bf16",
    global_batch: int | None = None,
    params=None,
    confidence: str = "p50",
    memory_headroom: float = DEFAULT_MEMORY_HEADROOM_FRACTION,  # fraction of each device's memory kept free
    grad_dtype: str | None = None,  # None: the precision's convention (estimator.memory.default_grad_dtype)
    finetune=None,  # estimator.finetune.Finetune; None: training
) -> PlanResult:
    """Search every hardware × device count × layout; return the winners, the best, the Pareto front.
    Deadline, budget, objective and front compare the estimates at ``confidence`` (confidence.py)."""
    from flopcast.estimator.arrays import ModelArrays, Workload
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.layout import LayoutQuery
    from flopcast.request import priced_hardware, unsearchable_reason
    from flopcast.search import CandidateCache, search_counts

    started = time.perf_counter()
    params = params or EfficiencyParams.load()
    limit = DEFAULT_MAX_DEVICES if max_devices is None else max_devices
    marr = ModelArrays.from_specs([spec])
    workload = Workload(
        tokens=tokens, precision=precision, memory_headroom=memory_headroom, grad_dtype=grad_dtype, finetune=finetune
    )
    cache = CandidateCache(spec, LayoutQuery(global_batch=global_batch))
    hardware, skipped, sweeps = [], {}, []
    searched_max = limit
    n_counts = 0

    def run(hw, counts):
        nonlocal n_counts
        w = search_counts(
            spec,
            marr,
            hw,
            counts,
            workload,
            params,
            cache,
            deadline_seconds=deadline_seconds,
            budget_usd=budget_usd,
            confidence=confidence,
        )
        sweeps.append(w)
        n_counts += len(w.devices)
        return w

    for profile in profiles:
        why = unsearchable_reason(profile, precision=precision, tier=price_tier)
        if why is None and finetune is not None and finetune.mode == "qlora":
            from flopcast.finetune_request import qlora_hardware_reason

            why = qlora_hardware_reason(profile)
        if why is not None:
            skipped[profile.id] = why
            continue
        hw = priced_hardware(profile, precision=precision, params=params, tier=price_tier)
        if hw.price.usd_per_device_hour is None and (objective == "cost" or budget_usd is not None):
            # no point of it could be the best or on the time-cost front: say so instead of evaluating it
            skipped[profile.id] = "lists no price (cost and budgets need one; the time objective searches it)"
            continue
        hardware.append(hw)
        w = run(hw, device_counts(profile.devices_per_node, limit))
        if deadline_seconds is not None and max_devices is None:
            more = _deadline_extension(w, deadline_seconds, limit, confidence)
            if more:
                searched_max = max(searched_max, more[-1])
                run(hw, more)
    points = Points.join(hardware, sweeps)
    values = points.values
    wall, cost = values[at("wall_clock_seconds", confidence)], values[at("cost_usd", confidence)]
    ok = values["fits"].astype(bool) if len(points) else np.zeros(0, dtype=bool)
    if deadline_seconds is not None:
        ok = ok & (wall <= deadline_seconds)
    if budget_usd is not None:
        ok = ok & (cost <= budget_usd)
    obj = objective_values(points, objective, confidence)
    best = _best(points, ok & np.isfinite(obj), objective, confidence)
    front_rows = np.flatnonzero(ok & np.isfinite(cost)) if len(points) else np.zeros(0, dtype=int)
    pareto = front_rows[pareto_front(wall[front_rows], cost[front_rows])]
    near = [] if best is not None else near_misses(points, deadline_seconds, budget_usd, confidence=confidence)
    result = PlanResult(
        points=points,
        feasible=ok,
        best=best,
        pareto=pareto,
        near_misses=near,
        layouts_evaluated=sum(w.evaluated for w in sweeps),
        layouts_feasible=sum(w.feasible for w in sweeps),
        seconds=0.0,
        max_devices=searched_max,
        device_counts=n_counts,
        skipped=skipped,
    )
    if best is None:
        result.message = infeasible_message(
            result, objective, deadline_seconds, budget_usd, searched_max, confidence=confidence
        )
    result.seconds = time.perf_counter() - started
    return result


def _deadline_extension(w, deadline_seconds: float, limit: int, confidence: str = "p50") -> list[int]:
    """Device counts beyond ``limit`` worth searching when ``w`` cannot meet the deadline within it."""
    if w.estimates is None or not len(w.devices):
        return []
    fits = np.asarray(w.estimates.fits, dtype=bool)
    wall = np.asarray(getattr(w.estimates, at("wall_clock_seconds", confidence)))
    if not fits.any() or (fits & (wall <= deadline_seconds)).any():
        return []
    i = int(np.argmin(np.where(fits, wall, np.inf)))
    implied = w.devices[i] * wall[i] / deadline_seconds * DEADLINE_EXTENSION_MARGIN
    target = min(2 ** math.ceil(math.log2(max(implied, 1.0))), MAX_IMPLIED_DEVICES)
    if target <= limit:
        return []
    return device_counts(w.hardware.profile.devices_per_node, target, above=limit)


def _best(points: Points, candidates: np.ndarray, objective: str, confidence: str = "p50") -> int | None:
    rows = np.flatnonzero(candidates)
    if len(rows) == 0:
        return None
    v = points.values
    primary = objective_values(points, objective, confidence)[rows]
    cost = np.nan_to_num(v[at("cost_usd", confidence)][rows], nan=np.inf)
    secondary = cost if objective == "time" else v[at("wall_clock_seconds", confidence)][rows]
    order = np.lexsort((points.devices[rows], secondary, primary))
    return int(rows[order[0]])


def infeasible_message(
    result: PlanResult, objective: str, deadline_seconds, budget_usd, max_devices: int, confidence: str = "p50"
) -> str:
    asked = []
    if deadline_seconds is not None:
        asked.append(f"{opt('deadline')} {format_duration(deadline_seconds)}")
    if budget_usd is not None:
        asked.append(f"{opt('budget')} {format_usd(budget_usd)}")
    if not len(result.points):
        return "no hardware could be searched (" + "; ".join(f"{k} {v}" for k, v in result.skipped.items()) + ")"
    if result.feasible.any():
        what = {"cost": "a price for the tier", "energy": "a published power figure", "time": "a time"}[objective]
        return f"no plan that meets the constraints has {what}, which {opt('objective')} {objective} needs"
    constraint = " and ".join(asked) if asked else "memory"
    if asked and confidence != "p50":
        constraint += f" at {confidence.upper()}"
    head = f"no plan meets {constraint} on up to {max_devices} devices"
    if result.near_misses:
        i, misses = result.near_misses[0]
        head += "; closest: " + describe_miss(result.points, i, misses, deadline_seconds, budget_usd, confidence)
    return head


def raise_if_infeasible(report) -> None:
    """Raise :class:`Infeasible` (exit 3) with the near-misses when a PlanReport has no feasible plan."""
    if not report.feasible:
        raise Infeasible(
            report.infeasible_reason or "no feasible plan",
            hint=f"loosen {opt('deadline')}/{opt('budget')}, raise {opt('max_devices')} or add hardware",
            near_misses=report.near_misses,
        )


# --- the report ------------------------------------------------------------------------------------------------


def point_report(points: Points, i: int):
    """The PlanPoint report section of point ``i`` (its layout is the full layout record)."""
    from flopcast.layout import Layout
    from flopcast.reports.build import plan_point

    hw = points.hardware[int(points.hw_index[i])]
    values = {k: v[i] for k, v in points.values.items()}
    return plan_point(hw, int(points.devices[i]), Layout.from_arrays(points.layouts, i), values)


def best_estimate(work, points: Points, i: int, params, storage=None):
    """The estimate report of point ``i``: ``estimate`` with its hardware, device count and whole layout
    (interleave included), so its numbers are the point's numbers."""
    from flopcast.api import estimate_on
    from flopcast.layout import Layout, LayoutQuery

    hw = points.hardware[int(points.hw_index[i])]
    layout = Layout.from_arrays(points.layouts, i)
    return estimate_on(work, hw, int(points.devices[i]), LayoutQuery.of_layout(layout), params, storage=storage)


def plan(
    model=None,
    tokens=None,
    *,
    hardware=None,
    objective=None,
    deadline=None,
    budget=None,
    max_devices=None,
    price_tier: str | None = None,
    precision: str = "bf16",
    global_batch=None,
    seq_len=None,
    profiles=None,
    params=None,
    confidence=None,
    memory_headroom=None,
    grad_dtype=None,
    storage=None,
    keep_checkpoints=None,
    transfer_gbps=None,
    finetune=None,
    lora_rank=None,
    lora_targets=None,
    epochs=None,
    **architecture,
):
    """Search hardware × device count × layout under the constraints; returns a
    :class:`~flopcast.reports.plan.PlanReport`. ``confidence`` (p50, the default; p80; p90): the percentile
    of the estimate's calibrated range at which the deadline and budget are met. Never raises
    :class:`Infeasible`: a report with ``feasible`` False carries the reason and the near-misses (the CLI
    exits 3 via :func:`raise_if_infeasible`). ``storage`` (a tier id), ``keep_checkpoints`` and ``transfer_gbps``
    give the best plan's estimate its storage figures (flopcast.storage). ``finetune``, ``lora_rank``,
    ``lora_targets`` and ``epochs`` as for :func:`flopcast.api.estimate`."""
    from flopcast import request
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.layout import default_global_batch
    from flopcast.reports.build import model_summary
    from flopcast.reports.plan import NearMiss, PlanInputs, PlanReport, SearchStats
    from flopcast.storage import storage_request

    objective = parse_objective(objective)
    confidence = parse_confidence(confidence)
    store = storage_request(storage, keep_checkpoints, transfer_gbps)
    deadline_s, budget_usd, limit = parse_constraints(deadline, budget, max_devices)
    work = request.training_workload(
        model=model, tokens=tokens, seq_len=seq_len, precision=precision, memory_headroom=memory_headroom,
        architecture=architecture, grad_dtype=grad_dtype, finetune=finetune, lora_rank=lora_rank,
        lora_targets=lora_targets, epochs=epochs,
    )  # fmt: skip
    request.refuse_measured(work, "plan")
    gb = request.optional_int(global_batch, "global_batch")
    chosen = request.resolve_hardware_list(hardware, profiles)
    request.check_price_tier(price_tier, chosen)
    params = params or EfficiencyParams.load()
    spec = work.spec
    result = search(
        spec, chosen, work.tokens_processed, objective=objective, deadline_seconds=deadline_s, budget_usd=budget_usd,
        max_devices=limit, price_tier=price_tier, precision=work.precision, global_batch=gb, params=params,
        confidence=confidence,
        memory_headroom=work.memory_headroom, grad_dtype=work.grad_dtype, finetune=work.finetune,
    )  # fmt: skip
    pts = result.points
    warnings, best_report = [], None
    if result.best is not None:
        best_report = best_estimate(work, pts, result.best, params, store)
        if deadline_s is None and objective != "time":
            warnings.append(
                f"no deadline: the {objective}-optimal plan takes "
                f"{format_duration(best_report.time.wall_clock_seconds)}; add a deadline to bound it"
            )
        warnings += _batch_warning(spec, best_report, gb)
    warnings += [f"{hid} not searched: {why}" for hid, why in result.skipped.items()]
    return PlanReport(
        inputs=PlanInputs(
            model=work.label,
            tokens=work.tokens,
            hardware=[p.id for p in chosen] if hardware else [],
            objective=objective,
            deadline_seconds=deadline_s,
            budget_usd=budget_usd,
            max_devices=limit,
            price_tier=price_tier,
            precision=work.precision,
            global_batch=gb,
            global_batch_rule=None if gb is not None else default_global_batch(spec.params, spec.seq_len),
            confidence=confidence,
            finetune=None if work.finetune is None else work.finetune.mode,
            lora_rank=work.finetune.rank if work.finetune is not None and work.finetune.frozen else None,
            epochs=work.epochs,
        ),  # fmt: skip
        model=model_summary(spec),
        feasible=result.best is not None,
        # report text, like its warnings, names flags; an opt() marker must not reach the JSON
        infeasible_reason=None if result.best is not None else render_options(result.message, flag_style),
        best=best_report,
        best_point=None if result.best is None else point_report(pts, result.best),
        pareto=[point_report(pts, int(i)) for i in result.pareto],
        near_misses=[
            NearMiss(
                point=point_report(pts, i),
                misses=m,
                description=describe_miss(pts, i, m, deadline_s, budget_usd, confidence),
            )  # fmt: skip
            for i, m in result.near_misses
        ],
        search=SearchStats(
            layouts_evaluated=result.layouts_evaluated,
            layouts_feasible=result.layouts_feasible,
            seconds=result.seconds,
            layouts_per_second=result.layouts_evaluated / max(result.seconds, 1e-9),
            max_devices=result.max_devices,
            device_counts=result.device_counts,
            hardware_searched=[h.profile.id for h in pts.hardware],
            hardware_skipped=result.skipped,
        ),
        warnings=warnings,
    )


def _batch_warning(spec, best, given_batch) -> list[str]:
    """Say when the best plan's global batch is not the default rule's: rounded to its data-parallel degree, or
    (many replicas) far above it."""
    from flopcast.layout import default_global_batch

    if given_batch is not None:
        return []
    usual = default_global_batch(spec.params, spec.seq_len)
    chosen, p = best.parallelism.global_batch, best.parallelism
    if chosen == usual:
        return []
    if chosen <= LARGE_BATCH_WARNING_FACTOR * usual:
        return [
            f"the best plan's global batch is {chosen} sequences, not the default rule's {usual}: the nearest "
            f"multiple of dp × micro-batch = {p.dp} × {p.micro_batch}; give a global batch to pin it"
        ]
    return [
        f"the best plan's {best.parallelism.dp} data-parallel replicas need a global batch of {chosen} sequences "
        f"({chosen * spec.seq_len / 1e6:.3g}M tokens), {chosen / usual:.0f}× the usual {usual}; such batches can "
        "slow convergence: give a global batch (e.g. a power of two) to bound it"
    ]
