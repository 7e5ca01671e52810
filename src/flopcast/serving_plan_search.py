"""`serve --plan`'s search (serving_plan.py has the question and its rules): every configuration of one
hardware profile in one vectorised pass, the TTFT of a configuration simulated only when its bounds do not
settle it, and the one winner rule, the Pareto walk and the near misses over the flattened rows."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from flopcast.reports.serve_plan import ServePlanPoint, ms_text
from flopcast.serving import serving_grid
from flopcast.serving_checks import tensor_parallel_degrees
from flopcast.serving_load import steady_states, ttft_bounds, ttft_quantiles
from flopcast.serving_passes import COMPUTE_FORMATS, pass_inputs
from flopcast.units import SECONDS_PER_HOUR

PERCENTILE_NAMES = ("p50", "p90")  # serving_load.PERCENTILES, by name
NEAR_MISSES_SHOWN = 5
NEAR_MISS_SIMULATED = 40  # candidates simulated to rank the near misses
NEAR_MISS_GRAIN = 0.01  # a near miss within 1% of its group's nearest counts as as near (the cheapest is shown)
# A Pareto point must be this much faster than every cheaper one: a TTFT percentile from the simulation's
# 20,000 arrivals (serving_load.LOAD_SAMPLES) carries sampling noise of about this order
PARETO_MIN_GAIN = 0.01


@dataclass
class Rows:
    """Every configuration searched, flattened (one entry per configuration)."""

    cols: dict[str, list]

    def __init__(self):
        self.cols = {}

    def add(self, **arrays):
        for k, v in arrays.items():
            self.cols.setdefault(k, []).append(np.ravel(v))

    def done(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.array([]) for k, v in self.cols.items()}


def search_hardware(
    model, profile, request, runtime, formats, targets, rows: Rows, hw_index: int, price, compute_index: int = 0
) -> int:
    """Every (weights × tp × replicas) of one profile into ``rows`` at ``request.compute`` (its index in
    serving_passes.COMPUTE_FORMATS: ``compute_index``); returns how many were evaluated."""
    most = min(targets.max_devices, max(int(profile.devices_per_node), 1))  # tensor parallel inside a node
    tps = [t for t in tensor_parallel_degrees(model) if t <= most]
    bits = np.array(formats, dtype=float)
    t = np.array(tps, dtype=float)
    grid = serving_grid(model, profile, replace(request, weights_bits=formats[0], request_rate=None), bits, t, runtime)
    max_batch = grid["max_batch_that_fits"]  # (F, T)
    kv_split = np.ones_like(t) if model.is_mla else np.minimum(t, float(model.n_kv_heads))
    x = pass_inputs(model, profile, request, runtime, bits[:, None, None], t[None, :, None], kv_split[None, :, None])
    replicas = np.arange(1, targets.max_devices // int(t.min()) + 1, dtype=float)
    loads = steady_states(x, request.request_rate / replicas, request.output_tokens, max_batch)
    shape = loads.running_batch.shape  # (F, T, R)
    devices = t[None, :, None] * replicas[None, None, :]
    valid = np.broadcast_to((devices <= targets.max_devices) & (max_batch[..., None] >= 1), shape)
    which = PERCENTILE_NAMES.index(targets.percentile)
    low, high = ttft_bounds(loads.prefill_seconds[..., None], loads.step_seconds, loads.prefill_busy_fraction, which)
    usd_per_hour = devices * price
    tokens_per_hour = request.request_rate * request.output_tokens * SECONDS_PER_HOUR
    b = lambda v: np.broadcast_to(v, shape)[valid]  # noqa: E731
    rows.add(
        hw=b(float(hw_index)), compute=b(float(compute_index)), bits=b(bits[:, None, None]), tp=b(t[None, :, None]),
        replicas=b(replicas),
        devices=b(devices), usd_per_hour=b(usd_per_hour), usd_per_million=b(usd_per_hour / tokens_per_hour * 1e6),
        sustainable=b(loads.sustainable), max_rate=b(loads.max_request_rate_per_s[..., None] * replicas),
        rate=b(loads.rates), batch=b(loads.running_batch), rho=b(loads.prefill_busy_fraction),
        tau=b(loads.step_seconds), t_p=b(loads.prefill_seconds[..., None]), tpot50=b(loads.tpot_seconds[0]),
        tpot90=b(loads.tpot_seconds[1]), ttft_low=b(low), ttft_high=b(high),
    )  # fmt: skip
    return int(valid.sum())


class Ttft:
    """TTFT percentiles of row i, simulated once (serving_load.ttft_quantiles)."""

    def __init__(self, r: dict[str, np.ndarray]):
        self.r, self.cache = r, {}

    def __call__(self, i: int) -> tuple[float, float]:
        if i not in self.cache:
            r = self.r
            self.cache[i] = ttft_quantiles(r["t_p"][i], r["tau"][i], r["rho"][i], r["batch"][i], r["rate"][i])
        return self.cache[i]


def select(r: dict[str, np.ndarray], targets, ttft: Ttft):
    """(winner row or None, Pareto rows, near-miss rows with their miss text)."""
    which = PERCENTILE_NAMES.index(targets.percentile)
    tpot = r["tpot50"] if which == 0 else r["tpot90"]
    ok = r["sustainable"] > 0.5
    if targets.tpot_seconds is not None:
        ok_tpot = ok & (tpot <= targets.tpot_seconds)
    else:
        ok_tpot = ok
    cand = np.flatnonzero(ok_tpot)
    order = cand[np.lexsort((r["ttft_low"][cand], r["devices"][cand], r["usd_per_hour"][cand]))]
    target = np.inf if targets.ttft_seconds is None else targets.ttft_seconds
    winner, key = None, None
    for i in order:
        if winner is not None and (r["usd_per_hour"][i], r["devices"][i]) != key:
            break  # past the winner's cost and device count
        if r["ttft_low"][i] > target:
            continue
        meets = r["ttft_high"][i] <= target or ttft(i)[which] <= target
        if meets and (winner is None or ttft(i)[which] < ttft(winner)[which]):
            winner, key = int(i), (r["usd_per_hour"][i], r["devices"][i])
    # Pareto: walk in cost order, keep each point faster than every cheaper one (one per cost)
    pareto: list[int] = []
    best = np.inf
    for i in order:
        if r["ttft_low"][i] >= best * (1.0 - PARETO_MIN_GAIN):
            continue
        value = ttft(i)[which]
        if value < best * (1.0 - PARETO_MIN_GAIN):
            if pareto and r["usd_per_hour"][pareto[-1]] == r["usd_per_hour"][i]:
                pareto.pop()
            pareto.append(int(i))
            best = value
    if winner is not None and winner not in pareto:  # within PARETO_MIN_GAIN of a cheaper miss: put it back
        cost, fastest = r["usd_per_hour"][winner], ttft(winner)[which]
        pareto = sorted([i for i in pareto if r["usd_per_hour"][i] < cost or (r["usd_per_hour"][i] > cost and
                         ttft(i)[which] < fastest * (1.0 - PARETO_MIN_GAIN))] + [winner],
                        key=lambda i: r["usd_per_hour"][i])  # fmt: skip
    misses = [] if winner is not None else _near_misses(r, targets, ttft, tpot, ok, which)
    return winner, pareto, misses


def _near_misses(r, targets, ttft, tpot, ok, which) -> list[tuple[int, str]]:
    """The configurations nearest the targets: the worst latency / target ratio, least first (sustainable
    ones); when none sustains the rate, those that sustain the most."""
    name = targets.percentile.upper()
    group = ((r["hw"] * 100 + r["bits"]) * 10 + r["compute"]) * 10_000 + r["tp"]
    if not ok.any():  # the most sustained rate of each (hardware, weights, tp), the highest first
        order = np.argsort(-r["max_rate"], kind="stable")
        firsts = order[np.sort(np.unique(group[order], return_index=True)[1])][:NEAR_MISSES_SHOWN]
        return [(int(i), f"sustains at most {r['max_rate'][i]:.3g} requests/s") for i in firsts]
    ttft_t = np.inf if targets.ttft_seconds is None else targets.ttft_seconds
    tpot_t = np.inf if targets.tpot_seconds is None else targets.tpot_seconds
    rough = np.where(ok, np.maximum(r["ttft_low"] / ttft_t, tpot / tpot_t), np.inf)
    # one per (hardware, weights, tp): its nearest, the cheapest within NEAR_MISS_GRAIN of that
    pool = []
    for g in np.unique(group[ok]):
        members = np.flatnonzero((group == g) & ok)
        near = members[rough[members] <= rough[members].min() * (1.0 + NEAR_MISS_GRAIN)]
        pool.append(int(near[np.argmin(r["usd_per_hour"][near])]))
    pool = sorted(pool, key=lambda i: rough[i])[:NEAR_MISS_SIMULATED]
    scored = []
    for i in pool:
        first = ttft(i)[which]
        score = max(first / ttft_t, tpot[i] / tpot_t)
        parts = []
        if first > ttft_t:
            parts.append(f"TTFT {name} {ms_text(first)} > {ms_text(ttft_t)} ms")  # noqa: RUF001
        if tpot[i] > tpot_t:
            parts.append(f"TPOT {name} {ms_text(tpot[i])} > {ms_text(tpot_t)} ms")
        scored.append((score, float(r["usd_per_hour"][i]), i, "; ".join(parts)))
    scored.sort()
    return [(i, text) for _, _, i, text in scored[:NEAR_MISSES_SHOWN]]


def point(r, i: int, ttft: Ttft, hw_ids, runtimes, meets: bool, miss: str | None = None) -> ServePlanPoint:
    sustained = r["sustainable"][i] > 0.5
    first = ttft(i) if sustained else (None, None)
    num = lambda k: float(r[k][i]) if sustained else None  # noqa: E731
    h = int(r["hw"][i])
    return ServePlanPoint(
        hardware=hw_ids[h], runtime=runtimes[h], weights_bits=int(r["bits"][i]),
        compute=COMPUTE_FORMATS[int(r["compute"][i])], tensor_parallel=int(r["tp"][i]),
        replicas=int(r["replicas"][i]), devices=int(r["devices"][i]), usd_per_hour=float(r["usd_per_hour"][i]),
        usd_per_million_tokens=float(r["usd_per_million"][i]), max_request_rate_per_s=float(r["max_rate"][i]),
        running_batch=num("batch"), prefill_busy_fraction=num("rho"), step_seconds=num("tau"),
        time_to_first_token_p50_seconds=first[0], time_to_first_token_p90_seconds=first[1],
        time_per_output_token_p50_seconds=num("tpot50"), time_per_output_token_p90_seconds=num("tpot90"),
        meets_targets=meets, miss=miss,
    )  # fmt: skip
