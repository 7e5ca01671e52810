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
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.errors import InvalidValue, opt
from flopcast.serving_passes import PassInputs, decode_pass, prefill_pass

LOAD_SAMPLES = 20_000  # simulated arrivals for the TTFT percentiles
LOAD_SEED = 17
BATCH_GRID_POINTS = 2_048
PERCENTILES = (0.5, 0.9)


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


def poisson_quantile(mean: float, q: float) -> float:
    """The q-quantile of a Poisson variable of this mean (exact below a mean of 500, normal above)."""
    if mean <= 0:
        return 0.0
    if mean > 500:
        from statistics import NormalDist

        return max(0.0, float(np.ceil(mean + NormalDist().inv_cdf(q) * np.sqrt(mean) - 0.5)))
    k = np.arange(0, int(mean + 12 * np.sqrt(mean) + 20))
    log_pmf = k * np.log(mean) - mean - np.cumsum(np.log(np.maximum(k, 1)))
    cdf = np.cumsum(np.exp(log_pmf))
    return float(k[min(int(np.searchsorted(cdf, q)), len(k) - 1)])


def _step(x: PassInputs, batch) -> np.ndarray:
    return np.asarray(decode_pass(x, np.maximum(batch, 1.0)).seconds, dtype=float).reshape(np.shape(batch))


def steady_state(x: PassInputs, rate: float, output_tokens: int, max_batch: float) -> Load:
    """The steady state at ``rate`` requests/s for one (weight format, device count): see the module doc."""
    t_p = float(np.asarray(prefill_pass(x, 1.0).seconds).ravel()[0])
    n = float(output_tokens)
    top = max(float(max_batch), 1.0)
    tau_top = float(_step(x, np.array([top]))[0])
    max_rate = 1.0 / (t_p + n * tau_top / top) if max_batch >= 1 else 0.0
    if rate >= max_rate:
        nan = float("nan")
        return Load(rate, output_tokens, False, max_rate, nan, nan, nan, t_p, (nan, nan), (nan, nan))
    grid = np.geomspace(1e-6, top, BATCH_GRID_POINTS)
    lam = grid / (n * _step(x, grid) + grid * t_p)  # increasing in B
    batch = float(np.interp(rate, lam, grid))
    tau = float(_step(x, np.array([batch]))[0])
    rho = rate * t_p
    # TPOT: prefills of other requests interleaved with a request's T − 1 decode steps
    steps = max(n - 1.0, 1.0)
    mean_prefills = rate * steps * tau / (1.0 - rho)
    tpot = tuple(tau + t_p * poisson_quantile(mean_prefills, q) / steps for q in PERCENTILES)
    # TTFT: M/D/1 wait behind earlier prompts (Lindley), + the rest of a decode step in progress, + own prefill
    rng = np.random.default_rng(LOAD_SEED)
    walk = np.cumsum(t_p - rng.exponential(1.0 / rate, LOAD_SAMPLES))
    wait = np.concatenate([[0.0], (walk - np.minimum(0.0, np.minimum.accumulate(walk)))[:-1]])
    decoding = rng.random(LOAD_SAMPLES) < (1.0 - rho) * min(batch, 1.0)
    residual = np.where(decoding, rng.random(LOAD_SAMPLES) * tau, 0.0)
    ttft = tuple(float(v) for v in np.quantile(t_p + wait + residual, PERCENTILES))
    return Load(rate, output_tokens, True, max_rate, batch, rho, tau, t_p, ttft, tpot)
