"""`serve --request-rate R`: continuous batching in steady state under Poisson arrivals (issue 17 item 3).

Requests arrive at rate λ (Poisson), each with P prompt and T output tokens. The engine runs as vLLM's
scheduler does (Kwon et al. 2023, §4.2; iteration-level scheduling, Yu et al. 2022, Orca): a waiting prompt's
prefill runs at the next step boundary, before decode resumes, and every running sequence gains one token per
decode step. With t_p the prefill of one prompt and τ(B) a decode step of B sequences (the same core passes
as `serve`, serving_passes.py, at the mean context P + T/2):

  prefill busy   ρ = λ·t_p                                   (the share of time spent in prefills; < 1)
  running batch  B = λ·T·τ(B)/(1 − ρ)   (Little's law: B sequences each need T steps; decode gets 1 − ρ)
                 solved on a grid: λ(B) = B/(T·τ(B) + B·t_p) increases with B
  most λ         1/(t_p + T·τ(B_max)/B_max), B_max the batch whose KV cache fits (τ(B)/B falls with B)
  TPOT           a request's T − 1 steps take τ each, and the N prefills of others that arrive meanwhile
                 t_p each: TPOT = τ + t_p·N/(T − 1), N ~ Poisson(λ·(T − 1)·τ/(1 − ρ)); P50/P90 of N
  TTFT           t_p + the rest of a decode step in progress (uniform on [0, τ], when one is) + the wait
                 behind earlier prompts: an M/D/1 queue, simulated by Lindley's recursion over
                 LOAD_SAMPLES arrivals with a fixed seed (vectorised: W = X − min(0, running min X))
  cost           devices · price per hour / (λ·T output tokens per hour)

Approximations (stated in the report): fixed P and T; prefills unbatched and not chunked; the decode step
at the mean context; the queue's P90 from one seeded sample.

Vectorised (`serve --plan`, serving_plan.py): :func:`steady_states` gives every figure but the TTFT percentiles
over arrays of configurations × per-replica rates; the TTFT of one configuration comes from
:func:`ttft_quantiles` (the simulation above), and :func:`ttft_bounds` brackets it from a table of the M/D/1
wait over a grid of ρ (the wait in units of t_p depends on ρ alone, and grows with ρ sample by sample, so the
grid points either side of ρ bound it), which lets the search skip configurations the bounds settle.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from flopcast.errors import InvalidValue, opt
from flopcast.serving_passes import PassInputs, decode_pass, prefill_pass

LOAD_SAMPLES = 20_000  # simulated arrivals for the TTFT percentiles
LOAD_SEED = 17
BATCH_GRID_POINTS = 2_048
PERCENTILES = (0.5, 0.9)
# ρ grid of the M/D/1 wait table (ttft_bounds): even steps to 0.9, then geometric towards 1
WAIT_TABLE_RHO = np.concatenate([np.linspace(0.002, 0.9, 450), 1.0 - np.geomspace(0.1, 1e-4, 120)[1:]])
POISSON_EXACT_MEAN_MAX = 500.0  # above: the normal approximation


class Load(NamedTuple):
    rate: float
    output_tokens: int
    sustainable: bool
    max_request_rate_per_s: float
    running_batch: float
    prefill_busy_fraction: float
    step_seconds: float
    prefill_seconds: float
    ttft_seconds: tuple[float, float]  # P50, P90
    tpot_seconds: tuple[float, float]


def check_rate(rate) -> float:
    if rate is None or not (rate > 0) or not np.isfinite(rate):
        raise InvalidValue(f"{opt('request_rate')}: {rate!r} must be a positive number of requests per second",
                           hint="give a rate such as 5 (requests per second)")  # fmt: skip
    return float(rate)


def poisson_quantiles(mean, q: float) -> np.ndarray:
    """The q-quantile of Poisson variables of these means, over an array (exact up to a mean of 500, normal
    above; NaN stays NaN): the k where the cumulative probability first reaches q."""
    mean = np.asarray(mean, dtype=float)
    out = np.full(mean.shape, np.nan)
    out[mean <= 0] = 0.0
    large = mean > POISSON_EXACT_MEAN_MAX
    if large.any():
        from statistics import NormalDist

        m = mean[large]
        out[large] = np.maximum(0.0, np.ceil(m + NormalDist().inv_cdf(q) * np.sqrt(m) - 0.5))
    small = (mean > 0) & ~large
    if small.any():
        m = mean[small]
        lengths = (m + 12 * np.sqrt(m) + 20).astype(int)  # terms summed for each mean
        k = np.arange(int(lengths.max()))
        log_pmf = k * np.log(m)[:, None] - m[:, None] - np.cumsum(np.log(np.maximum(k, 1)))
        cdf = np.cumsum(np.exp(log_pmf), axis=1)
        first = np.sum(cdf < q, axis=1)
        out[small] = np.minimum(first, lengths - 1)
    return out


def poisson_quantile(mean: float, q: float) -> float:
    """The q-quantile of a Poisson variable of this mean (exact below a mean of 500, normal above)."""
    return float(poisson_quantiles(np.array([max(mean, 0.0)]), q)[0])


def _step(x: PassInputs, batch) -> np.ndarray:
    batch = np.asarray(batch, dtype=float)
    return np.broadcast_to(np.asarray(decode_pass(x, np.maximum(batch, 1.0)).seconds, dtype=float), batch.shape)


class Loads(NamedTuple):
    """Steady states over configurations (shape S) × per-replica rates (R): arrays of shape S + (R,) unless
    said. Unsustainable entries hold NaN."""

    rates: np.ndarray  # (R,)
    sustainable: np.ndarray
    max_request_rate_per_s: np.ndarray  # S
    prefill_seconds: np.ndarray  # S
    running_batch: np.ndarray
    prefill_busy_fraction: np.ndarray
    step_seconds: np.ndarray
    tpot_seconds: tuple[np.ndarray, np.ndarray]  # P50, P90


def steady_states(x: PassInputs, rates, output_tokens: int, max_batch) -> Loads:
    """The steady state of every configuration at every rate (the module doc). ``x``'s arrays broadcast to
    S + (1,) (the last axis takes the batch grid, then the rates); ``max_batch`` has shape S."""
    rates = np.atleast_1d(np.asarray(rates, dtype=float))
    max_batch = np.asarray(max_batch, dtype=float)
    shape = max_batch.shape
    n = float(output_tokens)
    t_p = np.broadcast_to(np.asarray(prefill_pass(x, 1.0).seconds, dtype=float), (*shape, 1))[..., 0]
    top = np.maximum(max_batch, 1.0)
    tau_top = _step(x, top[..., None])[..., 0]
    max_rate = np.where(max_batch >= 1, 1.0 / (t_p + n * tau_top / top), 0.0)
    grid = np.geomspace(np.full(shape, 1e-6), top, BATCH_GRID_POINTS, axis=-1)
    lam = grid / (n * _step(x, grid) + grid * t_p[..., None])  # increasing in B
    batch = np.empty((*shape, rates.size))
    for idx in np.ndindex(*shape):
        batch[idx] = np.interp(rates, lam[idx], grid[idx])
    sustainable = rates < max_rate[..., None]
    batch = np.where(sustainable, batch, np.nan)
    tau = np.where(sustainable, _step(x, np.nan_to_num(batch, nan=1.0)), np.nan)
    rho = np.where(sustainable, rates * t_p[..., None], np.nan)
    # TPOT: prefills of other requests interleaved with a request's T − 1 decode steps
    steps = max(n - 1.0, 1.0)
    mean_prefills = rates * steps * tau / (1.0 - rho)
    tpot = tuple(tau + t_p[..., None] * poisson_quantiles(mean_prefills, q) / steps for q in PERCENTILES)
    return Loads(rates, sustainable, max_rate, t_p, batch, rho, tau, tpot)


@lru_cache(maxsize=1)
def _samples() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seeded draws of every TTFT simulation: unit exponential gaps, then two uniforms per arrival."""
    rng = np.random.default_rng(LOAD_SEED)
    gaps = rng.standard_exponential(LOAD_SAMPLES)
    return gaps, rng.random(LOAD_SAMPLES), rng.random(LOAD_SAMPLES)


def _lindley(steps: np.ndarray) -> np.ndarray:
    """Waiting times of a single-server queue from its increments (service − gap), along the last axis:
    W_{n+1} = max(0, W_n + X_n), i.e. S_n − min(0, min_k S_k) shifted by one arrival (W_1 = 0)."""
    walk = np.cumsum(steps, axis=-1)
    wait = walk - np.minimum(0.0, np.minimum.accumulate(walk, axis=-1))
    return np.concatenate([np.zeros((*wait.shape[:-1], 1)), wait[..., :-1]], axis=-1)


def ttft_quantiles(prefill_seconds: float, step_seconds: float, rho: float, batch: float, rate: float):
    """TTFT P50, P90 of one configuration: own prefill + the M/D/1 wait behind earlier prompts + the rest of a
    decode step in progress (the module doc), over LOAD_SAMPLES seeded arrivals."""
    gaps, u_decoding, u_residual = _samples()
    wait = _lindley(prefill_seconds - gaps / rate)
    decoding = u_decoding < (1.0 - rho) * min(batch, 1.0)
    residual = np.where(decoding, u_residual * step_seconds, 0.0)
    return tuple(float(v) for v in np.quantile(prefill_seconds + wait + residual, PERCENTILES))


@lru_cache(maxsize=1)
def _wait_table() -> np.ndarray:
    """Quantiles (PERCENTILES × WAIT_TABLE_RHO) of the M/D/1 wait in units of the service time, from the
    same draws as ttft_quantiles: the gap in service units is E/ρ."""
    gaps = _samples()[0]
    rows = [np.quantile(_lindley(1.0 - gaps[None, :] / chunk[:, None]), PERCENTILES, axis=1)
            for chunk in np.array_split(WAIT_TABLE_RHO, 8)]  # fmt: skip
    return np.concatenate(rows, axis=1)


TABLE_SLACK = 1e-9  # relative: float rounding between the table's units and seconds


def ttft_bounds(prefill_seconds, step_seconds, rho, which: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of ttft_quantiles' PERCENTILES[which] over arrays: t_p·(1 + wait quantile at the
    grid ρ below) and t_p·(1 + at the grid ρ above) + a whole decode step. NaN in, NaN out."""
    t_p, tau, rho = (np.asarray(v, dtype=float) for v in (prefill_seconds, step_seconds, rho))
    table = _wait_table()[which]
    finite = np.nan_to_num(rho, nan=0.0)
    below = np.searchsorted(WAIT_TABLE_RHO, finite, side="right") - 1
    above = np.searchsorted(WAIT_TABLE_RHO, finite, side="left")
    low_wait = np.where(below >= 0, table[np.maximum(below, 0)], 0.0)
    high_wait = np.where(above < WAIT_TABLE_RHO.size, table[np.minimum(above, WAIT_TABLE_RHO.size - 1)], np.inf)
    nan = np.isnan(rho)
    lower = np.where(nan, np.nan, t_p * (1.0 + low_wait) * (1.0 - TABLE_SLACK))
    upper = np.where(nan, np.nan, (t_p * (1.0 + high_wait) + tau) * (1.0 + TABLE_SLACK))
    return lower, upper


def steady_state(x: PassInputs, rate: float, output_tokens: int, max_batch: float) -> Load:
    """The steady state at ``rate`` requests/s for one (weight format, device count): see the module doc."""
    s = steady_states(x, [rate], output_tokens, np.array([float(max_batch)]))
    t_p, max_rate = float(s.prefill_seconds[0]), float(s.max_request_rate_per_s[0])
    if not s.sustainable[0, 0]:
        nan = float("nan")
        return Load(rate, output_tokens, False, max_rate, nan, nan, nan, t_p, (nan, nan), (nan, nan))
    batch, rho, tau = (float(v[0, 0]) for v in (s.running_batch, s.prefill_busy_fraction, s.step_seconds))
    ttft = ttft_quantiles(t_p, tau, rho, batch, rate)
    tpot = tuple(float(v[0, 0]) for v in s.tpot_seconds)
    return Load(rate, output_tokens, True, max_rate, batch, rho, tau, t_p, ttft, tpot)
