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

Length distributions (`--prompt-dist`, `--output-dist`; serving_lengths.py), means P and T as above:
  prefill        t_p becomes E[t_p(P)] wherever a mean is used (ρ = λ·E[t_p], Little's law), by quadrature
  prompt queue   M/G/1: mean wait W = λ·E[S²]/(2(1 − ρ)) (Pollaczek–Khinchine; Kleinrock 1975, Queueing
                 Systems I, §5.6), S = t_p(P): E[S²] = E[S]² for fixed prompts (M/D/1: W = ρ·t_p/(2(1 − ρ))), and
                 2·E[S]² for exponential prompts where t_p ∝ P; TTFT percentiles from Lindley's recursion with each
                 arrival's own t_p(P_i) (seeded lengths)
  decode         at the sequences' mean context P + E[T²]/(2·E[T]) (length-biased: a long output decodes longer)
  TPOT           over seeded requests: T_i, N_i ~ Poisson(λ·(T_i − 1)·τ/(1 − ρ)), the N_i prefills' sum by its
                 normal limit N_i·E[S] ± √N_i·sd(S): TPOT_i = τ + sum/(T_i − 1)

Chunked prefill (`--chunked-prefill C`; Sarathi-Serve, Agrawal et al. 2024, OSDI, §4.1–4.2: "stall-free
batching" with a token budget per iteration; vLLM's max_num_batched_tokens): a step carries the B running
decodes first, and while a prompt waits, c = min(C − B, P) of its tokens (hybrid_pass: one forward of B + c
tokens). With τ₀ = τ(B) a decode-only step and τ_f the step with a chunk:
  busy share     ρ_c = λ·P·τ_f/c        (the steps that carry a chunk; < 1, else the prompts outrun the budget)
  per prompt     a prompt's chunks add s = P·(τ_f − τ₀)/c to the steps they ride (the decode is not stopped)
  running batch  steps per second ρ_c/τ_f + (1 − ρ_c)/τ₀ and Little's law give λ(B) = B/(T·τ₀ + B·s): the
                 unchunked form with t_p → s(B); λ(B) peaks as c shrinks, and the stable branch is the grid up to
                 that peak or to ρ_c = 1
  TPOT           τ₀ + s·N/(T − 1), N ~ Poisson(λ·(T − 1)·τ₀/(1 − λ·s)); the longest gap between two tokens is one
                 step τ_f, bounded by the budget, instead of τ + t_p (a whole prefill between two tokens)
  TTFT           the queue of prompts for the chunk slots, service P·τ_f/c (M/D/1 or M/G/1 as above), then its
                 own ⌊P/c⌋ steps of τ_f and one with the remainder (the prompt is spread over several steps)

Approximations (stated in the report): prefills unbatched (unchunked) or one prompt's chunk per step; the
decode step at the mean context; a step's chunk at the mean prompt; the queue's P90 from one seeded sample.

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
from flopcast.serving_lengths import MIN_OUTPUT_TOKENS, LengthDist, mix_uniforms
from flopcast.serving_passes import PassInputs, decode_pass, hybrid_pass, prefill_pass, with_prompt

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
    queue_wait_mean_seconds: float = float("nan")  # Pollaczek–Khinchine mean wait of the prompt queue
    stall_seconds: float = float("nan")  # the longest gap one prompt puts between two output tokens
    chunk_step_seconds: float | None = None  # a step carrying a prefill chunk (chunked prefill)
    prefill_chunks: float | None = None  # steps a mean prompt's prefill spans (chunked prefill)


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
    # the prompt queue (M/G/1): a prompt's service, its second moment, the Pollaczek–Khinchine mean wait
    queue_service_seconds: np.ndarray | None = None
    queue_service_sq_seconds: np.ndarray | None = None
    queue_wait_mean_seconds: np.ndarray | None = None
    stall_seconds: np.ndarray | None = None  # the longest gap one (mean) prompt puts between two output tokens
    chunk_step_seconds: np.ndarray | None = None  # chunked prefill: a step carrying a chunk (τ_f)
    chunk_room_tokens: np.ndarray | None = None  # chunked prefill: prefill tokens per step, budget − batch


def _prefill_moments(x: PassInputs, prompt_dist: LengthDist | None, shape) -> tuple[np.ndarray, np.ndarray]:
    """E[t_p] and E[t_p²] (shape S) over the prompt lengths, by quadrature (serving_lengths.py)."""
    if prompt_dist is None or prompt_dist.fixed:
        t = np.broadcast_to(np.asarray(prefill_pass(x, 1.0).seconds, dtype=float), (*shape, 1))[..., 0]
        return t, t * t
    lengths, weights = prompt_dist.nodes()
    t = np.broadcast_to(np.asarray(prefill_pass(with_prompt(x, lengths), 1.0).seconds, dtype=float),
                        (*shape, lengths.size))  # fmt: skip
    return (t * weights).sum(axis=-1), (t * t * weights).sum(axis=-1)


def _hybrid(x: PassInputs, batch, chunk) -> np.ndarray:
    batch = np.asarray(batch, dtype=float)
    return np.broadcast_to(np.asarray(hybrid_pass(x, np.maximum(batch, 1.0), chunk).seconds, dtype=float), batch.shape)


def steady_states(
    x: PassInputs,
    rates,
    output_tokens: int,
    max_batch,
    *,
    chunk_tokens: float | None = None,
    prompt_dist: LengthDist | None = None,
    output_dist: LengthDist | None = None,
) -> Loads:
    """The steady state of every configuration at every rate (the module doc). ``x``'s arrays broadcast to
    S + (1,) (the last axis takes the batch grid, then the rates); ``max_batch`` has shape S. ``chunk_tokens``:
    the token budget of a step under chunked prefill (None: prefill first, unchunked); ``prompt_dist`` /
    ``output_dist``: the length distributions (None: fixed at ``x.prompt_tokens`` / ``output_tokens``)."""
    rates = np.atleast_1d(np.asarray(rates, dtype=float))
    max_batch = np.asarray(max_batch, dtype=float)
    shape = max_batch.shape
    n = float(output_tokens)
    p = float(np.mean(x.prompt_tokens))
    t_p, t_p_sq = _prefill_moments(x, prompt_dist, shape)
    top = np.maximum(max_batch, 1.0)
    batch = np.empty((*shape, rates.size))
    if chunk_tokens is None:
        tau_top = _step(x, top[..., None])[..., 0]
        max_rate = np.where(max_batch >= 1, 1.0 / (t_p + n * tau_top / top), 0.0)
        grid = np.geomspace(np.full(shape, 1e-6), top, BATCH_GRID_POINTS, axis=-1)
        lam = grid / (n * _step(x, grid) + grid * t_p[..., None])  # increasing in B
        for idx in np.ndindex(*shape):
            batch[idx] = np.interp(rates, lam[idx], grid[idx])
    else:
        budget = float(chunk_tokens)
        grid = np.geomspace(np.full(shape, 1e-6), np.minimum(top, budget * (1.0 - 1e-9)), BATCH_GRID_POINTS, axis=-1)
        room = np.minimum(budget - grid, p)  # a step carries what is left of the budget, at most a mean prompt
        tau0, tauf = _step(x, grid), _hybrid(x, grid, room)
        lam = grid / (n * tau0 + grid * p * (tauf - tau0) / room)
        stable = lam * p * tauf / room < 1.0  # the chunk slots keep up with the prompt tokens arriving
        max_rate = np.zeros(shape)
        for idx in np.ndindex(*shape):
            end = int(np.argmin(stable[idx])) if not stable[idx].all() else BATCH_GRID_POINTS
            end = int(np.argmax(lam[idx][:end])) + 1 if end > 0 else 0  # the stable branch: up to λ's peak
            if end > 0 and max_batch[idx] >= 1:
                max_rate[idx] = lam[idx][end - 1]
                batch[idx] = np.interp(rates, lam[idx][:end], grid[idx][:end])
    sustainable = rates < max_rate[..., None]
    batch = np.where(sustainable, batch, np.nan)
    safe = np.nan_to_num(batch, nan=1.0)
    tau = np.where(sustainable, _step(x, safe), np.nan)
    if chunk_tokens is None:
        # a prompt costs the decode its whole prefill; the queue's service is that prefill
        cost = np.broadcast_to(t_p[..., None], tau.shape)
        service, service_sq = cost, np.broadcast_to(t_p_sq[..., None], tau.shape)
        cost_sd = np.sqrt(np.maximum(service_sq - service**2, 0.0))
        chunk_step = room_at = None
        stall = tau + cost
    else:
        room_at = np.where(sustainable, np.minimum(budget - safe, p), np.nan)
        chunk_step = np.where(sustainable, _hybrid(x, safe, np.nan_to_num(room_at, nan=1.0)), np.nan)
        per_token = chunk_step / room_at  # wall time a prompt token holds the chunk slots
        p_sq = prompt_dist.second_moment() if prompt_dist is not None else p * p
        cost = p * (chunk_step - tau) / room_at  # what a prompt's chunks add to the steps they ride
        cost_sd = np.sqrt(max(p_sq - p * p, 0.0)) * (chunk_step - tau) / room_at
        service, service_sq = p * per_token, p_sq * per_token**2
        stall = chunk_step
    rho = np.where(sustainable, rates * service, np.nan)
    wait = rates * service_sq / (2.0 * (1.0 - rho))  # Pollaczek–Khinchine: λ·E[S²] / (2(1 − ρ))
    # TPOT: the prompts that arrive during a request's T − 1 steps each add `cost` to them
    mixed = (prompt_dist is not None and not prompt_dist.fixed) or (output_dist is not None and not output_dist.fixed)
    if mixed:
        tpot = _tpot_mix(tau, cost, cost_sd, rates, n, output_dist)
    else:
        steps = max(n - 1.0, 1.0)
        mean_prefills = rates * steps * tau / (1.0 - rates * cost)
        tpot = tuple(tau + cost * poisson_quantiles(mean_prefills, q) / steps for q in PERCENTILES)
    return Loads(rates, sustainable, max_rate, t_p, batch, rho, tau, tpot, service, service_sq, wait, stall,
                 chunk_step, room_at)  # fmt: skip


def _tpot_mix(tau, cost, cost_sd, rates, n: float, output_dist: LengthDist | None):
    """TPOT P50/P90 over seeded requests of the length mix: output T_i (at least MIN_OUTPUT_TOKENS), N_i ~
    Poisson(λ·(T_i − 1)·τ/(1 − λ·cost)) prompts arriving meanwhile, their summed cost N_i·cost + √N_i·sd·Z_i
    (the normal limit of the compound sum, exact in mean and variance): TPOT_i = τ + that / (T_i − 1)."""
    _, u_out, z, _ = mix_uniforms()
    dist = output_dist if output_dist is not None else LengthDist("fixed", n)
    steps = np.maximum(dist.quantile(u_out), MIN_OUTPUT_TOKENS) - 1.0
    tau, cost, cost_sd = (np.asarray(v, dtype=float)[..., None] for v in (tau, cost, cost_sd))
    mean = np.nan_to_num(rates[..., None] * steps * tau / (1.0 - rates[..., None] * cost), nan=0.0)
    counts = np.random.default_rng(LOAD_SEED).poisson(np.maximum(mean, 0.0))
    added = np.maximum(counts * cost + np.sqrt(counts) * cost_sd * z, 0.0)
    per_request = tau + added / steps
    return tuple(np.quantile(per_request, q, axis=-1) for q in PERCENTILES)


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


def ttft_quantiles(prefill_seconds: float, step_seconds: float, rho: float, batch: float, rate: float,
                   service=None, own=None):  # fmt: skip
    """TTFT P50, P90 of one configuration: own prefill + the M/D/1 wait behind earlier prompts + the rest of a
    decode step in progress (the module doc), over LOAD_SAMPLES seeded arrivals. ``service``: each arrival's
    service in the prompt queue (an M/G/1 queue: varying prompts, or chunks), ``own``: the time from its
    prefill's start to its first token (default: the service)."""
    gaps, u_decoding, u_residual = _samples()
    service = prefill_seconds if service is None else np.asarray(service, dtype=float)[:LOAD_SAMPLES]
    own = service if own is None else np.asarray(own, dtype=float)[:LOAD_SAMPLES]
    wait = _lindley(service - gaps / rate)
    decoding = u_decoding < (1.0 - rho) * min(batch, 1.0)
    residual = np.where(decoding, u_residual * step_seconds, 0.0)
    return tuple(float(v) for v in np.quantile(own + wait + residual, PERCENTILES))


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


def _prompt_samples(x: PassInputs, prompt_dist: LengthDist | None) -> np.ndarray | None:
    """Seeded prompt lengths of the TTFT arrivals (None: fixed prompts)."""
    if prompt_dist is None or prompt_dist.fixed:
        return None
    return np.maximum(prompt_dist.quantile(mix_uniforms()[0][:LOAD_SAMPLES]), 1.0)


def _prefill_at(x: PassInputs, prompts: np.ndarray) -> np.ndarray:
    """t_p of one configuration at each of ``prompts``: the core's pass on a grid of lengths, interpolated in
    log length (PROMPT_GRID_POINTS points span the draws)."""
    lengths = np.geomspace(prompts.min(), max(prompts.max(), prompts.min() * (1 + 1e-9)), PROMPT_GRID_POINTS)
    t = np.asarray(prefill_pass(with_prompt(x, lengths), 1.0).seconds, dtype=float).reshape(-1)[-lengths.size :]
    return np.interp(np.log(prompts), np.log(lengths), t)


PROMPT_GRID_POINTS = 64


def steady_state(
    x: PassInputs,
    rate: float,
    output_tokens: int,
    max_batch: float,
    *,
    chunk_tokens: float | None = None,
    prompt_dist: LengthDist | None = None,
    output_dist: LengthDist | None = None,
) -> Load:
    """The steady state at ``rate`` requests/s for one (weight format, device count): see the module doc."""
    s = steady_states(x, [rate], output_tokens, np.array([float(max_batch)]), chunk_tokens=chunk_tokens,
                      prompt_dist=prompt_dist, output_dist=output_dist)  # fmt: skip
    t_p, max_rate = float(s.prefill_seconds[0]), float(s.max_request_rate_per_s[0])
    if not s.sustainable[0, 0]:
        nan = float("nan")
        return Load(rate, output_tokens, False, max_rate, nan, nan, nan, t_p, (nan, nan), (nan, nan))
    batch, rho, tau = (float(v[0, 0]) for v in (s.running_batch, s.prefill_busy_fraction, s.step_seconds))
    prompts = _prompt_samples(x, prompt_dist)
    chunk_step = chunks = None
    if chunk_tokens is None:
        service = None if prompts is None else _prefill_at(x, prompts)
        own = None
    else:
        chunk_step, room = float(s.chunk_step_seconds[0, 0]), float(s.chunk_room_tokens[0, 0])
        lengths = np.full(LOAD_SAMPLES, float(np.mean(x.prompt_tokens))) if prompts is None else prompts
        service = lengths * chunk_step / room  # the chunk slots a prompt holds, in wall time
        # its first token ends the step of its last chunk: the full chunks' steps, then one with the remainder
        full = np.floor(lengths / room)
        rest = lengths - full * room
        last = np.asarray(hybrid_pass(x, np.array([[batch]]), rest).seconds, dtype=float).reshape(-1)[-rest.size :]
        own = full * chunk_step + np.where(rest > 0, last, 0.0)
        chunks = float(np.ceil(np.mean(x.prompt_tokens) / room))
    ttft = ttft_quantiles(t_p, tau, rho, batch, rate, service=service, own=own)
    tpot = tuple(float(v[0, 0]) for v in s.tpot_seconds)
    return Load(rate, output_tokens, True, max_rate, batch, rho, tau, t_p, ttft, tpot,
                float(s.queue_wait_mean_seconds[0, 0]), float(s.stall_seconds[0, 0]), chunk_step, chunks)  # fmt: skip
