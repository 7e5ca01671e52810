"""The planner: search hardware × device count × parallel layout under constraints (DESIGN §6).

What is searched, for one model and token count:

* hardware: every visible profile (or ``--hardware a,b``) that has a peak for the training precision and,
  when ``--price-tier`` is given, a price in that tier;
* device counts (:func:`device_counts`): the powers of two and every multiple of the node size up to
  ``--max-devices`` (default :data:`DEFAULT_MAX_DEVICES`); above :data:`DENSE_DEVICE_LIMIT` only the
  multiples of the node size of the form 2^k and 3·2^k. With a deadline and no ``--max-devices``, hardware
  that cannot meet the deadline within the default is searched further, up to twice the device count that
  linear scaling of its fastest plan implies (at most :data:`MAX_IMPLIED_DEVICES`);
* layouts: every valid tp × pp × dp × micro-batch × ZeRO stage × recompute mode of each device count, as
  :func:`flopcast.layout.enumerate_layouts` builds them for ``flopcast estimate``.

Every layout is evaluated by the one estimator core (:func:`flopcast.estimator.core.evaluate`), one hardware
at a time over all its device counts at once (in cache-sized chunks of :data:`CHUNK_ROWS` rows); no formula
is repeated here. Within one hardware and device count, cost and energy are device-hours times a constant,
so the fastest layout that fits is also the cheapest and the least energy: the search keeps that layout per
(hardware, device count) — its *winner* — and applies the constraints, the objective and the Pareto front to
the winners. ``layouts_feasible`` counts every evaluated layout that fits and meets the constraints.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from flopcast.errors import ConflictingOptions, Infeasible, InvalidValue
from flopcast.units import format_duration, format_usd, parse_duration, parse_int, parse_usd

OBJECTIVES = ("cost", "time", "energy")
# The largest device count searched by default: a 512-node cluster of 8-GPU servers, the scale of the
# largest runs in the calibration set (Megatron-LM's 1T-parameter run used 3,072 A100s: Narayanan et al. 2021).
DEFAULT_MAX_DEVICES = 4096
DENSE_DEVICE_LIMIT = 4096  # every multiple of the node size up to here; above, a 2^k / 3·2^k ladder
# Sanity bound on a deadline-implied device count: 8× the 16,384 H100s of Llama 3 405B (Dubey et al. 2024).
MAX_IMPLIED_DEVICES = 131_072
DEADLINE_EXTENSION_MARGIN = 2.0  # linear scaling is optimistic: search up to twice the implied need
CHUNK_ROWS = 65_536  # rows per evaluate call: large enough to amortise Python, small enough for the caches
NEAR_MISS_COUNT = 3
# Warn when the best plan's global batch exceeds the default rule's (layout.DEFAULT_BATCH_TOKENS_BY_PARAMS) by
# more than this factor: beyond the critical batch size extra data parallelism stops paying for itself
# (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training").
LARGE_BATCH_WARNING_FACTOR = 2.0


# --- input parsing (one line, exit 2, on anything wrong) --------------------------------------------------


def parse_objective(text: str | None, default: str = "cost") -> str:
    if text is None:
        return default
    value = str(text).strip().lower()
    if value not in OBJECTIVES:
        raise InvalidValue(f"--objective: {text!r} is not an objective", hint="use cost, time or energy")
    return value


def parse_optional_duration(text, what: str) -> float | None:
    return None if text is None else parse_duration(text, what=what)


def parse_optional_usd(text, what: str) -> float | None:
    return None if text is None else parse_usd(text, what=what)


def parse_max_devices(text) -> int | None:
    return None if text is None else parse_int(text, what="--max-devices")


def check_price_tier(price_tier: str | None, profiles: list) -> None:
    """A ``--price-tier`` that none of the selected profiles lists is a typo, not a constraint: exit 2."""
    if price_tier is None or any(price_tier in p.prices_usd_per_device_hour for p in profiles):
        return
    listed = sorted({t for p in profiles for t in p.prices_usd_per_device_hour})
    raise InvalidValue(
        f"--price-tier {price_tier}: no selected hardware lists it",
        hint=f"use one of {', '.join(listed)}" if listed else "the selected hardware lists no prices",
    )


def resolve_hardware_list(text, profiles=None, *, what: str = "--hardware") -> list:
    """Profiles named in ``a,b,c`` (ids or aliases; unknown → exit 2 with a suggestion), or every profile."""
    from pathlib import Path

    from flopcast.hardware import load_catalog

    dirs = [Path(p) for p in (profiles or [])] if not isinstance(profiles, str | Path) else [Path(profiles)]
    catalog = load_catalog(dirs)
    if text is None:
        return [catalog.get(pid) for pid in catalog.ids()]
    names = [text] if not isinstance(text, str) else str(text).split(",")
    out, seen = [], set()
    for name in names:
        if hasattr(name, "peak_flops_per_s"):  # a HardwareProfile object (library use)
            profile = name
        else:
            if not str(name).strip():
                raise InvalidValue(
                    f"{what}: empty name in {text!r}", hint="give ids separated by commas, e.g. a100-80gb,h100-80gb"
                )
            profile = catalog.get(str(name))
        if profile.id not in seen:
            seen.add(profile.id)
            out.append(profile)
    return out


# --- the device-count grid -----------------------------------------------------------------------------------


def device_counts(devices_per_node: int, max_devices: int, *, above: int = 0) -> list[int]:
    """Device counts to search: powers of two and multiples of the node size up to ``max_devices``.

    Every multiple of the node size up to :data:`DENSE_DEVICE_LIMIT`; beyond it, the multiples of the node
    size of the form 2^k or 3·2^k, plus ``max_devices`` itself when it is one. Only counts > ``above``.
    """
    if max_devices < 1:
        raise InvalidValue(f"--max-devices: {max_devices} is not a positive count", hint="give e.g. 4096")
    dpn = max(int(devices_per_node), 1)
    counts: set[int] = set()
    k = 1
    while k <= max_devices:
        counts.add(k)
        k *= 2
    counts.update(range(dpn, min(max_devices, DENSE_DEVICE_LIMIT) + 1, dpn))
    for base in (1, 3):
        n = base
        while n <= max_devices:
            if n % dpn == 0:
                counts.add(n)
            n *= 2
    if max_devices % dpn == 0:
        counts.add(max_devices)
    return sorted(c for c in counts if c > above)


def _empty_layouts():
    from flopcast.estimator.arrays import LayoutArrays

    empty = np.zeros(0)
    return LayoutArrays.of(
        tp=empty,
        pp=empty,
        dp=empty,
        micro_batch=empty,
        global_batch=empty,
        zero=empty,
        recompute=empty,
        interleave=empty,
    )


# --- the search over one hardware profile ----------------------------------------------------------------


@dataclass
class PricedHardware:
    """A profile with its hardware arrays and the price tier the run is costed at."""

    profile: object
    arrays: object  # HardwareArrays, one row
    tier: str | None
    price: float | None


def priced_hardware(profile, *, precision: str, price_tier: str | None, params) -> tuple[PricedHardware | None, str]:
    """(PricedHardware, "") or (None, why it cannot be searched)."""
    from flopcast.api import _price
    from flopcast.estimator.arrays import HardwareArrays, training_peak

    try:
        training_peak(profile, precision)
    except InvalidValue:
        return None, f"publishes no {precision} peak"
    if price_tier is not None and price_tier not in profile.prices_usd_per_device_hour:
        listed = ", ".join(sorted(profile.prices_usd_per_device_hour)) or "none"
        return None, f"lists no {price_tier} price (tiers: {listed})"
    price, tier, _, _ = _price(profile, price_tier, None)
    hw = HardwareArrays.from_profiles([profile], precision=precision, tier=None, price_per_hour=price, params=params)
    return PricedHardware(profile=profile, arrays=hw, tier=tier, price=price), ""


class CandidateCache:
    """Layouts per (node size, device count), built once by :func:`flopcast.layout.enumerate_layouts`."""

    def __init__(self, spec, query=None):
        self.spec = spec
        self.query = query
        self._by_count: dict[tuple[int, int], object] = {}
        self._joined: dict[tuple, tuple] = {}

    def layouts(self, devices_per_node: int, counts: list[int]):
        """(LayoutArrays of every count, concatenated; the counts that have layouts; their start rows)."""
        from flopcast.layout import enumerate_layouts

        joined_key = (devices_per_node, tuple(counts))
        if joined_key in self._joined:
            return self._joined[joined_key]
        parts, kept, sizes = [], [], []
        for n in counts:
            key = (devices_per_node, n)
            if key not in self._by_count:
                self._by_count[key] = enumerate_layouts(
                    self.spec, n, devices_per_node=devices_per_node, query=self.query
                )
            cands = self._by_count[key]
            if len(cands.tp):
                parts.append(cands)
                kept.append(n)
                sizes.append(len(cands.tp))
        if not parts:
            out = _empty_layouts(), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        else:
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            out = _concatenate_layouts(parts), np.asarray(kept, dtype=np.int64), starts
        self._joined[joined_key] = out
        return out


def _concatenate_layouts(parts: list):
    """One LayoutArrays of 1-D parts (a plain concatenate per field: the parts are never broadcast)."""
    from flopcast.estimator.arrays import LayoutArrays

    return LayoutArrays(
        **{f: np.concatenate([np.atleast_1d(getattr(p, f)) for p in parts]) for f in LayoutArrays._fields}
    )


@dataclass
class Winners:
    """Per device count of one hardware: the fastest layout that fits (or, where none fits, the one that
    needs the least memory), with its full estimate. ``evaluated``/``feasible`` count every layout."""

    hardware: PricedHardware
    devices: np.ndarray
    layouts: object  # LayoutArrays, one row per device count
    estimates: object  # EstimateArrays, one row per device count
    evaluated: int
    feasible: int


def sweep(
    spec,
    marr,
    hw: PricedHardware,
    counts: list[int],
    workload,
    params,
    cache: CandidateCache,
    *,
    deadline_seconds: float | None = None,
    budget_usd: float | None = None,
) -> Winners:
    """Evaluate every layout of ``hw`` on ``counts`` devices; keep the winner per device count."""
    from flopcast.estimator.core import evaluate

    dpn = int(hw.profile.devices_per_node)
    cands, kept, starts = cache.layouts(dpn, counts)
    n = len(cands.tp)
    if n == 0:
        return Winners(hw, kept, cands, None, 0, 0)
    wall = np.empty(n)
    memory = np.empty(n)
    fits = np.empty(n, dtype=bool)
    feasible = 0
    for s in range(0, n, CHUNK_ROWS):
        e = min(s + CHUNK_ROWS, n)
        est = evaluate(marr, hw.arrays, cands.take(slice(s, e)), workload, params)
        wall[s:e] = est.wall_clock_seconds
        memory[s:e] = est.memory_bytes
        fits[s:e] = est.fits
        ok = fits[s:e].copy()
        if deadline_seconds is not None:
            ok &= wall[s:e] <= deadline_seconds
        if budget_usd is not None:
            ok &= est.cost_usd <= budget_usd
        feasible += int(np.count_nonzero(ok))
    winners = _group_winners(wall, memory, fits, starts)
    est = evaluate(marr, hw.arrays, cands.take(winners), workload, params)
    return Winners(hw, kept, cands.take(winners), est, n, feasible)


def _group_winners(wall: np.ndarray, memory: np.ndarray, fits: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Row index per group (contiguous, starting at ``starts``): the least wall-clock among rows that fit;
    in a group where nothing fits, the least memory. Ties: the first row."""
    n = len(wall)
    sizes = np.diff(np.append(starts, n))
    group = np.repeat(np.arange(len(starts)), sizes)
    wall_fit = np.where(fits, wall, np.inf)
    best_wall = np.minimum.reduceat(wall_fit, starts)
    best_memory = np.minimum.reduceat(memory, starts)
    any_fit = np.isfinite(best_wall)
    key = np.where(any_fit[group], wall_fit, memory)
    hit = np.flatnonzero(key == np.where(any_fit, best_wall, best_memory)[group])
    first = np.ones(len(hit), dtype=bool)
    first[1:] = group[hit][1:] != group[hit][:-1]
    return hit[first]


# --- the Pareto front ----------------------------------------------------------------------------------------


def pareto_front(time_values, cost_values) -> np.ndarray:
    """Indices of the points no other point beats on both time and cost (both minimised), fastest first.

    A point is dropped when another is at least as good on both and better on one; of identical points the
    first is kept. Points with a NaN coordinate are ignored.
    """
    t = np.asarray(time_values, dtype=float)
    c = np.asarray(cost_values, dtype=float)
    valid = np.flatnonzero(~(np.isnan(t) | np.isnan(c)))
    if len(valid) == 0:
        return np.zeros(0, dtype=np.int64)
    order = valid[np.lexsort((valid, c[valid], t[valid]))]
    cs = c[order]
    before = np.empty(len(cs))
    before[0] = np.inf
    before[1:] = np.minimum.accumulate(cs)[:-1]
    return order[cs < before]


# --- the whole search ------------------------------------------------------------------------------------------

_FIELDS = (
    "wall_clock_seconds",
    "wall_clock_seconds_p10",
    "wall_clock_seconds_p90",
    "device_hours",
    "device_hours_p10",
    "device_hours_p90",
    "cost_usd",
    "cost_usd_p10",
    "cost_usd_p90",
    "energy_kwh",
    "co2_kg",
    "memory_bytes",
    "fits",
    "mfu",
    "tokens_per_second",
)


@dataclass
class Points:
    """The winners of every (hardware, device count), flattened into arrays (one element per point)."""

    hardware: list[PricedHardware]
    hw_index: np.ndarray
    devices: np.ndarray
    layouts: object  # LayoutArrays
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.devices)

    @classmethod
    def join(cls, hardware: list[PricedHardware], sweeps: list[Winners]) -> Points:
        index = {id(h): i for i, h in enumerate(hardware)}
        used = [w for w in sweeps if w.estimates is not None and len(w.devices)]
        if not used:
            empty = np.zeros(0)
            return cls(
                hardware,
                np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.int64),
                _empty_layouts(),
                {f: empty for f in _FIELDS},
            )
        hw_index = np.concatenate([np.full(len(w.devices), index[id(w.hardware)]) for w in used])
        devices = np.concatenate([w.devices for w in used])
        layouts = _concatenate_layouts([w.layouts for w in used])
        values = {f: np.concatenate([np.asarray(getattr(w.estimates, f)) for w in used]) for f in _FIELDS}
        return cls(hardware, hw_index, devices, layouts, values)

    def capacity(self) -> np.ndarray:
        caps = np.asarray([h.profile.memory_bytes for h in self.hardware], dtype=float)
        return caps[self.hw_index] if len(self.hw_index) else np.zeros(0)


def objective_values(points: Points, objective: str) -> np.ndarray:
    key = {"cost": "cost_usd", "time": "wall_clock_seconds", "energy": "energy_kwh"}[objective]
    return points.values[key]


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
) -> PlanResult:
    """Search every hardware × device count × layout; return the winners, the best, the Pareto front."""
    from flopcast.estimator.arrays import ModelArrays, Workload
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.layout import LayoutQuery

    started = time.perf_counter()
    params = params or EfficiencyParams.load()
    limit = DEFAULT_MAX_DEVICES if max_devices is None else max_devices
    marr = ModelArrays.from_specs([spec])
    workload = Workload(tokens=tokens, precision=precision)
    cache = CandidateCache(spec, LayoutQuery(global_batch=global_batch))
    hardware, skipped, sweeps = [], {}, []
    searched_max = limit
    n_counts = 0
    for profile in profiles:
        hw, why = priced_hardware(profile, precision=precision, price_tier=price_tier, params=params)
        if hw is None:
            skipped[profile.id] = why
            continue
        hardware.append(hw)
        counts = device_counts(profile.devices_per_node, limit)
        w = sweep(
            spec, marr, hw, counts, workload, params, cache, deadline_seconds=deadline_seconds, budget_usd=budget_usd
        )
        sweeps.append(w)
        n_counts += len(w.devices)
        if deadline_seconds is not None and max_devices is None:
            more = _deadline_extension(w, deadline_seconds, limit)
            if more:
                searched_max = max(searched_max, more[-1])
                extra = sweep(
                    spec,
                    marr,
                    hw,
                    more,
                    workload,
                    params,
                    cache,
                    deadline_seconds=deadline_seconds,
                    budget_usd=budget_usd,
                )
                sweeps.append(extra)
                n_counts += len(extra.devices)
    points = Points.join(hardware, sweeps)
    values = points.values
    ok = values["fits"].astype(bool) if len(points) else np.zeros(0, dtype=bool)
    if deadline_seconds is not None:
        ok = ok & (values["wall_clock_seconds"] <= deadline_seconds)
    if budget_usd is not None:
        ok = ok & (values["cost_usd"] <= budget_usd)
    obj = objective_values(points, objective)
    best = _best(points, ok & np.isfinite(obj), objective)
    front_rows = np.flatnonzero(ok & np.isfinite(values["cost_usd"])) if len(points) else np.zeros(0, dtype=int)
    pareto = front_rows[pareto_front(values["wall_clock_seconds"][front_rows], values["cost_usd"][front_rows])]
    near = [] if best is not None else near_misses(points, deadline_seconds, budget_usd)
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
        result.message = infeasible_message(result, objective, deadline_seconds, budget_usd, searched_max)
    result.seconds = time.perf_counter() - started
    return result


def _deadline_extension(w: Winners, deadline_seconds: float, limit: int) -> list[int]:
    """Device counts beyond ``limit`` worth searching when ``w`` cannot meet the deadline within it."""
    if w.estimates is None or not len(w.devices):
        return []
    fits = np.asarray(w.estimates.fits, dtype=bool)
    wall = np.asarray(w.estimates.wall_clock_seconds)
    if not fits.any() or (fits & (wall <= deadline_seconds)).any():
        return []
    i = int(np.argmin(np.where(fits, wall, np.inf)))
    implied = w.devices[i] * wall[i] / deadline_seconds * DEADLINE_EXTENSION_MARGIN
    target = min(2 ** math.ceil(math.log2(max(implied, 1.0))), MAX_IMPLIED_DEVICES)
    if target <= limit:
        return []
    return device_counts(w.hardware.profile.devices_per_node, target, above=limit)


def _best(points: Points, candidates: np.ndarray, objective: str) -> int | None:
    rows = np.flatnonzero(candidates)
    if len(rows) == 0:
        return None
    v = points.values
    primary = objective_values(points, objective)[rows]
    cost = np.nan_to_num(v["cost_usd"][rows], nan=np.inf)
    secondary = cost if objective == "time" else v["wall_clock_seconds"][rows]
    order = np.lexsort((points.devices[rows], secondary, primary))
    return int(rows[order[0]])


def near_misses(
    points: Points, deadline_seconds: float | None, budget_usd: float | None, count: int = NEAR_MISS_COUNT
) -> list[tuple[int, dict[str, float]]]:
    """The points closest to meeting every constraint (at most one per hardware), with their relative
    excess per constraint: ``memory`` (needs / capacity − 1), ``deadline``, ``budget``."""
    if not len(points):
        return []
    v = points.values
    fits = v["fits"].astype(bool)
    miss_memory = np.where(fits, 0.0, v["memory_bytes"] / points.capacity() - 1.0)
    miss_deadline = (
        np.zeros(len(points))
        if deadline_seconds is None
        else np.maximum(v["wall_clock_seconds"] / deadline_seconds - 1.0, 0.0)
    )
    miss_budget = (
        np.zeros(len(points))
        if budget_usd is None
        else np.maximum(np.nan_to_num(v["cost_usd"], nan=np.inf) / budget_usd - 1.0, 0.0)
    )
    # A plan that does not fit is farther than any that fits.
    total = np.where(fits, np.maximum(miss_deadline, miss_budget), np.inf)
    if not fits.any():
        total = miss_memory
    out: list[tuple[int, dict[str, float]]] = []
    per_hw = {}
    for i in np.lexsort((points.devices, total)):
        if not np.isfinite(total[i]):
            continue
        h = int(points.hw_index[i])
        if h not in per_hw:
            per_hw[h] = int(i)
    for i in sorted(per_hw.values(), key=lambda j: (total[j], points.devices[j]))[:count]:
        misses = {}
        if miss_memory[i] > 0:
            misses["memory"] = float(miss_memory[i])
        if deadline_seconds is not None and miss_deadline[i] > 0:
            misses["deadline"] = float(miss_deadline[i])
        if budget_usd is not None and miss_budget[i] > 0:
            misses["budget"] = float(miss_budget[i]) if np.isfinite(miss_budget[i]) else float("inf")
        out.append((i, misses))
    return out


def describe_miss(points: Points, i: int, misses: dict[str, float], deadline_seconds, budget_usd) -> str:
    """``h100-80gb × 2048: takes 41.2 d (+37% over the 30 d deadline)``."""
    v = points.values
    hw = points.hardware[int(points.hw_index[i])]
    parts = []
    if "memory" in misses:
        parts.append(f"needs {v['memory_bytes'][i] / 1e9:.1f} GB per device of {hw.profile.memory_bytes / 1e9:.0f} GB")
    if "deadline" in misses:
        parts.append(
            f"takes {format_duration(v['wall_clock_seconds'][i])} "
            f"(+{misses['deadline']:.0%} over the {format_duration(deadline_seconds)} deadline)"
        )
    if "budget" in misses:
        cost = v["cost_usd"][i]
        parts.append(
            "has no price"
            if not np.isfinite(cost)
            else f"costs {format_usd(cost)} (+{misses['budget']:.0%} over the {format_usd(budget_usd)} budget)"
        )
    if not parts:
        parts.append("meets the constraints but lacks the objective's figure")
    return f"{hw.profile.id} × {int(points.devices[i])}: " + " and ".join(parts)


def infeasible_message(result: PlanResult, objective: str, deadline_seconds, budget_usd, max_devices: int) -> str:
    asked = []
    if deadline_seconds is not None:
        asked.append(f"--deadline {format_duration(deadline_seconds)}")
    if budget_usd is not None:
        asked.append(f"--budget {format_usd(budget_usd)}")
    if not len(result.points):
        return "no hardware could be searched (" + "; ".join(f"{k} {v}" for k, v in result.skipped.items()) + ")"
    if result.feasible.any():
        what = {"cost": "a price for the tier", "energy": "a published power figure", "time": "a time"}[objective]
        return f"no plan that meets the constraints has {what}, which --objective {objective} needs"
    constraint = " and ".join(asked) if asked else "memory"
    head = f"no plan meets {constraint} on up to {max_devices} devices"
    if result.near_misses:
        i, misses = result.near_misses[0]
        head += "; closest: " + describe_miss(result.points, i, misses, deadline_seconds, budget_usd)
    return head


def raise_if_infeasible(result: PlanResult) -> None:
    """Raise :class:`Infeasible` (exit 3) with the near-misses when the search found no plan."""
    if result.best is None:
        raise Infeasible(
            result.message,
            hint="loosen --deadline/--budget, raise --max-devices or add hardware",
            near_misses=result.near_misses,
        )


# --- reports ---------------------------------------------------------------------------------------------------


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def plan_point(points: Points, i: int):
    """The PlanPoint report section of point ``i``."""
    from flopcast.estimator.arrays import RECOMPUTE_NAMES
    from flopcast.reports.plan import LayoutInfo, PlanPoint

    v = points.values
    hw = points.hardware[int(points.hw_index[i])]
    lay = points.layouts
    get = lambda name: int(np.atleast_1d(getattr(lay, name))[i])  # noqa: E731
    return PlanPoint(
        hardware=hw.profile.id,
        devices=int(points.devices[i]),
        layout=LayoutInfo(
            tp=get("tp"),
            pp=get("pp"),
            dp=get("dp"),
            micro_batch=get("micro_batch"),
            global_batch=get("global_batch"),
            zero=get("zero"),
            recompute=RECOMPUTE_NAMES[get("recompute")],
        ),
        fits=bool(v["fits"][i]),
        memory_per_device_bytes=float(v["memory_bytes"][i]),
        capacity_bytes=float(hw.profile.memory_bytes),
        wall_clock_seconds=float(v["wall_clock_seconds"][i]),
        wall_clock_seconds_p10=float(v["wall_clock_seconds_p10"][i]),
        wall_clock_seconds_p90=float(v["wall_clock_seconds_p90"][i]),
        device_hours=float(v["device_hours"][i]),
        cost_usd=_num(v["cost_usd"][i]),
        cost_usd_p10=_num(v["cost_usd_p10"][i]),
        cost_usd_p90=_num(v["cost_usd_p90"][i]),
        price_tier=hw.tier,
        usd_per_device_hour=hw.price,
        energy_kwh=_num(v["energy_kwh"][i]),
        mfu=float(v["mfu"][i]),
        tokens_per_second=float(v["tokens_per_second"][i]),
    )


@dataclass(frozen=True)
class WorkloadOptions:
    """The model and token options as the user gave them (strings or numbers), for ``api.estimate``."""

    model: object = None
    tokens: object = None
    seq_len: object = None
    architecture: dict = field(default_factory=dict)
    precision: str = "bf16"
    global_batch: object = None

    def resolve(self):
        """(ModelSpec, tokens, global batch or None); bad values raise one-line errors."""
        from flopcast.api import ARCHITECTURE_KEYS, _resolve_model
        from flopcast.estimator.arrays import PRECISIONS
        from flopcast.units import parse_count

        unknown = sorted(set(self.architecture) - set(ARCHITECTURE_KEYS))
        if unknown:
            raise InvalidValue(
                f"unknown option(s) {', '.join(unknown)}",
                hint=f"architecture options are {', '.join(ARCHITECTURE_KEYS)}",
            )
        if self.precision not in PRECISIONS:
            raise InvalidValue(
                f"--precision: unknown precision {self.precision!r}", hint=f"use one of {', '.join(PRECISIONS)}"
            )
        if self.tokens is None:
            raise InvalidValue("--tokens: no token count given", hint="e.g. --tokens 2T")
        tokens = parse_count(self.tokens, what="--tokens")
        gb = None if self.global_batch is None else parse_int(self.global_batch, what="--global-batch")
        arch = {k: v for k, v in self.architecture.items() if v is not None}
        return _resolve_model(self.model, self.seq_len, arch), tokens, gb

    def label(self, spec) -> str:
        return str(self.model) if isinstance(self.model, str) else spec.name

    def estimate(self, profile, devices: int, *, price_tier=None, profiles=None, **layout):
        """``flopcast estimate`` of this workload on ``profile`` × ``devices`` (layout searched unless given)."""
        from flopcast.api import estimate

        arch = {k: v for k, v in self.architecture.items() if v is not None}
        return estimate(
            model=self.model,
            tokens=self.tokens,
            hardware=profile,
            devices=devices,
            precision=self.precision,
            price_tier=price_tier,
            profiles=profiles,
            seq_len=self.seq_len,
            global_batch=layout.pop("global_batch", self.global_batch),
            **layout,
            **arch,
        )


def model_summary(spec):
    from flopcast.reports.plan import ModelSummary

    return ModelSummary(
        name=spec.name,
        params=spec.params,
        layers=spec.layers,
        d_model=spec.d_model,
        heads=spec.heads,
        seq_len=spec.seq_len,
    )


def best_estimate(work: WorkloadOptions, points: Points, i: int, *, price_tier: str | None = None, profiles=None):
    """The estimate report of point ``i``: ``flopcast estimate`` with that hardware, device count and layout
    (and the same ``--price-tier``: the search only keeps hardware that lists it)."""
    p = plan_point(points, i)
    hw = points.hardware[int(points.hw_index[i])]
    return work.estimate(
        hw.profile,
        p.devices,
        price_tier=price_tier,
        profiles=profiles,
        tp=p.layout.tp,
        pp=p.layout.pp,
        dp=p.layout.dp,
        micro_batch=p.layout.micro_batch,
        global_batch=p.layout.global_batch,
        zero=p.layout.zero,
        recompute=p.layout.recompute,
    )


def plan_report(
    work: WorkloadOptions,
    *,
    hardware=None,
    objective=None,
    deadline=None,
    budget=None,
    max_devices=None,
    price_tier: str | None = None,
    profiles=None,
    params=None,
):
    """Parse the options, search, and build the :class:`~flopcast.reports.plan.PlanReport`.

    Never raises :class:`Infeasible`: a report with ``feasible`` False carries the near-misses; the caller
    decides (the CLI writes the report, then exits 3 via :func:`raise_if_infeasible`).
    """
    from flopcast.reports.plan import NearMiss, PlanInputs, PlanReport, SearchStats

    objective = parse_objective(objective)
    deadline_s = parse_optional_duration(deadline, "--deadline")
    budget_usd = parse_optional_usd(budget, "--budget")
    limit = parse_max_devices(max_devices)
    spec, tokens, gb = work.resolve()
    chosen = resolve_hardware_list(hardware, profiles)
    check_price_tier(price_tier, chosen)
    result = search(
        spec,
        chosen,
        tokens,
        objective=objective,
        deadline_seconds=deadline_s,
        budget_usd=budget_usd,
        max_devices=limit,
        price_tier=price_tier,
        precision=work.precision,
        global_batch=gb,
        params=params,
    )
    pts = result.points
    warnings = []
    best_report = None
    if result.best is not None:
        best_report = best_estimate(work, pts, result.best, price_tier=price_tier, profiles=profiles)
        if deadline_s is None and objective != "time":
            warnings.append(
                f"no --deadline: the {objective}-optimal plan takes "
                f"{format_duration(best_report.time.wall_clock_seconds)}; add --deadline to bound it"
            )
        warnings += _batch_warning(spec, best_report, gb)
    for hid, why in result.skipped.items():
        warnings.append(f"{hid} not searched: {why}")
    report = PlanReport(
        inputs=PlanInputs(
            model=work.label(spec),
            tokens=tokens,
            hardware=[p.id for p in chosen] if hardware else [],
            objective=objective,
            deadline_seconds=deadline_s,
            budget_usd=budget_usd,
            max_devices=limit,
            price_tier=price_tier,
            precision=work.precision,
            global_batch=gb,
        ),
        model=model_summary(spec),
        feasible=result.best is not None,
        best=best_report,
        best_point=None if result.best is None else plan_point(pts, result.best),
        pareto=[plan_point(pts, int(i)) for i in result.pareto],
        near_misses=[
            NearMiss(point=plan_point(pts, i), misses=m, description=describe_miss(pts, i, m, deadline_s, budget_usd))
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
    return report, result


def _batch_warning(spec, best, given_batch) -> list[str]:
    """Many data-parallel replicas force a global batch far above the default rule: say so."""
    from flopcast.layout import default_global_batch

    if given_batch is not None:
        return []
    usual = default_global_batch(spec.params, spec.seq_len)
    chosen = best.parallelism.global_batch
    if chosen <= LARGE_BATCH_WARNING_FACTOR * usual:
        return []
    return [
        f"the best plan's {best.parallelism.dp} data-parallel replicas need a global batch of {chosen} sequences "
        f"({chosen * spec.seq_len / 1e6:.3g}M tokens), {chosen / usual:.0f}× the usual {usual}; such batches can "
        "slow convergence: give --global-batch (e.g. a power of two) to bound it"
    ]


# --- compare --------------------------------------------------------------------------------------------------


def compare_report(
    work: WorkloadOptions,
    *,
    hardware=None,
    devices=None,
    deadline=None,
    max_devices=None,
    objective=None,
    price_tier: str | None = None,
    profiles=None,
    params=None,
):
    """One workload on every (or the named) hardware at ``devices`` or, with ``deadline``, at the fewest
    devices of each hardware that meet it. Rows best first by the objective; a row that cannot run says why."""
    from flopcast.estimator.efficiency import EfficiencyParams
    from flopcast.reports.plan import CompareInputs, CompareReport

    started = time.perf_counter()
    objective = parse_objective(objective)
    deadline_s = parse_optional_duration(deadline, "--deadline")
    n_devices = None if devices is None else parse_int(devices, what="--devices")
    limit = parse_max_devices(max_devices)
    if n_devices is not None and deadline_s is not None:
        raise ConflictingOptions(
            "--devices together with --deadline",
            hint="give --devices N to compare at N devices, or --deadline to find the fewest",
        )
    if n_devices is None and deadline_s is None:
        raise InvalidValue(
            "compare needs --devices N or --deadline DURATION",
            hint="e.g. --devices 256, or --deadline 30d for the fewest devices that meet it",
        )
    if limit is not None and n_devices is not None:
        raise ConflictingOptions(
            "--max-devices together with --devices", hint="--max-devices bounds a --deadline search"
        )
    spec, tokens, gb = work.resolve()
    chosen = resolve_hardware_list(hardware, profiles)
    check_price_tier(price_tier, chosen)
    params = params or EfficiencyParams.load()
    rows = []
    for profile in chosen:
        rows.append(
            _compare_row(
                work, spec, tokens, gb, profile, n_devices, deadline_s, limit, objective, price_tier, profiles, params
            )
        )
    value = {"cost": "cost_usd", "time": "wall_clock_seconds", "energy": "energy_kwh"}[objective]
    rows.sort(key=lambda r: (not r.ok, _sort_value(getattr(r, value)), r.hardware))
    ranked = [r.model_copy(update={"rank": k + 1}) for k, r in enumerate(rows)]
    return CompareReport(
        inputs=CompareInputs(
            model=work.label(spec),
            tokens=tokens,
            hardware=[p.id for p in chosen],
            devices=n_devices,
            deadline_seconds=deadline_s,
            max_devices=limit,
            objective=objective,
            price_tier=price_tier,
            precision=work.precision,
            global_batch=gb,
        ),
        model=model_summary(spec),
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


def _compare_row(
    work, spec, tokens, gb, profile, n_devices, deadline_s, limit, objective, price_tier, profiles, params
):
    from flopcast.errors import InvalidLayout

    hw, why = priced_hardware(profile, precision=work.precision, price_tier=None, params=params)
    if hw is None:
        return _empty_row(profile, why)
    has_tier = price_tier is None or price_tier in profile.prices_usd_per_device_hour
    tier_arg = price_tier if has_tier else None
    note = None
    try:
        if n_devices is not None:
            report = work.estimate(profile, n_devices, price_tier=tier_arg, profiles=profiles)
        else:
            report, note = _fewest_devices(work, spec, tokens, gb, hw, deadline_s, limit, tier_arg, profiles, params)
            if report is None:
                return _empty_row(profile, note)
    except InvalidLayout as exc:
        return _empty_row(profile, exc.message)
    return _row_from_estimate(profile, report, objective, price_tier, has_tier, note)


def _fewest_devices(work, spec, tokens, gb, hw, deadline_s, limit, tier_arg, profiles, params):
    """(estimate at the fewest devices whose chosen layout meets the deadline, note) or (None, why)."""
    from flopcast.estimator.arrays import ModelArrays, Workload
    from flopcast.layout import LayoutQuery

    marr = ModelArrays.from_specs([spec])
    workload = Workload(tokens=tokens, precision=work.precision)
    cache = CandidateCache(spec, LayoutQuery(global_batch=gb))
    top = DEFAULT_MAX_DEVICES if limit is None else limit
    sweeps = [sweep(spec, marr, hw, device_counts(hw.profile.devices_per_node, top), workload, params, cache)]
    if limit is None:
        more = _deadline_extension(sweeps[0], deadline_s, top)
        if more:
            sweeps.append(sweep(spec, marr, hw, more, workload, params, cache))
            top = more[-1]
    pts = Points.join([hw], sweeps)
    if not len(pts):
        return None, "no parallel layout matches the options"
    v = pts.values
    fits = v["fits"].astype(bool)
    meets = np.flatnonzero(fits & (v["wall_clock_seconds"] <= deadline_s))
    for i in meets[np.argsort(pts.devices[meets], kind="stable")]:
        report = work.estimate(hw.profile, int(pts.devices[i]), price_tier=tier_arg, profiles=profiles)
        if report.memory.fits and report.time.wall_clock_seconds <= deadline_s:
            return report, None
    if not fits.any():
        i = int(np.argmin(v["memory_bytes"]))
        return None, (
            f"does not fit on up to {top} devices (needs {v['memory_bytes'][i] / 1e9:.1f} GB per device of "
            f"{hw.profile.memory_bytes / 1e9:.0f} GB)"
        )
    i = int(np.argmin(np.where(fits, v["wall_clock_seconds"], np.inf)))
    report = work.estimate(hw.profile, int(pts.devices[i]), price_tier=tier_arg, profiles=profiles)
    return report, (
        f"misses the {format_duration(deadline_s)} deadline on up to {top} devices "
        f"(fastest: {format_duration(report.time.wall_clock_seconds)} on {int(pts.devices[i])})"
    )


def _row_from_estimate(profile, r, objective, price_tier, has_tier, note):
    from flopcast.reports.plan import CompareRow, LayoutInfo

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
        layout=LayoutInfo(
            tp=p.tp,
            pp=p.pp,
            dp=p.dp,
            micro_batch=p.micro_batch,
            global_batch=p.global_batch,
            zero=p.zero,
            recompute=p.recompute,
        ),
        memory_per_device_bytes=r.memory.per_device_bytes,
        capacity_bytes=r.memory.capacity_bytes,
        wall_clock_seconds=t.wall_clock_seconds,
        wall_clock_seconds_p10=t.wall_clock_seconds_p10,
        wall_clock_seconds_p90=t.wall_clock_seconds_p90,
        device_hours=t.device_hours,
        device_hours_p10=t.device_hours_p10,
        device_hours_p90=t.device_hours_p90,
        cost_usd=cost,
        cost_usd_p10=c.total_usd_p10 if has_tier else None,
        cost_usd_p90=c.total_usd_p90 if has_tier else None,
        price_tier=tier,
        usd_per_device_hour=c.usd_per_device_hour if has_tier else None,
        cost_by_tier_usd=dict(c.by_tier_usd),
        energy_kwh=e.kwh,
        co2_kg=e.co2_kg,
        mfu=r.efficiency.mfu,
        tokens_per_second=r.throughput.tokens_per_second,
    )
