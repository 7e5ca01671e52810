"""Parallel layouts: the Layout model, its validity rules, and the vectorised search for the best one.

A layout splits ``devices = tp · pp · dp`` (tensor, pipeline, data parallel), runs ``micro_batch``
sequences per micro-batch and ``global_batch`` sequences per optimizer step, shards model states with a
ZeRO stage (0–3) and recomputes none / selective / full activations.

When the user leaves parts of the layout open, :func:`best_layout` enumerates every valid completion
(:func:`enumerate_layouts`: tp over divisors of the heads up to the devices per node, pp over divisors of
the layers, micro-batches in powers of two, ZeRO 0–3, the three recompute modes and, with more than one
pipeline stage, the interleaved schedule's virtual stages per device), evaluates them all in one vectorised
call, keeps those that fit in memory and picks the fastest (ties: less memory).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from flopcast.errors import InvalidLayout
from flopcast.estimator.arrays import RECOMPUTE_NAMES, LayoutArrays

Recompute = Literal["none", "selective", "full"]
ZERO_STAGES = (0, 1, 2, 3)
ZERO_STAGE_WITH_PIPELINE_MAX = 1  # highest ZeRO stage the search pairs with pp > 1 (see enumerate_layouts)
MAX_MICRO_BATCH = 256  # largest micro-batch the search tries (powers of two up to here)
# Virtual pipeline stages per device the search tries with the interleaved 1F1B schedule (Narayanan et al.
# 2021, Sec. 2.2.2): bubble (p−1)/(v·m) for v× the pipeline sends. Megatron-LM needs the layers of a stage
# divisible by v and, for the interleaved schedule, the micro-batches per step divisible by p (its
# schedules.py: "number of microbatches ... must be divisible by pipeline-model-parallel-size when using
# interleaved schedule"). Every such v up to 8 (Korthikanti et al. 2022 run 3 layers per stage as 3 virtual
# stages; v = 8 already cuts the bubble to an eighth).
MAX_INTERLEAVE = 8
INTERLEAVE_CHOICES = tuple(range(1, MAX_INTERLEAVE + 1))

# Default global batch in tokens when none is given (the rule is applied to the parameter count):
# GPT-3 (Brown et al. 2020, Table 2.1) used 0.5M tokens up to 760M parameters, 1M for 1.3B–2.7B and 2M for
# 6.7B–13B; Llama 1 and 2 (Touvron et al. 2023a/b) used 4M tokens for every size from 7B to 70B. Their "M"
# is 2^20 tokens: GPT-3's 0.5M is 256 sequences of 2048 tokens and its 3.2M is 1536 × 2048 = 3·2^20;
# Llama's 4M is 2048 × 2048 (and Llama 2's 1024 × 4096). So the default is a power-of-two count of
# sequences at the usual sequence lengths.
MEBI_TOKENS = 2**20
DEFAULT_BATCH_TOKENS_BY_PARAMS = (
    (1e9, 0.5 * MEBI_TOKENS),
    (3e9, 1 * MEBI_TOKENS),
    (20e9, 2 * MEBI_TOKENS),
    (float("inf"), 4 * MEBI_TOKENS),
)


class Layout(BaseModel):
    """One parallel layout (validated against a model and device count by :func:`check_layout`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    tp: int = Field(1, ge=1, description="tensor-parallel degree")
    pp: int = Field(1, ge=1, description="pipeline-parallel stages")
    dp: int = Field(1, ge=1, description="data-parallel replicas")
    micro_batch: int = Field(1, ge=1, description="sequences per micro-batch per replica")
    global_batch: int = Field(1, ge=1, description="sequences per optimizer step")
    zero: int = Field(0, ge=0, le=3, description="ZeRO stage")
    recompute: Recompute = "none"
    interleave: int = Field(1, ge=1, description="virtual pipeline stages per device")

    @property
    def devices(self) -> int:
        return self.tp * self.pp * self.dp

    def arrays(self) -> LayoutArrays:
        return LayoutArrays.of(
            tp=[self.tp],
            pp=[self.pp],
            dp=[self.dp],
            micro_batch=[self.micro_batch],
            global_batch=[self.global_batch],
            zero=[self.zero],
            recompute=[RECOMPUTE_NAMES.index(self.recompute)],
            interleave=[self.interleave],
        )

    @classmethod
    def from_arrays(cls, arrays: LayoutArrays, i: int = 0) -> Layout:
        """The layout of row ``i`` (trusted values from the enumeration: no validation)."""
        get = lambda name: int(np.atleast_1d(getattr(arrays, name))[i])  # noqa: E731
        return cls.model_construct(
            tp=get("tp"),
            pp=get("pp"),
            dp=get("dp"),
            micro_batch=get("micro_batch"),
            global_batch=get("global_batch"),
            zero=get("zero"),
            recompute=RECOMPUTE_NAMES[get("recompute")],
            interleave=get("interleave"),
        )

    def flags(self) -> str:
        """The CLI flags that reproduce this layout."""
        return (
            f"--tp {self.tp} --pp {self.pp} --dp {self.dp} --micro-batch {self.micro_batch} "
            f"--global-batch {self.global_batch} --zero {self.zero} --recompute {self.recompute}"
            + (f" --interleave {self.interleave}" if self.interleave > 1 else "")
        )


def default_global_batch(params: float, seq_len: int) -> int:
    """Sequences per step by the documented rule (see DEFAULT_BATCH_TOKENS_BY_PARAMS)."""
    for limit, batch_tokens in DEFAULT_BATCH_TOKENS_BY_PARAMS:
        if params < limit:
            return max(1, round(batch_tokens / seq_len))
    raise AssertionError("unreachable")


def divisors(n: int) -> list[int]:
    """Every divisor of ``n`` in increasing order, in O(√n) (a typed ``--layers 5B`` must not hang)."""
    n = int(n)
    if n < 1:
        return []
    root = int(np.sqrt(n)) + 1
    small: list[int] = []
    for start in range(1, root + 1, _DIVISOR_CHUNK):  # bounded memory whatever n is
        k = np.arange(start, min(start + _DIVISOR_CHUNK, root + 1), dtype=np.int64)
        small += k[(k * k <= n) & (n % k == 0)].tolist()
    large = [n // k for k in reversed(small) if k * k != n]
    return small + large


_DIVISOR_CHUNK = 1 << 20  # candidates tested per numpy call in divisors() (8 MiB of int64)


def check_layout(model, devices: int, layout: Layout) -> None:
    """Raise :class:`InvalidLayout` (exit 2) when ``layout`` cannot run ``model`` on ``devices``."""
    if layout.devices != devices:
        raise InvalidLayout(
            f"tp·pp·dp = {layout.tp}·{layout.pp}·{layout.dp} = {layout.devices} but --devices is {devices}",
            hint="make the product equal the device count, or leave one of --tp/--pp/--dp out to derive it",
        )
    if model.heads % layout.tp:
        raise InvalidLayout(
            f"--tp {layout.tp} does not divide the {model.heads} attention heads",
            hint=f"use one of {', '.join(str(d) for d in divisors(model.heads) if d <= devices)}",
        )
    if model.layers % layout.pp:
        raise InvalidLayout(
            f"--pp {layout.pp} does not divide the {model.layers} layers",
            hint=f"use one of {', '.join(str(d) for d in divisors(model.layers) if d <= devices)}",
        )
    if layout.interleave > 1 and (layout.pp == 1 or (model.layers // layout.pp) % layout.interleave):
        raise InvalidLayout(
            f"--interleave {layout.interleave} needs pp > 1 and the {model.layers // layout.pp} layers per "
            f"stage divisible by it",
            hint="use --interleave 1 or a divisor of the layers per pipeline stage",
        )
    step = layout.dp * layout.micro_batch
    if layout.global_batch % step:
        raise InvalidLayout(
            f"--global-batch {layout.global_batch} is not divisible by dp × micro-batch = "
            f"{layout.dp} × {layout.micro_batch} = {step}",
            hint=f"use a multiple of {step}, e.g. {max(step, round(layout.global_batch / step) * step)}",
        )
    micro_batches = layout.global_batch // step
    if layout.interleave > 1 and micro_batches % layout.pp:
        raise InvalidLayout(
            f"--interleave {layout.interleave}: the interleaved schedule needs the {micro_batches} micro-batches "
            f"per step divisible by pp = {layout.pp}",
            hint="use --interleave 1, or a global batch that gives a multiple of pp micro-batches",
        )


class LayoutQuery(NamedTuple):
    """What the user fixed (None = search it)."""

    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    micro_batch: int | None = None
    global_batch: int | None = None
    zero: int | None = None
    recompute: str | None = None
    max_tp: int | None = None  # default: devices per node
    interleave: int | None = None  # virtual pipeline stages per device (None: searched when pp > 1)

    def is_complete(self) -> bool:
        return None not in (self.micro_batch, self.global_batch, self.zero, self.recompute) and (
            sum(x is None for x in (self.tp, self.pp, self.dp)) == 0
        )


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
) -> LayoutArrays:
    """Every valid layout of ``model`` on ``devices`` that agrees with ``query``, as arrays.

    Without a global batch in the query each row gets the multiple of dp × micro-batch closest to
    ``target_global_batch`` (default: :func:`default_global_batch`).
    """
    q = query or LayoutQuery()
    max_tp = q.max_tp or devices_per_node
    tps = [q.tp] if q.tp else [t for t in divisors(model.heads) if t <= max(max_tp, 1) and devices % t == 0]
    rows = []
    for tp in tps:
        if devices % tp:
            continue
        pps = [q.pp] if q.pp else [p for p in divisors(model.layers) if (devices // tp) % p == 0]
        for pp in pps:
            if devices % (tp * pp):
                continue
            dp = devices // (tp * pp)
            if q.dp is not None and dp != q.dp:
                continue
            rows.append((tp, pp, dp))
    if not rows:
        return LayoutArrays.of(
            tp=np.zeros(0),
            pp=np.zeros(0),
            dp=np.zeros(0),
            micro_batch=np.zeros(0),
            global_batch=np.zeros(0),
            zero=np.zeros(0),
            recompute=np.zeros(0),
            interleave=np.zeros(0),
        )
    base = np.asarray(rows, dtype=float)
    gb_target = q.global_batch or target_global_batch or default_global_batch(model.params, model.seq_len)
    per_replica = max(gb_target // min(r[2] for r in rows), 1)
    mbs = np.asarray([q.micro_batch], dtype=float) if q.micro_batch else _pow2_upto(min(MAX_MICRO_BATCH, per_replica))
    zeros = np.asarray([q.zero] if q.zero is not None else ZERO_STAGES, dtype=float)
    recs = np.asarray([RECOMPUTE_NAMES.index(q.recompute)] if q.recompute else range(3), dtype=float)
    # Cartesian product (rows × micro-batch × zero × recompute) by index arithmetic.
    n_b, n_m, n_z, n_r = len(base), len(mbs), len(zeros), len(recs)
    idx = np.arange(n_b * n_m * n_z * n_r)
    bi, rest = np.divmod(idx, n_m * n_z * n_r)
    mi, rest = np.divmod(rest, n_z * n_r)
    zi, ri = np.divmod(rest, n_r)
    tp, pp, dp = base[bi, 0], base[bi, 1], base[bi, 2]
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
    keep &= (mb <= gb / dp) & ((dp > 1) | (zero == 0))  # ZeRO shards over dp: pointless at dp = 1
    if q.zero is None or q.pp is None:
        # ZeRO-2/3 shard the gradients, which a pipeline accumulates over its micro-batches: DeepSpeed's
        # pipeline engine refuses them ("ZeRO-2 and ZeRO-3 are incompatible with pipeline parallelism",
        # deepspeed/runtime/pipe/engine.py) and Megatron-LM's distributed optimizer shards the optimizer
        # state only (ZeRO-1). The search pairs pipelines with ZeRO 0–1; a user who fixes both may combine them.
        keep &= (pp <= 1) | (zero <= ZERO_STAGE_WITH_PIPELINE_MAX)
    tp, pp, dp, mb, gb, zero, rec = (a[keep] for a in (tp, pp, dp, mb, gb, zero, rec))
    # A layout given in full means what Megatron-LM's flags mean: plain 1F1B unless --interleave says otherwise.
    given_in_full = None not in (q.micro_batch, q.global_batch, q.zero, q.recompute) and (
        sum(x is None for x in (q.tp, q.pp, q.dp)) <= 1  # the third degree follows from the device count
    )
    fixed_interleave = q.interleave if q.interleave is not None else (1 if given_in_full else None)
    inter = _interleave_rows(model.layers, pp, gb / (dp * mb), fixed_interleave)
    if inter is None:
        inter = np.ones(len(tp))
    else:  # every row once per virtual-stage choice that is valid for it (rows with pp = 1 keep v = 1 only)
        row, inter = inter
        tp, pp, dp, mb, gb, zero, rec = (a[row] for a in (tp, pp, dp, mb, gb, zero, rec))
    return LayoutArrays(
        tp=tp, pp=pp, dp=dp, micro_batch=mb, global_batch=gb, zero=zero, recompute=rec, interleave=inter
    )


def _interleave_rows(layers: int, pp: np.ndarray, micro_batches: np.ndarray, fixed: int | None):
    """None when every row keeps v = 1; else (row index, v) for each valid (row, v) pair.

    v must divide the layers of a stage (the fullest one when pp does not divide the layers), and with
    v > 1 the micro-batches per step must be a multiple of pp (INTERLEAVE_CHOICES)."""
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


def pick_best_grouped(est, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group (rows with the same ``groups`` id, sorted ascending), the index of the fastest row that
    fits (ties within 0.1%: less memory); a group with no fitting row gets the row closest to fitting."""
    fits = np.asarray(est.fits)
    mem = np.asarray(est.memory_bytes)
    group_fits = np.zeros(n_groups, dtype=bool)
    np.logical_or.at(group_fits, groups, fits)
    time_per_token = 1.0 / np.asarray(est.tokens_per_second)
    # Round to 0.1% so that layouts equal within noise tie and the smaller memory wins.
    key_time = np.round(np.log(time_per_token) / 1e-3)
    has_fit = group_fits[groups]
    key_time = np.where(has_fit, np.where(fits, key_time, np.inf), 0.0)
    order = np.lexsort((mem, key_time, groups))
    first = np.ones(len(order), dtype=bool)
    first[1:] = groups[order][1:] != groups[order][:-1]
    return order[first]


def pick_best(est) -> int:
    """Index of the fastest row that fits (ties: less memory); if none fits, the one closest to fitting."""
    n = np.asarray(est.fits).shape[0]
    return int(pick_best_grouped(est, np.zeros(n, dtype=np.int64), 1)[0])


class SearchResult(NamedTuple):
    """The chosen layout, its row, and every candidate that was evaluated."""

    layout: Layout
    index: int
    candidates: LayoutArrays
    estimates: object  # EstimateArrays of all candidates
    automatic: bool

    @property
    def fits(self) -> bool:
        return bool(np.asarray(self.estimates.fits)[self.index])


def search_layouts(
    model,
    profile,
    devices: int,
    workload,
    *,
    query: LayoutQuery | None = None,
    params=None,
    hardware=None,
    target_global_batch: int | None = None,
) -> SearchResult:
    """Evaluate every layout that agrees with ``query`` and pick the best (fastest that fits).

    ``hardware`` is the HardwareArrays of ``profile`` (built here when None). Raises InvalidLayout when no
    layout agrees with the query.
    """
    from flopcast.estimator.arrays import HardwareArrays, ModelArrays
    from flopcast.estimator.core import evaluate

    q = query or LayoutQuery()
    cands = enumerate_layouts(
        model, devices, devices_per_node=profile.devices_per_node, query=q, target_global_batch=target_global_batch
    )
    if len(cands.tp) == 0:
        raise InvalidLayout(
            f"no parallel layout of {devices} devices matches the given options for this model "
            f"({model.heads} heads, {model.layers} layers)",
            hint="check that --tp divides the heads, --pp the layers, and tp·pp divides --devices",
        )
    hw = hardware if hardware is not None else HardwareArrays.from_profiles([profile], params=params)
    est = evaluate(ModelArrays.from_specs([model]), hw, cands, workload, params)
    i = pick_best(est)
    return SearchResult(
        layout=Layout.from_arrays(cands, i), index=i, candidates=cands, estimates=est, automatic=len(cands.tp) > 1
    )


class FitSuggestion(NamedTuple):
    """A change that makes the job fit, with the memory per device it leads to."""

    change: str
    flags: str
    memory_bytes: float
    wall_clock_seconds: float


MAX_DEVICE_MULTIPLIER = 64  # how far "more devices" looks (doubling each time)


def fit_suggestions(
    model,
    profile,
    devices: int,
    layout: Layout,
    workload,
    *,
    params=None,
    hardware=None,
    limit: int = 3,
) -> list[FitSuggestion]:
    """The smallest changes that make ``layout`` fit, smallest first: a higher ZeRO stage, more
    recomputation, a smaller micro-batch, another layout on the same devices, then more devices."""
    from flopcast.estimator.arrays import HardwareArrays, ModelArrays
    from flopcast.estimator.core import evaluate

    hw = hardware if hardware is not None else HardwareArrays.from_profiles([profile], params=params)
    marr = ModelArrays.from_specs([model])
    out: list[FitSuggestion] = []

    def first_fit(cands: LayoutArrays, describe, least_change: bool = False) -> None:
        """Add the fastest fitting row of ``cands`` (or, with ``least_change``, the first one that fits:
        candidates are then ordered from the smallest change to the largest)."""
        if len(out) >= limit or len(cands.tp) == 0:
            return
        est = evaluate(marr, hw, cands, workload, params)
        fits = np.asarray(est.fits)
        if not fits.any():
            return
        i = int(np.argmax(fits)) if least_change else pick_best(est)
        chosen = Layout.from_arrays(cands, i)
        change, flags = describe(chosen)
        if any(s.flags == flags for s in out):
            return
        out.append(FitSuggestion(change, flags, float(est.memory_bytes[i]), float(est.wall_clock_seconds[i])))

    higher = [z for z in ZERO_STAGES if z > layout.zero]
    if layout.dp > 1 and higher:  # none above ZeRO-3
        first_fit(_variants(layout, zero=higher), lambda c: (f"ZeRO stage {c.zero}", f"--zero {c.zero}"), True)
    more = [r for r in RECOMPUTE_NAMES if RECOMPUTE_NAMES.index(r) > RECOMPUTE_NAMES.index(layout.recompute)]
    if more:
        first_fit(
            _variants(layout, recompute=more),
            lambda c: (f"{c.recompute} recomputation", f"--recompute {c.recompute}"),
            True,
        )
    smaller = [b for b in _pow2(layout.micro_batch - 1) if (layout.global_batch // layout.dp) % b == 0]
    if smaller:
        first_fit(
            _variants(layout, micro_batch=smaller),
            lambda c: (f"micro-batch {c.micro_batch}", f"--micro-batch {c.micro_batch}"),
            True,
        )
    same = enumerate_layouts(
        model, devices, devices_per_node=profile.devices_per_node, query=LayoutQuery(global_batch=layout.global_batch)
    )
    first_fit(same, lambda c: ("another layout on the same devices", c.flags()))
    k = 2
    while len(out) < limit and k <= MAX_DEVICE_MULTIPLIER:
        more_devices = enumerate_layouts(
            model,
            devices * k,
            devices_per_node=profile.devices_per_node,
            query=LayoutQuery(),
            target_global_batch=layout.global_batch,
        )
        before = len(out)
        first_fit(more_devices, lambda c, n=devices * k: (f"{n} devices", f"--devices {n} {c.flags()}"))
        if len(out) > before:
            break
        k *= 2
    return out


def _pow2(limit: int) -> list[int]:
    return [int(b) for b in _pow2_upto(limit)][::-1]


def _variants(layout: Layout, **choices) -> LayoutArrays:
    ((name, values),) = choices.items()
    rows = [Layout(**{**layout.model_dump(), name: v}).arrays() for v in values]
    return LayoutArrays.concatenate(rows)
