"""Compute-optimal model size and training tokens for a budget (DESIGN §6 ``size``).

Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models", the Chinchilla paper) found that
parameters N and training tokens D should grow in equal proportion with compute, at about 20 tokens per
parameter (Chinchilla: 70B parameters on 1.4T tokens), with the training compute C ≈ 6·N·D FLOPs (Kaplan et
al. 2020, §2.1, which Hoffmann et al. use throughout). So for a FLOP budget C:

    N = sqrt(C / (6 · 20)),   D = 20 · N          (5.76e23 FLOPs → N ≈ 69B, D ≈ 1.4T: Chinchilla's budget)

A budget in dollars, device-hours or wall-clock time becomes FLOPs only through the achievable throughput,
which the estimator core predicts: for a grid of sizes N (each shaped by the size rule,
:func:`flopcast.model_sizes.shape_for_size`, trained on D = 20·N tokens) one vectorised evaluation gives what each
compute-optimal run would use on the given hardware and device count; the largest N within the budget is
bracketed and the grid refined around it. Without a device count, the planner picks the cheapest plan for a
guessed N and the guess is adjusted (N ∝ sqrt(budget / cost)) until the plan uses nearly all of the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from flopcast.confidence import at, parse_confidence
from flopcast.errors import ConflictingOptions, Infeasible, InvalidValue, opt
from flopcast.units import format_duration, format_si, format_usd, parse_count, parse_int

# Hoffmann et al. 2022, Table 3 and §3 ("for every doubling of model size the number of training tokens should
# also be doubled"): about 20 tokens per parameter at the compute-optimal frontier.
CHINCHILLA_TOKENS_PER_PARAM = 20.0
# C ≈ 6·N·D training FLOPs: 2 per multiply-add × 3 (forward + backward) per parameter per token
# (Kaplan et al. 2020, §2.1; Hoffmann et al. 2022 use the same approximation).
TRAINING_FLOPS_PER_PARAM_TOKEN = 6.0
CHINCHILLA_SOURCE = (
    "Hoffmann et al. 2022, 'Training Compute-Optimal Large Language Models' (Chinchilla): D ≈ 20·N, C = 6·N·D"
)

# The grid of sizes searched for a dollar / device-hour / deadline budget.
SIZE_GRID_MIN_PARAMS = 2e7  # about the smallest shape the size rule builds with a 32k vocabulary
SIZE_GRID_MAX_PARAMS = 1e13  # ten trillion parameters
SIZE_GRID_POINTS = 25  # first pass: log-spaced, a factor 1.78 apart
SIZE_REFINE_POINTS = 12  # each refinement: log-spaced inside the bracket
SIZE_REFINE_ROUNDS = 2  # 1.78^(1/11^2) ≈ 0.5% resolution, finer than the size rule's 1.5% buckets
# Planner mode: the first guess, how full the budget must be to stop, and the iteration limit.
PLANNER_FIRST_GUESS_PARAMS = 1e9
PLANNER_BUDGET_FILL = 0.95
PLANNER_MAX_ITERATIONS = 8
PLANNER_STEP_SAFETY = 0.99  # aim a little under the budget so that the next step lands inside it

BUDGET_KINDS = ("flops", "usd", "device_hours", "deadline")
_GIVEN_PLACEMENT_EXAMPLE = f"e.g. {opt('hardware')} h100-80gb {opt('devices')} 1024"
# Each budget kind's option, as messages name it (:func:`~flopcast.errors.opt`: a keyword here, a flag in the CLI).
_BUDGET_FLAGS = {
    "flops": opt("flops"),
    "usd": opt("budget"),
    "device_hours": opt("device_hours"),
    "deadline": opt("deadline"),
}


def compute_optimal(flops: float) -> tuple[float, float]:
    """(N parameters, D tokens) that spend ``flops`` compute-optimally: N = sqrt(C/(6·20)), D = 20·N."""
    n = math.sqrt(flops / (TRAINING_FLOPS_PER_PARAM_TOKEN * CHINCHILLA_TOKENS_PER_PARAM))
    return n, CHINCHILLA_TOKENS_PER_PARAM * n


def optimal_tokens(params) -> np.ndarray | float:
    return CHINCHILLA_TOKENS_PER_PARAM * params


def optimal_flops(params) -> np.ndarray | float:
    """C = 6·N·D with D = 20·N."""
    return TRAINING_FLOPS_PER_PARAM_TOKEN * params * optimal_tokens(params)


@dataclass
class Budget:
    kind: str
    value: float  # FLOPs, USD, device-hours or seconds

    def describe(self) -> str:
        return {
            "flops": lambda v: f"{v:.3g} FLOPs",
            "usd": format_usd,
            "device_hours": lambda v: f"{format_si(v)} device-hours",
            "deadline": format_duration,
        }[self.kind](self.value)


def parse_budget(flops=None, budget=None, device_hours=None, deadline=None) -> Budget:
    """Exactly one budget; none or two → one-line error (exit 2)."""
    from flopcast.units import parse_duration, parse_usd

    given = {
        k: v
        for k, v in (("flops", flops), ("usd", budget), ("device_hours", device_hours), ("deadline", deadline))
        if v is not None
    }
    if not given:
        raise InvalidValue(
            "size needs a budget",
            hint=f"give one of {opt('flops')} 1e24, {opt('budget')} $2M, {opt('device_hours')} 100k or "
            f"{opt('deadline')} 30d",
        )
    if len(given) > 1:
        flags = " and ".join(_BUDGET_FLAGS[k] for k in given)
        raise ConflictingOptions(
            f"two budgets: {flags}", hint=f"give exactly one of {', '.join(_BUDGET_FLAGS.values())}"
        )
    kind, text = next(iter(given.items()))
    what = _BUDGET_FLAGS[kind]
    value = {"flops": parse_count, "usd": parse_usd, "device_hours": parse_count, "deadline": parse_duration}[kind](
        text, what=what
    )
    return Budget(kind, value)


@dataclass
class SizeStep:
    params: float
    tokens: float
    used: float
    within: bool


@dataclass
class SizeResult:
    params: float
    spec: object
    placement: str  # given | planner | none
    profile: object = None
    devices: int | None = None
    layout: dict | None = None  # the planner's layout (placement "planner")
    tier: str | None = None
    steps: list[SizeStep] = field(default_factory=list)


def _shape(n: float, seq_len, vocab):
    from flopcast.model_sizes import SIZE_RULE_VOCAB, shape_for_size
    from flopcast.models import ModelSpec

    return shape_for_size(
        n, vocab=vocab or SIZE_RULE_VOCAB, seq_len=seq_len or ModelSpec.model_fields["seq_len"].default
    )


def _usage_on_grid(ns, budget: Budget, hw, devices: int, *, precision: str, seq_len, vocab, params, confidence="p50"):
    """(sizes that have a shape, their specs, what each compute-optimal run uses) on ``hw`` × ``devices``.

    One evaluate call over every layout of every size (models indexed per row); each size's layout is the one
    ``flopcast estimate`` would choose (the fastest that fits, else the closest to fitting).
    """
    from flopcast.estimator.arrays import LayoutArrays, ModelArrays, Workload
    from flopcast.estimator.core import evaluate
    from flopcast.search import enumerate_layouts, winners_of

    kept, specs, parts = [], [], []
    for n in ns:
        try:
            spec = _shape(float(n), seq_len, vocab)
        except InvalidValue:
            continue  # no shape within the size rule's tolerance (small sizes are coarse)
        cands = enumerate_layouts(spec, devices, devices_per_node=hw.profile.devices_per_node)
        if len(cands.tp):
            kept.append(float(n))
            specs.append(spec)
            parts.append(cands)
    if not specs:
        return np.zeros(0), [], np.zeros(0)
    sizes = [len(p.tp) for p in parts]
    groups = np.repeat(np.arange(len(specs)), sizes)
    layouts = LayoutArrays.concatenate(parts)
    model = ModelArrays.from_specs(specs, index=groups)
    tokens = optimal_tokens(np.asarray(kept))[groups]
    est = evaluate(model, hw.arrays, layouts, Workload(tokens=tokens, precision=precision), params)
    rows = winners_of(est, layouts, groups, len(specs))
    key = {"usd": "cost_usd", "device_hours": "device_hours", "deadline": "wall_clock_seconds"}[budget.kind]
    return np.asarray(kept), specs, np.asarray(getattr(est, at(key, confidence)))[rows]


def size_on_hardware(
    budget: Budget, hw, devices: int, *, precision="bf16", seq_len=None, vocab=None, params=None, confidence="p50"
) -> SizeResult:
    """The largest compute-optimal size whose run on ``hw`` × ``devices`` stays within ``budget`` (at the
    ``confidence`` percentile of its calibrated range)."""
    steps: list[SizeStep] = []
    ns = np.geomspace(SIZE_GRID_MIN_PARAMS, SIZE_GRID_MAX_PARAMS, SIZE_GRID_POINTS)
    best = None
    for round_ in range(SIZE_REFINE_ROUNDS + 1):
        kept, specs, used = _usage_on_grid(
            ns, budget, hw, devices, precision=precision, seq_len=seq_len, vocab=vocab, params=params,
            confidence=confidence,
        )  # fmt: skip
        within = used <= budget.value
        steps += [
            SizeStep(float(n), float(optimal_tokens(n)), float(u), bool(w))
            for n, u, w in zip(kept, used, within, strict=True)
        ]
        if round_ == 0:
            if not within.any():
                raise Infeasible(
                    f"{budget.describe()} is not enough for even a {format_si(kept[0] if len(kept) else 0)}-parameter "
                    f"model on {devices} × {hw.profile.id} (it needs {_describe_used(budget.kind, used[0])})",
                    hint="raise the budget or use fewer devices",
                )
            if within.all():
                raise Infeasible(
                    f"{budget.describe()} buys more than a {format_si(kept[-1])}-parameter compute-optimal run; "
                    f"the size rule stops at {format_si(SIZE_GRID_MAX_PARAMS)} parameters",
                    hint="give a smaller budget",
                )
        if not within.any():
            break
        i = int(np.flatnonzero(within)[-1])
        best = (kept[i], specs[i])
        if i + 1 >= len(kept):
            break
        ns = np.geomspace(kept[i], kept[i + 1], SIZE_REFINE_POINTS)
    return SizeResult(
        params=best[0],
        spec=best[1],
        placement="given",
        profile=hw.profile,
        devices=devices,
        tier=hw.price.tier,
        steps=steps,
    )


def _describe_used(kind: str, value: float) -> str:
    return Budget(kind, float(value)).describe()


def size_with_planner(
    budget: Budget,
    profiles: list,
    *,
    precision="bf16",
    price_tier=None,
    seq_len=None,
    vocab=None,
    max_devices=None,
    params=None,
    confidence="p50",
) -> SizeResult:
    """Dollar budget, no device count: the planner's cheapest plan for a guessed size; adjust the guess
    (N ∝ sqrt(budget / cost), as C ∝ N²) until the plan uses between PLANNER_BUDGET_FILL and all of it."""
    from flopcast.planner import search

    if budget.kind != "usd":
        raise InvalidValue(
            f"{_BUDGET_FLAGS[budget.kind]} needs {opt('hardware')} H and {opt('devices')} N",
            hint="the budget is spent on one hardware and device count",
        )
    n = PLANNER_FIRST_GUESS_PARAMS
    steps: list[SizeStep] = []
    best = None  # (n, spec, result)
    tried: set[str] = set()
    for _ in range(PLANNER_MAX_ITERATIONS):
        spec = _shape(n, seq_len, vocab)
        if spec.name in tried:
            break
        tried.add(spec.name)
        result = search(
            spec,
            profiles,
            float(optimal_tokens(n)),
            objective="cost",
            price_tier=price_tier,
            precision=precision,
            max_devices=max_devices,
            params=params,
            confidence=confidence,
        )
        if result.best is None:
            raise Infeasible(
                f"no plan for a {format_si(n)}-parameter model: {result.message}",
                hint=f"give {opt('hardware')} and {opt('devices')}, or more hardware",
            )
        cost = float(result.points.values[at("cost_usd", confidence)][result.best])
        steps.append(SizeStep(n, float(optimal_tokens(n)), cost, cost <= budget.value))
        if cost <= budget.value and (best is None or n > best[0]):
            best = (n, spec, result)
        if budget.value * PLANNER_BUDGET_FILL <= cost <= budget.value:
            break
        n = min(
            max(n * math.sqrt(budget.value / cost) * PLANNER_STEP_SAFETY, SIZE_GRID_MIN_PARAMS), SIZE_GRID_MAX_PARAMS
        )
    if best is None:
        raise Infeasible(
            f"{budget.describe()} is not enough for the smallest size tried "
            f"({format_si(min(s.params for s in steps))} parameters)",
            hint="raise the budget",
        )
    n, spec, result = best
    return _planner_result(n, spec, result, steps)


def size(
    *,
    flops=None,
    budget=None,
    device_hours=None,
    deadline=None,
    hardware=None,
    devices=None,
    price_tier: str | None = None,
    precision: str = "bf16",
    seq_len=None,
    vocab=None,
    max_devices=None,
    profiles=None,
    params=None,
    confidence=None,
):
    """Parse the options, size the model, and build the :class:`~flopcast.reports.plan.SizeReport`.
    ``confidence`` (p50, the default; p80; p90): a dollar, device-hour or deadline budget is met at that
    percentile of the estimate's calibrated range (a FLOP budget needs none)."""
    from flopcast.api import estimate
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.reports.build import model_summary
    from flopcast.reports.plan import ComputeOptimal, SizeInputs, SizeReport, SizeRule
    from flopcast.reports.plan import SizeStep as SizeStepInfo
    from flopcast.request import parse_precision, priced_hardware, resolve_hardware_list

    b = parse_budget(flops, budget, device_hours, deadline)
    confidence = parse_confidence(confidence)
    precision = parse_precision(precision)
    n_devices = None if devices is None else parse_int(devices, what=opt("devices"))
    limit = None if max_devices is None else parse_int(max_devices, what=opt("max_devices"))
    seq = None if seq_len is None else parse_int(seq_len, what=opt("seq_len"))
    voc = None if vocab is None else parse_int(vocab, what=opt("vocab"))
    chosen = None if hardware is None else resolve_hardware_list(hardware, profiles)
    if n_devices is not None and (chosen is None or len(chosen) != 1):
        raise InvalidValue(f"{opt('devices')} needs exactly one {opt('hardware')}", hint=_GIVEN_PLACEMENT_EXAMPLE)
    if b.kind in ("device_hours", "deadline") and n_devices is None:
        raise InvalidValue(
            f"{_BUDGET_FLAGS[b.kind]} needs {opt('hardware')} H and {opt('devices')} N",
            hint=_GIVEN_PLACEMENT_EXAMPLE,
        )
    if limit is not None and n_devices is not None:
        raise ConflictingOptions(
            f"{opt('max_devices')} together with {opt('devices')}", hint=f"{opt('max_devices')} bounds the planner"
        )
    params = params or EfficiencyParams.load()
    warnings: list[str] = []

    if b.kind == "flops":
        n, _ = compute_optimal(b.value)
        try:
            spec = _shape(n, seq, voc)
        except InvalidValue as exc:  # the size rule names --model; here the size comes from --flops
            raise InvalidValue(
                f"{opt('flops')} {b.value:.3g}: no model shape for its compute-optimal {format_si(n)} parameters "
                f"({exc.raw_message.partition(': ')[2] or exc.raw_message})",
                hint=f"give a {'larger' if n < SIZE_GRID_MIN_PARAMS else 'smaller'} {opt('flops')}",
            ) from None
        result = SizeResult(params=n, spec=spec, placement="none")
        if chosen is not None:
            if n_devices is not None:
                result = SizeResult(params=n, spec=spec, placement="given", profile=chosen[0], devices=n_devices)
            else:
                result = _planner_placement(n, spec, chosen, precision, price_tier, limit, params)
        else:
            warnings.append("no --hardware: give --hardware (and --devices) for a training estimate")
    elif n_devices is not None:
        hw = priced_hardware(chosen[0], precision=precision, params=params, tier=price_tier)
        if b.kind == "usd" and hw.price.usd_per_device_hour is None:
            raise InvalidValue(f"{opt('budget')}: {hw.profile.id} lists no price", hint="choose hardware with a price")
        result = size_on_hardware(
            b, hw, n_devices, precision=precision, seq_len=seq, vocab=voc, params=params, confidence=confidence
        )
    else:
        profiles_list = chosen if chosen is not None else resolve_hardware_list(None, profiles)
        result = size_with_planner(
            b,
            profiles_list,
            precision=precision,
            price_tier=price_tier,
            seq_len=seq,
            vocab=voc,
            max_devices=limit,
            params=params,
            confidence=confidence,
        )

    n = result.params
    report_estimate = None
    if result.placement != "none":
        layout = result.layout or {}
        tier_arg = price_tier if price_tier in result.profile.prices_usd_per_device_hour else None
        report_estimate = estimate(
            model=result.spec,
            tokens=float(optimal_tokens(n)),
            hardware=result.profile,
            devices=result.devices,
            precision=precision,
            price_tier=tier_arg,
            profiles=profiles,
            **layout,
        )
        if report_estimate.time.wall_clock_seconds > 365.25 * 86400 and b.kind == "usd" and n_devices is None:
            warnings.append(
                f"the cheapest plan takes {format_duration(report_estimate.time.wall_clock_seconds)}; "
                "give --hardware and --devices to size for a faster placement"
            )
    used = optimal_flops(n) if b.kind == "flops" else _used_at(report_estimate, b.kind, confidence)
    spec = result.spec
    return SizeReport(
        inputs=SizeInputs(
            budget_kind=b.kind,
            budget=b.value,
            hardware=[p.id for p in chosen or []],
            devices=n_devices,
            placement=result.placement,
            price_tier=price_tier,
            precision=precision,
            seq_len=seq,
            vocab=voc,
            confidence=confidence,
        ),
        rule=SizeRule(
            tokens_per_param=CHINCHILLA_TOKENS_PER_PARAM,
            flops_per_param_token=TRAINING_FLOPS_PER_PARAM_TOKEN,
            source=CHINCHILLA_SOURCE,
        ),
        compute_optimal=ComputeOptimal(params=n, tokens=float(optimal_tokens(n)), flops=float(optimal_flops(n))),
        model=model_summary(spec),
        budget_used=float(used) if used is not None else 0.0,
        budget_used_fraction=float(used) / b.value if used is not None else 0.0,
        steps=[
            SizeStepInfo(params=s.params, tokens=s.tokens, used=s.used, within_budget=s.within) for s in result.steps
        ],
        estimate=report_estimate,
        warnings=warnings,
    )


def _used_at(report, kind: str, confidence: str) -> float | None:
    """What the estimate ``report`` uses of a ``kind`` budget, at ``confidence``."""
    if report is None:
        return None
    field = {"usd": "total_usd", "device_hours": "device_hours", "deadline": "wall_clock_seconds"}[kind]
    section = report.cost if kind == "usd" else report.time
    return getattr(section, field if confidence == "p50" else f"{field}_{confidence}")


def _planner_placement(n, spec, profiles, precision, price_tier, max_devices, params) -> SizeResult:
    """The planner's cheapest plan for ``spec`` trained on 20·N tokens (a FLOP budget on named hardware)."""
    from flopcast.planner import search

    result = search(
        spec,
        profiles,
        float(optimal_tokens(n)),
        objective="cost",
        price_tier=price_tier,
        precision=precision,
        max_devices=max_devices,
        params=params,
    )
    if result.best is None:
        raise Infeasible(result.message, hint="loosen the budget, raise the device limit or add hardware")
    return _planner_result(n, spec, result)


def _planner_result(n, spec, result, steps: list[SizeStep] | None = None) -> SizeResult:
    """A :class:`SizeResult` placed where the planner's ``result`` found its best plan."""
    from flopcast.layout import Layout

    i = result.best
    hw = result.points.hardware[int(result.points.hw_index[i])]
    return SizeResult(
        params=n,
        spec=spec,
        placement="planner",
        profile=hw.profile,
        devices=int(result.points.devices[i]),
        layout=Layout.from_arrays(result.points.layouts, i).as_dict(),
        tier=hw.price.tier,
        steps=steps or [],
    )
