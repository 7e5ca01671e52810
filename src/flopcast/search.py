"""ONE layout search: enumerate layouts, evaluate them in chunks with the core, pick winners by ONE rule.

``estimate`` (a fixed device count), ``plan`` and ``compare`` (many device counts), ``size`` (many model
sizes), ``estimate --sweep`` and the calibration backtest all call this module, so they all agree: the
layout ``estimate --devices N`` chooses is the one ``plan`` reports for N on the same hardware.

The winner rule (:func:`winners`), within each group of candidate rows (one device count, or one run):
  1. a row that fits beats one that does not;
  2. among rows that fit: the least wall-clock time, compared in buckets of 0.1% (:data:`TIME_TIE_RELATIVE`)
     so that layouts equal within the model's noise tie;
  3. then the least memory per device; then the fewest devices; then the first row enumerated.
  In a group where nothing fits, the row needing the least memory wins (it is the closest to fitting), then
  the fastest.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flopcast.errors import InvalidLayout, opt
from flopcast.estimator.arrays import RECOMPUTE_NAMES, LayoutArrays
from flopcast.estimator.recompute import RECOMPUTE_BY_MEMORY, RECOMPUTE_SEARCHED
from flopcast.layout import ZERO_STAGES, Layout, LayoutQuery, default_global_batch, divisors

MAX_MICRO_BATCH = 256  # largest micro-batch the search tries (powers of two up to here)
ZERO_STAGE_WITH_PIPELINE_MAX = 1  # highest ZeRO stage the search pairs with pp > 1 (see enumerate_layouts)
# Virtual pipeline stages per device the search tries with the interleaved 1F1B schedule (Narayanan et al.
# 2021, Sec. 2.2.2): bubble (p−1)/(v·m) for v× the pipeline sends. Megatron-LM needs the layers of a stage
# divisible by v and, for the interleaved schedule, the micro-batches per step divisible by p (its
# schedules.py: "number of microbatches ... must be divisible by pipeline-model-parallel-size when using
# interleaved schedule"). Every such v up to 8 (Korthikanti et al. 2022 run 3 layers per stage as 3 virtual
# stages; v = 8 already cuts the bubble to an eighth).
MAX_INTERLEAVE = 8
INTERLEAVE_CHOICES = tuple(range(1, MAX_INTERLEAVE + 1))
# Context parallelism is searched for sequences of at least 16k tokens (below, the attention is a small share of
# the step and tensor/data parallelism serve better: Llama 3 pre-trained at 8k with cp 1 and used cp 16 for its
# 128k stage, Dubey et al. 2024 Table 4), in powers of two up to 16 (Table 4's largest).
CP_SEARCH_MIN_SEQ_LEN = 16_384
CP_SEARCH_MAX = 16
# Expert parallelism is searched over the divisors of the routed experts up to 256 ranks (DeepSeek-V3 ran ep 64,
# DeepSeek-AI 2024 Sec. 3.2.1).
EP_SEARCH_MAX = 256
TIME_TIE_RELATIVE = 1e-3  # wall-clock times within 0.1% tie (the winner rule's step 2)
CHUNK_ROWS = 65_536  # rows per evaluate call: large enough to amortise Python, small enough for the caches


# --- enumeration ------------------------------------------------------------------------------------------


def _pow2_upto(limit: int) -> np.ndarray:
    out, k = [], 1
    while k <= limit:
        out.append(k)
        k *= 2
    return np.asarray(out, dtype=float)


def enumerate_layouts(
    model,
    devices: int,
    *,
    devices_per_node: int,
    query: LayoutQuery | None = None,
    target_global_batch: int | None = None,
    context_parallel: bool = True,
) -> LayoutArrays:
    """Every valid layout of ``model`` on ``devices`` that agrees with ``query``, as arrays.

    tp over divisors of the heads up to the devices per node, cp in powers of two for long sequences
    (CP_SEARCH_MIN_SEQ_LEN; not at all without ``context_parallel``, i.e. without a fused attention kernel), pp
    over divisors of the layers, ep over the divisors of an MoE model's experts that divide dp·cp,
    micro-batches in powers of two, ZeRO 0–3, the three recompute modes and, with pp > 1, the interleaved
    schedule's virtual stages. Without a global batch in the query each row gets the multiple of dp ×
    micro-batch closest to ``target_global_batch`` (default: :func:`~flopcast.layout.default_global_batch`).
    """
    q = query or LayoutQuery()
    max_tp = q.max_tp or devices_per_node
    tps = [q.tp] if q.tp else [t for t in divisors(model.heads) if t <= max(max_tp, 1) and devices % t == 0]
    rows = []
    for tp in tps:
        if devices % tp:
            continue
        for cp in _context_choices(model, devices // tp, q, context_parallel):
            rest = devices // (tp * cp)
            # the search keeps to even stages (what published runs used: searching uneven ones too moved the
            # backtest's leave-one-out median 13.3% -> 14.8%); an uneven --pp is taken when given
            pps = [q.pp] if q.pp else [p for p in divisors(model.layers) if rest % p == 0]
            for pp in pps:
                if rest % pp:
                    continue
                dp = rest // pp
                if q.dp is not None and dp != q.dp:
                    continue
                for ep in _expert_choices(model, dp * cp, q):
                    rows.append((tp, pp, dp, cp, ep))
    if not rows:
        return LayoutArrays.empty()
    base = np.asarray(rows, dtype=float)
    gb_target = q.global_batch or target_global_batch or default_global_batch(model.params, model.seq_len)
    per_replica = max(gb_target // min(r[2] for r in rows), 1)
    mbs = np.asarray([q.micro_batch], dtype=float) if q.micro_batch else _pow2_upto(min(MAX_MICRO_BATCH, per_replica))
    zeros = np.asarray([q.zero] if q.zero is not None else ZERO_STAGES, dtype=float)
    searched = (RECOMPUTE_NAMES.index("none"),) if getattr(model, "measured", False) else RECOMPUTE_SEARCHED
    recs = np.asarray([RECOMPUTE_NAMES.index(q.recompute)] if q.recompute else searched, dtype=float)
    # Cartesian product (rows × micro-batch × zero × recompute) by index arithmetic.
    n_b, n_m, n_z, n_r = len(base), len(mbs), len(zeros), len(recs)
    idx = np.arange(n_b * n_m * n_z * n_r)
    bi, rest = np.divmod(idx, n_m * n_z * n_r)
    mi, rest = np.divmod(rest, n_z * n_r)
    zi, ri = np.divmod(rest, n_r)
    tp, pp, dp, cp, ep = (base[bi, k] for k in range(5))
    mb, zero, rec = mbs[mi], zeros[zi], recs[ri]
    step = dp * mb
    if q.global_batch:
        gb = np.full_like(step, float(q.global_batch))
        keep = np.fmod(gb, step) == 0
    else:
        # The multiple of dp × micro-batch nearest the target; micro-batches that overshoot the target
        # are dropped (a micro-batch of one sequence per replica always stays). A pipeline gets at least
        # p micro-batches per step: with fewer its stages idle most of the step (bubble (p − 1)/m,
        # Narayanan et al. 2021 Sec. 2.2.1) and nobody runs it so; large device counts with a small
        # default batch would otherwise be judged on pipelines that never fill.
        gb = np.maximum(np.round(gb_target / step), np.maximum(pp, 1.0)) * step
        keep = (step <= gb_target) | (mb == 1)
    keep &= (mb <= gb / dp) & ((dp * cp > 1) | (zero == 0))  # ZeRO shards over dp·cp: pointless at 1
    if q.shard_group:  # HSDP: a sharding stage, and the group inside dp·cp
        keep &= (zero >= 1) & (np.fmod(dp * cp, q.shard_group) == 0)
    if q.zero is None or q.pp is None:
        # ZeRO-2/3 shard the gradients, which a pipeline accumulates over its micro-batches: DeepSpeed's
        # pipeline engine refuses them ("ZeRO-2 and ZeRO-3 are incompatible with pipeline parallelism",
        # deepspeed/runtime/pipe/engine.py) and Megatron-LM's distributed optimizer shards the optimizer
        # state only (ZeRO-1). The search pairs pipelines with ZeRO 0–1; a user who fixes both may combine them.
        keep &= (pp <= 1) | (zero <= ZERO_STAGE_WITH_PIPELINE_MAX)
    tp, pp, dp, cp, ep, mb, gb, zero, rec = (a[keep] for a in (tp, pp, dp, cp, ep, mb, gb, zero, rec))
    # A layout given in full means what Megatron-LM's flags mean: plain 1F1B unless interleave says otherwise.
    given_in_full = None not in (q.micro_batch, q.global_batch, q.zero, q.recompute) and (
        sum(x is None for x in (q.tp, q.pp, q.dp)) <= 1  # the third degree follows from the device count
    )
    fixed_interleave = q.interleave if q.interleave is not None else (1 if given_in_full else None)
    inter = _interleave_rows(model.layers, pp, gb / (dp * mb), fixed_interleave)
    if inter is None:
        inter = np.ones(len(tp))
    else:  # every row once per virtual-stage choice that is valid for it (rows with pp = 1 keep v = 1 only)
        row, inter = inter
        tp, pp, dp, cp, ep, mb, gb, zero, rec = (a[row] for a in (tp, pp, dp, cp, ep, mb, gb, zero, rec))
    return LayoutArrays.filled(
        len(tp), tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, micro_batch=mb, global_batch=gb, zero=zero, recompute=rec,
        interleave=inter, shard_group=np.full(len(tp), float(q.shard_group or 0)),
    )  # fmt: skip


def _context_choices(model, rest: int, q: LayoutQuery, context_parallel: bool) -> list[int]:
    """cp values to try with ``rest`` = devices / tp: the given one (none above 1 without ``context_parallel``,
    i.e. on hardware without a fused attention kernel); 1 when tp, pp and dp are all given (the
    product rule of check_layout) or the sequence is short; else powers of two up to CP_SEARCH_MAX that split
    the sequence into 2·cp chunks."""
    from flopcast.estimator.context_parallel import CP_CHUNKS_PER_RANK

    if q.cp is not None:
        return [q.cp] if rest % q.cp == 0 and (context_parallel or q.cp == 1) else []
    if not context_parallel or model.seq_len < CP_SEARCH_MIN_SEQ_LEN or None not in (q.tp, q.pp, q.dp):
        return [1]
    return [
        c for c in (int(x) for x in _pow2_upto(min(CP_SEARCH_MAX, rest)))
        if rest % c == 0 and model.seq_len % (CP_CHUNKS_PER_RANK * c) == 0
    ]  # fmt: skip


def _expert_choices(model, replicas: int, q: LayoutQuery) -> list[int]:
    """ep values to try among ``replicas`` = dp·cp devices: the given one, 1 for a dense model, else the divisors
    of the routed experts that divide dp·cp, up to EP_SEARCH_MAX."""
    if q.ep is not None:
        return [q.ep] if replicas % q.ep == 0 else []
    if model.experts == 1:
        return [1]
    return [e for e in divisors(model.experts) if e <= EP_SEARCH_MAX and replicas % e == 0]


def _interleave_rows(layers: int, pp: np.ndarray, micro_batches: np.ndarray, fixed: int | None):
    """None when every row keeps v = 1; else (row index, v) for each valid (row, v) pair.

    v must divide the layers of the fullest stage (check_layout), and with v > 1 the micro-batches per step must
    be a multiple of pp (INTERLEAVE_CHOICES)."""
    choices = (fixed,) if fixed is not None else INTERLEAVE_CHOICES
    if choices == (1,) or not np.any(pp > 1):
        return None
    per_stage = np.ceil(layers / np.maximum(pp, 1.0))
    rows, values = [], []
    for v in choices:
        ok = np.ones(len(pp), dtype=bool) if v == 1 else (pp > 1) & (np.fmod(per_stage, v) == 0)
        if v > 1:
            ok &= np.fmod(micro_batches, pp) == 0
        idx = np.flatnonzero(ok)
        rows.append(idx)
        values.append(np.full(len(idx), float(v)))
    row = np.concatenate(rows)
    order = np.argsort(row, kind="stable")  # keep each layout's variants together, v ascending
    return row[order], np.concatenate(values)[order]


# --- the winner rule --------------------------------------------------------------------------------------


def winners(wall, memory, fits, devices, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """The row index of each group's winner (module docstring: the one winner rule), in group order.

    ``groups`` holds each row's group id, non-decreasing from 0 to n_groups − 1 (rows of a group are
    contiguous, as every caller stacks them); every group has a row. O(n): group minima by ``reduceat``, then a
    sort of the few rows that tie on the first keys."""
    wall = np.asarray(wall, dtype=float)
    memory = np.asarray(memory, dtype=float)
    fits = np.asarray(fits, dtype=bool)
    groups = np.asarray(groups, dtype=np.int64)
    n = len(wall)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if n else np.zeros(0, dtype=np.int64)
    if len(starts) != n_groups:
        raise ValueError(f"winners: {len(starts)} contiguous groups, expected {n_groups}")
    with np.errstate(divide="ignore", invalid="ignore"):
        bucket = np.round(np.log(wall) / TIME_TIE_RELATIVE)
    best_bucket = np.minimum.reduceat(np.where(fits, bucket, np.inf), starts)
    least_memory = np.minimum.reduceat(memory, starts)
    has_fit = np.isfinite(best_bucket)
    row_fit = has_fit[groups]
    tied = np.where(row_fit, fits & (bucket == best_bucket[groups]), memory == least_memory[groups])
    rows = np.flatnonzero(tied)
    g = groups[rows]
    dev = np.broadcast_to(np.asarray(devices, dtype=float), wall.shape)[rows]
    second = np.where(row_fit[rows], memory[rows], bucket[rows])
    order = rows[np.lexsort((rows, dev, second, g))]
    head = np.ones(len(order), dtype=bool)
    head[1:] = groups[order][1:] != groups[order][:-1]
    return order[head]


def winners_of(est, layouts: LayoutArrays, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """:func:`winners` over an EstimateArrays of ``layouts``."""
    return winners(est.wall_clock_seconds, est.memory_bytes, est.fits, layouts.devices, groups, n_groups)


# --- the search over device counts of one priced hardware ---------------------------------------------------


class CandidateCache:
    """Layouts per (node size, device count), enumerated once for one model and query."""

    def __init__(self, spec, query: LayoutQuery | None = None, target_global_batch: int | None = None):
        self.spec = spec
        self.query = query
        self.target_global_batch = target_global_batch
        self._by_count: dict[tuple[int, int], LayoutArrays] = {}
        self._joined: dict[tuple, tuple] = {}

    def layouts(self, devices_per_node: int, counts: list[int], context_parallel: bool = True):
        """(LayoutArrays of every count, concatenated; the counts that have layouts; their start rows).
        ``context_parallel``: whether cp > 1 may be searched (the hardware runs a fused attention kernel)."""
        joined_key = (devices_per_node, tuple(counts), context_parallel)
        if joined_key in self._joined:
            return self._joined[joined_key]
        parts, kept, sizes = [], [], []
        for n in counts:
            key = (devices_per_node, n, context_parallel)
            if key not in self._by_count:
                self._by_count[key] = enumerate_layouts(
                    self.spec,
                    n,
                    devices_per_node=devices_per_node,
                    query=self.query,
                    target_global_batch=self.target_global_batch,
                    context_parallel=context_parallel,
                )
            cands = self._by_count[key]
            if len(cands.tp):
                parts.append(cands)
                kept.append(n)
                sizes.append(len(cands.tp))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
        out = LayoutArrays.concatenate(parts), np.asarray(kept, dtype=np.int64), starts
        self._joined[joined_key] = out
        return out


class Winners(NamedTuple):
    """Per device count of one hardware: the winning layout and its full estimate. ``evaluated`` and
    ``feasible`` count every layout (feasible: fits and meets the constraints given)."""

    hardware: object  # request.PricedHardware
    devices: np.ndarray
    layouts: LayoutArrays  # one row per device count
    estimates: object  # EstimateArrays, one row per device count (None when no count has a layout)
    evaluated: int
    feasible: int
    any_fits: np.ndarray  # bool per device count: some layout fits


def search_counts(
    spec,
    marr,
    hw,
    counts: list[int],
    workload,
    params,
    cache: CandidateCache,
    *,
    deadline_seconds: float | None = None,
    budget_usd: float | None = None,
    confidence: str = "p50",
) -> Winners:
    """Evaluate every layout of ``hw`` (a PricedHardware) on each of ``counts`` devices; keep each count's
    winner. The core runs over chunks of :data:`CHUNK_ROWS` rows."""
    from flopcast.confidence import at
    from flopcast.estimator.core import evaluate

    fused = bool(np.asarray(hw.arrays.fused_attention).ravel()[0] > 0.5)
    cands, kept, starts = cache.layouts(int(hw.profile.devices_per_node), counts, context_parallel=fused)
    n = len(cands.tp)
    if n == 0:
        return Winners(hw, kept, cands, None, 0, 0, np.zeros(0, dtype=bool))
    wall, memory, fits = np.empty(n), np.empty(n), np.empty(n, dtype=bool)
    feasible = 0
    for s in range(0, n, CHUNK_ROWS):
        e = min(s + CHUNK_ROWS, n)
        est = evaluate(marr, hw.arrays, cands.take(slice(s, e)), workload, params)
        wall[s:e], memory[s:e], fits[s:e] = est.wall_clock_seconds, est.memory_bytes, est.fits
        ok = fits[s:e].copy()
        if deadline_seconds is not None:  # the deadline and budget are met at the confidence asked
            ok &= getattr(est, at("wall_clock_seconds", confidence)) <= deadline_seconds
        if budget_usd is not None:
            ok &= getattr(est, at("cost_usd", confidence)) <= budget_usd
        feasible += int(np.count_nonzero(ok))
    groups = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))
    best = winners(wall, memory, fits, cands.devices, groups, len(starts))
    any_fits = np.zeros(len(starts), dtype=bool)
    np.logical_or.at(any_fits, groups, fits)
    chosen = cands.take(best)
    return Winners(hw, kept, chosen, evaluate(marr, hw.arrays, chosen, workload, params), n, feasible, any_fits)


class SearchResult(NamedTuple):
    """The chosen layout on one device count, its estimate row, and how many candidates were evaluated."""

    layout: Layout
    estimates: object  # EstimateArrays of the chosen layout (one row)
    candidates_evaluated: int
    any_fits: bool

    @property
    def automatic(self) -> bool:
        return self.candidates_evaluated > 1

    @property
    def fits(self) -> bool:
        return bool(np.asarray(self.estimates.fits)[0])


def search_layouts(spec, hw, devices: int, workload, *, query: LayoutQuery | None = None, params) -> SearchResult:
    """The winner among every layout of ``spec`` on ``devices`` of ``hw`` that agrees with ``query``.

    The same path as ``plan`` (search_counts with one count), so both choose the same layout.
    Raises InvalidLayout when no layout agrees with the query."""
    from flopcast.estimator.arrays import ModelArrays

    w = search_counts(
        spec, ModelArrays.from_specs([spec]), hw, [devices], workload, params, CandidateCache(spec, query)
    )
    if w.estimates is None:
        raise InvalidLayout(
            f"no parallel layout of {devices} devices matches the given options for this model "
            f"({spec.heads} heads, {spec.layers} layers)",
            hint=f"check that {opt('tp')} divides the heads, {opt('pp')} the layers, tp·pp divides the devices and "
            f"{opt('global_batch')} is a multiple of the data-parallel degree",
        )
    return SearchResult(Layout.from_arrays(w.layouts, 0), w.estimates, w.evaluated, bool(w.any_fits[0]))


# --- fit suggestions ---------------------------------------------------------------------------------------


class FitSuggestion(NamedTuple):
    """A change that makes the job fit, with the memory per device it leads to."""

    change: str
    flags: str
    memory_bytes: float
    wall_clock_seconds: float


MAX_DEVICE_MULTIPLIER = 64  # how far "more devices" looks (doubling each time)


def fit_suggestions(spec, hw, devices: int, layout: Layout, workload, *, params, limit: int = 3) -> list[FitSuggestion]:
    """The smallest changes that make ``layout`` fit, smallest first: a higher ZeRO stage, more
    recomputation, a smaller micro-batch, another layout on the same devices, then more devices."""
    from flopcast.estimator.arrays import ModelArrays
    from flopcast.estimator.core import evaluate

    marr = ModelArrays.from_specs([spec])
    out: list[FitSuggestion] = []

    def first_fit(cands: LayoutArrays, describe, least_change: bool = False) -> None:
        """Add the winning fitting row of ``cands`` (or, with ``least_change``, the first one that fits:
        candidates are then ordered from the smallest change to the largest)."""
        if len(out) >= limit or len(cands.tp) == 0:
            return
        est = evaluate(marr, hw.arrays, cands, workload, params)
        fits = np.asarray(est.fits)
        if not fits.any():
            return
        n = len(cands.tp)
        i = int(np.argmax(fits)) if least_change else int(winners_of(est, cands, np.zeros(n, np.int64), 1)[0])
        chosen = Layout.from_arrays(cands, i)
        change, flags = describe(chosen)
        if any(s.flags == flags for s in out):
            return
        out.append(FitSuggestion(change, flags, float(est.memory_bytes[i]), float(est.wall_clock_seconds[i])))

    def variants(**choices) -> LayoutArrays:
        ((name, values),) = choices.items()
        return LayoutArrays.concatenate([layout.replace(**{name: v}).arrays() for v in values])

    higher = [z for z in ZERO_STAGES if z > layout.zero]
    if layout.dp > 1 and higher:
        first_fit(variants(zero=higher), lambda c: (f"ZeRO stage {c.zero}", f"--zero {c.zero}"), True)
    order = RECOMPUTE_BY_MEMORY
    more = [r for r in order if order.index(r) > order.index(layout.recompute)]
    more = [] if getattr(spec, "measured", False) else more  # a measured model has no layers to recompute
    if more:
        first_fit(
            variants(recompute=more), lambda c: (f"{c.recompute} recomputation", f"--recompute {c.recompute}"), True
        )
    smaller = [int(b) for b in _pow2_upto(layout.micro_batch - 1)][::-1]
    smaller = [b for b in smaller if (layout.global_batch // layout.dp) % b == 0]
    if smaller:
        first_fit(
            variants(micro_batch=smaller),
            lambda c: (f"micro-batch {c.micro_batch}", f"--micro-batch {c.micro_batch}"),
            True,
        )
    dpn = int(hw.profile.devices_per_node)
    same = enumerate_layouts(spec, devices, devices_per_node=dpn, query=LayoutQuery(global_batch=layout.global_batch))
    first_fit(same, lambda c: ("another layout on the same devices", c.flags()))
    k = 2
    while len(out) < limit and k <= MAX_DEVICE_MULTIPLIER:
        bigger = enumerate_layouts(spec, devices * k, devices_per_node=dpn, target_global_batch=layout.global_batch)
        before = len(out)
        first_fit(bigger, lambda c, n=devices * k: (f"{n} devices", f"--devices {n} {c.flags()}"))
        if len(out) > before:
            break
        k *= 2
    return out
