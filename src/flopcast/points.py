"""The plan's points: the winner of every (hardware, device count) flattened into arrays, the Pareto front of
time vs cost, and the points closest to meeting the constraints when none does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flopcast.confidence import at
from flopcast.estimator.arrays import LayoutArrays
from flopcast.units import format_duration, format_usd

NEAR_MISS_COUNT = 3


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


_FIELDS = (
    "wall_clock_seconds",
    "wall_clock_seconds_p10",
    "wall_clock_seconds_p80",
    "wall_clock_seconds_p90",
    "device_hours",
    "device_hours_p10",
    "device_hours_p80",
    "device_hours_p90",
    "cost_usd",
    "cost_usd_p10",
    "cost_usd_p80",
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

    hardware: list  # request.PricedHardware
    hw_index: np.ndarray
    devices: np.ndarray
    layouts: LayoutArrays
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.devices)

    @classmethod
    def join(cls, hardware: list, sweeps: list) -> Points:
        index = {id(h): i for i, h in enumerate(hardware)}
        used = [w for w in sweeps if w.estimates is not None and len(w.devices)]
        if not used:
            empty = np.zeros(0)
            return cls(
                hardware,
                np.zeros(0, dtype=np.int64),
                np.zeros(0, dtype=np.int64),
                LayoutArrays.empty(),
                {f: empty for f in _FIELDS},
            )
        hw_index = np.concatenate([np.full(len(w.devices), index[id(w.hardware)]) for w in used])
        devices = np.concatenate([w.devices for w in used])
        layouts = LayoutArrays.concatenate([w.layouts for w in used])
        values = {f: np.concatenate([np.asarray(getattr(w.estimates, f)) for w in used]) for f in _FIELDS}
        return cls(hardware, hw_index, devices, layouts, values)

    def capacity(self) -> np.ndarray:
        caps = np.asarray([h.profile.memory_bytes for h in self.hardware], dtype=float)
        return caps[self.hw_index] if len(self.hw_index) else np.zeros(0)


def objective_values(points: Points, objective: str, confidence: str = "p50") -> np.ndarray:
    key = {"cost": at("cost_usd", confidence), "time": at("wall_clock_seconds", confidence), "energy": "energy_kwh"}
    return points.values[key[objective]]


def near_misses(
    points: Points,
    deadline_seconds: float | None,
    budget_usd: float | None,
    count: int = NEAR_MISS_COUNT,
    confidence: str = "p50",
) -> list[tuple[int, dict[str, float]]]:
    """The points closest to meeting every constraint (at most one per hardware), with their relative
    excess per constraint: ``memory`` (needs / capacity − 1), ``deadline``, ``budget`` (at ``confidence``)."""
    if not len(points):
        return []
    v = dict(points.values)
    v["wall_clock_seconds"], v["cost_usd"] = v[at("wall_clock_seconds", confidence)], v[at("cost_usd", confidence)]
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


def format_overshoot(excess: float, limit: str) -> str:
    """How far over a limit, readably: ``+37% over the 30 d deadline`` up to twice the limit, then a ratio:
    ``52,000× the 60 min deadline`` (a percentage like +5225866% is hard to read)."""
    if excess < 1.0:
        return f"+{excess:.0%} over the {limit}"
    ratio = 1.0 + excess
    shown = f"{ratio:,.1f}" if ratio < 10 else f"{float(f'{ratio:.2g}'):,.0f}"
    return f"{shown}× the {limit}"


def describe_miss(
    points: Points, i: int, misses: dict[str, float], deadline_seconds, budget_usd, confidence: str = "p50"
) -> str:
    """``h100-80gb × 2048: takes 41.2 d (+37% over the 30 d deadline)`` (at ``confidence``: "P90 41.2 d"); far
    over: ``(52,000× the 60 min deadline)``."""
    v = dict(points.values)
    v["wall_clock_seconds"], v["cost_usd"] = v[at("wall_clock_seconds", confidence)], v[at("cost_usd", confidence)]
    level = "" if confidence == "p50" else f"{confidence.upper()} "
    hw = points.hardware[int(points.hw_index[i])]
    parts = []
    if "memory" in misses:
        parts.append(f"needs {v['memory_bytes'][i] / 1e9:.1f} GB per device of {hw.profile.memory_bytes / 1e9:.0f} GB")
    if "deadline" in misses:
        parts.append(
            f"takes {level}{format_duration(v['wall_clock_seconds'][i])} "
            f"({format_overshoot(misses['deadline'], format_duration(deadline_seconds) + ' deadline')})"
        )
    if "budget" in misses:
        cost = v["cost_usd"][i]
        over = format_overshoot(misses["budget"], format_usd(budget_usd) + " budget")
        parts.append("has no price" if not np.isfinite(cost) else f"costs {level}{format_usd(cost)} ({over})")
    if not parts:
        parts.append("meets the constraints but lacks the objective's figure")
    return f"{hw.profile.id} × {int(points.devices[i])}: " + " and ".join(parts)
